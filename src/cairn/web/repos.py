"""The repositories the server shows, each opened once when first needed (a key derivation),
then shared by every page (``cairn.app.browse.Browser``) and by the operations, which get a
fresh view of it (``Session.reopened``: the same key, nothing loaded)."""

from __future__ import annotations

import threading

from cairn.app.browse import Browser
from cairn.app.context import RepoSpec, open_session
from cairn.config.schema import JobConfig
from cairn.core.errors import CairnError, NotFoundError


class Repos:
    def __init__(self, specs: dict[str, RepoSpec], jobs: dict[str, JobConfig]) -> None:
        self.specs = specs
        self.jobs = jobs
        self._browsers: dict[str, Browser] = {}
        self._locks = {name: threading.Lock() for name in specs}

    def names(self) -> list[str]:
        return list(self.specs)

    def browser(self, name: str) -> Browser:
        """The repository ``name``, opened (NotFoundError for a name not served)."""
        if name not in self.specs:
            raise NotFoundError(f"no repository {name!r} here")
        with self._locks[name]:
            browser = self._browsers.get(name)
            if browser is None:
                browser = Browser(open_session(self.specs[name]))
                self._browsers[name] = browser
        return browser

    def job(self, name: str) -> JobConfig:
        try:
            return self.jobs[name]
        except KeyError:
            raise NotFoundError(f"no job {name!r} here") from None

    def jobs_of(self, repository: str) -> list[JobConfig]:
        return [j for j in self.jobs.values() if j.repository.name == repository]

    def open_all(self) -> dict[str, str]:
        """Opens every repository now (a password asked at a terminal is asked before the
        server answers); what could not be opened -> why (its pages say so too)."""
        problems = {}
        for name in self.specs:
            try:
                self.browser(name)
            except CairnError as e:
                problems[name] = str(e)
        return problems
