"""The repository's ``config`` object: format version and repository-wide parameters."""

from __future__ import annotations

import re
import secrets
from dataclasses import asdict, dataclass, field

import msgpack

from cairn.repo.limits import MAX_DATA_BLOB

FORMAT_VERSION = 1
# Object stores bill per request: large packs there (docs/performance.md, objects per GiB).
# A local directory has no request cost, and smaller packs keep memory low.
DEFAULT_PACK_SIZE = 40 << 20
DEFAULT_LOCAL_PACK_SIZE = 8 << 20
# What RepoConfig.new makes: 16 random bytes as lowercase hex. The id names the local cache
# directory, so a config with anything else (a path, '..') is refused.
_REPO_ID = re.compile(r"[0-9a-f]{32}")


def is_repo_id(value: object) -> bool:
    return isinstance(value, str) and _REPO_ID.fullmatch(value) is not None


@dataclass(frozen=True)
class ChunkerParams:
    # pyfastcdc's cut points average about 1 MiB with these (measured on random data)
    min_size: int = 256 << 10
    avg_size: int = 768 << 10
    max_size: int = 4 << 20  # the stream chunker buffers twice this per reading thread
    seed: int = 0  # secret, per repository: perturbs the gear table
    normalization: int = 1  # FastCDC normalized chunking level (NC)

    @classmethod
    def from_dict(cls, d: dict[str, int]) -> ChunkerParams:
        fields = set(cls.__dataclass_fields__)
        if set(d) != fields:
            raise ValueError(f"chunker parameters must be exactly {sorted(fields)}")
        params = cls(**d)
        if not 0 < params.min_size <= params.avg_size <= params.max_size <= MAX_DATA_BLOB:
            raise ValueError("chunker sizes out of range")
        if params.normalization not in (0, 1, 2, 3):
            raise ValueError("chunker normalization must be 0 to 3")
        return params

    @classmethod
    def random(cls) -> ChunkerParams:
        return cls(seed=secrets.randbits(63) | 1)


@dataclass(frozen=True)
class RepoConfig:
    version: int
    id: str
    chunker: ChunkerParams
    pack_size: int = DEFAULT_PACK_SIZE
    compression_level: int = 3
    extra: dict[str, object] = field(default_factory=dict)

    @classmethod
    def new(cls, pack_size: int = DEFAULT_PACK_SIZE, compression_level: int = 3) -> RepoConfig:
        return cls(
            version=FORMAT_VERSION,
            id=secrets.token_hex(16),
            chunker=ChunkerParams.random(),
            pack_size=pack_size,
            compression_level=compression_level,
        )

    def encode(self) -> bytes:
        d = asdict(self)
        d.pop("extra")
        d.update(self.extra)
        return msgpack.packb(d)  # type: ignore[no-any-return]

    @classmethod
    def decode(cls, data: bytes) -> RepoConfig:
        """Raises ValueError for anything but a well-formed version 1 config."""
        try:
            d = msgpack.unpackb(data)
            version = d.pop("version")
            if version != FORMAT_VERSION:
                raise ValueError(f"repository format version {version} is not supported")
            chunker = ChunkerParams.from_dict(d.pop("chunker"))
            if not is_repo_id(d["id"]):
                raise ValueError(f"the repository id {d['id']!r} is not 32 lowercase hex digits")
            for name in ("pack_size", "compression_level"):
                if type(d[name]) is not int:
                    raise ValueError(f"{name} must be an integer")
            known = ("id", "pack_size", "compression_level")
            extra = {k: d[k] for k in d if k not in known}
            return cls(version=version, chunker=chunker, extra=extra, **{k: d[k] for k in known})
        except (KeyError, TypeError, AttributeError, msgpack.UnpackException) as e:
            raise ValueError(f"malformed config: {e!r}") from None
