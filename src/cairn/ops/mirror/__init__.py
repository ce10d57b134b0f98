"""Mirrors: a directory kept in a bucket file for file, described by a manifest
(docs/mirror.md): object keys of paths, the manifest's pieces and heads."""
