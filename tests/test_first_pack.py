"""A backup into a repository that holds no pack yet finishes its first data pack at a fifth of
the pack size on an object store (its upload starts that much sooner), and each next one at
twice the one before up to the pack size; later backups fill full packs from the start, and a
dry run counts the requests the backup then makes."""

from __future__ import annotations

import os
from pathlib import Path

from cairn.app.defaults import S3, defaults_for
from cairn.repo import layout
from cairn.storage.s3 import S3Location

BLOB = 150 << 10  # one chunk a file (below the chunker's minimum size)
PACK = 1 << 20


def _files(root: Path, start: int, n: int) -> None:
    root.mkdir(exist_ok=True)
    for i in range(start, start + n):
        (root / f"f{i:03d}").write_bytes(os.urandom(BLOB))


def _data_packs(s3_env, url: str) -> dict[str, int]:  # type: ignore[no-untyped-def]
    """The data packs (tree packs, of a few directory entries here, are far smaller)."""
    loc = S3Location.parse(url)
    pages = s3_env.client().get_paginator("list_objects_v2")
    out = {}
    for page in pages.paginate(Bucket=loc.bucket, Prefix=f"{loc.prefix}{layout.DATA}"):
        for obj in page.get("Contents", []):
            if obj["Size"] > BLOB // 2:
                out[obj["Key"]] = obj["Size"]
    return out


def test_the_first_backup_starts_with_a_small_pack_and_later_ones_do_not(
    tmp_path, s3_url, s3_env, run_cli
):
    assert defaults_for(s3_url).first_pack_divisor == 5
    assert defaults_for(str(tmp_path)).first_pack_divisor is None  # a local directory: no
    assert defaults_for(s3_url).kind == S3
    src = tmp_path / "src"
    _files(src, 0, 20)
    assert run_cli("init", "--repo", s3_url, "--pack-size", "1M").code == 0
    dry = run_cli("backup", "--repo", s3_url, src, "--dry-run", "--json")
    assert dry.code == 0, dry.err
    res = run_cli("backup", "--repo", s3_url, src, "--json")
    assert res.code == 0, res.err
    first = _data_packs(s3_env, s3_url)
    # 1 blob (a fifth of 1 MiB holds one), 2 (two fifths), 5 (four fifths), then 6 a pack
    summary = res.json()["summary"]
    assert summary["packs_written"] - summary["tree_packs_written"] == len(first) == 5
    blobs = sorted(round(s / BLOB) for s in first.values())
    assert blobs == [1, 2, 5, 6, 6]
    # the dry run counted the same packs: its estimate is the requests the backup made
    q, rec = dry.json()["estimate"]["requests"], summary["requests"]
    assert q["put"] == rec["put"] + 1  # the snapshot, written after the counts stop
    # a later backup: full packs from the start (6 + 6 + 6 + 2: none below a fifth)
    _files(src, 20, 20)
    res = run_cli("backup", "--repo", s3_url, src, "--json")
    assert res.code == 0, res.err
    summary = res.json()["summary"]
    assert summary["packs_written"] - summary["tree_packs_written"] == 4
    later = [v for k, v in _data_packs(s3_env, s3_url).items() if k not in first]
    assert len(later) == 4 and all(s > PACK // 5 for s in later)
