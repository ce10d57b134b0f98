"""The zip and gzip streams of the downloads (cairn serve's .zip and .tar.gz): what a zip can
hold comes through with its modes and times, the rest is counted; data that compresses is
deflated and the rest stored; pieces compressed on several threads make one valid archive
(one zip entry, one gzip member), whose CRC-32 is combined from theirs; the output never
needs to seek."""

from __future__ import annotations

import gzip
import io
import os
import shutil
import stat
import subprocess
import tarfile
import zipfile
import zlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cairn.ops.deflate import PIECE, crc32_combine
from cairn.ops.gzipstream import GzipStream
from cairn.ops.tarstream import TarStream
from cairn.ops.zipstream import ZipStream


class OnlyWrites:
    """An output that cannot seek or tell, as an HTTP response's body cannot."""

    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, b: bytes) -> int:
        self.data += b
        return len(b)

    def flush(self) -> None:
        pass


def info(name: str, kind: bytes, size: int = 0, mode: int = 0o640, **kw: object) -> tarfile.TarInfo:
    i = tarfile.TarInfo(name)
    i.type, i.size, i.mtime, i.mode = kind, size, 1_700_000_000, mode
    for k, v in kw.items():
        setattr(i, k, v)
    return i


def pieces(data: bytes, n: int) -> list[bytes]:
    return [data[i : i + n] for i in range(0, len(data), n)] or [b""]


TEXT = b"".join(b"line %d of a text that compresses well\n" % i for i in range(200_000))


def test_entries_come_through_compressible_data_deflated_the_rest_stored(tmp_path: Path) -> None:
    big = os.urandom(3 * PIECE + 12345)
    out = OnlyWrites()
    z = ZipStream(out)  # type: ignore[arg-type]
    z.add(info("top", tarfile.DIRTYPE, mode=0o750))
    z.add(info("top/big.bin", tarfile.REGTYPE, len(big)), pieces(big, 300_000), False)
    z.add(info("top/text", tarfile.REGTYPE, len(TEXT)), pieces(TEXT, 700_000), True)
    z.add(info("top/unknown", tarfile.REGTYPE, len(TEXT)), [TEXT], None)
    z.add(info("top/unknown.bin", tarfile.REGTYPE, len(big)), [big], None)
    z.add(info("top/empty", tarfile.REGTYPE))
    z.add(info("top/ünï.txt", tarfile.REGTYPE, 11), [b"names stay\n"])
    z.add(info("top/link", tarfile.SYMTYPE, linkname="big.bin"))
    z.add(info("top/hard", tarfile.LNKTYPE, linkname="top/big.bin"))
    z.add(info("top/fifo", tarfile.FIFOTYPE))
    z.close()
    s = z.summary
    assert (s.files, s.dirs, s.links, s.skipped) == (6, 1, 1, 2)
    with zipfile.ZipFile(io.BytesIO(bytes(out.data))) as zf:
        assert zf.testzip() is None  # every CRC right
        names = zf.namelist()
        assert names == ["top/", "top/big.bin", "top/text", "top/unknown", "top/unknown.bin",
                         "top/empty", "top/ünï.txt", "top/link"]  # fmt: skip
        assert zf.read("top/big.bin") == big and zf.read("top/unknown.bin") == big
        assert zf.read("top/text") == TEXT and zf.read("top/unknown") == TEXT
        assert zf.read("top/empty") == b""
        assert zf.read("top/link") == b"big.bin"
        methods = {i.filename: i.compress_type for i in zf.infolist()}
        assert methods["top/big.bin"] == methods["top/unknown.bin"] == zipfile.ZIP_STORED
        assert methods["top/text"] == methods["top/unknown"] == zipfile.ZIP_DEFLATED
        assert zf.getinfo("top/text").compress_size < len(TEXT) // 10
        i = zf.getinfo("top/big.bin")
        assert stat.S_IMODE(i.external_attr >> 16) == 0o640
        assert stat.S_ISLNK(zf.getinfo("top/link").external_attr >> 16)
        assert stat.S_IMODE(zf.getinfo("top/").external_attr >> 16) == 0o750
        assert i.date_time[0] == 2023
    if shutil.which("unzip"):
        (tmp_path / "a.zip").write_bytes(out.data)
        r = subprocess.run(["unzip", "-t", str(tmp_path / "a.zip")], capture_output=True)
        assert r.returncode == 0, r.stdout


def test_data_that_does_not_match_the_size_is_refused() -> None:
    z = ZipStream(OnlyWrites())  # type: ignore[arg-type]
    with pytest.raises(OSError, match="unexpected end of data"):
        z.add(info("short", tarfile.REGTYPE, 10), [b"12345"])
    with pytest.raises(OSError, match="more data"):
        z.add(info("long", tarfile.REGTYPE, 3), [b"12345"])
    z.abort()


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 3 * PIECE), min_size=1, max_size=4))
def test_crc32_of_pieces_combined(sizes: list[int]) -> None:
    data = [os.urandom(n) if n < 4096 else bytes(n) for n in sizes]
    crc = 0
    for d in data:
        crc = crc32_combine(crc, zlib.crc32(d), len(d))
    assert crc == zlib.crc32(b"".join(data))


def test_gzip_of_pieces_is_one_member_any_reader_reads(tmp_path: Path) -> None:
    noise = os.urandom(2 * PIECE + 7)
    out = OnlyWrites()
    with GzipStream(out) as g:  # type: ignore[arg-type]
        g.hint(False)
        g.write(noise)
        g.hint(True)
        for part in pieces(TEXT, 100_000):
            g.write(memoryview(part))
        g.hint(None)
        g.write(b"end\n")
    data = bytes(out.data)
    d = zlib.decompressobj(wbits=31)  # one gzip member, nothing after it
    assert d.decompress(data) == noise + TEXT + b"end\n" and d.eof and not d.unused_data
    assert len(data) < len(noise) + len(TEXT) // 10  # the noise stored, the text deflated
    (tmp_path / "a.gz").write_bytes(data)
    if shutil.which("gzip"):
        r = subprocess.run(["gzip", "-t", str(tmp_path / "a.gz")], capture_output=True)
        assert r.returncode == 0, r.stderr
    empty = OnlyWrites()
    with GzipStream(empty):  # type: ignore[arg-type]
        pass
    assert gzip.decompress(bytes(empty.data)) == b""


def test_a_tar_gzipped_in_pieces_reads_in_tarfiles_stream_mode() -> None:
    out = OnlyWrites()
    g = GzipStream(out)  # type: ignore[arg-type]
    tar = TarStream(g)  # type: ignore[arg-type]
    files = {f"f{i}": os.urandom(PIECE + i) if i % 2 else TEXT[: PIECE * 2] for i in range(4)}
    for name, data in files.items():
        tar.add(info(name, tarfile.REGTYPE, len(data)), pieces(data, 300_000), name != "f1")
    tar.close()
    g.close()
    with tarfile.open(fileobj=io.BytesIO(bytes(out.data)), mode="r|gz") as t:
        got = {m.name: t.extractfile(m).read() for m in t}  # type: ignore[union-attr]
    assert got == files
