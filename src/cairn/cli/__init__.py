"""The command line: argument parsing and exit codes, one module per command."""
