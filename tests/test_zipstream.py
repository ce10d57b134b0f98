"""A tar stream turned into a zip as it is read (cairn serve's .zip downloads): files, their
modes and times, directories and symbolic links come through; what a zip cannot hold is left
out and counted; the output never needs to seek."""

from __future__ import annotations

import io
import os
import stat
import tarfile
import zipfile

import pytest

from cairn.ops.zipstream import tar_to_zip


class OnlyWrites:
    """An output that cannot seek or tell, as an HTTP response's body cannot."""

    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, b: bytes) -> int:
        self.data += b
        return len(b)

    def flush(self) -> None:
        pass


def member(tar: tarfile.TarFile, name: str, kind: bytes, data: bytes = b"", **kw: object) -> None:
    info = tarfile.TarInfo(name)
    info.type, info.size, info.mtime, info.mode = kind, len(data), 1_700_000_000, 0o640
    for k, v in kw.items():
        setattr(info, k, v)
    tar.addfile(info, io.BytesIO(data) if data else None)


def test_files_dirs_and_links_come_through_the_rest_is_counted() -> None:
    big = os.urandom(3 << 20)
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        member(tar, "top", tarfile.DIRTYPE, mode=0o750)
        member(tar, "top/big.bin", tarfile.REGTYPE, big)
        member(tar, "top/empty", tarfile.REGTYPE)
        member(tar, "top/ünï.txt", tarfile.REGTYPE, b"names stay\n")
        member(tar, "top/link", tarfile.SYMTYPE, linkname="big.bin")
        member(tar, "top/hard", tarfile.LNKTYPE, linkname="top/big.bin")
        member(tar, "top/fifo", tarfile.FIFOTYPE)
    raw.seek(0)
    out = OnlyWrites()
    summary = tar_to_zip(raw, out)  # type: ignore[arg-type]
    assert (summary.files, summary.dirs, summary.links, summary.skipped) == (3, 1, 1, 2)
    with zipfile.ZipFile(io.BytesIO(bytes(out.data))) as z:
        assert z.testzip() is None  # every CRC right
        names = z.namelist()
        assert names == ["top/", "top/big.bin", "top/empty", "top/ünï.txt", "top/link"]
        assert z.read("top/big.bin") == big
        assert z.read("top/empty") == b""
        assert z.read("top/link") == b"big.bin"
        info = z.getinfo("top/big.bin")
        assert stat.S_IMODE(info.external_attr >> 16) == 0o640
        assert stat.S_ISLNK(z.getinfo("top/link").external_attr >> 16)
        assert stat.S_IMODE(z.getinfo("top/").external_attr >> 16) == 0o750
        assert info.date_time[0] == 2023


def test_a_truncated_tar_is_an_error_not_a_short_zip() -> None:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        member(tar, "f", tarfile.REGTYPE, os.urandom(100_000))
    cut = io.BytesIO(raw.getvalue()[:50_000])
    with pytest.raises(tarfile.ReadError):
        tar_to_zip(cut, OnlyWrites())  # type: ignore[arg-type]
