"""Money, requests and prices as the commands show them."""

from __future__ import annotations

from typing import Any

from cairn.core.units import count, format_bytes


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


def prices_line(provider: Any, why: str) -> str:
    """Which price table priced a figure: a Provider (name, taken) and why it was chosen."""
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
        f"deletes {count(p['packs_deleted'], 'pack')} and repacks {p['packs_repacked']}, freeing "
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
