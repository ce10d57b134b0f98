"""Price tables: the providers' list prices shipped with cairn (prices.toml), a user's file that
overrides any figure, and which provider a repository URL is at."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields
from importlib import resources
from typing import Any
from urllib.parse import urlsplit

from cairn.core.errors import ConfigError, UsageError
from cairn.core.urls import OBJECT_STORE, store_kind

REQUESTS = ("put", "get", "head", "list", "delete")
_HOSTS = (
    ("amazonaws.com", "aws"),
    ("backblazeb2.com", "b2"),
    ("wasabisys.com", "wasabi"),
    ("r2.cloudflarestorage.com", "r2"),
)


@dataclass(frozen=True)
class RestoreTier:
    """Restoring archived objects (GLACIER, DEEP_ARCHIVE) at one speed."""

    hours: float = 0.0  # until the objects are readable (the provider's upper bound)
    per_gb: float = 0.0
    per_1000: float = 0.0  # restore requests


@dataclass(frozen=True)
class ClassPrices:
    name: str
    storage_gb_month: float = 0.0
    put_per_1000: float = 0.0
    get_per_1000: float = 0.0
    head_per_1000: float = 0.0
    list_per_1000: float = 0.0
    delete_per_1000: float = 0.0
    retrieval_per_gb: float = 0.0
    min_days: float = 0.0
    min_object_kb: float = 0.0
    overhead_kb: float = 0.0
    monitoring_per_1000_objects: float = 0.0
    tiers: tuple[tuple[float, float], ...] = ()  # (after days, storage per GB-month)
    restore: dict[str, RestoreTier] = field(default_factory=dict)
    checked: str = ""  # when the figures were last compared with the provider's page

    def storage_price(self, age_days: float | None = None) -> float:
        """Per GB-month for an object of this age (None: a new one)."""
        price = self.storage_gb_month
        for after, tier_price in self.tiers:
            if age_days is not None and age_days >= after:
                price = tier_price
        return price

    def request_price(self, kind: str) -> float:
        """Per request of ``kind`` (put, get, head, list, delete)."""
        return float(getattr(self, f"{kind}_per_1000")) / 1000


@dataclass(frozen=True)
class Provider:
    key: str
    name: str
    taken: str
    source: str
    default_class: str
    classes: dict[str, ClassPrices]
    egress_per_gb: float = 0.0
    egress_free_ratio: float = 0.0
    min_monthly: float = 0.0

    def cls(self, name: str | None) -> ClassPrices:
        """The prices of a storage class; the default class for None or a class not listed."""
        if name and name in self.classes:
            return self.classes[name]
        return self.classes[self.default_class]

    @property
    def standard(self) -> ClassPrices:
        """Where metadata lives (and restored copies of archived objects are billed)."""
        return self.cls(self.default_class)


def load_prices(user_file: str | None = None) -> dict[str, Provider]:
    """The shipped tables, with ``user_file`` (TOML, same shape) merged over them."""
    text = resources.files("cairn.ops.cost").joinpath("prices.toml").read_text("utf-8")
    table = tomllib.loads(text)
    where = "prices.toml"
    if user_file:
        where = user_file
        try:
            with open(user_file, "rb") as f:
                _merge(table, tomllib.load(f))
        except OSError as e:
            raise ConfigError(f"{user_file}: {e.strerror}") from None
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{user_file}: {e}") from None
    return {key: _provider(key, value, where) for key, value in table.items()}


def choose(providers: dict[str, Provider], key: str | None, url: str) -> tuple[Provider, str]:
    """The provider asked for, or the one ``url`` is at; with a note on how it was chosen."""
    if key:
        if key not in providers:
            raise UsageError(f"unknown provider {key!r} (one of {', '.join(sorted(providers))})")
        return providers[key], f"--provider {key}"
    found, why = provider_for_url(url)
    return providers[found], why


def provider_for_url(url: str) -> tuple[str, str]:
    """(provider key, why) for a repository URL."""
    if url.startswith("s3://"):
        return "aws", "an Amazon S3 URL"
    if store_kind(url) == OBJECT_STORE:
        host = (urlsplit(url[len("s3:") :]).hostname or "").lower()
        for suffix, key in _HOSTS:
            if host == suffix or host.endswith("." + suffix):
                return key, f"the endpoint {host}"
        return "aws", f"the endpoint {host} is not one cairn knows: priced as Amazon S3"
    return "aws", "a local directory, priced as if it were on Amazon S3"


def _merge(base: dict[str, Any], over: dict[str, Any]) -> None:
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            _merge(base[k], v)
        else:
            base[k] = v


_PROVIDER_KEYS = {"name", "taken", "source", "default_class", "classes"}
_PROVIDER_NUMBERS = ("egress_per_gb", "egress_free_ratio", "min_monthly")
_CLASS_NUMBERS = tuple(
    f.name for f in fields(ClassPrices) if f.name not in ("name", "tiers", "restore", "checked")
)


def _provider(key: str, d: Any, where: str) -> Provider:
    if not isinstance(d, dict):
        raise ConfigError(f"{where}: {key}: a table of prices is expected")
    unknown = set(d) - _PROVIDER_KEYS - set(_PROVIDER_NUMBERS)
    if unknown:
        raise ConfigError(f"{where}: {key}.{sorted(unknown)[0]}: unknown key")
    classes_d = d.get("classes") or {}
    if not isinstance(classes_d, dict):
        raise ConfigError(f"{where}: {key}.classes: a table of storage classes is expected")
    classes = {n: _class(f"{key}.classes.{n}", n, c, where) for n, c in classes_d.items()}
    default = str(d.get("default_class", "STANDARD"))
    if default not in classes:
        raise ConfigError(f"{where}: {key}.default_class: no prices for class {default!r}")
    return Provider(
        key=key,
        name=str(d.get("name", key)),
        taken=str(d.get("taken", "unknown")),
        source=str(d.get("source", "")),
        default_class=default,
        classes=classes,
        **{n: _number(f"{key}.{n}", d.get(n, 0), where) for n in _PROVIDER_NUMBERS},
    )


def _class(path: str, name: str, d: Any, where: str) -> ClassPrices:
    if not isinstance(d, dict):
        raise ConfigError(f"{where}: {path}: a table of prices is expected")
    unknown = set(d) - set(_CLASS_NUMBERS) - {"tiers", "restore", "checked"}
    if unknown:
        raise ConfigError(f"{where}: {path}.{sorted(unknown)[0]}: unknown key")
    tiers = []
    for i, t in enumerate(d.get("tiers", [])):
        if not isinstance(t, dict) or set(t) != {"after_days", "storage_gb_month"}:
            raise ConfigError(f"{where}: {path}.tiers[{i}]: after_days and storage_gb_month")
        tiers.append(
            (
                _number(f"{path}.tiers[{i}].after_days", t["after_days"], where),
                _number(f"{path}.tiers[{i}].storage_gb_month", t["storage_gb_month"], where),
            )
        )
    restore = {}
    for tier, t in (d.get("restore") or {}).items():
        tpath = f"{path}.restore.{tier}"
        if not isinstance(t, dict) or set(t) - {"hours", "per_gb", "per_1000"}:
            raise ConfigError(f"{where}: {tpath}: hours, per_gb and per_1000 are expected")
        restore[tier] = RestoreTier(**{k: _number(f"{tpath}.{k}", v, where) for k, v in t.items()})
    numbers = {n: _number(f"{path}.{n}", d[n], where) for n in _CLASS_NUMBERS if n in d}
    checked = d.get("checked", "")
    if not isinstance(checked, str):
        raise ConfigError(f"{where}: {path}.checked: a date (YYYY-MM-DD) is expected")
    return ClassPrices(
        name=name, tiers=tuple(sorted(tiers)), restore=restore, checked=checked, **numbers
    )


def _number(path: str, value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ConfigError(f"{where}: {path}: a number of 0 or more is expected, not {value!r}")
    return float(value)
