"""Prices and money in the commands' output: which price table applies, and how a backup's or
a prune's cost reads."""

from __future__ import annotations

import os
from typing import Any

from cairn.core import clock
from cairn.core.units import format_bytes
from cairn.model.snapshot import Summary
from cairn.ops.cost.bill import GIB
from cairn.ops.cost.estimate import backup_charges, backup_requests, prune_cost
from cairn.ops.cost.prices import Provider, choose, load_prices
from cairn.ops.cost.report import data_class, inventory
from cairn.ops.prune import PrunePlan, PruneReport
from cairn.repo.repository import Repository


def pricing(url: str, key: str | None = None, prices: str | None = None) -> tuple[Provider, str]:
    """The provider to price ``url`` at: ``key`` or $CAIRN_PROVIDER, else the one the URL is
    at; the tables overridden by ``prices`` or $CAIRN_PRICES. With how it was chosen."""
    key = key or os.environ.get("CAIRN_PROVIDER") or None
    prices = prices or os.environ.get("CAIRN_PRICES") or None
    return choose(load_prices(prices), key, url)


def money(x: float) -> str:
    if x == 0:
        return "$0"
    if abs(x) >= 100:
        return f"${x:,.0f}"
    if abs(x) >= 1:
        return f"${x:,.2f}"
    if abs(x) >= 0.01:
        return f"${x:.4f}"
    return f"${x:.6f}" if abs(x) >= 0.000001 else "<$0.000001"


def prices_line(provider: Provider, why: str) -> str:
    return f"prices: {provider.name}, list prices of {provider.taken} ({why})"


def backup_line(line: dict[str, Any]) -> str:
    """Requests, bytes and cost of a backup; the storage it adds a month."""
    text = f"{requests_text(line['requests'])}: {money(line['cost'])}"
    if "adds_month" in line:
        text += (
            f"; stores {format_bytes(line['stored'])} more ({money(line['adds_month'])} a month)"
        )
    return text


def requests_text(q: dict[str, Any]) -> str:
    parts = [
        f"{q[k]:.0f} {k.upper()}" for k in ("put", "get", "head", "list", "delete") if q.get(k)
    ]
    return (
        f"{', '.join(parts) or 'no requests'}; {format_bytes(q.get('bytes_up', 0))} up, "
        f"{format_bytes(q.get('bytes_down', 0))} down"
    )


def prune_summary(p: dict[str, Any]) -> str:
    return (
        f"deletes {p['packs_deleted']} packs and repacks {p['packs_repacked']}, freeing "
        f"{format_bytes(p['bytes_freed'])}: {prune_cost_text(p)}"
    )


def prune_cost_text(p: dict[str, Any]) -> str:
    """What a prune costs once and saves a month (a PruneCost as a dict)."""
    c = p["charges"]
    text = (
        f"saves {money(p['saves_month'])} a month, costs {money(c['total'])} once "
        f"(requests {money(c['requests'])}, egress {money(c['egress'])}, retrieval "
        f"{money(c['retrieval'])}, early deletion {money(c['early_deletion'])})"
    )
    months = p["break_even_months"]
    if months is not None:
        text += f", repaid in {months:.1f} months"
    return text


def backup_estimate(url: str, storage_class: str | None, summary: Summary) -> dict[str, Any]:
    """What the backup a dry run rehearsed would cost: its reads, as counted, and the writes
    its packer counted (data packs in ``storage_class``)."""
    provider, why = pricing(url)
    data = provider.cls(storage_class)
    counts = backup_requests(summary, dry_run=True)
    charges = backup_charges(counts, summary.packs_written, provider, data)
    return {
        "requests": counts,
        "cost": charges.total,
        "stored": summary.bytes_stored,
        "adds_month": summary.bytes_stored / GIB * data.storage_gb_month,
        "provider": provider.key,
        "data_class": data.name,
        "prices": prices_line(provider, why),
    }


def prune_estimate(
    url: str, storage_class: str | None, repo: Repository, plan: PrunePlan, report: PruneReport
) -> dict[str, Any]:
    """What the prune a dry run planned would cost and save (repacked data in
    ``storage_class``, or the class most data packs are in)."""
    provider, why = pricing(url)
    objects = inventory(repo, provider)
    data = provider.cls(storage_class or data_class(repo, objects, provider))
    cost = prune_cost(plan, report, objects, provider, data, clock.now())
    return {**cost.as_dict(), "provider": provider.key, "prices": prices_line(provider, why)}
