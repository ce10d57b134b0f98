"""A tar stream turned into a zip archive as it is read, written to a stream that cannot seek.

A download of a directory as .zip reuses the dump's tar stream (its read-ahead, its checks, its
order) rather than walk the snapshot a second way: the tar is read member by member
(tarfile's stream mode, nothing seeked) and each regular file, directory and symbolic link is
written as a zip entry, its sizes and checksum after its data (zipfile does so on its own when
the output cannot seek). Entries are stored, not deflated: deflate runs at about 40 MiB/s a
core, a tenth of the dump's speed, and gains little on what backups mostly hold (data that is
compressed already); they are always written with zip64 fields, so files over 4 GiB need no
size known in advance.
A zip has no place for owners, FIFOs or device nodes: those are left out, and counted.
"""

from __future__ import annotations

import shutil
import stat
import tarfile
import time
import zipfile
from dataclasses import dataclass
from typing import BinaryIO

COPY_BLOCK = 1 << 20


@dataclass
class ZipSummary:
    files: int = 0
    dirs: int = 0
    links: int = 0
    skipped: int = 0  # FIFOs, devices: a zip cannot hold them


def _date_time(mtime: float) -> tuple[int, int, int, int, int, int]:
    """A zip entry's DOS time: local time, 1980 at the earliest (the format's first year)."""
    t = time.localtime(max(mtime, 315532800))
    return (max(t.tm_year, 1980), t.tm_mon, t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec)


def tar_to_zip(source: BinaryIO, out: BinaryIO) -> ZipSummary:
    """Reads the tar stream ``source`` to its end, writing its members to ``out`` as a zip."""
    summary = ZipSummary()
    with (
        tarfile.open(
            fileobj=source,
            mode="r|",
            bufsize=COPY_BLOCK,
            encoding="utf-8",
            errors="surrogateescape",
        ) as tar,
        zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as z,
    ):
        for member in tar:
            name = member.name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
            info = zipfile.ZipInfo(name, _date_time(member.mtime))
            info.compress_type = zipfile.ZIP_STORED
            if member.isdir():
                info.filename = name.rstrip("/") + "/"
                info.external_attr = (stat.S_IFDIR | member.mode) << 16 | 0x10
                z.writestr(info, b"")
                summary.dirs += 1
            elif member.issym():
                info.external_attr = (stat.S_IFLNK | 0o777) << 16
                z.writestr(info, member.linkname.encode("utf-8", "surrogateescape"))
                summary.links += 1
            elif member.isfile() and not member.islnk():
                info.external_attr = (stat.S_IFREG | member.mode) << 16
                data = tar.extractfile(member)
                assert data is not None
                with z.open(info, "w", force_zip64=True) as dest:
                    shutil.copyfileobj(data, dest, COPY_BLOCK)
                summary.files += 1
            else:  # hard links to an earlier member, FIFOs, devices
                summary.skipped += 1
    out.flush()
    return summary
