"""The configuration file (TOML): repositories and jobs, read into typed, frozen objects.

Parsing is tomllib's; each value is then checked against what cairn expects, and a mistake (an
unknown key, a wrong type, a missing field, a bad value) is reported as one line naming the
file, the line and the key: ``config.toml:12: jobs.db.source.port: expected an integer``.
The file never holds a secret: passwords come from a file, a command or an environment variable.
"""
