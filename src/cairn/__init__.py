"""cairn: encrypted, deduplicated, incremental backups to object storage."""

__version__ = "0.1.0"
