"""The spec's arithmetic rules run on Z3 bit-vectors unchanged: small facts proved."""

from __future__ import annotations

import z3

from spec.numab import adjust_threshold, rate_limit_slot
from spec.pghot import DEFAULT, PRECISE, pghot_access_latency, pghot_update_record


def _proved(claim: z3.BoolRef) -> bool:
    s = z3.Solver()
    s.add(z3.Not(claim))
    return s.check() == z3.unsat


def test_default_latency_never_reaches_4096_jiffies_TIER_POL_011() -> None:
    old, now = z3.BitVecs("old now", 64)
    lat = pghot_access_latency(DEFAULT, old & 31, now)
    assert _proved(z3.ULE(lat, 3968))


def test_update_keeps_a_byte_and_saturates_TIER_OP_010() -> None:
    word, now = z3.BitVecs("word now", 64)
    w, _ = pghot_update_record(DEFAULT, word & 0xFF, 0, now, 3000, 2)
    assert _proved(z3.ULT(w, 256))
    assert _proved(z3.ULE(w & 3, 3))
    # precise: the ready bit follows the frequency: freq >= threshold implies ready.
    w2, _ = pghot_update_record(PRECISE, word & 0xFFFFFFFF, 1, now, 5000, 2)
    assert _proved(z3.Implies(z3.UGE(z3.LShR(w2, 10) & 7, 2), z3.LShR(w2, 31) & 1 == 1))


def test_rate_limit_bound_TIER_POL_021() -> None:
    now, start, cand, base = z3.BitVecs("now start cand base", 64)
    throttled, _start2, base2 = rate_limit_slot(now & 0xFFFFFFFF, start & 0xFFFFFFFF, cand,
                                                base, 256)
    # a candidate passes only while fewer than 256 pages counted since the slot base
    assert _proved(z3.Implies(z3.Not(throttled), z3.ULT(cand - base2, 256)))


def test_threshold_stays_within_bounds_TIER_POL_022() -> None:
    th, diff = z3.BitVecs("th diff", 64)
    ref = 1000
    th0 = z3.If(z3.And(z3.UGE(th, 125), z3.ULE(th, 2000)), th, 0)
    new = adjust_threshold(th0, ref, diff, 100)
    assert _proved(z3.And(z3.UGE(new, 125), z3.ULE(new, 2000)))
