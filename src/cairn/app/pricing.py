"""Which price table applies to a repository, and how a restore from it reads (in pack order,
through gaps as long as a GET is worth): what restore and mirror need of the prices, without
the cost model (app.cost) and the estimates of backup, prune and restore it imports."""

from __future__ import annotations

import os

from cairn.app.defaults import defaults_for
from cairn.core.urls import OBJECT_STORE, store_kind
from cairn.ops.cost.bill import bytes_per_get
from cairn.ops.cost.prices import Provider, choose, load_prices

MIN_READ_GAP = 16 << 10  # bytes

__all__ = ["MIN_READ_GAP", "Provider", "priced", "pricing", "restore_reading"]


def pricing(url: str, key: str | None = None, prices: str | None = None) -> tuple[Provider, str]:
    """The provider to price ``url`` at: ``key`` or $CAIRN_PROVIDER, else the one the URL is
    at; the tables overridden by ``prices`` or $CAIRN_PRICES. With how it was chosen."""
    key = key or os.environ.get("CAIRN_PROVIDER") or None
    prices = prices or os.environ.get("CAIRN_PRICES") or None
    return choose(load_prices(prices), key, url)


def priced(url: str, key: str | None = None) -> bool:
    """Whether a repository has a provider to price it at: one on an object store, or any
    repository a provider is named for (``key`` or $CAIRN_PROVIDER). A local directory is
    not priced by default: its requests cost nothing, its storage is the disk's."""
    return bool(key or os.environ.get("CAIRN_PROVIDER")) or store_kind(url) == OBJECT_STORE


def restore_reading(
    url: str, key: str | None = None, prices: str | None = None
) -> tuple[bool, int]:
    """How a restore from ``url`` reads: (in pack order?, the gap between needed blobs it
    reads through rather than make another request). The gap is the backend's default, less
    on an object store where the bytes in it would cost more to download than a GET (at the
    provider ``key`` names, or the one the URL is at), but never below ``MIN_READ_GAP``: a
    request also costs a round trip."""
    defaults = defaults_for(url)
    gap = defaults.read_gap
    if store_kind(url) == OBJECT_STORE:
        provider, _ = pricing(url, key, prices)
        gap = int(max(MIN_READ_GAP, min(gap, bytes_per_get(provider))))
    return defaults.pack_order, gap
