"""Subversion: ``svnadmin dump`` of one repository, or of every repository under a directory.

svnadmin dump reads revisions 0 to the youngest one when it starts, which are immutable, so
the dump is consistent while commits go on. Each repository becomes ``/NAME.svndump`` (NAME:
the repository directory's name); restore with ``svnadmin create NEW`` and
``cairn dump latest /NAME.svndump | svnadmin load NEW``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from cairn.ops.sources.stream import CommandSource, SourceFailed, StreamItem, file_name


@dataclass(frozen=True)
class SvnSource:
    repository: str | None = None  # one repository
    parent: str | None = None  # or every repository directly under this directory
    svnadmin: str = "svnadmin"
    options: tuple[str, ...] = ()  # more arguments for svnadmin dump (e.g. --deltas)

    kind = "svn"

    def streams(self) -> list[StreamItem]:
        if self.repository:
            repos = [os.path.expanduser(self.repository)]
        else:
            assert self.parent is not None
            repos = find_repositories(os.path.expanduser(self.parent))
        items = []
        for repo in repos:
            name = file_name(os.path.basename(os.path.normpath(repo)))
            argv = [self.svnadmin, "dump", "--quiet", *self.options, "--", repo]
            items.append(StreamItem(f"/{name}.svndump", CommandSource(argv)))
        return items


def is_repository(path: str) -> bool:
    return os.path.isfile(os.path.join(path, "format")) and os.path.isdir(os.path.join(path, "db"))


def find_repositories(parent: str) -> list[str]:
    try:
        names = sorted(os.listdir(parent))
    except OSError as e:
        raise SourceFailed(
            f"cannot list Subversion repositories in {parent}: {e.strerror}"
        ) from None
    repos = [os.path.join(parent, n) for n in names if is_repository(os.path.join(parent, n))]
    if not repos:
        raise SourceFailed(f"no Subversion repository in {parent}")
    return repos
