"""The simulator: workloads, the lackey parser on a real trace, metrics on small runs."""

from __future__ import annotations

import os

import numpy as np
import pytest

from reference.tier_sim import SimParams, metadata_bytes, per_tib, simulate
from reference.tier_workloads import HotsetShift, WorkloadError, make, parse_lackey

DATA = os.path.join(os.path.dirname(__file__), "data", "true-head.lackey")


def test_lackey_parser_on_a_real_trace() -> None:
    # tests/tier/data/true-head.lackey: the first 6000 lines of
    # `valgrind --tool=lackey --trace-mem=yes --log-file=... /bin/true` (valgrind 3.19.0) and
    # its closing summary. grep -c counts 919 " L", 170 " S" and 20 " M" records.
    with open(DATA) as f:
        addrs = parse_lackey(f)
    assert len(addrs) == 919 + 170 + 20
    with open(DATA) as f:
        first = next(line for line in f if line.startswith(" ") and line[1] in "LSM")
    assert addrs[0] == int(first.split()[1].split(",")[0], 16)
    with pytest.raises(WorkloadError):
        parse_lackey(["==1== Lackey\n", "garbage\n"])


def test_lackey_trace_runs_as_a_workload() -> None:
    r = simulate("numab2", f"lackey:{DATA}", SimParams(duration_s=0.5, accesses_per_s=20000))
    assert r.accesses == 10000 and r.workload == "true-head.lackey"


def test_hotset_shift_moves_a_quarter_of_the_hot_set() -> None:
    w = make("hotset-shift", 10000, seed=1)
    assert isinstance(w, HotsetShift)
    before = np.unique(w.pages(200000, 0.1))
    after_pages = w.pages(200000, 0.9)
    hot_before = set(range(w.hot_start, w.hot_start + w.hot))
    moved = set(range(w.hot_start + w.hot, w.hot_start + w.hot + w.hot // 4))
    counts = np.bincount(after_pages, minlength=10000)
    # 90 % of accesses go to the hot set: after the shift its first quarter is cold.
    assert counts[list(moved)].mean() > 5 * counts[w.hot_start:w.hot_start + w.hot // 4].mean()
    assert len(before) > 0 and hot_before


def test_no_migration_hit_ratio_is_the_fast_share() -> None:
    # uniform accesses; the fast tier starts 90 % full of a quarter of the footprint:
    # 0.9 * 0.25 = 0.225 of the pages, so about 22.5 % of the accesses hit it.
    r = simulate("none", "uniform", SimParams(duration_s=1, footprint=1 << 14))
    assert abs(r.fast_tier_hit_ratio - 0.225) < 0.01
    assert r.promotions == 0 and r.demotions == 0


def test_promotion_raises_the_hit_ratio_on_a_hot_set() -> None:
    # 2**18 pages at 1 M accesses/s: cold pages are touched about 0.4 times a second, so one
    # hint fault per scan sweep separates the hot set (pghot needs two in its window).
    p = SimParams(duration_s=4)
    base = simulate("none", "gups", p)
    for pol in ("numab2", "pghot-precise", "chmu"):
        r = simulate(pol, "gups", p)
        assert r.fast_tier_hit_ratio > base.fast_tier_hit_ratio + 0.05, pol
        assert r.promotions > 0


def test_metadata_per_tib_matches_the_layouts() -> None:
    # 2**28 lower-tier pages per TiB; 8192 sections of 128 MiB with an 8-byte pointer each
    # (the v3 letter's "64 KB per TB").
    assert per_tib("pghot-default") == (1 << 28) + 8 * 8192
    assert per_tib("pghot-precise") == 4 * (1 << 28) + 8 * 8192
    assert metadata_bytes("kpromoted", 1 << 20, 1000) == 56 * 1000
    assert per_tib("numab2") == 0


def test_page_table_scan_source_feeds_pghot_v3() -> None:
    # A-bit walks at t = 0, 1 and 2 s each visit every PTE of the 2**18-page footprint; the
    # reported pages carry no node, so pghot promotes them to pghot_target_nid (node 0).
    r = simulate("pghot-v3-abit", "gups", SimParams(duration_s=3))
    assert r.pte_updates == 3 * (1 << 18)
    assert r.samples > 0 and r.promotions > 0 and r.hint_faults == 0
    # 8 B per 4 KiB page and 8 B per 128 MiB section: 2 MiB + 64 B per GiB
    assert r.metadata_bytes_per_gib == 8 * (1 << 18) + 8 * 8
