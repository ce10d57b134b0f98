"""cairn cost: what the repository costs a month, and what backups, a restore and a prune
cost, at a provider's list prices."""

from __future__ import annotations

from typing import Any

import click

from cairn.app.context import RepoSpec, open_session
from cairn.app.cost import RESTORE_TIERS, CostRequest, Provider, month, parse_month, report
from cairn.cli.common import no_lock_option, repo_options
from cairn.cli.helpformat import CairnCommand
from cairn.cli.prune import parse_fraction
from cairn.core.units import count, format_bytes
from cairn.ui.costreport import show
from cairn.ui.money import money, prices_line
from cairn.ui.output import Output


@click.command("cost", cls=CairnCommand)
@repo_options
@no_lock_option
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
