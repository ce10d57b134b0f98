"""Passphrase -> key-encryption key, with argon2id (memory-hard).

The parameters come from key files, which anyone who can write to the store can plant: they
are checked for their exact types and bounded (docs/format.md §3.2), so that no key file can
crash a command or make opening the repository cost more than ``MAX_MEMORY_KIB`` for
``MAX_TIME_COST`` passes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from argon2.low_level import Type, hash_secret_raw

# Bounds on a key file's parameters. The memory is what every command that opens the repository
# holds for a moment (it adds to each command's peak): 1 GiB is 32 times the default and the
# most cairn is willing to spend; 8 MiB is the least that still makes guessing memory-bound.
# Ten passes over 1 GiB take a few seconds: the most one key file may cost an open. Argon2's
# lanes only help up to the number of cores, and 16 covers the machines cairn runs on.
MIN_MEMORY_KIB = 8 * 1024
MAX_MEMORY_KIB = 1024 * 1024
MAX_TIME_COST = 10
MAX_PARALLELISM = 16


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

    @property
    def cost(self) -> int:
        """What deriving a key costs, roughly (KiB times passes): cheaper keys are tried first."""
        return self.memory_cost * self.time_cost

    @classmethod
    def from_dict(cls, d: object) -> KdfParams:
        """Strict: exactly the four fields, integers (not booleans or floats), bounded."""
        if not isinstance(d, dict) or set(d) != set(cls.__dataclass_fields__):
            raise ValueError(
                "KDF parameters must be exactly algorithm, time_cost, memory_cost, parallelism"
            )
        if d["algorithm"] != "argon2id":
            raise ValueError(f"unsupported KDF {d['algorithm']!r}")
        bounds = {
            "time_cost": (1, MAX_TIME_COST),
            "memory_cost": (MIN_MEMORY_KIB, MAX_MEMORY_KIB),
            "parallelism": (1, MAX_PARALLELISM),
        }
        for name, (low, high) in bounds.items():
            value = d[name]
            if type(value) is not int:
                raise ValueError(f"KDF {name} must be an integer, not {type(value).__name__}")
            if not low <= value <= high:
                raise ValueError(f"KDF {name} {value} is outside {low} to {high}")
        return cls(**d)


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
