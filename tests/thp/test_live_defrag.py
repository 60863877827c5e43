"""The live defrag_mode experiment (checker/thp_live.py): its parsers, its bounds, and that a
small run on the live kernel restores defrag_mode (also when SIGTERM'd) and reports every
counter. It does not assert a difference between the settings: at the machine's scale there
may be none (docs/thp-live.md)."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time

import pytest

from checker import thp_live
from checker.thp_live import ExperimentError, Workload

SMALL = Workload(fragment_mib=128, file_mib=16, thp_mib=64, files_per_region=4)

# Lines as the kernel prints them (the tracepoint's print fmt, include/trace/events/kmem.h);
# pageblock_order is 9 with 4 KiB pages and 2 MiB huge pages.
TRACE = """\
 python-1 [000] ..... 1.0: mm_page_alloc_extfrag: page=0x1 pfn=0x1 alloc_order=0 \
fallback_order=10 pageblock_order=9 alloc_migratetype=2 fallback_migratetype=1 fragmenting=0 \
change_ownership=1
 python-1 [000] ..... 1.1: mm_page_alloc_extfrag: page=0x2 pfn=0x2 alloc_order=0 \
fallback_order=3 pageblock_order=9 alloc_migratetype=0 fallback_migratetype=1 fragmenting=1 \
change_ownership=1
 python-1 [001] ..... 1.2: mm_page_alloc_extfrag: page=0x3 pfn=0x3 alloc_order=0 \
fallback_order=0 pageblock_order=9 alloc_migratetype=1 fallback_migratetype=2 fragmenting=1 \
change_ownership=0
 python-1 [001] ..... 1.3: mm_page_alloc_extfrag: page=0x4 pfn=0x4 alloc_order=0 \
fallback_order=1 pageblock_order=9 alloc_migratetype=1 fallback_migratetype=2 fragmenting=1 \
change_ownership=0
"""

PAGETYPEINFO = """\
Page block order: 9
Pages per block:  512

Number of blocks type     Unmovable      Movable  Reclaimable   HighAtomic      Isolate
Node 0, zone      DMA            1            7            0            0            0
Node 0, zone    DMA32            0         1528            0            0            0
Node 0, zone   Normal          150         1872           90            0            0

Number of mixed blocks    Unmovable      Movable  Reclaimable   HighAtomic      Isolate
Node 0, zone      DMA            1            0            0            0            0
Node 0, zone    DMA32            0            2            0            0            0
Node 0, zone   Normal           40           17            9            0            0
"""


def test_extfrag_events_in_weiners_categories() -> None:
    # a whole free block (order 10 >= pageblock_order 9) is a claimer; a partly used block
    # changing owner is a steal; a fallback that leaves the block's type is a pollution
    got = thp_live.classify_extfrag(TRACE, lost=5)
    assert (got["claimer"], got["steal"], got["pollute"], got["lost"]) == (1, 1, 2, 5)
    assert got["by"] == {"claimer[reclaimable]": 1, "steal[unmovable from movable]": 1,
                         "pollute[movable from reclaimable]": 2}


def test_pagetypeinfo_blocks_and_mixed_blocks_summed_over_zones() -> None:
    got = thp_live.pageblocks(PAGETYPEINFO)
    assert got["blocks"] == {"Unmovable": 151, "Movable": 3407, "Reclaimable": 90,
                             "HighAtomic": 0, "Isolate": 0}
    assert got["mixed"] == {"Unmovable": 41, "Movable": 19, "Reclaimable": 9,
                            "HighAtomic": 0, "Isolate": 0}
    assert "mixed" not in thp_live.pageblocks(PAGETYPEINFO.split("\n\nNumber of mixed")[0])


def test_summary_is_mean_min_max_per_setting() -> None:
    runs = [{"defrag_mode": 0, "thp_fault_alloc": 10, "thp_success": 1.0},
            {"defrag_mode": 1, "thp_fault_alloc": 4, "thp_success": math.nan},
            {"defrag_mode": 0, "thp_fault_alloc": 20, "thp_success": 0.5}]
    got = thp_live.summarise(runs)
    assert got["0"]["thp_fault_alloc"] == {"mean": 15.0, "min": 10.0, "max": 20.0}
    assert got["0"]["thp_success"] == {"mean": 0.75, "min": 0.5, "max": 1.0}
    assert got["1"]["thp_fault_alloc"] == {"mean": 4.0, "min": 4.0, "max": 4.0}
    assert "thp_success" not in got["1"]  # no THP fault at all: no ratio, not a zero


def test_workload_above_the_memory_bound_is_refused() -> None:
    # 6 GiB fragmenter + 1 GiB of page cache: 7 GiB resident, above the 6 GiB bound
    with pytest.raises(ExperimentError, match="above the bound"):
        Workload(fragment_mib=6144, file_mib=1024, thp_mib=512).check()
    with pytest.raises(ExperimentError, match="chunk_kib"):
        Workload(chunk_kib=6).check()
    Workload().check()  # the default: max(4096, 2048 + 2048) + 512 = 4608 MiB
    assert Workload().resident_mib() == 4608


def _live_or_skip() -> None:
    why = thp_live.unavailable()
    if why:
        pytest.skip(why)


@pytest.mark.kernel
def test_small_live_run_restores_defrag_mode_and_reports_every_counter() -> None:
    _live_or_skip()
    before = open(thp_live.DEFRAG_MODE).read().strip()
    report = thp_live.experiment(SMALL, runs_per_mode=1, max_total_s=120)
    assert open(thp_live.DEFRAG_MODE).read().strip() == before
    assert report["restored"]["defrag_mode"] == report["saved"]["defrag_mode"] == before
    # alternating 0, 1; the last run wrote 1, so a missing restore shows when before is 0
    assert [r["defrag_mode"] for r in report["runs"]] == [0, 1]
    for r in report["runs"]:
        assert set(thp_live.VMSTAT) <= set(r)
        assert r["fragment_regions"] == 128 // 2
        # every 2 MiB of the faulter's 64 MiB either got a THP or fell back (counted once
        # each in vmstat, which also counts other MADV_HUGEPAGE users during the run)
        assert r["thp_fault_alloc"] + r["thp_fault_fallback"] >= 64 // 2
        assert 0 <= r["anon_huge_mib"] <= 64
        assert sum(r["pageblocks_after"].values()) > 0
        if "pollute" in r:
            assert r["claimer"] + r["steal"] + r["pollute"] == sum(r["extfrag"].values())
    assert set(report["summary"]) == {"0", "1"}
    assert not [d for d in os.listdir("/var/tmp") if d.startswith("mmspec-thp-live-")]
    instances = f"{thp_live.TRACEFS}/instances"
    if os.path.isdir(instances):
        assert not [d for d in os.listdir(instances) if d.startswith("mmspec-thp-live-")]


@pytest.mark.kernel
def test_sigterm_mid_run_restores_defrag_mode() -> None:
    _live_or_skip()
    before = open(thp_live.DEFRAG_MODE).read().strip()
    if before != "0":
        pytest.skip("defrag_mode is not 0 here, so run 2 (which writes 1) cannot be seen")
    p = subprocess.Popen([sys.executable, "-m", "checker.thp_live", "--runs", "3",
                          "--fragment-mib", "512", "--file-mib", "32", "--thp-mib", "128"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    end = time.monotonic() + 120
    seen = False
    while time.monotonic() < end and p.poll() is None:
        if open(thp_live.DEFRAG_MODE).read().strip() == "1":
            seen = True
            break
        time.sleep(0.005)
    p.terminate()
    _out, err = p.communicate(timeout=60)
    assert seen, f"the experiment never set defrag_mode=1: {err}"
    assert p.returncode == 130, err
    assert "restored" in err
    assert open(thp_live.DEFRAG_MODE).read().strip() == before
    assert not [d for d in os.listdir("/var/tmp") if d.startswith("mmspec-thp-live-")]


def test_region_anon_huge_pages_come_from_its_own_mapping() -> None:
    smaps = """\
7f0000000000-7f0004200000 rw-p 00000000 00:00 0
Size:              67584 kB
AnonHugePages:     65536 kB
7f0004200000-7f0004600000 rw-p 00000000 00:00 0
Size:               4096 kB
AnonHugePages:      4096 kB
"""
    assert thp_live.vma_anon_huge_kb(smaps, 0x7F0000200000) == 65536
    assert thp_live.vma_anon_huge_kb(smaps, 0x7F0004200000) == 4096
    with pytest.raises(ValueError):
        thp_live.vma_anon_huge_kb(smaps, 0x1000)
