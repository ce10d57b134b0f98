"""cairn cost: what the repository costs a month, and what backups, a restore and a prune
cost, at a provider's list prices."""

from __future__ import annotations

from typing import Any

import click

from cairn.app.context import RepoSpec, open_session
from cairn.app.cost import RESTORE_TIERS, CostRequest, Provider, month, parse_month, report
from cairn.cli.common import repo_options
from cairn.cli.helpformat import CairnCommand
from cairn.cli.prune import parse_fraction
from cairn.core.units import count, format_bytes, format_duration
from cairn.ui.money import backup_line, money, prices_line, prune_summary
from cairn.ui.output import Output


@click.command("cost", cls=CairnCommand)
@repo_options
@click.option("--provider", envvar="CAIRN_PROVIDER", help="Price table to use (aws, b2, ...).")
@click.option(
    "--prices",
    "prices_file",
    envvar="CAIRN_PRICES",
    metavar="FILE",
    help="TOML file overriding the price tables.",
)
@click.option("--last", default=7, show_default=True, help="Backups to average.")
@click.option(
    "--max-unused",
    default=f"{CostRequest().max_unused:.0%}",
    show_default=True,
    help="Repack threshold of the prune to estimate.",
)
@click.option(
    "--bandwidth",
    default=100.0,
    show_default=True,
    metavar="MBIT/S",
    help="Download speed for the restore time.",
)
@click.option(
    "--restore-tier",
    type=click.Choice(RESTORE_TIERS),
    default="Standard",
    show_default=True,
    help="How archived packs would be restored.",
)
@click.option(
    "--month",
    "which_month",
    is_flag=False,
    flag_value="",
    default=None,
    metavar="[YYYY-MM]",
    help="What the repository cost in that month (default: this one) from what its backups "
    "and maintenance recorded, and the next month's forecast.",
)
def command(
    spec: RepoSpec,
    out: Output,
    provider: str | None,
    prices_file: str | None,
    last: int,
    max_unused: str,
    bandwidth: float,
    restore_tier: str,
    which_month: str | None,
) -> int:
    """What the repository costs a month, and what backups, a full restore and a prune
    cost, at a provider's list prices (docs/cost.md). With --month: what it cost in a
    calendar month, and what the next will cost.

    \b
    Examples:
      cairn cost -r s3:s3.amazonaws.com/bucket/cairn
      cairn cost -r s3:s3.amazonaws.com/bucket/cairn --provider b2
      cairn cost -r @main --month 2026-11
    """
    if which_month is not None:
        period = parse_month(which_month)  # before the password is asked for
        request = CostRequest(provider=provider, prices_file=prices_file)
        doc, chosen, why = month(open_session(spec), request, period)
        if out.json_mode:
            out.json(doc)
        else:
            show_month(out, doc, chosen, why)
        return 0
    request = CostRequest(
        provider=provider,
        prices_file=prices_file,
        last=last,
        max_unused=parse_fraction(max_unused),
        bandwidth_mbit=bandwidth,
        restore_tier=restore_tier,
    )
    doc, chosen, why = report(open_session(spec), request)
    if out.json_mode:
        out.json(doc)
    elif chosen is None:
        s = doc["storage"]
        out.line(f"repository {doc['repository']}: {why}")
        out.line(f"size: {format_bytes(s['bytes'])} in {count(s['objects'], 'object')}")
    else:
        show(out, doc, chosen, why)
    return 0


def show(out: Output, doc: dict[str, Any], provider: Provider, why: str) -> None:
    out.line(f"repository {doc['repository']}")
    out.line(prices_line(provider, why))
    _storage(out, doc["storage"])
    _backups(out, doc["backups"])
    _restore(out, doc["restore"])
    _prune(out, doc["prune"])
    _advice(out, doc["advice"], doc["prune"])


def _storage(out: Output, s: dict[str, Any]) -> None:
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


def _backups(out: Output, b: dict[str, Any]) -> None:
    out.line("")
    if not b["count"]:
        out.line("backups: no snapshot recorded its requests")
        return
    last = b["last"]
    out.line(f"last backup ({last['snapshot'][:8]}): {backup_line(last)}")
    out.line(f"average of the last {b['count']}: {backup_line(b['average'])}")


def _restore(out: Output, r: dict[str, Any] | None) -> None:
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


def _prune(out: Output, p: dict[str, Any]) -> None:
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
            f"  {count(p['archived_repacks'], 'pack')} to repack are archived: prune cannot read them "
            "(restore them first, or keep them: --max-unused 100%)"
        )


def _advice(out: Output, a: dict[str, Any] | None, p: dict[str, Any]) -> None:
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


def show_month(out: Output, doc: dict[str, Any], provider: Provider, why: str) -> None:
    out.line(f"repository {doc['repository']}")
    out.line(prices_line(provider, why))
    until = doc["until"][:10]
    span = doc["month"] if doc["complete"] else f"{doc['month']} (until {until})"
    out.line(f"month {span}:")
    s, b, m = doc["storage"], doc["backups"], doc["maintenance"]
    average = format_bytes(int(s["average_bytes"]))
    if not doc["complete"]:  # the days still to come count as nothing yet
        average += " so far"
    out.line(f"  storage: {average} on average over the month, {money(s['cost'])}")
    line = f"  backups: {count(b['count'], 'backup')}"
    if b["removed"]:
        line += f" ({b['removed']} of them forgotten since)"
    out.line(f"{line}, {_requests(b)}")
    runs = ", ".join(f"{cmd} {n}" for cmd, n in m["commands"].items()) or "none recorded"
    out.line(f"  maintenance: {count(m['count'], 'run')} ({runs}), {_requests(m)}")
    out.line(f"  total: {money(doc['total'])}")
    for hex_id, why_damaged in doc["damaged_records"].items():
        out.line(f"  (operation record {hex_id[:8]} is damaged, left out: {why_damaged})")
    f = doc["forecast"]
    source = (
        "as recorded"
        if f["maintenance_from"] == "recorded"
        else "a daily forget and prune, by the model"
    )
    out.line("")
    out.line(
        f"next {f['days']:.0f} days: storage {money(f['storage'])}, backups {money(f['backups'])}, "
        f"maintenance {money(f['maintenance'])} ({source}) = {money(f['total'])}"
    )


def _requests(part: dict[str, Any]) -> str:
    q, c = part["requests"], part["charges"]
    return (
        f"{q['put']} PUT, {q['get']} GET, {q['head']} HEAD, {q['list']} LIST, "
        f"{q['delete']} DELETE, {format_bytes(q['bytes_down'])} down: "
        f"requests {money(c['requests'])}, egress {money(c['egress'])}"
    )
