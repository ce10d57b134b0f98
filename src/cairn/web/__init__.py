"""`cairn serve`: a web front end to the use cases of cairn.app (pages rendered on the server,
a little hand-written CSS and JavaScript shipped in the package, nothing fetched from elsewhere).

- ``settings``: what the server was started with, and the login secret;
- ``auth``: sessions, the login, CSRF tokens;
- ``repos``: the repositories and jobs, each repository opened once (``cairn.app.browse``);
- ``operations``: jobs, prunes, checks and restores on worker threads, one per repository,
  each written to the history (``cairn.app.history``, which `cairn run` writes to as well);
- ``pages``, ``actions``, ``downloads``: the endpoints; ``app``: them put together.
"""
