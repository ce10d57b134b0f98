"""cairn cat: print a repository object, decrypted, for inspection."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict

import click

from cairn.app.context import RepoSpec, open_session
from cairn.cli.common import repo_options
from cairn.cli.ls import node_json
from cairn.core.errors import EXIT_FAILED, EXIT_OK, IntegrityError, NotFoundError, UsageError
from cairn.crypto.keys import read_key_file
from cairn.model.node import TreeFormatError, decode_listing
from cairn.ops.snapshots import resolve
from cairn.repo import layout
from cairn.repo.index import decode_index
from cairn.ui.output import Output, show_path

KINDS = ("config", "snapshot", "tree", "blob", "index", "key")


def _find(names: list[str], prefix: str, what: str) -> str:
    match = [n for n in names if layout.id_of(n).startswith(prefix.lower())]
    if not match:
        raise NotFoundError(f"no {what} with id {prefix}")
    if len(match) > 1:
        raise UsageError(f"{what} id prefix {prefix} is ambiguous")
    return match[0]


def _blob_id(text: str) -> bytes:
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raw = b""
    if len(raw) != 32:
        raise UsageError(f"{text!r} is not a blob id (64 hex digits)")
    return raw


@click.command("cat")
@repo_options
@click.argument("kind", type=click.Choice(KINDS))
@click.argument("object_id", required=False)
def command(spec: RepoSpec, out: Output, kind: str, object_id: str | None) -> int:
    """Print the config, a snapshot, tree, blob, index or key file, decrypted."""
    if kind != "config" and not object_id:
        raise UsageError(f"cat {kind} needs an id")
    session = open_session(spec, load_index=kind in ("tree", "blob"))
    repo = session.repo
    doc: dict[str, object]
    failed = False
    if kind == "config":
        doc = asdict(repo.config)
    elif kind == "snapshot":
        doc = resolve(repo, object_id or "").to_json()
    elif kind == "tree":
        tree_id = _blob_id(object_id or "")
        try:
            listing = decode_listing(repo.load_blob(tree_id, layout.TREE_BLOB))
        except TreeFormatError as e:
            raise IntegrityError(f"tree {tree_id.hex()}", str(e)) from None
        doc = {"nodes": [node_json(n.name, n) for n in listing.nodes]}
        # what breaks the format's rules is shown, not printed as if it were valid
        for bad in listing.bad:
            name = show_path(bad.shown())
            out.warning(f"tree {tree_id.hex()[:16]}: entry {name} left out: {bad.reason}")
        if listing.unsorted:
            out.warning(f"tree {tree_id.hex()[:16]}: entries are not sorted by name")
        if listing.bad or listing.unsorted:
            failed = True
            doc["left_out"] = [
                {"position": b.position, "name": show_path(b.shown()), "reason": b.reason}
                for b in listing.bad
            ]
            doc["sorted"] = not listing.unsorted
    elif kind == "blob":
        sys.stdout.buffer.write(repo.load_blob(_blob_id(object_id or "")))
        sys.stdout.flush()
        return 0
    elif kind == "index":
        name = _find([n for n, _ in repo.storage.list(layout.INDEX)], object_id or "", "index")
        doc = {
            "packs": [
                {
                    "id": r.info.id.hex(),
                    "type": layout.BLOB_TYPES[r.info.blob_type],
                    "blobs": [
                        {
                            "id": b.id.hex(),
                            "offset": b.offset,
                            "length": b.length,
                            "raw_length": b.raw_length,
                        }
                        for b in r.blobs
                    ],
                }
                for r in decode_index(repo.load_object(name))
            ]
        }
    else:
        name = _find([n for n, _ in repo.storage.list(layout.KEYS)], object_id or "", "key")
        doc = read_key_file(repo.storage.read(name))
    sys.stdout.write(json.dumps(doc, indent=2, default=str) + "\n")
    return EXIT_FAILED if failed else EXIT_OK
