"""What the capabilities of an S3 store (objects, versions, object lock) share: the client of
the store that offers them, where its objects are, and how its errors name the store."""

from __future__ import annotations

from typing import Any

from cairn.storage.s3config import S3Location


class S3Capability:
    def __init__(self, client: Any, location: S3Location, endpoint: str) -> None:
        self.client = client
        self.location = location
        self._endpoint = endpoint  # as errors name the store

    def _key(self, name: str) -> str:
        return self.location.prefix + name
