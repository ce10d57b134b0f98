"""Prints the worked example of docs/format.md §10.4: a repository made with today's defaults
(`cairn init` of a local directory, one `cairn backup` of /tmp/cx/docs holding hello.txt),
every value worked out by tests/refreader.py, the reader written from the document alone.

    python scripts/format_example.py > /tmp/example.md
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import blake3
import msgpack
from argon2.low_level import Type, hash_secret_raw
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.refreader import MAGIC, Reader, _hkdf, _nonce

PASSWORD = "example-password"
SOURCE = Path("/tmp/cx/docs")
MTIME = 1_795_000_000_000_000_000  # 2026-11-18, so the tree shows a fixed time


def hexdump(data: bytes) -> str:
    lines = []
    for i in range(0, len(data), 16):
        row = data[i : i + 16]
        hexes = " ".join(f"{b:02x}" for b in row)
        text = "".join(chr(b) if 32 <= b < 127 else "." for b in row)
        lines.append(f"{i:08x}: {hexes:<47}  {text}")
    return "\n".join(lines)


def show(value: object, indent: int = 0) -> str:
    """A decoded MessagePack value, bin as hex and str quoted, one map key a line."""
    pad = " " * indent
    if isinstance(value, dict):
        if not value:
            return "{}"
        items = [f'{pad}  "{k}": {show(v, indent + 2)}' for k, v in value.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(value, list):
        return "[" + ", ".join(show(v, indent) for v in value) + "]"
    if isinstance(value, bytes):
        try:
            text = value.decode("ascii")
            if text.isprintable() and len(value) != 32:
                return f"bin {text!r}"
        except UnicodeDecodeError:
            pass
        return f"bin {value.hex()}"
    if isinstance(value, str):
        return json.dumps(value)
    if value is None:
        return "nil"
    return repr(value)


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="cairn-example-"))
    repo = work / "repo"
    shutil.rmtree(SOURCE.parent, ignore_errors=True)
    SOURCE.mkdir(parents=True)
    (SOURCE / "hello.txt").write_bytes(b"hello world\n")
    for p in (SOURCE / "hello.txt", SOURCE, SOURCE.parent):
        os.utime(p, ns=(MTIME, MTIME))
    env = dict(os.environ, CAIRN_PASSWORD=PASSWORD, CAIRN_CACHE_DIR=str(work / "cache"))
    cairn = [sys.executable, "-m", "cairn"]
    subprocess.run([*cairn, "init", "--repo", repo], env=env, check=True, capture_output=True)
    subprocess.run(
        [*cairn, "backup", "--repo", repo, "--host", "example", SOURCE],
        env=env,
        check=True,
        capture_output=True,
    )
    r = Reader(repo, PASSWORD.encode())
    r.load_index()
    out: list[str] = []
    say = out.append

    files = sorted(p for p in repo.rglob("*") if p.is_file())
    say("The store then held:\n\n```")
    for p in files:
        say(f"{p.stat().st_size:>6}  {p.relative_to(repo)}")
    say("```\n")

    key_path = next((repo / "keys").iterdir())
    key = json.loads(key_path.read_bytes())
    kdf = key["kdf"]
    kek = hash_secret_raw(
        PASSWORD.encode(),
        base64.b64decode(key["salt"]),
        time_cost=kdf["time_cost"],
        memory_cost=kdf["memory_cost"],
        parallelism=kdf["parallelism"],
        hash_len=32,
        type=Type.ID,
    )
    wrapped = base64.b64decode(key["wrapped"])
    say(f"**Key file** `keys/{key_path.name[:8]}…` ({key_path.stat().st_size} bytes):\n")
    say("```json\n" + key_path.read_text() + "```\n")
    t, m, par = kdf["time_cost"], kdf["memory_cost"], kdf["parallelism"]
    say("```")
    say(f'KEK   = Argon2id("{PASSWORD}", salt, t={t}, m={m}, p={par})\n      = {kek.hex()}')
    say(f"nonce = {wrapped[:12].hex()}   (first 12 of the 92 wrapped bytes)")
    say(f"Ke    = {r.ke.hex()}\nKi    = {r.ki.hex()}")
    say("```\n")

    config = (repo / "config").read_bytes()
    say(f"**Config object** (all {len(config)} bytes): version byte, salt (bytes 1–32), then")
    say(f"{len(config) - 49} bytes of ciphertext and 16 bytes of tag.\n")
    say("```\n" + hexdump(config) + "\n```\n")
    ck = _hkdf(r.ke, config[1:33], b"object")
    say("```")
    say(
        f"K     = HKDF-SHA256(Ke, salt = {config[1:4].hex()}…{config[31:33].hex()}, "
        'info = "cairn v1 object")'
    )
    say(f"      = {ck.hex()}\nnonce = {_nonce(0).hex()}")
    say('AAD   = 01 || salt || "config"           (1 + 32 + 6 = 39 bytes)\n```\n')
    say("The payload, decoded:\n\n```\n" + show(r.config) + "\n```\n")

    (_, snap_id, snap) = r.snapshots()[-1]
    raw = (repo / "snapshots" / snap_id).read_bytes()
    payload = r.load_object(f"snapshots/{snap_id}", "snapshot")
    say(f"**Snapshot object** `snapshots/{snap_id[:8]}…` ({len(raw)} bytes); its payload")
    say(f"({len(payload)} bytes of MessagePack, a map of {len(snap)}), decoded whole:\n")
    say("```\n" + show(snap) + "\n```\n")

    tree_ids = [snap["tree"]]
    node = None
    for part in SOURCE.parts[1:]:
        node = next(n for n in r.tree(tree_ids[-1]) if n["name"] == part.encode())
        tree_ids.append(node["subtree"])
    docs_tree = r.load_blob(tree_ids[-1], 1)
    say(f"**Tree blob** of `{SOURCE}` (`{tree_ids[-1].hex()}`, {len(docs_tree)} bytes), decoded:\n")
    say("```\n" + show(msgpack.unpackb(docs_tree, raw=False)) + "\n```\n")

    hello = r.tree(tree_ids[-1])[0]["content"][0]
    place = r.index[hello]
    pack = r.pack_path(place.pack).read_bytes()
    n = int.from_bytes(pack[-12:-8], "little")
    pk = _hkdf(r.ke, pack[8:40], b"pack")
    say(
        f"**Data pack** `data/{place.pack.hex()[:2]}/{place.pack.hex()[:8]}…` "
        f"(all {len(pack)} bytes):\n"
    )
    say("```\n" + hexdump(pack) + "\n```\n")
    say("```")
    say(
        'K          = HKDF-SHA256(Ke, salt = pack[8:40], info = "cairn v1 pack")\n'
        f"           = {pk.hex()}"
    )
    header = AESGCM(pk).decrypt(_nonce(1 << 95), pack[len(pack) - 12 - n : len(pack) - 12], MAGIC)
    say(
        f"header     : {n} bytes at {len(pack) - 12 - n}, "
        f"nonce {_nonce(1 << 95).hex()}, AAD {MAGIC.hex()}"
    )
    say(f"           = {show(msgpack.unpackb(header))}")
    sealed = pack[place.offset : place.offset + place.length]
    plain = AESGCM(pk).decrypt(_nonce(place.offset), sealed, b"\0" + hello)
    say(
        f"blob       : nonce {_nonce(place.offset).hex()} (offset {place.offset}), "
        "AAD 00 || blob id"
    )
    say(f"plaintext  = {plain.hex(' ')}   mode {plain[0]}, {plain[1:]!r}")
    say(
        f"blob id    = BLAKE3-keyed(Ki, content) = {blake3.blake3(plain[1:], key=r.ki).hexdigest()}"
    )
    say(f"pack id    = BLAKE3(all {len(pack)} bytes) = {blake3.blake3(pack).hexdigest()}")
    say("```")
    print("\n".join(out))
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
