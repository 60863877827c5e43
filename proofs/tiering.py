"""TIER obligations: Z3 over the spec's own pghot and NUMA-balancing arithmetic
(``spec.pghot``, ``spec.numab``), whose helpers in ``spec.tier_common`` already run on ints and
bit-vectors with C's unsigned meaning. HZ = 1000 throughout (jiffies are milliseconds).

The pghot default record keeps time in 5 bits of 128-jiffy buckets: it wraps every 4096
jiffies. The edges below state what a reader would expect of a "frequency window" and report
where the record cannot deliver it.
"""

from __future__ import annotations

from typing import Any

import z3

from proofs.runner import COUNTEREXAMPLE, Outcome, all_of, check_claim, obligation
from spec.kpromoted import kpromoted_new_window
from spec.numab import adjust_threshold, hint_fault_latency, rate_limit_slot
from spec.pghot import DEFAULT, PRECISE, Layout, pghot_access_latency, pghot_update_record
from spec.tier_state import DEFAULT_WINDOW_MS

FREQ_THRESHOLD = 2


def _freq(layout: Layout, word: Any) -> Any:
    return z3.LShR(word, layout.freq_shift) & layout.freq_max


def _two_accesses(layout: Layout) -> tuple[list[Any], Any, Any]:
    """A fresh record updated at ``t0`` and again at ``t1``: (variables, word after t1, lag)."""
    t0, t1, window = z3.BitVecs("t0 t1 window_ms", 64)
    w0, _ = pghot_update_record(layout, z3.BitVecVal(0, 64), 0, t0, window, FREQ_THRESHOLD)
    w1, _ = pghot_update_record(layout, w0, 0, t1, window, FREQ_THRESHOLD)
    return [t0, t1, window], w1, t1 - t0


def _render_accesses(layout: Layout) -> Any:
    name = "DEFAULT" if layout is DEFAULT else "PRECISE"

    def render(v: dict[str, int | bool]) -> str:
        t0, t1, window = int(v["t0"]), int(v["t1"]), int(v["window_ms"])
        w0, _ = pghot_update_record(layout, 0, 0, t0, window, FREQ_THRESHOLD)
        w1, ready = pghot_update_record(layout, w0, 0, t1, window, FREQ_THRESHOLD)
        freq = (w1 >> layout.freq_shift) & layout.freq_max
        return (f"w0, _ = pghot_update_record({name}, 0, 0, {t0}, {window}, {FREQ_THRESHOLD})\n"
                f"w1, ready = pghot_update_record({name}, w0, 0, {t1}, {window}, "
                f"{FREQ_THRESHOLD})\n"
                f"# {t1 - t0} jiffies apart, window {window}: frequency {freq}, ready {ready}")
    return render


@obligation("tier.pghot.latency_bounds", ["TIER-POL-011"], tags=["z3", "pghot"])
def latency_bounds() -> Outcome:
    """For every stored time and every jiffies value: the default record's latency is at most
    31 buckets (3968 jiffies) and a multiple of 128; the precise record's at most 0x3fff."""
    old, now = z3.BitVecs("old_time now", 64)
    d = pghot_access_latency(DEFAULT, old & 31, now)
    p = pghot_access_latency(PRECISE, old & 0x3FFF, now)
    return all_of([
        ("default", check_claim([old, now], [], z3.And(z3.ULE(d, 3968), d & 127 == 0))),
        ("precise", check_claim([old, now], [], z3.ULE(p, 0x3FFF)))])


@obligation("tier.pghot.update_saturates", ["TIER-OP-010", "TIER-POL-010"],
            tags=["z3", "pghot"])
def update_saturates() -> Outcome:
    """For every record word, node, time and window: an update keeps the word in its width,
    leaves a frequency in 1..max (saturating, never wrapping to 0), never clears the ready
    bit, and sets it whenever the frequency reaches the threshold."""
    def case(layout: Layout) -> Outcome:
        word, nid, now, window = z3.BitVecs("word nid now window_ms", 64)
        word_in = word & ((1 << layout.bits) - 1)
        w, _ = pghot_update_record(layout, word_in, nid & 0x3FF, now, window, FREQ_THRESHOLD)
        f = _freq(layout, w)
        ready = 1 << layout.ready_bit
        claim = z3.And(z3.ULT(w, 1 << layout.bits), z3.UGE(f, 1), z3.ULE(f, layout.freq_max),
                       z3.Implies(word_in & ready != 0, w & ready != 0),
                       z3.Implies(z3.UGE(f, FREQ_THRESHOLD), w & ready != 0))
        return check_claim([word, nid, now, window], [], claim)
    return all_of([("default", case(DEFAULT)), ("precise", case(PRECISE))])


@obligation("tier.pghot.new_window_before_wrap", ["TIER-OP-010", "TIER-POL-011"],
            tags=["z3", "pghot"])
def new_window_before_wrap() -> Outcome:
    """Default record: a second access at least ``window + 128`` jiffies after the first (a
    bucket of slack) and at most 3968 jiffies after it starts a new window (frequency 1),
    for every window below 3840 ms."""
    vs, w1, lag = _two_accesses(DEFAULT)
    t0, t1, window = vs
    pre = [z3.ULT(window, 3840), z3.ULE(t0, t1), z3.UGE(lag, window + 128), z3.ULE(lag, 3968),
           z3.ULT(t1, 1 << 62)]
    return check_claim(vs, pre, _freq(DEFAULT, w1) == 1, _render_accesses(DEFAULT))


@obligation("tier.pghot.fresh_after_wrap", ["TIER-OP-010", "TIER-POL-011"],
            expected=COUNTEREXAMPLE, tags=["z3", "pghot", "edge"])
def fresh_after_wrap() -> Outcome:
    """Edge, expected to fail: "an access more than ``window`` after the previous one starts a
    new window". In the default (u8) record a page accessed just over one wrap (4096
    jiffies) ago falls in the same 128-jiffy bucket and looks as fresh as one accessed now:
    the frequency grows to 2 and the page becomes ready for promotion after two accesses
    4 s apart, with a 1 s window."""
    vs, w1, lag = _two_accesses(DEFAULT)
    t0, t1, window = vs
    pre = [window == 1000, z3.ULE(t0, t1), z3.UGT(lag, window), z3.ULT(t1, 1 << 62),
           z3.ULE(lag, 4096 + 1000)]
    return check_claim(vs, pre, _freq(DEFAULT, w1) == 1, _render_accesses(DEFAULT))


@obligation("tier.pghot.precise_fresh_after_wrap", ["TIER-OP-010", "TIER-POL-011"],
            expected=COUNTEREXAMPLE, tags=["z3", "pghot", "edge"])
def precise_fresh_after_wrap() -> Outcome:
    """Edge, expected to fail: the precise (u32) record keeps jiffies mod 2^14, so the same
    aliasing happens one wrap (16.384 s at HZ=1000) later, with its default 5 s window."""
    vs, w1, lag = _two_accesses(PRECISE)
    t0, t1, window = vs
    pre = [window == DEFAULT_WINDOW_MS["pghot-v6-precise"], z3.ULE(t0, t1),
           z3.UGT(lag, window), z3.ULT(t1, 1 << 62), z3.ULE(lag, (1 << 14) + 5000)]
    return check_claim(vs, pre, _freq(PRECISE, w1) == 1, _render_accesses(PRECISE))


@obligation("tier.numab.rate_limit_slot", ["TIER-POL-021"], tags=["z3", "numab"])
def rate_limit() -> Outcome:
    """A candidate passes only while fewer than ``rate_limit`` pages were counted since the
    slot's base, for every clock (u32 ms, wrapping), counter and rate limit; and a slot
    older than 1000 ms is always replaced by one starting now."""
    now, start, cand, base, limit = z3.BitVecs("now_ms start nr_cand slot_base rate_limit", 64)
    now32, start32 = now & 0xFFFFFFFF, start & 0xFFFFFFFF
    throttled, start2, base2 = rate_limit_slot(now32, start32, cand, base, limit)
    claim = z3.And(z3.Implies(z3.Not(throttled), z3.ULT(cand - base2, limit)),
                   z3.Implies(z3.UGT((now32 - start32) & 0xFFFFFFFF, 1000),
                              z3.And(start2 == now32, base2 == cand)))
    return check_claim([now, start, cand, base, limit], [], claim)


@obligation("tier.numab.threshold_bounds", ["TIER-POL-022"], tags=["z3", "numab"])
def threshold_bounds() -> Outcome:
    """From a threshold in [unit, 2 * ref_th] (or 0, the default), one adjustment stays in
    [unit, 2 * ref_th] for every candidate count, every reference threshold from 16 to 2^20 ms
    and every reference candidate count below 2^40."""
    th, ref, diff, ref_cand = z3.BitVecs("th_cur ref_th diff_cand ref_cand", 64)
    unit = z3.UDiv(ref * 2, 16)
    pre = [z3.UGE(ref, 16), z3.ULE(ref, 1 << 20), z3.ULT(ref_cand, 1 << 40),
           z3.ULT(diff, 1 << 40),
           z3.Or(th == 0, z3.And(z3.UGE(th, unit), z3.ULE(th, ref * 2)))]
    new = adjust_threshold(th, ref, diff, ref_cand)
    return check_claim([th, ref, diff, ref_cand], pre,
                       z3.And(z3.UGE(new, unit), z3.ULE(new, ref * 2)))


@obligation("tier.numab.hint_latency_wraps", ["TIER-POL-023"], expected=COUNTEREXAMPLE,
            tags=["z3", "numab", "edge"])
def hint_latency_wraps() -> Outcome:
    """Edge, expected to fail: "a page scanned more than 1000 ms before its hint fault is not
    hot". The scan time lives in 21 bits of ms, so a fault 2^21 ms (about 35 minutes) plus a
    little after the scan reads as a latency below the 1000 ms threshold."""
    now, last = z3.BitVecs("now_ms last_time", 64)
    pre = [z3.ULE(last, now), z3.ULT(now, 1 << 40), z3.UGT(now - last, 1000),
           z3.ULE(now - last, (1 << 21) + 1000)]
    lat = hint_fault_latency(now, last & ((1 << 21) - 1), 21)
    def render(v: dict[str, int | bool]) -> str:
        now_ms, last_ms = int(v["now_ms"]), int(v["last_time"])
        stored = last_ms & ((1 << 21) - 1)
        return (f"hint_fault_latency({now_ms}, {stored}, 21)  # == "
                f"{hint_fault_latency(now_ms, stored, 21)} ms, though the scan was "
                f"{now_ms - last_ms} ms before the fault")
    return check_claim([now, last], pre, z3.UGE(lat, 1000), render)


def _window_claim(as_posted: bool, small: bool = False) -> Outcome:
    last, now, window = z3.BitVecs("last_update now window_jiffies", 64)
    pre = [z3.ULE(last, now), z3.ULT(now, 1 << 62), z3.ULT(window, 1 << 40)]
    if small:  # the default 5 s window at HZ=1000, clocks near boot: a readable example
        pre += [window == DEFAULT_WINDOW_MS["kpromoted-v0"], z3.ULT(now, 1 << 16)]
    restart = kpromoted_new_window(last, now, window, as_posted)
    claim = restart == z3.UGT(now - last, window)

    def render(v: dict[str, int | bool]) -> str:
        a, b, w = int(v["last_update"]), int(v["now"]), int(v["window_jiffies"])
        return (f"kpromoted_new_window({a}, {b}, {w}, as_posted={as_posted})  # == "
                f"{kpromoted_new_window(a, b, w, as_posted)}, {b - a} jiffies after the "
                f"window started, window {w}")
    return check_claim([last, now, window], pre, claim, render)


@obligation("tier.kpromoted.window_fixed", ["TIER-POL-001"], tags=["z3", "kpromoted"])
def kpromoted_window_fixed() -> Outcome:
    """With the v1 fix (``now - last_update``) the window restarts exactly when more than
    ``window`` jiffies have passed, for every clock value and window."""
    return _window_claim(False)


@obligation("tier.kpromoted.window_as_posted", ["TIER-POL-001"], expected=COUNTEREXAMPLE,
            tags=["z3", "kpromoted", "edge"])
def kpromoted_window_as_posted() -> Outcome:
    """Edge, expected to fail: the same claim for the v0 RFC as posted (``last_update -
    now``, unsigned): an access one jiffy into the window wraps to a huge difference and
    restarts it, so the frequency never passes 1 except for accesses in the same jiffy."""
    return _window_claim(True, small=True)
