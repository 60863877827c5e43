"""mmspec ksm estimate: exact content grouping, and agreement with the live kernel."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from checker import ksm_estimate, ksm_oracle

DATA = Path(__file__).resolve().parent.parent / "data" / "ksm"


def test_content_ids_are_exact_even_on_fingerprint_collisions() -> None:
    pages = np.zeros((6, 512), dtype=np.uint64)
    pages[1, 0], pages[1, 1] = 1, 2       # word sum and xor equal to page 2's, words swapped
    pages[2, 0], pages[2, 1] = 2, 1
    pages[3] = pages[1]
    pages[4, 5] = 7
    ids = ksm_estimate.content_ids(pages)
    assert ids[0] == ids[5] == 0
    assert ids[1] == ids[3] and len({ids[1], ids[2], ids[4]}) == 3


def test_prediction_by_hand() -> None:
    # 10 copies of one content, 4 zero pages, 3 unique: KSM (use_zero_pages 0) makes two
    # stable nodes (shared 2, sharing 9 + 3); SKSM saves all but one per non-zero content.
    ids = np.array([5] * 10 + [0] * 4 + [7, 8, 9], dtype=np.int64)
    r = ksm_estimate.predict(ids)
    assert (r["ksm"]["pages_shared"], r["ksm"]["pages_sharing"]) == (2, 12)
    assert r["sksm_saved_pages"] == 17 - 4
    assert ksm_estimate.predict(ids, use_zero_pages=1)["ksm"]["ksm_zero_pages"] == 4


def test_estimate_bad_pid_exits_2() -> None:
    r = subprocess.run(["mmspec", "ksm", "estimate", "--pid", "999999999"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1


WHY = ksm_oracle.unavailable() or ("" if shutil.which("gcc") else "no gcc to build the "
                                                                    "test process")


@pytest.mark.kernel
@pytest.mark.skipif(bool(WHY), reason=WHY or "available")
def test_estimate_matches_the_live_kernel(tmp_path: Path) -> None:
    """The prediction equals what ksmd does once the process sets PR_SET_MEMORY_MERGE."""
    exe = tmp_path / "hold"
    subprocess.run(["gcc", "-O2", "-o", str(exe), str(DATA / "hold.c")], check=True)
    with ksm_oracle.ksm_knobs({"smart_scan": 0, "pages_to_scan": 100_000,
                               "sleep_millisecs": 20}):
        proc = subprocess.Popen([str(exe), "4096"], stdout=subprocess.PIPE, text=True)
        try:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
            est = ksm_estimate.estimate_pid(proc.pid)
            deadline = time.monotonic() + 60
            live = ksm_oracle.settle([proc.pid], deadline)
        finally:
            proc.kill()
            proc.wait()
    want = est["ksm"]
    for k in ("pages_shared", "pages_sharing", "pages_unshared", "stable_node_chains"):
        assert live[k] == want[k], (k, live, want)
    assert live["processes"][str(proc.pid)]["ksm_merging_pages"] == \
        want["processes"]["target"]["ksm_merging_pages"]
    assert os.path.exists(DATA / "hold.c")
