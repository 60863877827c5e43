"""The THP study: counters by their vmstat names, and no pollution under defrag_mode."""

from __future__ import annotations

import attrs
import pytest

from benchmarks.thp_study import VMSTAT, Workload, run_variant, shape

SMALL = Workload(nr_pageblocks=16, ticks=60, warmup=0)


def test_defrag_mode_never_pollutes_ALLOC_PROP_001() -> None:
    # ALLOC_NOFRAGMENT forbids __rmqueue_steal until reclaim and compaction failed; in this
    # workload the final fallback is never needed, so no block is polluted.
    for variant in ("defrag_mode", "v6.15"):
        rows = run_variant(variant, runs=2, wl=SMALL)
        assert [r["pollute"] for r in rows] == [0, 0], variant
        assert set(VMSTAT) <= set(rows[0])
        # a burst of 10 THP faults every 10 ticks: 6 bursts in 60 ticks
        assert all(r["thp_fault_alloc"] + r["thp_fault_fallback"] == 6 * 10 for r in rows)


@pytest.mark.seeded_bug
def test_pollution_shows_without_defrag_mode_ALLOC_PROP_001() -> None:
    # v6.14 lets movable requests steal single pages from other types' blocks before
    # reclaiming: the observer must see it (the workload above after one warm-up build, when
    # the page cache has filled the zone).
    rows = run_variant("v6.14", runs=2, wl=attrs.evolve(SMALL, warmup=1))
    assert sum(r["pollute"] for r in rows) > 0


def test_shape_criteria_are_evaluated_ALLOC_OP_057() -> None:
    fake = {"variants": {
        "v6.14": {"runs": [{"thp_fault_alloc": x, "pollute": 5} for x in
                           (100, 100, 100, 90, 80, 70, 60, 50, 50)]},
        "v6.15": {"runs": [{"thp_fault_alloc": 95, "pollute": 0}] * 9},
        "defrag_mode": {"runs": [{"thp_fault_alloc": 70, "pollute": 0}] * 9}}}
    checks = shape(fake)
    assert all(c["ok"] for c in checks.values()), checks
    fake["variants"]["v6.15"]["runs"] = [{"thp_fault_alloc": 60, "pollute": 0}] * 9
    assert not shape(fake)["v6.15 last3 >= 1.3x v6.14"]["ok"]


def test_defrag_mode_must_be_clearly_below_v6_15_ALLOC_OP_057() -> None:
    # "clearly below": v6.15's mean exceeds defrag_mode's by more than two standard errors of
    # the difference. Runs 60, 80, 60, ... (mean 620/9 = 68.9; squared deviations 5*8.9^2 +
    # 4*11.1^2 = 888.9, sample variance 111.1, variance of the mean 12.35) against a constant 75:
    # gap 75 - 68.9 = 6.1, 2se = 2*sqrt(12.35) = 7.0 -> within the noise.
    alt = [60, 80, 60, 80, 60, 80, 60, 80, 60]
    fake = {"variants": {
        "v6.15": {"runs": [{"thp_fault_alloc": 75, "pollute": 0}] * 9},
        "defrag_mode": {"runs": [{"thp_fault_alloc": x, "pollute": 0} for x in alt]}}}
    c = shape(fake)["defrag_mode flat, below v6.15"]
    assert round(c["gap"], 1) == 6.1 and round(c["2se"], 1) == 7.0 and not c["ok"]
    # the same noise 20 lower: the gap (75 - 48.9 = 26.1) is clear, and the curve is flat (the
    # first three and the last three runs are both 40, 60, 40)
    fake["variants"]["defrag_mode"]["runs"] = [{"thp_fault_alloc": x - 20, "pollute": 0}
                                               for x in alt]
    assert shape(fake)["defrag_mode flat, below v6.15"]["ok"]
    # a fall of more than 10% is not flat, however far below
    fake["variants"]["defrag_mode"]["runs"] = [{"thp_fault_alloc": x, "pollute": 0}
                                               for x in (50, 50, 50, 50, 50, 50, 44, 44, 44)]
    assert not shape(fake)["defrag_mode flat, below v6.15"]["ok"]
