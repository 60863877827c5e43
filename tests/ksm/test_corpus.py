"""The KSM corpus: the spec against outputs recorded from the live kernel, and live runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from checker import ksm_oracle
from checker.ksm_scenario import diff_records, load, run

DATA = Path(__file__).resolve().parent.parent / "data" / "ksm"
SCENARIOS = sorted((DATA / "scenarios").glob("*.json"))


def test_corpus_size_and_kinds() -> None:
    names = [p.stem for p in SCENARIOS]
    assert len(names) >= 40
    assert sum(n.startswith("selftest_") for n in names) >= 8
    assert sum(n.startswith("random_") for n in names) >= 10
    assert all((DATA / "expected" / f"{n}.json").exists() for n in names)


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_spec_matches_recorded_kernel_KSM_OP_001_KSM_OP_018(path: Path) -> None:
    """Every counter of every scan record equals what Linux 6.18 printed."""
    want = json.loads((DATA / "expected" / path.name).read_text())
    assert want["kernel"].startswith("6.18")
    got = run(load(path))
    assert diff_records(want, got) == []


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_reference_matches_recorded_kernel(path: Path) -> None:
    want = json.loads((DATA / "expected" / path.name).read_text())
    assert diff_records(want, run(load(path), "reference")) == []


LIVE_WHY = ksm_oracle.unavailable() if Path("/sys").exists() else "no sysfs"


@pytest.mark.kernel
@pytest.mark.skipif(bool(LIVE_WHY), reason=LIVE_WHY or "live KSM available")
@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_live_kernel_matches_spec_KSM_OP_018(path: Path) -> None:
    """The same scenario on the live kernel (real processes, madvise and ksmd)."""
    sc = load(path)
    live = ksm_oracle.run(sc, timeout=30)
    assert diff_records(live, run(sc)) == []


@pytest.mark.kernel
@pytest.mark.skipif(bool(LIVE_WHY), reason=LIVE_WHY or "live KSM available")
def test_oracle_restores_every_knob() -> None:
    before = {k: ksm_oracle._read(k) for k in (*ksm_oracle.TOUCHED, "run")}
    sc = load(DATA / "scenarios" / "chain_mps2.json")
    ksm_oracle.run(sc)
    after = {k: ksm_oracle._read(k) for k in (*ksm_oracle.TOUCHED, "run")}
    assert after == before
    assert ksm_oracle._read("pages_shared") == 0 and ksm_oracle._read("pages_sharing") == 0


@pytest.mark.kernel
@pytest.mark.skipif(bool(LIVE_WHY), reason=LIVE_WHY or "live KSM available")
def test_oracle_restores_knobs_on_error() -> None:
    before = {k: ksm_oracle._read(k) for k in (*ksm_oracle.TOUCHED, "run")}
    with pytest.raises(RuntimeError), ksm_oracle.ksm_knobs({"max_page_sharing": 5,
                                                            "smart_scan": 0}):
        assert ksm_oracle._read("max_page_sharing") == 5
        raise RuntimeError("boom")
    assert {k: ksm_oracle._read(k) for k in (*ksm_oracle.TOUCHED, "run")} == before


@pytest.mark.kernel
@pytest.mark.skipif(bool(LIVE_WHY), reason=LIVE_WHY or "live KSM available")
def test_oracle_restores_knobs_when_terminated() -> None:
    import signal
    import subprocess
    import sys
    import time

    before = {k: ksm_oracle._read(k) for k in (*ksm_oracle.TOUCHED, "run")}
    p = subprocess.Popen([sys.executable, "-m", "checker.cli", "ksm", "oracle",
                          str(DATA / "scenarios" / "chain_600_second_chain.json")],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while ksm_oracle._read("pages_to_scan") == before["pages_to_scan"] and \
            time.monotonic() < deadline and p.poll() is None:
        time.sleep(0.01)
    p.send_signal(signal.SIGTERM)
    p.wait(timeout=60)
    assert {k: ksm_oracle._read(k) for k in (*ksm_oracle.TOUCHED, "run")} == before
    assert ksm_oracle._read("pages_shared") == 0
