"""Exhaustive exploration of the slow path on a small zone: liveness and availability.

Breadth-first over :class:`~spec.vmscan.Memory` states reached from the boot state by
environment steps (allocations of kernel and anonymous memory with GFP_KERNEL, GFP_ATOMIC
and GFP_HIGHUSER_MOVABLE, and frees). Every allocation runs the whole slow path
(``spec.slowpath``) step by step; a repeated (state, locals) at ``retry`` is a slow path that
never returns (ALLOC-PROP-050), and a failing request that may wake kswapd while
``get_page_from_freelist`` without ALLOC_NOFRAGMENT would succeed violates ALLOC-PROP-051.
BFS makes the environment prefix of a counterexample the shortest.

Abstractions, named: swap is off (anonymous memory can be migrated but not reclaimed, as in
an OOM test), kswapd and kcompactd do not run (the allocating task alone), and page ages are
forgotten between steps (reclaim order by pfn), so that interleavings that differ only in
age collapse into one state.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Any

import attrs

import spec.constants as C
from spec.constants import format_alloc_flags, format_gfp
from spec.page_alloc import init_zone
from spec.rules import VARIANTS, alloc_has
from spec.slowpath import (
    DEFRAG_FALLBACK,
    FAST,
    RETRY,
    SHOULD_RECLAIM_RETRY,
    Frame,
    Step,
    availability_violation,
    trace_slowpath,
)
from spec.vmscan import KIND_ANON, KIND_KERNEL, Memory, MemWork, Page, free_page
from spec.zone import ZoneConfig

LIVENESS = "ALLOC-PROP-050"
AVAILABILITY = "ALLOC-PROP-051"
PROPERTIES = {"liveness": (LIVENESS,), "availability": (AVAILABILITY,),
              "all": (LIVENESS, AVAILABILITY)}


@attrs.frozen
class Action:
    label: str
    gfp: int = 0
    order: int = 0
    kind: str = KIND_KERNEL
    free: bool = False


ACTIONS = (
    Action("alloc_pages(GFP_KERNEL, order=0) [kernel]", C.GFP_KERNEL, 0, KIND_KERNEL),
    Action("alloc_pages(GFP_ATOMIC, order=0) [kernel]", C.GFP_ATOMIC, 0, KIND_KERNEL),
    Action("alloc_pages(GFP_HIGHUSER_MOVABLE, order=0) [anon]", C.GFP_HIGHUSER_MOVABLE, 0,
           KIND_ANON),
    Action("free_pages(lowest anon page)", kind=KIND_ANON, free=True),
    Action("free_pages(lowest kernel page)", kind=KIND_KERNEL, free=True),
)


def small_config(variant: str) -> ZoneConfig:
    """Six pageblocks of two pages (the fewest with mobility grouping on), one CPU."""
    return ZoneConfig(nr_pageblocks=6, max_page_order=1, pageblock_order=1, nr_cpus=1,
                      min_free_kbytes=0, watermark_boost_factor=0, thp=False,
                      defrag_mode=1 if alloc_has(variant, "defrag_mode") else 0,
                      variant=variant)


def _normalize(m: Memory) -> Memory:
    pages = tuple(Page(p.pfn, p.order, p.kind, 0) for p in m.pages)
    return attrs.evolve(m, pages=pages, clock=0, kswapd_order=-1, kcompactd_order=-1,
                        vmstat=())


def describe_step(s: Step, prev_flags: int | None) -> str:
    """One step as a line; ``alloc_flags`` are shown when they change."""
    f = s.after
    flags = ("" if f.alloc_flags == prev_flags
             else f" [alloc_flags {format_alloc_flags(f.alloc_flags)}]")
    if f.done:
        return f"{s.pc} -> " + (f"page pfn {f.page}" if f.page is not None else f.outcome)
    if s.pc == FAST:
        return f"{s.pc} = NULL"
    if s.pc == SHOULD_RECLAIM_RETRY:
        return f"{s.pc}: no_progress_loops={f.no_progress_loops} -> {f.pc}"
    if s.pc == DEFRAG_FALLBACK and f.pc == RETRY:
        return f"{s.pc} -> retry{flags}"
    if s.pc == RETRY and f.pc == RETRY:
        return f"retry: cannot reclaim, drop ALLOC_NOFRAGMENT -> retry{flags}"
    return f"{s.pc} -> {f.pc}{flags}"


def describe(steps: list[Step]) -> list[str]:
    out = []
    prev: int | None = 0
    for s in steps:
        out.append(describe_step(s, prev))
        prev = s.after.alloc_flags
    return out


def compress(lines: list[str]) -> list[str]:
    """Collapse runs of identical loop iterations (each starts at a ``retry`` line)."""
    out: list[str] = []
    i = 0
    while i < len(lines):
        if not lines[i].startswith("retry"):
            out.append(lines[i])
            i += 1
            continue
        j = i + 1
        while j < len(lines) and not lines[j].startswith("retry"):
            j += 1
        body = [_mask(x) for x in lines[i:j]]
        n = 1
        k = j
        while True:
            e = k + (j - i)
            if e <= len(lines) and [_mask(x) for x in lines[k:e]] == body:
                n += 1
                k = e
            else:
                break
        if n > 1:
            out.append(f"[{n} times] " + " | ".join(body))
        else:
            out.extend(lines[i:j])
        i = k
    return out


def _mask(line: str) -> str:
    return line.split(": no_progress_loops=")[0] if "no_progress_loops" in line else line


#: The historical bug a violation of each property can be, with the fix, its date and commit,
#: and the variant that carries it.
KNOWN_BUGS: dict[str, str] = {
    LIVENESS: (
        "the endless retry fixed by \"mm: page_alloc: fix defrag_mode's retry & OOM path\" "
        "(7a95a05f15d5, 22 Mar 2025); variant defrag_mode has the fix"),
    AVAILABILITY: (
        "the GFP_ATOMIC failure fixed by \"mm/page_alloc: fix defrag_mode for non-reclaimable "
        "allocations\" (v2, 20 May 2026; Fixes: e3aa7df331bc, patch 3 of the defrag_mode "
        "series); variant v6.18+atomic-fix has the fix"),
}


def known_bug(variant: str, prop: str) -> str | None:
    """The historical bug a violation of ``prop`` in ``variant`` is, or None when it is new.

    A liveness violation is the known one only in a variant with the unchecked retry; an
    availability violation only in a defrag_mode variant without the 2026 fix. Anything else
    the explorer finds is not explained by kernel history and is reported as new."""
    if prop == LIVENESS:
        known = alloc_has(variant, "defrag_retry_unchecked")
    else:
        known = alloc_has(variant, "defrag_mode") and not alloc_has(variant, "atomic_fix")
    return KNOWN_BUGS[prop] if known else None


@attrs.define
class ExploreResult:
    variant: str
    states: int = 0
    depth: int = 0
    seconds: float = 0.0
    violations: list[dict[str, Any]] = attrs.Factory(list)
    complete: bool = True

    @property
    def states_per_s(self) -> float:
        return self.states / self.seconds if self.seconds > 0 else float(self.states)

    def to_json(self) -> dict[str, Any]:
        return {"variant": self.variant, "states": self.states, "depth": self.depth,
                "states_per_s": round(self.states_per_s, 1),
                "complete": self.complete, "violations": self.violations}


def explore_slowpath(variant: str, max_depth: int = 12, properties: str = "all",
                     cfg: ZoneConfig | None = None,
                     tick: Callable[[int], None] | None = None,
                     visit: Callable[[Memory, list[str]], None] | None = None) -> ExploreResult:
    """BFS to ``max_depth`` environment steps; one shortest counterexample per property.

    ``visit(state, path)`` is called once for every distinct state reached (the root
    included), with the environment steps that reach it first (a shortest path)."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; known: {', '.join(VARIANTS)}")
    if properties not in PROPERTIES:
        raise ValueError(f"unknown property set {properties!r}; known: {', '.join(PROPERTIES)}")
    wanted = set(PROPERTIES[properties])
    cfg = cfg or small_config(variant)
    start = time.monotonic()
    root = _normalize(Memory(init_zone(cfg), swap=False))
    parent: dict[Memory, tuple[Memory | None, str]] = {root: (None, "")}
    queue: deque[tuple[Memory, int]] = deque([(root, 0)])
    res = ExploreResult(variant)
    found: set[str] = set()
    slow_states = 0
    if visit:
        visit(root, [])

    def path_to(m: Memory) -> list[str]:
        out: list[str] = []
        cur: Memory | None = m
        while cur is not None:
            prev, label = parent[cur]
            if label:
                out.append(label)
            cur = prev
        return out[::-1]

    while queue and found != wanted:
        m, depth = queue.popleft()
        res.depth = max(res.depth, depth)
        if depth >= max_depth:
            res.complete = False
            continue
        for act in ACTIONS:
            mw = MemWork(m)
            label = act.label
            if act.free:
                own = sorted(p.pfn for p in m.pages if p.kind == act.kind)
                if not own:
                    continue
                free_page(mw, own[0])
                label = f"free_pages(pfn {own[0]}) [{act.kind}]"
            else:
                f0 = Frame(act.gfp, act.order)
                steps, cycle = trace_slowpath(mw, f0)
                slow_states += len(steps)
                if cycle is not None:
                    if LIVENESS in wanted and LIVENESS not in found:
                        found.add(LIVENESS)
                        lines = describe(steps)
                        trace = path_to(m) + [f"{act.label}: slow path"] + compress(
                            lines[:cycle]) + [f"cycle: steps {cycle + 1}..{len(steps)} repeat "
                                              "forever: " + " | ".join(
                                                  compress(lines[cycle:]))]
                        res.violations.append({"property": LIVENESS, "trace": trace,
                                               "known_bug": known_bug(variant, LIVENESS)})
                    continue
                f = steps[-1].after
                if AVAILABILITY in wanted and AVAILABILITY not in found:
                    bad = availability_violation(mw.freeze(), act.gfp, act.order, f.outcome)
                    if bad:
                        found.add(AVAILABILITY)
                        lines = describe(steps)
                        res.violations.append({"property": AVAILABILITY,
                                               "trace": path_to(m) + [act.label + ": slow path"]
                                               + compress(lines) + [bad],
                                               "known_bug": known_bug(variant, AVAILABILITY)})
                        continue
                if f.page is not None:
                    mw.pages[f.page] = Page(f.page, act.order, act.kind, 0)
                    label = f"{act.label} -> pfn {f.page}"
                else:
                    label = f"{act.label} -> {f.outcome}"
            nxt = _normalize(mw.freeze())
            if nxt not in parent:
                parent[nxt] = (m, label)
                queue.append((nxt, depth + 1))
                if visit:
                    visit(nxt, path_to(nxt))
                if tick:
                    tick(1)
    if queue and found != wanted:
        res.complete = False
    res.states = len(parent) + slow_states
    res.seconds = time.monotonic() - start
    return res


__all__ = ["explore_slowpath", "ExploreResult", "small_config", "LIVENESS", "AVAILABILITY",
           "PROPERTIES", "format_gfp"]
