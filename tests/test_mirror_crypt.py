"""An encrypted mirror's keys and codecs (docs/mirror.md §8): file objects round trip at every
size and chunking, any range decrypts from its own segments, every damage is refused, keys and
names belong to one mirror, the manifest's objects are sealed, and a stream of any size goes
through in bounded memory."""

from __future__ import annotations

import io
import json
import random
import re
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import blake3
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cairn.core.errors import IntegrityError, UsageError, WrongPassword
from cairn.crypto.kdf import KdfParams
from cairn.crypto.segments import HEADER_LEN, SEALED, SEGMENT, TAG_LEN
from cairn.ops.mirror.crypt import (
    CONTENT_TYPE,
    HEAD,
    PIECE,
    SCHEME,
    EncryptionUnknown,
    MirrorCipher,
    read_encryption,
)
from cairn.ops.mirror.keys import BadPath
from cairn.ops.mirror.manifest import Entry, ManifestError, decode_base, encode_base
from cairn.storage.base import Storage
from cairn.storage.local import LocalStorage
from cairn.storage.s3 import S3Storage
from cairn.storage.s3config import S3Location

FAST = KdfParams(time_cost=1, memory_cost=8 * 1024, parallelism=1)
EDGES = [0, 1, SEGMENT - 1, SEGMENT, SEGMENT + 1, 2 * SEGMENT, 3 * SEGMENT + 5]


def _new(password: bytes = b"secret") -> tuple[MirrorCipher, dict[str, object]]:
    return MirrorCipher.create(password, FAST, host="h", username="u")


@pytest.fixture(scope="module")
def mirror() -> tuple[MirrorCipher, dict[str, object]]:
    return _new()


@pytest.fixture(scope="module")
def cipher(mirror: tuple[MirrorCipher, dict[str, object]]) -> MirrorCipher:
    return mirror[0]


def _data(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


def _cut(data: bytes, sizes: list[int]) -> Iterator[bytes]:
    """``data`` in chunks of ``sizes`` (cycled), every byte once."""
    at, i = 0, 0
    while at < len(data):
        n = sizes[i % len(sizes)] if sizes else len(data)
        yield data[at : at + n]
        at += n
        i += 1


def _reader(obj: bytes, log: list[tuple[int, int]]):  # type: ignore[no-untyped-def]
    def read(offset: int, length: int) -> bytes:
        log.append((offset, length))
        return obj[offset : offset + length]

    return read


# ----------------------------------------------------------------- round trips


@pytest.mark.parametrize("size", EDGES)
def test_round_trip_at_the_segment_edges(cipher: MirrorCipher, size: int) -> None:
    data = _data(size, size)
    stream = cipher.encrypt_stream(_cut(data, [1000, 70000, 3]))
    obj = b"".join(stream)
    assert (
        len(obj)
        == cipher.encrypted_size(size)
        == HEADER_LEN + size + TAG_LEN * max(1, -(-size // SEGMENT))
    )
    assert cipher.plain_size(len(obj)) == size
    assert obj[8:HEADER_LEN] == stream.salt
    assert size < 64 or data[:64] not in obj
    assert cipher.decrypt_all(obj, salt=stream.salt) == data
    assert b"".join(cipher.decrypt_stream(_cut(obj, [7, SEALED + 1]))) == data


@settings(max_examples=40, deadline=None)
@given(
    size=st.one_of(st.sampled_from(EDGES), st.integers(0, 4 * SEGMENT)),
    sizes=st.lists(st.integers(1, 3 * SEGMENT), max_size=4),
    as_file=st.booleans(),
)
def test_round_trip_of_any_chunking(
    cipher: MirrorCipher, size: int, sizes: list[int], as_file: bool
) -> None:
    data = _data(size, size)
    source = io.BytesIO(data) if as_file else _cut(data, sizes)
    stream = cipher.encrypt_stream(source)
    obj = b"".join(stream)
    assert len(obj) == cipher.encrypted_size(size)
    pieces = list(cipher.decrypt_stream(_cut(obj, sizes), salt=stream.salt))
    assert b"".join(pieces) == data
    assert all(len(p) <= SEGMENT for p in pieces)


def test_a_reused_input_buffer_is_copied(cipher: MirrorCipher) -> None:
    """A source that refills one buffer (as readinto does) still encrypts what it gave."""
    data = _data(4 * SEGMENT + 11)

    n = SEGMENT + 5000  # whole segments of a chunk, and a rest kept for the next

    def refill() -> Iterator[bytearray]:
        buf = bytearray(n)
        for chunk in _cut(data, [n]):
            buf[: len(chunk)] = chunk
            yield buf if len(chunk) == n else buf[: len(chunk)]
            buf[:] = bytes(n)  # overwritten before the next chunk

    obj = b"".join(cipher.encrypt_stream(refill()))
    assert cipher.decrypt_all(obj) == data


@settings(max_examples=200, deadline=None)
@given(stored=st.integers(0, 6 * SEALED))
def test_plain_size_is_the_inverse_of_encrypted_size(cipher: MirrorCipher, stored: int) -> None:
    try:
        plain = cipher.plain_size(stored)
    except IntegrityError as e:
        assert "not the size of an encrypted file" in str(e)
        assert all(cipher.encrypted_size(n) != stored for n in range(max(0, stored - 200), stored))
    else:
        assert cipher.encrypted_size(plain) == stored


# ----------------------------------------------------------------- ranged reads


@settings(max_examples=150, deadline=None)
@given(
    size=st.one_of(st.sampled_from(EDGES), st.integers(0, 4 * SEGMENT)),
    data=st.data(),
    with_salt=st.booleans(),
)
def test_any_range_decrypts_from_its_own_segments(
    cipher: MirrorCipher, size: int, data: st.DataObject, with_salt: bool
) -> None:
    plain = _data(size, size + 1)
    obj, salt = cipher.encrypt_all(plain)
    offset = data.draw(st.integers(0, size + 10), label="offset")
    length = data.draw(st.integers(0, size + 10), label="length")
    log: list[tuple[int, int]] = []
    got = cipher.decrypt_range(
        _reader(obj, log), offset, length, size, salt=salt if with_salt else None
    )
    assert got == plain[offset : offset + length]
    end = min(offset + length, size)
    if offset >= end:
        assert log == []
        return
    first, last = offset // SEGMENT, (end - 1) // SEGMENT
    start = HEADER_LEN + first * SEALED
    stop = min(HEADER_LEN + (last + 1) * SEALED, len(obj))
    assert len(log) == (1 if with_salt or first == 0 else 2)
    for at, n in log:  # the header, or the segments the range needs: nothing else
        assert (at, n) == (0, HEADER_LEN) or (at in (0, start) and at + n == stop)
    assert sum(n for _, n in log) <= HEADER_LEN + (last - first + 1) * SEALED


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    if request.param == "local":
        (tmp_path / "mirror").mkdir()
        return LocalStorage(tmp_path / "mirror")
    return S3Storage(S3Location.parse(request.getfixturevalue("s3_url")))


def test_ranged_reads_of_a_stored_object(cipher: MirrorCipher, store: Storage) -> None:
    """The ranges a store's ranged reads return decrypt, the key being the path's."""
    plain = _data(5 * SEGMENT + 77, 5)
    stream = cipher.encrypt_stream(_cut(plain, [SEGMENT // 3]))
    key = cipher.object_key(b"photos/2026/a.jpg")
    store.write(key, b"".join(stream))

    def read(offset: int, length: int) -> bytes:
        return store.read(key, offset, length)

    for offset, length in [(0, 10), (SEGMENT - 3, 6), (3 * SEGMENT, 2 * SEGMENT + 77), (0, 10**9)]:
        for salt in (stream.salt, None):
            got = cipher.decrypt_range(read, offset, length, len(plain), salt=salt, name=key)
            assert got == plain[offset : offset + length]
    assert cipher.decrypt_all(store.read(key), salt=stream.salt) == plain


# ----------------------------------------------------------------- damage


def _segments(size: int = 3 * SEGMENT + 100) -> tuple[MirrorCipher, bytes, bytes, bytes]:
    cipher, _ = _new()
    plain = _data(size, 9)
    obj, salt = cipher.encrypt_all(plain)
    return cipher, plain, obj, salt


@settings(max_examples=60, deadline=None)
@given(position=st.integers(0, HEADER_LEN + 2 * SEALED + 100 + TAG_LEN - 1), bit=st.integers(0, 7))
def test_a_flipped_bit_is_refused(cipher: MirrorCipher, position: int, bit: int) -> None:
    plain = _data(2 * SEGMENT + 100, 3)
    obj, salt = cipher.encrypt_all(plain)
    damaged = bytearray(obj)
    damaged[position] ^= 1 << bit
    for given_salt in (salt, None):
        with pytest.raises(IntegrityError, match=r"^a\.bin: "):
            cipher.decrypt_all(bytes(damaged), salt=given_salt, name="a.bin")
    segment = max(0, position - HEADER_LEN) // SEALED
    with pytest.raises(IntegrityError):  # the range of the damaged segment alone
        cipher.decrypt_range(_reader(bytes(damaged), []), segment * SEGMENT, 1, len(plain))


def test_swapped_and_foreign_segments_are_refused() -> None:
    cipher, plain, obj, salt = _segments()
    s0 = obj[HEADER_LEN : HEADER_LEN + SEALED]
    s1 = obj[HEADER_LEN + SEALED : HEADER_LEN + 2 * SEALED]
    swapped = obj[:HEADER_LEN] + s1 + s0 + obj[HEADER_LEN + 2 * SEALED :]
    with pytest.raises(IntegrityError, match="segment 0 fails authentication"):
        cipher.decrypt_all(swapped, salt=salt)
    with pytest.raises(IntegrityError, match="segment 1 fails authentication"):
        cipher.decrypt_range(_reader(swapped, []), SEGMENT, 5, len(plain), salt=salt)
    other, _ = cipher.encrypt_all(plain)  # the same file, written again: another key
    mixed = obj[: HEADER_LEN + SEALED] + other[HEADER_LEN + SEALED :]
    with pytest.raises(IntegrityError, match="segment 1 fails"):
        cipher.decrypt_all(mixed)


@pytest.mark.parametrize("size", [SEGMENT, 3 * SEGMENT, 3 * SEGMENT + 100])
def test_truncation_is_refused_at_every_length(size: int) -> None:
    cipher, _plain, obj, salt = _segments(size)
    for cut in [0, 1, HEADER_LEN - 1, HEADER_LEN, HEADER_LEN + 15, len(obj) - 1]:
        with pytest.raises(IntegrityError):
            cipher.decrypt_all(obj[:cut], salt=salt)
    for boundary in range(HEADER_LEN + SEALED, len(obj), SEALED):  # a whole segment dropped
        with pytest.raises(IntegrityError, match=r"which is not its last \(truncated\)"):
            cipher.decrypt_all(obj[:boundary], salt=salt)
    with pytest.raises(IntegrityError, match="truncated"):  # a range of the lost end
        cipher.decrypt_range(_reader(obj[: len(obj) - 1], []), size - 1, 1, size, salt=salt)


@pytest.mark.parametrize("size", [0, SEGMENT, 2 * SEGMENT + 100])
def test_extension_is_refused(size: int) -> None:
    cipher, _plain, obj, salt = _segments(size)
    for extra in (b"x", bytes(TAG_LEN), obj[HEADER_LEN : HEADER_LEN + SEALED]):
        with pytest.raises(IntegrityError):
            cipher.decrypt_all(obj + extra, salt=salt)
    if size and size % SEGMENT == 0:  # the last segment is whole: said to be followed
        with pytest.raises(IntegrityError, match=r"after its last segment .* \(extended\)"):
            cipher.decrypt_all(obj + b"x", salt=salt)


def test_another_version_of_the_file_is_refused() -> None:
    """An object with another salt than the entry's: an older version, or another path's."""
    cipher, plain, obj, salt = _segments()
    older, older_salt = cipher.encrypt_all(plain[:-1] + b"!")
    assert older_salt != salt
    with pytest.raises(IntegrityError, match="not the one the manifest records"):
        cipher.decrypt_all(older, salt=salt)
    with pytest.raises(IntegrityError, match="segment 0 fails authentication"):
        cipher.decrypt_range(_reader(older, []), 0, 5, len(plain), salt=salt)
    assert cipher.decrypt_range(_reader(obj, []), 0, 5, len(plain), salt=salt) == plain[:5]


def test_a_size_other_than_the_objects_is_refused() -> None:
    cipher, _plain, obj, salt = _segments(2 * SEGMENT + 100)
    with pytest.raises(IntegrityError, match="segment 2 fails"):  # the last is not flagged so
        cipher.decrypt_range(_reader(obj, []), 2 * SEGMENT, 50, 2 * SEGMENT + 50, salt=salt)
    with pytest.raises(IntegrityError, match="truncated, or not the size"):
        cipher.decrypt_range(_reader(obj, []), 2 * SEGMENT, 50, 3 * SEGMENT, salt=salt)


def test_a_header_of_another_kind_or_version_is_refused(cipher: MirrorCipher) -> None:
    obj, _ = cipher.encrypt_all(b"hello")
    with pytest.raises(IntegrityError, match="x: not an encrypted mirror file"):
        cipher.decrypt_all(b"PK\x03\x04" + obj[4:], name="x")
    with pytest.raises(IntegrityError, match="unknown encrypted file version 2"):
        cipher.decrypt_all(obj[:7] + b"\x02" + obj[8:])
    with pytest.raises(IntegrityError, match="unknown encrypted file version 2"):
        cipher.decrypt_range(_reader(obj[:7] + b"\x02" + obj[8:], []), 0, 5, 5)


# ----------------------------------------------------------------- keys and names


def test_the_marker_opens_with_its_password_only(
    mirror: tuple[MirrorCipher, dict[str, object]],
) -> None:
    cipher, value = mirror
    marker = json.dumps({"format": "cairn-mirror", "encryption": value})
    assert value["scheme"] == SCHEME
    opened = MirrorCipher.from_marker(json.loads(marker)["encryption"], b"secret")
    assert opened.object_key(b"a") == cipher.object_key(b"a")
    obj, salt = cipher.encrypt_all(b"data")
    assert opened.decrypt_all(obj, salt=salt) == b"data"
    with pytest.raises(WrongPassword, match=r"^wrong password: the mirror's key does not open"):
        MirrorCipher.from_marker(value, b"Secret")
    with pytest.raises(WrongPassword, match="it was empty"):
        MirrorCipher.from_marker(value, b"")


def test_an_empty_password_makes_no_mirror() -> None:
    with pytest.raises(UsageError, match="empty password"):
        MirrorCipher.create(b"", FAST)


def test_the_key_file_is_a_repository_key_file(
    mirror: tuple[MirrorCipher, dict[str, object]],
) -> None:
    _, value = mirror
    key = value["key"]
    assert isinstance(key, dict)
    assert set(key) == {"version", "created", "host", "username", "kdf", "salt", "wrapped"}
    assert key["kdf"] == FAST.as_dict()
    assert (key["host"], key["username"]) == ("h", "u")
    assert read_encryption(value).kdf == FAST


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (None, "unknown mirror encryption None"),
        ("aes", "unknown mirror encryption 'aes'"),
        ({"scheme": "chacha20-v9", "key": {}}, "unknown mirror encryption scheme 'chacha20-v9'"),
        ({"key": {}}, "unknown mirror encryption scheme None"),
        ({"scheme": SCHEME, "key": {}, "more": 1}, "members must be exactly"),
        ({"scheme": SCHEME, "key": "e30="}, "not a key file"),
    ],
)
def test_an_unknown_encryption_is_refused_before_a_password(value: object, message: str) -> None:
    with pytest.raises(EncryptionUnknown, match=re.escape(message)):
        read_encryption(value)
    with pytest.raises(EncryptionUnknown, match=re.escape(message)):
        MirrorCipher.from_marker(value, b"secret")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"kdf": {**FAST.as_dict(), "memory_cost": 1 << 30}}, "memory_cost 1073741824 is outside"),
        ({"kdf": {**FAST.as_dict(), "time_cost": 1.0}}, "time_cost must be an integer"),
        ({"wrapped": "AAAA"}, "wrapped must be 92 bytes"),
        ({"extra": 1}, "the fields must be exactly"),
        ({"version": 2}, "unsupported key file version 2"),
    ],
)
def test_a_damaged_key_file_is_refused(
    mirror: tuple[MirrorCipher, dict[str, object]], change: dict[str, object], message: str
) -> None:
    _, value = mirror
    key = {**value["key"], **change}  # type: ignore[dict-item]
    with pytest.raises(EncryptionUnknown, match=f"^the mirror's key: .*{re.escape(message)}"):
        MirrorCipher.from_marker({"scheme": SCHEME, "key": key}, b"secret")


def test_the_key_of_a_path_is_a_keyed_hash(cipher: MirrorCipher) -> None:
    other, _ = _new()
    paths = [b"a", b"a/b.txt", b"A", "caf\u00e9".encode(), b"\xff\xfe\x01", b".cairn-mirror/x"]
    keys = [cipher.object_key(p) for p in paths]
    for path, key in zip(paths, keys, strict=True):
        assert re.fullmatch(r"[0-9a-f]{2}/[0-9a-f]{64}", key)
        assert key[:2] == key[3:5]
        assert key == cipher.object_key(path)  # the same at every push
        assert key != other.object_key(path)  # another mirror's differ
        assert key[3:] != blake3.blake3(path).hexdigest()  # not the unkeyed hash
    assert len(set(keys)) == len(keys)
    with pytest.raises(BadPath):
        cipher.object_key(b"../up")
    assert CONTENT_TYPE == "application/octet-stream"


def test_the_same_file_gives_other_bytes_at_every_write_and_in_every_mirror(
    cipher: MirrorCipher,
) -> None:
    other, _ = _new()
    plain = _data(SEGMENT + 3)
    one, salt_one = cipher.encrypt_all(plain)
    two, salt_two = cipher.encrypt_all(plain)
    three, _ = other.encrypt_all(plain)
    assert len({one, two, three}) == 3 and salt_one != salt_two
    assert len({obj[HEADER_LEN : HEADER_LEN + 32] for obj in (one, two, three)}) == 3
    assert cipher.decrypt_all(two) == other.decrypt_all(three) == plain
    with pytest.raises(IntegrityError):  # another mirror's object does not open
        cipher.decrypt_all(three)


# ----------------------------------------------------------------- the manifest


def test_manifest_objects_are_sealed_and_bound_to_their_kind(cipher: MirrorCipher) -> None:
    head = b'{"version":1,"generation":3}'
    sealed = cipher.seal_manifest(head, HEAD)
    assert b"generation" not in sealed and len(sealed) == 49 + len(head)
    assert cipher.open_manifest(sealed, HEAD) == head
    assert cipher.seal_manifest(head, HEAD) != sealed  # a fresh salt each time
    with pytest.raises(IntegrityError, match=r"^heads/3: fails authentication .* not a piece"):
        cipher.open_manifest(sealed, PIECE, name="heads/3")
    damaged = sealed[:-1] + bytes([sealed[-1] ^ 1])
    with pytest.raises(IntegrityError, match="fails authentication"):
        cipher.open_manifest(damaged, HEAD)
    with pytest.raises(IntegrityError, match="too short"):
        cipher.open_manifest(sealed[:48], HEAD)
    with pytest.raises(IntegrityError, match="unknown envelope version 2"):
        cipher.open_manifest(b"\x02" + sealed[1:], HEAD)
    other, _ = _new()
    with pytest.raises(IntegrityError, match="not a head of this mirror"):
        other.open_manifest(sealed, HEAD)
    with pytest.raises(ValueError, match="not a kind"):
        cipher.seal_manifest(head, b"object")


def test_a_piece_is_named_by_its_sealed_bytes(cipher: MirrorCipher) -> None:
    entries = [
        Entry(b"d", "dir", 0o755, 0, 0, 1),
        Entry(b"d/f", "file", 0o644, 0, 0, 1, size=3, hash=bytes(32), salt=bytes(range(32))),
    ]
    plain = encode_base(entries)
    piece = cipher.seal_piece(plain)
    assert piece.hash == blake3.blake3(piece.data).hexdigest() != plain.hash
    frame = cipher.open_piece(piece.hash, piece.data)
    assert frame == plain.data
    assert decode_base(plain.hash, frame)[b"d/f"].salt == bytes(range(32))
    with pytest.raises(IntegrityError, match=f"^manifest piece {piece.hash}: fails its hash"):
        cipher.open_piece(piece.hash, piece.data + b"\0")
    sealed_head = cipher.seal_manifest(b"{}", HEAD)
    with pytest.raises(IntegrityError, match="not a piece"):  # a sealed head under a piece's name
        cipher.open_piece(blake3.blake3(sealed_head).hexdigest(), sealed_head)


def test_an_entry_salt_is_32_bytes() -> None:
    m = Entry(b"f", "file", 0o644, 0, 0, 1, hash=bytes(32)).to_map()
    assert "salt" not in m
    with pytest.raises(ManifestError, match="salt that is not 32 bytes"):
        Entry.from_map({**m, "salt": bytes(31)})
    with pytest.raises(ManifestError, match="salt that is not 32 bytes"):
        Entry.from_map({**m, "salt": "0" * 32})


# ----------------------------------------------------------------- memory


def test_a_large_stream_goes_through_in_bounded_memory(cipher: MirrorCipher) -> None:
    """200 MiB encrypted and decrypted as one pipeline: the peak is a few segments."""
    block = _data(1 << 20, 7)
    count = 200
    expected = blake3.blake3()
    for _ in range(count):
        expected.update(block)
    got = blake3.blake3()
    total = 0
    tracemalloc.start()
    try:
        stream = cipher.encrypt_stream(block for _ in range(count))
        for piece in cipher.decrypt_stream(stream, salt=stream.salt):
            got.update(piece)
            total += len(piece)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert total == count * len(block)
    assert got.digest() == expected.digest()
    assert peak < 2 * 1024 * 1024, f"peak {peak} bytes"
