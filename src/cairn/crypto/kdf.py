"""Passphrase -> key-encryption key, with argon2id (memory-hard)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from argon2.low_level import Type, hash_secret_raw

MAX_MEMORY_KIB = 4 * 1024 * 1024  # 4 GiB


@dataclass(frozen=True)
class KdfParams:
    algorithm: str = "argon2id"
    # 32 MiB and 4 passes: above OWASP's argon2id minimum (19 MiB, 2 passes), and every
    # command's peak memory includes it, so it is not larger
    time_cost: int = 4
    memory_cost: int = 32 * 1024  # KiB
    parallelism: int = 2

    def as_dict(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> KdfParams:
        """Strict: every field present, and bounded, so a key file cannot exhaust memory."""
        if not isinstance(d, dict) or set(d) != set(cls.__dataclass_fields__):
            raise ValueError(
                "KDF parameters must be exactly algorithm, time_cost, memory_cost, parallelism"
            )
        params = cls(**d)  # type: ignore[arg-type]
        if params.algorithm != "argon2id":
            raise ValueError(f"unsupported KDF {params.algorithm!r}")
        if not (
            1 <= params.time_cost <= 64
            and 8 * 1024 <= params.memory_cost <= MAX_MEMORY_KIB
            and 1 <= params.parallelism <= 64
        ):
            raise ValueError("KDF parameters out of the accepted range")
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
