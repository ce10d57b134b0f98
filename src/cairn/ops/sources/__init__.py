"""Data streams to back up: standard input, a command's output, and database or repository
dumps (PostgreSQL, MySQL/MariaDB, SQLite, Subversion).

Every source is read once, front to back, straight into the chunker: nothing is written to a
temporary file and memory does not grow with the size of the stream. A source that fails (a
command exiting non-zero, a database that cannot be read) raises SourceFailed when its stream
ends, so the backup is abandoned before a snapshot is written.
"""
