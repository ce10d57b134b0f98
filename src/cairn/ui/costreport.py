"""The cost report (``cairn cost``, the web interface's cost page) as lines of text."""

from __future__ import annotations

from typing import Any, Protocol

from cairn.core.units import count, format_bytes, format_duration
from cairn.ui.money import (
    backup_line,
    money,
    prices_line,
    prune_summary,
)


class Sink(Protocol):
    """Where the report goes: cairn.ui.output.Output, or ``Lines``."""

    quiet: bool

    def line(self, text: str) -> None: ...

    def table(self, headers: list[str], rows: list[list[str]]) -> None: ...


class Lines:
    """The report as plain lines of text (tables in aligned columns)."""

    quiet = False

    def __init__(self) -> None:
        self.lines: list[str] = []

    def line(self, text: str) -> None:
        self.lines.append(text)

    def table(self, headers: list[str], rows: list[list[str]]) -> None:
        widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(len(headers))]
        for row in [headers, *rows]:
            cells = [
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(row, widths, strict=True))
            ]
            self.lines.append("  ".join(cells).rstrip())


def report_lines(doc: dict[str, Any], provider: Any, why: str) -> list[str]:
    """The report of ``cairn cost`` (app.cost.report's document) as lines of text."""
    out = Lines()
    show(out, doc, provider, why)
    return out.lines


def show(out: Sink, doc: dict[str, Any], provider: Any, why: str) -> None:
    out.line(f"repository {doc['repository']}")
    out.line(prices_line(provider, why))
    _storage(out, doc["storage"])
    _backups(out, doc["backups"])
    _restore(out, doc["restore"])
    _prune(out, doc["prune"])
    _advice(out, doc["advice"], doc["prune"])


def _storage(out: Sink, s: dict[str, Any]) -> None:
    out.line("")
    rows = [
        [c["class"], str(c["objects"]), format_bytes(c["bytes"]), money(c["month"])]
        for c in s["classes"]
    ]
    rows.append(["total", str(s["objects"]), format_bytes(s["bytes"]), money(s["month"])])
    if not out.quiet:
        out.table(["Storage class", "Objects", "Size", "Per month"], rows)
    if s["minimum_applies"]:
        out.line("(the provider's minimum monthly charge applies)")
    for c in s["unpriced_classes"]:
        out.line(f"(class {c} is not in the price table: priced as the default class)")


def _backups(out: Sink, b: dict[str, Any]) -> None:
    out.line("")
    if not b["count"]:
        out.line("backups: no snapshot recorded its requests")
        return
    last = b["last"]
    out.line(f"last backup ({last['snapshot'][:8]}): {backup_line(last)}")
    out.line(f"average of the last {b['count']}: {backup_line(b['average'])}")


def _restore(out: Sink, r: dict[str, Any] | None) -> None:
    out.line("")
    if r is None:
        out.line("restore: the repository has no snapshots")
        return
    c = r["charges"]
    out.line(
        f"full restore of the latest snapshot ({r['snapshot'][:8]}, "
        f"{format_bytes(r['files_bytes'])} of files):"
    )
    out.line(
        f"  {r['requests']['get']} GET, {format_bytes(r['bytes_down'])} down: "
        f"requests {money(c['requests'])}, retrieval {money(c['retrieval'])}, "
        f"egress {money(c['egress'])} = {money(c['total'])}"
    )
    for line in r["by_class"]:
        if "packs" in line:
            out.line(
                f"  {count(line['packs'], 'pack')} ({format_bytes(line['pack_bytes'])}) are in "
                f"{line['class']}: restored first ({r['thaw_tier']} tier, up to "
                f"{format_duration(r['thaw_hours'] * 3600)})"
            )
    out.line(
        f"  time: about {format_duration(r['hours'] * 3600)} "
        f"(downloading at {r['bandwidth_mbit']:g} Mbit/s, --bandwidth)"
    )


def _prune(out: Sink, p: dict[str, Any]) -> None:
    out.line("")
    if "error" in p:
        out.line(f"prune: cannot estimate ({p['error']})")
        return
    out.line(
        f"unused parts of packs: {format_bytes(p['unused_bytes'])} "
        f"({money(p['unused_month'])} a month)"
    )
    out.line(f"a prune with --max-unused {p['max_unused']:.0%} {prune_summary(p)}")
    if p["archived_repacks"]:
        out.line(
            f"  {count(p['archived_repacks'], 'pack')} to repack are archived: prune cannot read "
            "them "
            "(restore them first, or keep them: --max-unused 100%)"
        )


def _advice(out: Sink, a: dict[str, Any] | None, p: dict[str, Any]) -> None:
    if a is None:
        return
    out.line("")
    line = f"the model's best --max-unused here: {a['best_max_unused']:.0%}"
    if a["month_at_best"] is not None and a["month_at_max_unused"] is not None:
        line += (
            f" (about {money(a['month_at_best'])} a month in the long run, against "
            f"{money(a['month_at_max_unused'])} at {p['max_unused']:.0%})"
        )
    out.line(line)
    out.line(
        f"  for a daily change of {a['daily_change']:.1%} of the "
        f"{format_bytes(a['used_bytes'])} in use, changes scattered over packs, pruned daily "
        "from outside the store's network (docs/cost.md)"
    )
