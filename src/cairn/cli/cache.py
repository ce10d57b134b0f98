"""cairn cache: the local caches of this machine, and the removal of unused ones."""

from __future__ import annotations

import time
from datetime import datetime

import click

from cairn.app.cachedirs import cache_base, list_caches, remove_cache
from cairn.cli.helpformat import CairnCommand
from cairn.core.errors import UsageError
from cairn.core.units import count, format_bytes, parse_age
from cairn.ui.output import Output


def _age(_ctx: click.Context, _param: click.Parameter, value: str) -> int:
    try:
        return parse_age(value)
    except UsageError as e:
        raise UsageError(f"--max-unused: {e}") from None


@click.command("cache", cls=CairnCommand)
@click.option(
    "--cleanup", is_flag=True, help="Remove the caches of repositories not used for --max-unused."
)
@click.option(
    "--max-unused",
    "--max-age",
    "max_unused",
    default="30d",
    show_default=True,
    metavar="AGE",
    callback=_age,
    help="A cache not used for this long is old (30d, 12h, 2w; a bare number is days).",
)
@click.option(
    "--cache-dir",
    envvar="CAIRN_CACHE_DIR",
    metavar="DIR",
    help="Cache directory (or $CAIRN_CACHE_DIR; default: the platform's, ~/.cache/cairn).",
)
@click.option("--json", "json_mode", is_flag=True, help="Machine-readable JSON output.")
@click.option("-q", "--quiet", is_flag=True, help="Only errors and requested data.")
def command(
    cleanup: bool, max_unused: int, cache_dir: str | None, json_mode: bool, quiet: bool
) -> int:
    """List the local caches of this machine, or remove old ones.

    One directory per repository (its files cache and pack journal), with its size and last
    use; --cleanup removes those of repositories not used for --max-unused (30 days).

    A repository's cache only speeds up backups: one removed is made again by the next backup,
    which then reads every file once.

    \b
    Examples:
      cairn cache
      cairn cache --cleanup
      cairn cache --cleanup --max-unused 90d
    """
    out = Output(json_mode=json_mode, quiet=quiet)
    base = cache_base(cache_dir)
    now = time.time()
    caches = list_caches(base)
    old = [c for c in caches if c.unused_for(now) >= max_unused]
    removed = []
    if cleanup:
        for c in old:
            remove_cache(c)
            removed.append(c)
    if out.json_mode:
        out.json(
            {
                "directory": str(base),
                "caches": [
                    {**c.to_json(), "old": c in old, "removed": c in removed} for c in caches
                ],
            }
        )
        return 0
    if not caches:
        out.line(f"no caches in {base}")
        return 0
    rows = [
        [
            c.repository[:8],
            format_bytes(c.size),
            datetime.fromtimestamp(c.last_used).strftime("%Y-%m-%d %H:%M"),
            f"{int(c.unused_for(now) // 86400)}d",
            "removed" if c in removed else "old" if c in old else "",
        ]
        for c in caches
    ]
    out.table(["Repository", "Size", "Last used", "Unused", ""], rows, title=str(base))
    total = sum(c.size for c in caches)
    out.line(f"{count(len(caches), 'cache')}, {format_bytes(total)}")
    if removed:
        freed = sum(c.size for c in removed)
        out.line(f"removed {count(len(removed), 'old cache')}, freed {format_bytes(freed)}")
    elif old:
        out.line(f"{count(len(old), 'old cache')}: remove with `cairn cache --cleanup`")
    return 0
