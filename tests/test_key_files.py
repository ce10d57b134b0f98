"""Key files planted in a repository (anyone who can write to the store can add one): none may
crash a command or make opening the repository expensive, and --key-hint picks the key tried
first. The key files are real files in a real local repository; commands run as a user would."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cairn.crypto.kdf import KdfParams
from cairn.repo.repository import Repository
from cairn.storage.local import LocalStorage
from tests.conftest import CAIRN, FAST_KDF, PASSWORD
from tests.craft import create_repo, repo_listing

MIB = 1 << 20


def key_doc(**kdf: object) -> dict[str, object]:
    """A well-formed key file (that no password opens) with the given KDF parameters."""
    params = {"algorithm": "argon2id", "time_cost": 1, "memory_cost": 8192, "parallelism": 1}
    return {
        "version": 1,
        "created": "2026-01-01T00:00:00+00:00",
        "host": "mallory",
        "username": "mallory",
        "kdf": {**params, **kdf},
        "salt": base64.b64encode(bytes(16)).decode(),
        "wrapped": base64.b64encode(bytes(92)).decode(),
    }


def plant(repo: Path, data: bytes, name: str = "0" * 64) -> str:
    """Puts a key file in the repository; the name sorts before every real key's."""
    (repo / "keys" / name).write_bytes(data)
    return name


def one_line_error(res) -> str:  # type: ignore[no-untyped-def]
    assert res.code != 0 and "Traceback" not in res.err, res.err
    assert len(res.err.strip().splitlines()) == 1, res.err
    return res.err


PLANTED = {
    # json.loads raises RecursionError on deep nesting
    "nested": b"[" * 200_000 + b"]" * 200_000,
    # argon2 raises TypeError on a float
    "float-memory": json.dumps(key_doc(memory_cost=8192.5)).encode(),
    "bool-parallelism": json.dumps(key_doc(parallelism=True)).encode(),
    "string-time": json.dumps(key_doc(time_cost="1")).encode(),
    "huge": json.dumps({**key_doc(), "host": "x" * 100_000}).encode(),
    "extra-field": json.dumps({**key_doc(), "note": "hi"}).encode(),
    "missing-field": json.dumps({k: v for k, v in key_doc().items() if k != "host"}).encode(),
    "not-an-object": b"[1, 2, 3]",
    "not-utf8": b'{"version": 1, "host": "\xff"}',
    "nan": b'{"version": NaN}',
}


@pytest.mark.parametrize("content", PLANTED.values(), ids=PLANTED.keys())
def test_a_planted_malformed_key_file_is_damaged_not_a_crash(tmp_path, cairn_proc, content):
    repo = create_repo(tmp_path / "repo")
    name = plant(repo, content)
    before = repo_listing(repo)
    res = cairn_proc("snapshots", "--repo", repo)  # the real key still opens it
    assert res.code == 0 and "Traceback" not in res.err, res.err
    check = cairn_proc("check", "--repo", repo)
    assert check.code == 1 and "Traceback" not in check.err, check.err
    assert f"error: keys/{name}: " in check.out
    listed = {
        k["id"]: k for k in json.loads(cairn_proc("key", "list", "--repo", repo, "--json").out)
    }
    assert listed[name]["error"]
    # with only the planted key left, the one-line error names it
    for other in os.listdir(repo / "keys"):
        if other != name:
            os.unlink(repo / "keys" / other)
    err = one_line_error(cairn_proc("snapshots", "--repo", repo))
    assert f"keys/{name}" in err and "every key file is damaged" in err
    after = repo_listing(repo)
    assert after[f"keys/{name}"] == before[f"keys/{name}"]

    def others(listing: dict) -> dict:  # type: ignore[type-arg]
        return {k: v for k, v in listing.items() if not k.startswith("keys")}

    assert others(after) == others(before)  # nothing but what the test removed changed


def _max_rss_of(args: list[str], env: dict[str, str] | None = None) -> tuple[int, int]:
    """Runs cairn ARGS; returns its exit status and its peak memory in bytes (from the kernel's
    accounting, via a wrapper process whose only child it is)."""
    wrapper = (
        "import resource, subprocess, sys\n"
        "rc = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode\n"
        "print(rc, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", wrapper, *CAIRN, *args],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **(env or {})},
    ).stdout.split()
    return int(out[0]), int(out[1])


def test_a_planted_key_with_the_most_expensive_kdf_is_never_derived(tmp_path):
    """Key files are tried cheapest first: the holder of the real (cheaper) key never pays for a
    planted expensive one, however its name sorts. Measured as memory: deriving the planted key
    would take 1 GiB."""
    repo = create_repo(tmp_path / "repo")
    plant(repo, json.dumps(key_doc(memory_cost=1024 * 1024, time_cost=1)).encode())
    code, rss = _max_rss_of(["snapshots", "--repo", str(repo)])
    assert code == 0
    assert rss < 400 * MIB, f"peak memory {rss / MIB:.0f} MiB: the planted key was derived"


def test_kdf_parameters_are_bounded_and_exactly_typed():
    ok = {"algorithm": "argon2id", "time_cost": 4, "memory_cost": 32768, "parallelism": 2}
    assert KdfParams.from_dict(ok) == KdfParams()
    for field, value in [
        ("time_cost", 0),
        ("time_cost", 11),
        ("memory_cost", 8191),
        ("memory_cost", 1024 * 1024 + 1),
        ("parallelism", 0),
        ("parallelism", 17),
        ("parallelism", True),
        ("memory_cost", 32768.0),
        ("time_cost", None),
        ("algorithm", "argon2i"),
    ]:
        with pytest.raises(ValueError):
            KdfParams.from_dict({**ok, field: value})
    for extreme in ({"time_cost": 10, "memory_cost": 1024 * 1024, "parallelism": 16},):
        assert KdfParams.from_dict({**ok, **extreme}).cost == 10 * 1024 * 1024


def test_key_file_size_is_bounded_before_parsing():
    from cairn.crypto.keys import MAX_KEY_FILE_BYTES, KeyFileError, parse_key_file

    good = json.dumps(key_doc()).encode()
    assert parse_key_file(good).kdf == FAST_KDF
    with pytest.raises(KeyFileError, match="more than a key file holds"):
        parse_key_file(good + b" " * MAX_KEY_FILE_BYTES)
    with pytest.raises(KeyFileError, match="appears twice"):
        parse_key_file(good.replace(b'"version": 1', b'"version": 1, "version": 1'))


# ---------------------------------------------------------------------- --key-hint
@pytest.fixture
def two_keys(tmp_path) -> tuple[Path, str, str]:  # type: ignore[no-untyped-def]
    """A repository with two keys for the same password: a cheap one and a dearer one."""
    repo = create_repo(tmp_path / "repo")
    r = Repository.open(LocalStorage(repo), PASSWORD.encode())
    cheap = r.key_id
    dear = r.add_key(
        PASSWORD.encode(), KdfParams(time_cost=2, memory_cost=16 * 1024, parallelism=1)
    )
    assert cheap and dear
    return repo, cheap, dear


def _current(run_cli, repo: Path, *extra: str) -> str:  # type: ignore[no-untyped-def]
    res = run_cli("key", "list", "--repo", repo, "--json", *extra)
    assert res.code == 0, res.err
    return next(k["id"] for k in res.json() if k["current"])


def test_key_hint_picks_the_key_tried_first(two_keys, run_cli, monkeypatch):
    repo, cheap, dear = two_keys
    assert _current(run_cli, repo) == cheap  # cheapest first
    assert _current(run_cli, repo, "--key-hint", dear[:6]) == dear
    assert _current(run_cli, repo, "--key-hint", dear.upper()) == dear
    monkeypatch.setenv("CAIRN_KEY_HINT", dear[:10])
    assert _current(run_cli, repo) == dear
    assert _current(run_cli, repo, "--key-hint", cheap[:8]) == cheap  # the option wins


def test_key_hint_that_matches_nothing_or_is_not_an_id(two_keys, run_cli, monkeypatch):
    repo, cheap, dear = two_keys
    other = "0123" if not (cheap.startswith("0123") or dear.startswith("0123")) else "3210"
    assert _current(run_cli, repo, "--key-hint", other) == cheap  # a hint, not a requirement
    res = run_cli("snapshots", "--repo", repo, "--key-hint", "not-hex")
    assert res.code == 2 and "not a key id" in one_line_error(res)
    monkeypatch.setenv("CAIRN_PASSWORD", "wrong")
    res = run_cli("snapshots", "--repo", repo, "--key-hint", other)
    assert "wrong password" in one_line_error(res) and f"key hint {other} matches no key" in res.err


def test_the_documents_state_the_kdf_cairn_writes():
    from cairn.crypto.keys import open_key_file, parse_key_file

    root = Path(__file__).resolve().parent.parent
    spec = (root / "docs" / "format.md").read_text()
    d = KdfParams()
    mib = d.memory_cost // 1024
    assert f"cairn writes {d.time_cost}, {d.memory_cost} ({mib} MiB) and {d.parallelism}" in spec
    assert f"{mib} MiB and {d.time_cost} passes" in (root / "README.md").read_text()
    # the worked example's key file is what cairn writes today, and opens as the text says
    example = spec.split("**Key file** `keys/")[1].split("```json\n")[1].split("```")[0]
    key_file = parse_key_file(example.encode())
    assert key_file.kdf == d
    key = open_key_file(key_file, b"example-password")
    assert f"Ke    = {key.encryption.hex()}" in spec and f"Ki    = {key.id_key.hex()}" in spec
