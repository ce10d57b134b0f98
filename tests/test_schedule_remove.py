"""cairn schedule remove: undoing what `schedule install` wrote (systemd units in a temporary
XDG_CONFIG_HOME, never enabled; the crontab block as text)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cairn.app.schedule import merge_crontab, remove_from_crontab
from cairn.config.load import load_config


@pytest.fixture(autouse=True)
def _xdg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))


def write_config(path: Path, tmp_path: Path, jobs: dict[str, str]) -> Path:
    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    text = f'[repositories.main]\nurl = "{tmp_path / "repo"}"\npassword-env = "CAIRN_PASSWORD"\n'
    for name, schedule in jobs.items():
        text += f'[jobs.{name}]\nrepository = "main"\npaths = ["{src}"]\nschedule = "{schedule}"\n'
    path.write_text(text)
    return path


def test_remove_one_job_then_all(tmp_path: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    cfg = write_config(
        tmp_path / "config.toml", tmp_path, {"hourly": "@hourly", "nightly": "5 4 * * *"}
    )
    other = write_config(tmp_path / "other.toml", tmp_path, {"theirs": "@daily"})
    unit_dir = tmp_path / "xdg" / "systemd" / "user"
    for c in (cfg, other):
        assert run_cli("schedule", "install", "--config", c, "--no-enable").code == 0
    (unit_dir / "cairn-mine.timer").write_text("[Timer]\n")  # not written by cairn
    before = sorted(p.name for p in unit_dir.iterdir())

    res = run_cli("schedule", "remove", "--config", cfg, "hourly", "--dry-run")
    assert res.code == 0, res.err
    assert f"would remove {unit_dir / 'cairn-hourly.timer'}" in res.out
    assert "would run: systemctl --user disable --now cairn-hourly.timer" in res.out
    assert sorted(p.name for p in unit_dir.iterdir()) == before

    res = run_cli("schedule", "remove", "--config", cfg, "hourly", "--no-disable")
    assert res.code == 0, res.err
    assert f"removed {unit_dir / 'cairn-hourly.service'}" in res.out
    assert "to deactivate, run: systemctl --user disable --now cairn-hourly.timer" in res.out
    assert not (unit_dir / "cairn-hourly.timer").exists()
    assert (unit_dir / "cairn-nightly.timer").exists()

    # a job that was never installed (or is gone): one line naming those installed
    res = run_cli("schedule", "remove", "--config", cfg, "hourly", "--no-disable")
    assert res.code != 0 and res.err.count("\n") == 1
    assert "no schedule of job 'hourly' is installed" in res.err and "nightly" in res.err

    # all the jobs of this file, also one no longer in it; other files' units stay
    cfg.write_text(cfg.read_text().replace('schedule = "5 4 * * *"\n', ""))
    res = run_cli("schedule", "remove", "--config", cfg, "--no-disable", "--json")
    assert res.code == 0, res.err
    assert sorted(res.json()["removed"]) == ["cairn-nightly.service", "cairn-nightly.timer"]
    assert sorted(p.name for p in unit_dir.iterdir()) == [
        "cairn-mine.timer",
        "cairn-theirs.service",
        "cairn-theirs.timer",
    ]
    res = run_cli("schedule", "remove", "--config", cfg, "--no-disable")
    assert res.code == 0 and "no schedule installed from" in res.out


def test_remove_works_when_the_configuration_file_is_gone(tmp_path: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    cfg = write_config(tmp_path / "config.toml", tmp_path, {"hourly": "@hourly"})
    assert run_cli("schedule", "install", "--config", cfg, "--no-enable").code == 0
    cfg.unlink()
    res = run_cli("schedule", "remove", "--config", cfg, "--no-disable")
    assert res.code == 0, res.err
    assert not list((tmp_path / "xdg" / "systemd" / "user").iterdir())


def test_remove_from_crontab_keeps_everything_else(tmp_path: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    cfg = write_config(
        tmp_path / "config.toml", tmp_path, {"a": "*/10 * * * *", "b-c": "5 4 * * *"}
    )
    source = os.path.abspath(cfg)
    mine = "MAILTO=me\n17 * * * * run-parts /etc/cron.hourly\n"
    full = merge_crontab(mine, load_config(str(cfg)))
    one, removed = remove_from_crontab(full, source, ["b-c"])
    assert len(removed) == 1 and removed[0].startswith("5 4 * * * ")
    assert "*/10 * * * *" in one and one.startswith(mine) and "BEGIN cairn" in one
    none, removed = remove_from_crontab(one, source, [])
    assert none == mine and len(removed) == 1
    assert remove_from_crontab(full, "/elsewhere/config.toml", []) == (full, [])
    res = run_cli("schedule", "remove", "--config", cfg, "--cron", "--no-disable")
    assert res.code != 0 and "--no-disable is for systemd timers" in res.err
