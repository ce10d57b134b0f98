"""Hypothesis strategies for directory trees, and a builder that makes them real on disk.

A tree is plain data (``Dir`` of named entries); ``build(root, tree)`` creates it under
``root`` with real filesystem calls: contents, then owners, modes and xattrs, then times (files
first, directories deepest first), so that nothing done later disturbs a time set earlier.
"""

from __future__ import annotations

import os
import random
import stat
import string
from dataclasses import dataclass, field

from hypothesis import strategies as st

IS_ROOT = os.geteuid() == 0

# ---------------------------------------------------------------------------- the tree model


@dataclass
class Meta:
    mode: int
    uid: int
    gid: int
    atime: int  # ns
    mtime: int  # ns
    xattrs: dict[bytes, bytes] = field(default_factory=dict)


@dataclass
class File:
    content: tuple  # type: ignore[type-arg]  # (kind, size, seed) or ("bytes", data)
    meta: Meta


@dataclass
class Symlink:
    target: tuple  # type: ignore[type-arg]  # ("raw", bytes) | ("rel", path parts) | ("abs", parts)
    uid: int
    gid: int
    atime: int
    mtime: int


@dataclass
class Fifo:
    meta: Meta


@dataclass
class Device:
    kind: str  # "c" or "b"
    major: int
    minor: int
    meta: Meta


@dataclass
class HardLink:
    to: tuple[bytes, ...]  # path (below the root) of a File in the same tree


@dataclass
class Dir:
    entries: dict[bytes, Entry]
    meta: Meta


Entry = File | Symlink | Fifo | Device | HardLink | Dir


def walk(d: Dir, prefix: tuple[bytes, ...] = ()):  # type: ignore[no-untyped-def]
    """(path parts, entry) for everything below ``d``, parents before children."""
    for name, entry in d.entries.items():
        path = (*prefix, name)
        yield path, entry
        if isinstance(entry, Dir):
            yield from walk(entry, path)


# ---------------------------------------------------------------------------- strategies

SPECIAL_NAMES = [
    b"caf\xe9",  # Latin-1, not UTF-8
    b"\xff\xfe",
    b"\xc3\x28",  # invalid UTF-8 sequence
    b"with space",
    b" leading and trailing ",
    b"new\nline",
    b"tab\there",
    b"-leading-dash",
    b"--",
    b"-rf",
    "ünïcødé ☃ 日本".encode(),
    "e\u0301".encode(),  # decomposed é
    b".hidden",
    b"...",
    b"*",
    b"[ab]",
    b"?",
    b"back\\slash",
    b"\x01\x7f",
    b"a" * 255,  # the longest name ext4 allows
]


def _safe_name(name: bytes) -> bool:
    return bool(name) and name not in (b".", b"..") and b"/" not in name and b"\0" not in name


names = st.one_of(
    st.sampled_from(SPECIAL_NAMES),
    st.text(string.ascii_letters + string.digits + "._-", min_size=1, max_size=12).map(str.encode),
    st.binary(min_size=1, max_size=16),
    st.text(min_size=1, max_size=8).map(lambda s: s.encode("utf-8", "surrogatepass")),
).filter(_safe_name)

ids = st.one_of(
    st.sampled_from([0, 1, 1234, 5678, 65534, 65535, 65536, 2**31, 2**32 - 3]),
    st.integers(0, 2**32 - 3),
)

_NS = 10**9
times = st.one_of(
    st.sampled_from(
        [
            0,
            1,
            999_999_999,
            _NS,
            -1,
            -_NS - 1,
            2**31 * _NS,  # after 2038
            -(2**31) * _NS,  # 1901
            1_700_000_000_123_456_789,
        ]
    ),
    st.integers(-(2**31) * _NS, 2**33 * _NS),
)

file_modes = st.one_of(
    st.sampled_from([0o644, 0o600, 0o755, 0o000, 0o4755, 0o2755, 0o6711, 0o1644, 0o7777, 0o444]),
    st.integers(0, 0o7777),
)
dir_modes = st.one_of(
    st.sampled_from([0o755, 0o700, 0o1777, 0o500, 0o000, 0o2775, 0o3777, 0o555]),
    st.integers(0, 0o7777),
)

xattr_names = st.one_of(
    st.sampled_from([b"user.a", b"user.caf\xe9", b"user.with space", b"user." + b"x" * 200]),
    st.text(string.ascii_letters + string.digits + "._-", min_size=1, max_size=20).map(
        lambda s: b"user." + s.encode()
    ),
)
xattr_values = st.one_of(
    st.binary(max_size=64),
    st.sampled_from([b"", b"\0", b"\xff" * 300, b"\0\x01\x02binary\xfe\xff"]),
)
xattrs = st.dictionaries(xattr_names, xattr_values, max_size=3)


def metas(modes: st.SearchStrategy[int], with_xattrs: bool) -> st.SearchStrategy[Meta]:
    return st.builds(
        Meta,
        mode=modes,
        uid=ids,
        gid=ids,
        atime=times,
        mtime=times,
        xattrs=xattrs if with_xattrs else st.just({}),
    )


seeds = st.integers(0, 2**32)
contents = st.one_of(
    st.just(("empty", 0, 0)),
    st.tuples(st.just("bytes"), st.binary(min_size=1, max_size=300)),
    st.tuples(st.just("random"), st.integers(1, 8 << 10), seeds),
    st.tuples(st.just("random"), st.integers(100 << 10, 450 << 10), seeds),
    st.tuples(st.just("repeat"), st.integers(1, 400 << 10), seeds),
    st.tuples(st.just("zeros"), st.integers(1, 400 << 10), st.just(0)),
    st.tuples(st.just("holes"), st.integers(1, 400 << 10), seeds),
)


def make_content(spec: tuple) -> bytes:  # type: ignore[type-arg]
    kind = spec[0]
    if kind == "bytes":
        return bytes(spec[1])
    _, size, seed = spec
    rnd = random.Random(seed)
    if kind == "empty":
        return b""
    if kind == "random":
        return rnd.randbytes(size)
    if kind == "repeat":
        pattern = rnd.randbytes(rnd.randint(1, 64))
        return (pattern * (size // len(pattern) + 1))[:size]
    if kind == "zeros":
        return bytes(size)
    if kind == "holes":  # runs of zeros with some data in between, at either end or inside
        buf = bytearray(size)
        for _ in range(rnd.randint(1, 4)):
            start = rnd.randrange(size)
            n = min(size - start, rnd.randint(1, 4096))
            buf[start : start + n] = rnd.randbytes(n)
        return bytes(buf)
    raise ValueError(kind)


files = st.builds(File, content=contents, meta=metas(file_modes, with_xattrs=True))
symlinks = st.builds(
    Symlink,
    target=st.one_of(
        st.sampled_from(
            [
                ("raw", b"../x"),
                ("raw", b"sibling"),
                ("raw", b"/etc/passwd"),
                ("raw", b"/nonexistent/dangling"),
                ("raw", b"caf\xe9/\xff"),
                ("raw", b"a/b/../c"),
                ("raw", b"//double//slash/"),
                ("raw", b"."),
                ("raw", b"-rf"),
                ("raw", b"x" * 1000),
            ]
        ),
        st.tuples(st.just("raw"), st.binary(min_size=1, max_size=64).filter(lambda b: 0 not in b)),
    ),
    uid=ids,
    gid=ids,
    atime=times,
    mtime=times,
)
fifos = st.builds(Fifo, meta=metas(file_modes, with_xattrs=False))
devices = st.builds(
    Device,
    kind=st.sampled_from(["c", "b"]),
    major=st.one_of(st.sampled_from([0, 1, 4, 8, 136]), st.integers(0, 4095)),
    minor=st.one_of(st.sampled_from([0, 3, 5, 64, 255, 256]), st.integers(0, 2**20 - 1)),
    meta=metas(file_modes, with_xattrs=False),
)


def _dirs(depth: int, special: bool) -> st.SearchStrategy[Dir]:
    leaves = [files, files, symlinks, fifos]
    if special:
        leaves.append(devices)
    leaf = st.one_of(*leaves)
    child = leaf if depth == 0 else st.one_of(leaf, _dirs(depth - 1, special))
    return st.builds(
        Dir,
        entries=st.dictionaries(names, child, max_size=4),
        meta=metas(dir_modes, with_xattrs=True),
    )


@st.composite
def trees(draw, devices: bool = IS_ROOT, depth: int = 2) -> Dir:  # type: ignore[no-untyped-def]
    """A tree with files, directories, symlinks (some to entries of the tree, by relative and
    absolute paths), hardlinks, FIFOs and (``devices``) device nodes."""
    root: Dir = draw(_dirs(depth, devices))
    root.meta = Meta(0o755, 0, 0, 0, 0)
    everything = list(walk(root))
    dirs = [(), *(p for p, e in everything if isinstance(e, Dir))]
    regular = [p for p, e in everything if isinstance(e, File)]

    def parent_of(path: tuple[bytes, ...]) -> Dir:
        d = root
        for part in path:
            entry = d.entries[part]
            assert isinstance(entry, Dir)
            d = entry
        return d

    extra: list[tuple[tuple[bytes, ...], Entry]] = []
    if regular:
        for _ in range(draw(st.integers(0, 3))):
            extra.append((draw(st.sampled_from(dirs)), HardLink(draw(st.sampled_from(regular)))))
    if everything:
        for _ in range(draw(st.integers(0, 2))):
            kind = draw(st.sampled_from(["rel", "abs"]))
            to = draw(st.sampled_from([p for p, _ in everything]))
            link = Symlink((kind, to), draw(ids), draw(ids), draw(times), draw(times))
            extra.append((draw(st.sampled_from(dirs)), link))
    for where, entry in extra:
        d = parent_of(where)
        name = draw(names)
        if name not in d.entries:
            d.entries[name] = entry
    return root


# ---------------------------------------------------------------------------- building


def _join(root: bytes, parts: tuple[bytes, ...]) -> bytes:
    return b"/".join((root, *parts))


def _link_target(root: bytes, where: tuple[bytes, ...], spec: tuple) -> bytes:  # type: ignore[type-arg]
    kind, value = spec
    if kind == "raw":
        return value  # type: ignore[no-any-return]
    if kind == "abs":
        return _join(root, value)
    return os.path.relpath(_join(root, value), _join(root, where[:-1]))


def _apply_meta(path: bytes, meta: Meta) -> None:
    os.chown(path, meta.uid, meta.gid, follow_symlinks=False)
    os.chmod(path, meta.mode)  # after chown, which clears setuid/setgid
    for key, value in meta.xattrs.items():
        os.setxattr(path, key, value, follow_symlinks=False)


def build(root: str | os.PathLike[str], tree: Dir) -> None:
    """Creates ``tree`` below the existing directory ``root``."""
    rb = os.fsencode(os.fspath(root))
    entries = list(walk(tree))
    # 1. everything that has a name, parents first
    for path, e in entries:
        p = _join(rb, path)
        if isinstance(e, Dir):
            os.mkdir(p, 0o700)
        elif isinstance(e, File):
            with open(p, "xb") as f:
                data = make_content(e.content)
                if data.strip(b"\0"):
                    f.write(data)
                else:
                    f.truncate(len(data))  # all zeros: a hole, as a sparse file would have
        elif isinstance(e, Symlink):
            os.symlink(_link_target(rb, path, e.target), p)
        elif isinstance(e, Fifo):
            os.mkfifo(p, 0o600)
        elif isinstance(e, Device):
            kind = stat.S_IFCHR if e.kind == "c" else stat.S_IFBLK
            os.mknod(p, kind | 0o600, os.makedev(e.major, e.minor))
    for path, e in entries:  # links after all files exist
        if isinstance(e, HardLink):
            os.link(_join(rb, e.to), _join(rb, path), follow_symlinks=False)
    # 2. owners, modes, xattrs
    for path, e in entries:
        p = _join(rb, path)
        if isinstance(e, Symlink):
            os.chown(p, e.uid, e.gid, follow_symlinks=False)
        elif isinstance(e, File | Fifo | Device | Dir):
            _apply_meta(p, e.meta)
    # 3. times: everything but directories, then directories deepest first
    for path, e in entries:
        p = _join(rb, path)
        if isinstance(e, Symlink):
            os.utime(p, ns=(e.atime, e.mtime), follow_symlinks=False)
        elif isinstance(e, File | Fifo | Device):
            os.utime(p, ns=(e.meta.atime, e.meta.mtime), follow_symlinks=False)
    for path, e in sorted(entries, key=lambda pe: -len(pe[0])):
        if isinstance(e, Dir):
            os.utime(_join(rb, path), ns=(e.meta.atime, e.meta.mtime), follow_symlinks=False)


def kitchen_sink(devices: bool = IS_ROOT) -> Dir:
    """One fixed tree with every kind of entry and attribute the strategies can produce."""

    def m(mode: int, uid: int = 0, gid: int = 0, t: int = 1_600_000_000_123_456_789, **xa: bytes):
        return Meta(mode, uid, gid, t - 1, t, {b"user." + k.encode(): v for k, v in xa.items()})

    inner = Dir(
        {
            b"caf\xe9": File(("random", 300 << 10, 1), m(0o4755, 1234, 5678, bin=b"\0\xff")),
            b"\xff\xfe": File(("repeat", 200 << 10, 2), m(0o000, 65534, 65534)),
            b"new\nline": File(("empty", 0, 0), m(0o2755, 1, 1)),
            b"-leading dash": File(("holes", 300 << 10, 3), m(0o1644)),
            "ünïcødé ☃".encode(): File(("zeros", 100 << 10, 0), m(0o7777, 2**31, 2**31)),
            b"fifo": Fifo(m(0o640, 1234, 5678, t=-1_000_000_001)),
            b"rel": Symlink(("raw", b"../top"), 1234, 5678, 5, 2**31 * 10**9 + 1),
            b"abs": Symlink(("abs", (b"top",)), 0, 0, 7, 8),
            b"dangling": Symlink(("raw", b"/nonexistent/\xe9"), 42, 43, 9, 10),
            b"hard": HardLink((b"top",)),
        },
        m(0o1777, 1234, 5678, empty=b"", a=b"\x01\x02"),
    )
    if devices:
        inner.entries[b"null"] = Device("c", 1, 3, m(0o666))
        inner.entries[b"odd"] = Device("c", 4095, 2**20 - 1, m(0o4600, 7, 8))
        inner.entries[b"blk"] = Device("b", 8, 1, m(0o660, 0, 6))
    return Dir(
        {
            b"top": File(("bytes", b"top\n"), m(0o644, 1234, 5678, x=b"y")),
            b"hard too": HardLink((b"top",)),
            b"inner": inner,
            b"ro": Dir({b"f": File(("bytes", b"f"), m(0o444))}, m(0o500)),
            b"none": Dir({b"g": File(("bytes", b"g"), m(0o600))}, m(0o000, 5, 6)),
        },
        m(0o755),
    )
