"""The packer: blobs encrypted straight into reused buffers come back intact, packs stay
within the target size unless a single blob is larger, and buffers are bounded."""

from __future__ import annotations

import os
import random
import threading

import blake3
import pytest

from cairn.core.memory import lazy_buffer
from cairn.repo import layout
from cairn.repo import packer as packer_module
from cairn.repo.compress import pack_payload, unpack_payload
from cairn.repo.pack import open_blob, open_blob_into, parse_pack
from cairn.repo.packer import Packer, Spool
from cairn.repo.packsink import SpoolError
from cairn.storage.local import LocalStorage

KEY = os.urandom(32)


@pytest.mark.parametrize("spooled", [False, True], ids=["memory", "spooled"])
def test_packs_round_trip_and_respect_the_target_size(tmp_path, spooled):
    storage = LocalStorage(tmp_path / "store")
    (tmp_path / "store").mkdir()
    records = []
    pack_size = 1 << 20
    spool = Spool(str(tmp_path)) if spooled else None
    packer = Packer(storage, KEY, pack_size, records.append, uploads=2, spool=spool)
    rng = random.Random(5)
    blobs = {}
    # many small blobs, some near the pack size, two larger than a pack
    sizes = [rng.randint(0, 70_000) for _ in range(300)] + [900_000, 1_100_000, 3_000_000]
    rng.shuffle(sizes)

    def add(part):
        for i, size in part:
            data = os.urandom(size)
            blob_id = blake3.blake3(data + bytes([i % 256]) + i.to_bytes(4, "little")).digest()
            blobs[blob_id] = data
            packer.add(layout.DATA_BLOB, blob_id, pack_payload(data, None), len(data))

    items = list(enumerate(sizes))
    threads = [threading.Thread(target=add, args=(items[k::2],)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    packer.flush()
    packer.close()

    seen = {}
    for rec in records:
        data = storage.read(layout.pack_name(rec.info.id.hex()))
        assert blake3.blake3(data).digest() == rec.info.id
        salt, blob_type, refs = parse_pack(KEY, data)
        assert blob_type == layout.DATA_BLOB and refs == rec.blobs
        if len(refs) > 1:
            assert len(data) <= pack_size
        for ref in refs:
            sealed = data[ref.offset : ref.offset + ref.length]
            payload = open_blob(KEY, salt, blob_type, ref.id, ref.offset, sealed)
            seen[ref.id] = unpack_payload(payload, ref.raw_length)
            out = memoryview(bytearray(len(payload) + 7))[: len(payload)]
            open_blob_into(KEY, salt, blob_type, ref.id, ref.offset, memoryview(sealed), out)
            assert out == payload
    assert seen == blobs
    assert packer.packs_written == len(records)


@pytest.mark.parametrize("spooled", [False, True], ids=["memory", "spooled"])
def test_buffers_are_bounded_and_reused(tmp_path, monkeypatch, spooled):
    """In memory: one pack buffer per upload and one being filled, made once and reused. Spooled
    in files: one staging buffer whatever the number of packs, and no file left behind."""
    storage = LocalStorage(tmp_path / "store")
    (tmp_path / "store").mkdir()
    (tmp_path / "spool").mkdir()
    made = []

    def counting(size):
        buf = lazy_buffer(size)
        made.append(buf)
        return buf

    monkeypatch.setattr(packer_module, "lazy_buffer", counting)
    spool = Spool(str(tmp_path / "spool")) if spooled else None
    packer = Packer(storage, KEY, 256 << 10, lambda r: None, uploads=2, spool=spool)
    for _ in range(200):
        data = os.urandom(50_000)
        packer.add(layout.DATA_BLOB, blake3.blake3(data).digest(), pack_payload(data, None), 50_000)
    packer.flush()
    packer.close()
    assert packer.packs_written >= 40
    if spooled:
        assert len(made) == 1 and len(made[0]) < 256 << 20  # the stage, not a pack
        assert list((tmp_path / "spool").iterdir()) == []
    else:
        assert 1 <= len(made) <= 3  # one per upload and one being filled


def test_a_full_disk_while_spooling_is_one_clear_error(tmp_path):
    storage = LocalStorage(tmp_path / "store")
    (tmp_path / "store").mkdir()
    packer = Packer(storage, KEY, 256 << 10, lambda r: None, spool=Spool("/dev/full-dir"))
    data = os.urandom(1000)
    with pytest.raises(SpoolError, match="cannot write a temporary pack file in /dev/full-dir"):
        packer.add(layout.DATA_BLOB, blake3.blake3(data).digest(), pack_payload(data, None), 1000)
    packer.close()
    assert list((tmp_path / "store").iterdir()) == []


def test_the_first_data_packs_grow_from_their_own_size_to_the_pack_size(tmp_path):
    """``first_pack_size``: the first data pack is finished at that size, each later one at
    twice the one before up to the pack size (every tree pack at the pack size)."""
    storage = LocalStorage(tmp_path / "store")
    (tmp_path / "store").mkdir()
    records = []
    pack_size, first = 1 << 20, 256 << 10
    packer = Packer(storage, KEY, pack_size, records.append, uploads=1, first_pack_size=first)
    blob = 60_000
    for _ in range(20):  # 60 data blobs, 20 tree blobs
        for blob_type in (layout.DATA_BLOB,) * 3 + (layout.TREE_BLOB,):
            data = os.urandom(blob)
            packer.add(blob_type, blake3.blake3(data).digest(), pack_payload(data, None), blob)
    packer.flush()
    packer.close()
    sizes = {
        t: [
            storage.stat(layout.pack_name(r.info.id.hex()))
            for r in records
            if r.info.blob_type == t
        ]
        for t in layout.BLOB_TYPES
    }
    data, trees = sizes[layout.DATA_BLOB], sizes[layout.TREE_BLOB]
    # 256 KiB (4 blobs), 512 KiB (8 blobs), then 1 MiB (17 blobs) a pack: 4 + 8 + 2 * 17 + 14
    assert len(data) == 5
    assert first - blob < data[0] <= first  # uploaded one at a time: in the order filled
    assert 2 * first - blob < data[1] <= 2 * first
    assert all(pack_size - blob < s <= pack_size for s in data[2:-1])
    assert data[-1] < pack_size - blob  # what was left
    assert len(trees) == 2 and pack_size - blob < trees[0] <= pack_size
