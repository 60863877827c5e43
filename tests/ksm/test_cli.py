"""mmspec ksm: JSON on stdout, exit 0/1/2, one clear line for bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from checker import ksm_oracle

ROOT = Path(__file__).resolve().parent.parent.parent
SC = ROOT / "tests" / "data" / "ksm" / "scenarios"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "checker.cli", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


def test_run_json_is_the_scan_records_KSM_OP_018() -> None:
    r = run("ksm", "run", str(SC / "selftest_ksm_tests_merge.json"), "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert [(x["pages_shared"], x["pages_sharing"]) for x in out["scans"]] == [(1, 9)]
    r2 = run("ksm", "run", str(SC / "selftest_ksm_tests_merge.json"), "--json",
             "--impl", "reference")
    assert json.loads(r2.stdout) == out


def test_sidechannel_json_exit_0_KSM_PROP_002() -> None:
    r = run("ksm", "sidechannel", "--secrets", "2", "--pages", "1", "--json")
    assert r.returncode == 0
    assert json.loads(r.stdout)["per_domain"]["noninterference"]


def test_bench_prints_pages_per_second() -> None:
    r = run("ksm", "bench", "--pages", "20000", "--json")
    assert r.returncode == 0
    assert json.loads(r.stdout)["pages_per_s"] > 0


BAD = [
    ('{"processes": {"a": [["X", 2]]}, "steps": []}', "at least one 'scan'"),
    ('{"processes": {"a": [["X", 2]]}, "steps": [{"op": "scan"}], "knobs": {"run": 1}}',
     "unknown knob"),
    ('{"processes": {"a": [["X", 2]]}, "steps": [{"op": "write", "process": "a", "page": 5,'
     ' "content": "Y"}, {"op": "scan"}]}', "page = 5"),
    ('{"processes": {"a": [["X", 2]]}, "steps": [{"op": "madvise", "process": "b", '
     '"start": 0, "count": 1, "advice": "mergeable"}, {"op": "scan"}]}', "no live process"),
    ('{"processes": {"a": [["X", 2]]}, "steps": [{"op": "madvise", "process": "a", '
     '"start": 0, "count": 1, "advice": "merge"}, {"op": "madvise", "process": "a", '
     '"start": 0, "count": 1, "advice": "mergeable"}, {"op": "scan"}]}', "SKSM"),
    ('{"processes": {"a": [["X", -1]]}, "steps": [{"op": "scan"}]}', "outside"),
    ('not json', "not JSON"),
    ('{"processes": {"a": [["X", 2]]}, "steps": [{"op": "munmap", "process": "a", '
     '"start": 0, "count": 1}, {"op": "write", "process": "a", "page": 0, "content": "Y"},'
     ' {"op": "scan"}]}', "unmapped"),
]


@pytest.mark.parametrize(("text", "why"), BAD)
def test_malformed_scenarios_exit_2_with_one_line(tmp_path: Path, text: str, why: str) -> None:
    p = tmp_path / "bad.json"
    p.write_text(text)
    r = run("ksm", "run", str(p))
    assert r.returncode == 2 and r.stdout == ""
    assert len(r.stderr.strip().splitlines()) == 1 and why in r.stderr, r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize("args", [["ksm"], ["ksm", "run", "/nonexistent.json"],
                                  ["ksm", "bench", "--pages", "0"],
                                  ["ksm", "sidechannel", "--secrets", "9"],
                                  ["ksm", "run", str(SC / "chain_mps2.json"), "--impl", "x"]])
def test_bad_arguments_exit_2(args: list[str]) -> None:
    r = run(*args)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_sksm_scenario_is_model_only_KSM_OP_017(tmp_path: Path) -> None:
    p = tmp_path / "sksm.json"
    p.write_text(json.dumps({"processes": {"a": [["X", 3], ["0", 2]]}, "steps": [
        {"op": "madvise", "process": "a", "start": 0, "count": 5, "advice": "merge"},
        {"op": "scan"}]}))
    r = run("ksm", "run", str(p), "--json")
    assert r.returncode == 0
    rec = json.loads(r.stdout)["scans"][0]
    assert rec["sksm"] == {"sksm_pages_shared": 1, "sksm_pages_sharing": 2,
                           "sksm_zero_pages": 2}
    assert rec["pages_sharing"] == 0
    r = run("ksm", "diff", str(p))
    assert r.returncode == 2 and "SKSM" in r.stderr


@pytest.mark.kernel
@pytest.mark.skipif(bool(ksm_oracle.unavailable()), reason=ksm_oracle.unavailable() or "ok")
def test_diff_agrees_on_the_live_kernel() -> None:
    r = run("ksm", "diff", str(SC / "zero_on_with_merged.json"), "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    assert json.loads(r.stdout)["agree"]


def test_verify_checks_run_and_report() -> None:
    from checker.commands.ksm import verify_checks
    checks = dict(verify_checks())
    assert set(checks) == {"ksm lockstep fuzz", "ksm live corpus sample"}
    r = checks["ksm lockstep fuzz"]()
    assert r["ok"] and r["violations"] == []
    live = checks["ksm live corpus sample"]()
    assert live["ok"] and ("skipped" in live or "5 corpus scenarios" in live["detail"])
