"""NUMA-balancing tiering mode (scan, hint fault, threshold) and the CHMU hot list."""

from __future__ import annotations

import importlib

import pytest

from spec import tiering as T
from spec.tier_common import CHMU_DEVICE, PGHOT_HINT_FAULT
from spec.tier_state import TierError

helpers = importlib.import_module("tests.tier.helpers")


def _scanned(**kw: object) -> T.TierState:
    cfg = helpers.config("numab2", placement=tuple([0] + [2] * 15), **kw)
    s = T.initial_state(cfg)
    s, _ = T.numa_scan(s, list(range(16)), 1000)
    return s


def test_scan_skips_top_tier_pages_TIER_OP_021() -> None:
    s = _scanned()
    assert 0 not in s.prot_none and s.prot_none == frozenset(range(1, 16))
    assert dict(s.access_time)[5] == 1000 and s.stat("numa_pte_updates") == 15
    with pytest.raises(TierError):
        T.numa_scan(T.initial_state(helpers.config("pghot-v6-default")), [1], 0)


def test_hint_fault_promotes_below_threshold_TIER_OP_020_TIER_POL_023() -> None:
    s = _scanned()
    s, out = T.record_access(s, 3, 1, PGHOT_HINT_FAULT, 1999)   # 999 ms < 1000
    assert out == [(3, 1, "ok")] and s.node_of[3] == 1
    s, out = T.record_access(s, 4, 1, PGHOT_HINT_FAULT, 2000)   # 1000 ms: not below
    assert out == [] and s.node_of[4] == 2 and dict(s.access_time)[4] == 2000
    s, out = T.record_access(s, 4, 1, PGHOT_HINT_FAULT, 2001)   # not PROT_NONE: no fault
    assert out == [] and s.stat("numa_hint_faults") == 2


def test_hint_fault_bypass_when_target_has_room_TIER_POL_020() -> None:
    s = _scanned(enough_floor_pages=0)      # 8 free > 0 + max(0, 8 >> 4): promote at once
    s, out = T.record_access(s, 3, 1, PGHOT_HINT_FAULT, 50000)
    assert out == [(3, 1, "nrl")]


def _chmu(**kw: object) -> T.TierState:
    return T.initial_state(helpers.config("chmu", **kw))


def test_chmu_epoch_mode_and_exhaustion_TIER_OP_030_TIER_OP_031() -> None:
    s = _chmu(chmu_counters=2, chmu_threshold=2)
    for pfn in (3, 3, 4, 5, 5):                     # 5 finds no free counter
        s, _ = T.record_access(s, pfn, 0, CHMU_DEVICE, 0)
    assert dict(s.chmu_counters) == {3: 2, 4: 1} and s.stat("chmu_untracked") == 2
    s, out = T.promote_pass(s, 0, 10)
    assert out == [(3, 0, "ok")] and s.chmu_counters == () and s.chmu_hotlist == ()


def test_chmu_always_on_downsampling_and_overflow_TIER_OP_030() -> None:
    s = _chmu(chmu_epoch_mode=False, chmu_threshold=1, chmu_hotlist=1, chmu_downsample=1)
    for pfn in (3, 4, 5, 6):          # every second access counted: 3 and 5
        s, _ = T.record_access(s, pfn, 0, CHMU_DEVICE, 0)
    assert s.chmu_hotlist == (3,) and s.chmu_overflow == 1 and s.chmu_counters == ()
    s, r = T.record_access(s, 3, 0, PGHOT_HINT_FAULT, 0)
    assert r == -22


def test_demotion_to_the_lower_tier_TIER_OP_040() -> None:
    cfg = helpers.config("pghot-v6-default", placement=tuple([0] + [2] * 15))
    s = T.initial_state(cfg)
    s, target = T.demote(s, 0)
    assert target == 2 and s.node_of[0] == 2 and s.stat("pgdemote_kswapd") == 1
    assert s.pgdat[0].pgdemote == 1
    with pytest.raises(TierError):
        T.demote(s, 0)                      # already on the lower tier
    full = helpers.config("numab2", pages=64, placement=tuple([0] + [2] * 63))
    s, target = T.demote(T.initial_state(full), 0)     # node 2 holds 63 of 64: room for one
    assert target == 2
