"""Fuzzing beyond one process: workers share one example database, so that a failure any
worker finds replays under plain pytest (and, through Redis, across machines)."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
import unittest
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import Phase, settings
from hypothesis.stateful import run_state_machine_as_test

from checker.fuzz import machine_for, open_database, resolve_impl

ROOT = Path(__file__).resolve().parent.parent.parent
MUTANT = "steal-under-nofragment"


def mmspec(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "checker.cli", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)


def replays_a_failure(database: Any) -> bool:
    """What pytest does first with a database: replay the saved examples, nothing else."""
    machine = machine_for(resolve_impl(f"mutant:{MUTANT}"))
    try:
        run_state_machine_as_test(machine, settings=settings(
            database=database, phases=[Phase.reuse], max_examples=10, deadline=None))
    except unittest.SkipTest:  # nothing saved: Hypothesis had no example to run
        return False
    except AssertionError:
        return True
    return False


@pytest.mark.seeded_bug
def test_a_failure_found_by_two_workers_replays_from_the_shared_directory(
        tmp_path: Path) -> None:
    db = tmp_path / "examples"
    assert not replays_a_failure(open_database(str(db)))  # nothing saved yet
    r = mmspec("fuzz", "alloc", "--impl", f"mutant:{MUTANT}", "--workers", "2",
               "--seconds", "60", "--database", str(db), "--json")
    assert r.returncode == 1, r.stderr
    report = json.loads(r.stdout)
    assert report["workers"] == 2 and len(report["per_worker"]) == 2
    assert not report["ok"] and "state.init_zone(" in report["program"]
    assert replays_a_failure(open_database(str(db)))


def test_clean_workers_report_their_examples(tmp_path: Path) -> None:
    r = mmspec("fuzz", "alloc", "--workers", "2", "--seconds", "4",
               "--database", str(tmp_path / "db"), "--json")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["ok"] and all(w["examples"] > 0 for w in report["per_worker"])
    assert len({w["seed"] for w in report["per_worker"]}) == 2


@pytest.mark.parametrize("args", [
    ["--workers", "0", "--seconds", "1"], ["--workers", "2"],
    ["--workers", "2", "--seconds", "1", "--database", "ftp://x"],
    ["--workers", "2", "--seconds", "1", "--database", "redis://127.0.0.1:1"]])
def test_bad_worker_arguments_exit_2(args: list[str]) -> None:
    r = mmspec("fuzz", "alloc", *args)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "Traceback" not in r.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def redis_url() -> Iterator[str]:
    server = shutil.which("redis-server")
    if server is None:
        pytest.skip("redis-server is not installed (.ci/run installs Debian's redis-server)")
    pytest.importorskip("redis", reason="the redis package is not installed")
    port = _free_port()
    proc = subprocess.Popen([server, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        import redis
        client = redis.Redis(port=port)
        for _ in range(50):
            try:
                client.ping()
                break
            except redis.exceptions.ConnectionError:
                time.sleep(0.1)
        yield f"redis://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.mark.seeded_bug
def test_workers_share_a_redis_database(redis_url: str) -> None:
    assert not replays_a_failure(open_database(redis_url))
    r = mmspec("fuzz", "alloc", "--impl", f"mutant:{MUTANT}", "--workers", "2",
               "--seconds", "60", "--database", redis_url, "--json")
    assert r.returncode == 1, r.stderr
    assert json.loads(r.stdout)["database"] == redis_url
    # Another machine would connect to the same server: a fresh client replays the failure.
    assert replays_a_failure(open_database(redis_url))
