"""Foundations shared by every layer: errors, ids, units, the clock."""
