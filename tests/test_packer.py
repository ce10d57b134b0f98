"""The packer: blobs encrypted straight into reused buffers come back intact, packs stay
within the target size unless a single blob is larger, and buffers are bounded."""

from __future__ import annotations

import os
import random
import threading

import blake3

from cairn.repo import layout
from cairn.repo.compress import pack_payload, unpack_payload
from cairn.repo.pack import open_blob, open_blob_into, parse_pack
from cairn.repo.packer import Packer
from cairn.storage.local import LocalStorage

KEY = os.urandom(32)


def test_packs_round_trip_and_respect_the_target_size(tmp_path):
    storage = LocalStorage(tmp_path)
    records = []
    pack_size = 1 << 20
    packer = Packer(storage, KEY, pack_size, records.append, uploads=2)
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


def test_buffers_are_bounded_and_reused(tmp_path):
    storage = LocalStorage(tmp_path)
    made = []
    packer = Packer(storage, KEY, 256 << 10, lambda r: None, uploads=2)
    original = packer._take_buffer

    def counting(blob_type):
        buf = original(blob_type)
        made.append(buf)  # held, so that no two distinct buffers can share an id
        return buf

    packer._take_buffer = counting  # type: ignore[method-assign]
    for _ in range(200):
        data = os.urandom(50_000)
        packer.add(layout.DATA_BLOB, blake3.blake3(data).digest(), pack_payload(data, None), 50_000)
    packer.flush()
    packer.close()
    assert packer.packs_written >= 40
    distinct = {id(b) for b in made}
    assert len(made) >= 40 and len(distinct) <= 2 + len(layout.BLOB_TYPES)  # one per upload and type
