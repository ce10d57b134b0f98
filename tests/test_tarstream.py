"""TarStream writes the bytes tarfile's stream mode writes, member for member."""

from __future__ import annotations

import io
import tarfile

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cairn.ops.tarstream import TarStream

names = st.binary(min_size=1, max_size=300).filter(lambda b: b"\0" not in b and b"/" not in b)
members = st.lists(
    st.tuples(names, st.sampled_from([tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE])).flatmap(
        lambda m: st.tuples(
            st.just(m[0]),
            st.just(m[1]),
            st.lists(st.binary(max_size=2000), max_size=4)
            if m[1] == tarfile.REGTYPE
            else st.just([]),
        )
    ),
    max_size=8,
)


def _info(name: bytes, kind: bytes, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name.decode("utf-8", "surrogateescape"))
    info.type, info.size, info.mtime, info.mode = kind, size, 1_700_000_000, 0o644
    if kind == tarfile.SYMTYPE:
        info.linkname = "target"
    info.pax_headers = {"mtime": "1700000000.000000001"}
    return info


@settings(max_examples=60, deadline=None)
@given(members)
def test_the_same_bytes_as_tarfile_in_stream_mode(entries) -> None:  # type: ignore[no-untyped-def]
    ours, theirs = io.BytesIO(), io.BytesIO()
    stream = TarStream(ours)
    with tarfile.open(
        fileobj=theirs, mode="w|", format=tarfile.PAX_FORMAT, errors="surrogateescape"
    ) as tar:
        for name, kind, blocks in entries:
            size = sum(len(b) for b in blocks)
            stream.add(_info(name, kind, size), (memoryview(b) for b in blocks))
            tar.addfile(_info(name, kind, size), io.BytesIO(b"".join(blocks)) if size else None)
    stream.close()
    assert ours.getvalue() == theirs.getvalue()
    with tarfile.open(fileobj=io.BytesIO(ours.getvalue()), errors="surrogateescape") as back:
        got = [(m.name, back.extractfile(m).read() if m.isfile() else b"") for m in back]  # type: ignore[union-attr]
    assert got == [
        (n.decode("utf-8", "surrogateescape"), b"".join(blocks)) for n, _, blocks in entries
    ]


def test_data_that_does_not_match_the_size_is_refused() -> None:
    stream = TarStream(io.BytesIO())
    with pytest.raises(OSError, match="unexpected end of data"):
        stream.add(_info(b"short", tarfile.REGTYPE, 10), [b"12345"])
    with pytest.raises(OSError, match="more data"):
        stream.add(_info(b"long", tarfile.REGTYPE, 3), [b"12345"])
