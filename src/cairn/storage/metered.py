"""Counts every call and byte that passes to the store, the way S3 bills them."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass

from cairn.storage.base import Buffer, Storage, StorageWrapper

LIST_PAGE = 1000  # a LIST request returns at most this many names (S3 semantics)


@dataclass
class Usage:
    put: int = 0
    get: int = 0
    head: int = 0
    list: int = 0
    delete: int = 0
    bytes_up: int = 0
    bytes_down: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)

    def minus(self, other: Usage) -> Usage:
        a, b = self.as_dict(), other.as_dict()
        return Usage(**{k: a[k] - b[k] for k in a})


class MeteredStorage(StorageWrapper):
    def __init__(self, inner: Storage) -> None:
        super().__init__(inner)
        self._lock = threading.Lock()
        self.usage = Usage()

    def snapshot(self) -> Usage:
        with self._lock:
            return Usage(**self.usage.as_dict())

    def read(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        data = self.inner.read(name, offset, length)
        with self._lock:
            self.usage.get += 1
            self.usage.bytes_down += len(data)
        return data

    def read_into(self, name: str, offset: int, out: memoryview) -> int:
        n = self.inner.read_into(name, offset, out)
        with self._lock:
            self.usage.get += 1
            self.usage.bytes_down += n
        return n

    def write(self, name: str, data: Buffer, *, metadata: bool = True) -> None:
        self.inner.write(name, data, metadata=metadata)
        with self._lock:
            self.usage.put += 1
            self.usage.bytes_up += len(memoryview(data).cast("B"))

    def stat(self, name: str) -> int:
        try:
            return self.inner.stat(name)
        finally:
            with self._lock:
                self.usage.head += 1

    def list(self, prefix: str) -> Iterator[tuple[str, int]]:
        with self._lock:
            self.usage.list += 1
        for n, item in enumerate(self.inner.list(prefix)):
            if n and n % LIST_PAGE == 0:  # item 1000 (counting from 0) starts the next page
                with self._lock:
                    self.usage.list += 1
            yield item

    def delete(self, name: str) -> None:
        self.inner.delete(name)
        with self._lock:
            self.usage.delete += 1
