"""Wiring: storage stacks, passwords, caches, opened repositories."""
