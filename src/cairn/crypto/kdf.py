"""Passphrase -> key-encryption key, with argon2id (memory-hard)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from argon2.low_level import Type, hash_secret_raw


@dataclass(frozen=True)
class KdfParams:
    algorithm: str = "argon2id"
    time_cost: int = 3
    memory_cost: int = 64 * 1024  # KiB
    parallelism: int = 2

    def as_dict(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> KdfParams:
        params = cls(**d)  # type: ignore[arg-type]
        if params.algorithm != "argon2id":
            raise ValueError(f"unsupported KDF {params.algorithm!r}")
        return params


def derive_key(password: bytes, salt: bytes, params: KdfParams) -> bytes:
    return hash_secret_raw(
        secret=password,
        salt=salt,
        time_cost=params.time_cost,
        memory_cost=params.memory_cost,
        parallelism=params.parallelism,
        hash_len=32,
        type=Type.ID,
    )
