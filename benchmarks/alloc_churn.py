"""The churn benchmark: figures side by side in one run, never a timed assertion.

Workload (issue "The spine", section 6): one zone of 2^20 pages, every pageblock MOVABLE;
fill to half with random order 0-3 GFP_HIGHUSER_MOVABLE allocations; then alternate an
order-0 GFP_HIGHUSER_MOVABLE allocation with the free of a uniformly random live block.
The measured phase is the alternation (``ops`` operations, allocations plus frees); the fill
is set-up. Every implementation sees the same random choices.

Implementations: the reference (full kernel semantics), the spec (on fewer operations,
starting from the reference's state after the fill, taken through the abstraction function:
the two are held equal step by step by the lockstep checker, and the spec itself would need
hours to do the fill), a textbook buddy allocator (sets of free pfns per order, no
migratetypes, no per-CPU lists) as the baseline, and a no-op allocator that measures the
harness's own cost.
"""

from __future__ import annotations

import gc
import random
import time
from collections.abc import Callable
from typing import Any, Protocol

import spec
import spec.constants as C
from spec.zone import ZoneConfig

GFP = C.GFP_HIGHUSER_MOVABLE


class Allocator(Protocol):
    def alloc_pages(self, gfp: int, order: int, cpu: int = 0) -> int | None: ...
    def free_pages(self, pfn: int, order: int, cpu: int = 0) -> None: ...


class TextbookBuddy:
    """A plain buddy allocator: one set of free pfns per order, merge on free."""

    def __init__(self, nr_pages: int, max_order: int = 10) -> None:
        self.max_order = max_order
        self.free: list[set[int]] = [set() for _ in range(max_order + 1)]
        self.free[max_order].update(range(0, nr_pages, 1 << max_order))

    def alloc_pages(self, gfp: int, order: int, cpu: int = 0) -> int | None:
        free = self.free
        for o in range(order, self.max_order + 1):
            if free[o]:
                pfn = free[o].pop()
                while o > order:
                    o -= 1
                    free[o].add(pfn + (1 << o))
                return pfn
        return None

    def free_pages(self, pfn: int, order: int, cpu: int = 0) -> None:
        free = self.free
        while order < self.max_order:
            buddy = pfn ^ (1 << order)
            s = free[order]
            if buddy not in s:
                break
            s.remove(buddy)
            pfn &= buddy
            order += 1
        free[order].add(pfn)


class NoopAllocator:
    """Returns fresh numbers and frees nothing: what remains is the harness."""

    def __init__(self) -> None:
        self.next = 0

    def alloc_pages(self, gfp: int, order: int, cpu: int = 0) -> int | None:
        self.next += 1
        return self.next

    def free_pages(self, pfn: int, order: int, cpu: int = 0) -> None:
        return None


class _SpecAllocator:
    def __init__(self, zone: spec.Zone) -> None:
        self.zone = zone

    def alloc_pages(self, gfp: int, order: int, cpu: int = 0) -> int | None:
        self.zone, page = spec.alloc_pages(self.zone, gfp, order, cpu)
        return page

    def free_pages(self, pfn: int, order: int, cpu: int = 0) -> None:
        self.zone, _ = spec.free_pages(self.zone, pfn, order, cpu)


def fill(a: Allocator, nr_pages: int, rng: random.Random) -> list[tuple[int, int]]:
    live: list[tuple[int, int]] = []
    used = 0
    while used < nr_pages // 2:
        order = rng.randrange(4)
        pfn = a.alloc_pages(GFP, order)
        if pfn is None:
            break
        live.append((pfn, order))
        used += 1 << order
    return live


def churn(a: Allocator, live: list[tuple[int, int]], ops: int, rng: random.Random) -> float:
    """Alternate alloc(0) and a random free; return elapsed seconds.

    The cyclic garbage collector is off while the loop runs (as ``timeit`` does), so that a
    full collection triggered by the harness's tuples does not land on one implementation.
    """
    alloc, free = a.alloc_pages, a.free_pages
    randrange = rng.randrange
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        t = time.perf_counter()
        for _ in range(ops // 2):
            pfn = alloc(GFP, 0)
            if pfn is not None:
                live.append((pfn, 0))
            i = randrange(len(live))
            last = live.pop()
            if i < len(live):
                victim, live[i] = live[i], last
            else:
                victim = last
            free(victim[0], victim[1])
        return time.perf_counter() - t
    finally:
        if was_enabled:
            gc.enable()


def run(ops: int = 1_000_000, spec_ops: int = 300, pages_log2: int = 20,
        seed: int = 0, repeats: int = 3,
        tick: Callable[[], None] | None = None) -> dict[str, Any]:
    """Best of ``repeats`` rounds for each fast implementation, rounds interleaved.

    ``tick`` is called after each measured run (``3 * repeats + 1`` calls in all).
    """
    import reference
    from reference import Zone as ReferenceZone

    nr_pages = 1 << pages_log2
    cfg = ZoneConfig(nr_pageblocks=nr_pages >> 9)
    results: dict[str, Any] = {"workload": "churn", "pages": nr_pages, "ops": ops,
                               "spec_ops": spec_ops, "repeats": repeats, "ops_per_s": {},
                               "seconds": {}, "reference_compiled": reference.COMPILED}
    makers: dict[str, Callable[[], Allocator]] = {
        "reference": lambda: ReferenceZone(cfg),
        "textbook": lambda: TextbookBuddy(nr_pages),
        "noop": NoopAllocator,
    }
    best: dict[str, float] = {}
    for _ in range(repeats):
        for name, make in makers.items():
            a = make()
            rng = random.Random(seed)
            live = fill(a, nr_pages, rng)
            best[name] = min(best.get(name, float("inf")), churn(a, live, ops, rng))
            if tick:
                tick()

    t = time.perf_counter()
    ref = ReferenceZone(cfg)
    results["seconds"]["reference_build"] = round(time.perf_counter() - t, 3)
    rng = random.Random(seed)
    t = time.perf_counter()
    live = fill(ref, nr_pages, rng)
    results["seconds"]["reference_fill"] = round(time.perf_counter() - t, 3)
    # The spec starts where the reference's fill left off, with the same random stream.
    best["spec"] = churn(_SpecAllocator(ref.abstract()), live, spec_ops, rng)
    if tick:
        tick()
    for name, secs in best.items():
        n = spec_ops if name == "spec" else ops
        results["seconds"][name] = round(secs, 3)
        results["ops_per_s"][name] = round(n / secs)

    r = results["ops_per_s"]
    harness = results["seconds"]["noop"]
    own = {k: results["seconds"][k] * ops / (ops if k != "spec" else spec_ops) - harness
           for k in ("reference", "textbook", "spec")}
    results["ratios"] = {
        "reference_vs_textbook": round(r["reference"] / r["textbook"], 3),
        "reference_vs_spec": round(r["reference"] / r["spec"], 1),
        "reference_vs_textbook_excluding_harness": round(own["textbook"] / own["reference"], 3)
        if own["reference"] > 0 else None,
    }
    results["harness_share_of_textbook"] = round(harness / results["seconds"]["textbook"], 3)
    return results


def format_report(r: dict[str, Any]) -> str:
    lines = [f"churn: {r['pages']} pages, {r['ops']} ops ({r['spec_ops']} for the spec), "
             "alloc(0) alternating with a random free; best of "
             f"{r['repeats']} interleaved rounds, garbage collector off while timing", ""]
    lines.append(f"{'implementation':<12} {'ops/s':>12} {'seconds':>9}")
    for name in ("reference", "spec", "textbook", "noop"):
        lines.append(f"{name:<12} {r['ops_per_s'][name]:>12,} {r['seconds'][name]:>9.3f}")
    ra = r["ratios"]
    lines += ["",
              f"reference / textbook:                  {ra['reference_vs_textbook']:.3f}x",
              f"reference / textbook, harness removed: "
              f"{ra['reference_vs_textbook_excluding_harness']}x",
              f"reference / spec:                      {ra['reference_vs_spec']:.1f}x",
              f"harness share of the textbook's time:  {r['harness_share_of_textbook']:.1%}",
              f"reference build {r['seconds']['reference_build']} s, "
              f"fill {r['seconds']['reference_fill']} s",
              "reference code: " + ("compiled with mypyc (reference.COMPILED)"
                                    if r.get("reference_compiled") else
                                    "pure Python (reference.COMPILED is False)")]
    return "\n".join(lines)


if __name__ == "__main__":
    print(format_report(run()))
