"""Bounded obligations over the slow path's world: a zone with page contents (``Memory``).

ALLOC-INV-050 (contents sit in allocated blocks of their kind's migratetype) is a property of
``spec.vmscan.Memory``, not of the zone alone, so the zone matrix of ``alloc_bounded`` does
not reach it. Here the slow-path explorer's breadth-first search (allocations of every kind
through ``__alloc_pages_slowpath``, with reclaim, compaction and kswapd, and frees) visits
every state within ``DEPTH`` environment steps of boot in its small configuration, and:

- the invariant holds in every one of them (bounded, not inductive);
- it is not vacuous: some reachable state holds both kinds the explorer allocates (anonymous
  and unmovable kernel pages) at once;
- its broken twin, a ``free_page`` that frees the block but keeps the content record, yields
  a counterexample, printed as the steps that reach it.
"""

from __future__ import annotations

import functools
from typing import Any

from checker.slowpath_explore import explore_slowpath
from checker.spec_twins import Twin, installed
from proofs.runner import COUNTEREXAMPLE, PROVED, Outcome, add
from spec.vmscan import Memory, MemWork, free_block, memory_consistent

VARIANT = "v6.18+atomic-fix"
DEPTH = 8


class _Found(Exception):
    pass


def _search(first_only: bool) -> tuple[int, list[tuple[list[str], list[str]]], list[str] | None]:
    """(states, violations with their paths, the path to a two-kind witness). With
    ``first_only`` the search stops at the first violation (breadth-first: a shortest one)."""
    count = 0
    bad: list[tuple[list[str], list[str]]] = []
    witness: list[list[str]] = []

    def visit(m: Memory, path: list[str]) -> None:
        nonlocal count
        count += 1
        v = memory_consistent(m)
        if v:
            bad.append((path, v))
            if first_only:
                raise _Found
        elif not witness and len({p.kind for p in m.pages}) >= 2:
            witness.append(path)

    try:
        explore_slowpath(VARIANT, max_depth=DEPTH, properties="liveness", visit=visit)
    except _Found:
        pass
    return count, bad, witness[0] if witness else None


@functools.cache
def _normal() -> tuple[int, list[tuple[list[str], list[str]]], list[str] | None]:
    return _search(first_only=False)


def _program(path: list[str], note: str) -> str:
    lines = [f"# explore_slowpath({VARIANT!r}, max_depth={DEPTH}): {len(path)} steps"]
    lines += [f"#   {step}" for step in path]
    return "\n".join(lines + [f"# {note}"])


def holds() -> Outcome:
    """ALLOC-INV-050 holds in every state the slow-path explorer reaches within DEPTH steps."""
    n, bad, _ = _normal()
    if bad:
        path, v = min(bad, key=lambda b: len(b[0]))
        return Outcome(COUNTEREXAMPLE, v[0], _program(path, v[0]), states=n)
    return Outcome(PROVED, f"{n} states within {DEPTH} steps", states=n)


def nonvacuity() -> Outcome:
    """ALLOC-INV-050 is not vacuous: a reachable state where it holds has contents of two
    kinds (anonymous and unmovable kernel pages) in allocated blocks."""
    n, _, witness = _normal()
    if witness is None:
        return Outcome(COUNTEREXAMPLE, f"no state with two kinds within {DEPTH} steps",
                       states=n)
    return Outcome(PROVED, f"witness {len(witness)} steps from boot",
                   _program(witness, "contents of two kinds, invariant holds"), states=n)


def _free_page_keeps_content(orig: Any) -> Any:
    def twin(mw: MemWork, pfn: int, cpu: int = 0) -> None:
        p = mw.pages[pfn]  # the record stays: the block is free, its content still "there"
        free_block(mw.w, pfn, p.order, cpu)
    return twin


TWIN = Twin(("ALLOC-INV-050",), "spec.vmscan:free_page", _free_page_keeps_content,
            "free_page frees the block but keeps its content record")


def twin() -> Outcome:
    """Broken twin of ALLOC-INV-050's subject: ``free_page`` frees the block but keeps the
    content record. The exploration must reach a state the invariant rejects."""
    with installed(TWIN):
        n, bad, _ = _search(first_only=True)
    if not bad:
        return Outcome(PROVED, f"{TWIN.doc}: {n} states, never caught", states=n)
    path, v = bad[0]
    return Outcome(COUNTEREXAMPLE, v[0], _program(path, v[0]), states=n)


add("alloc.slowpath.holds.ALLOC-INV-050", ["ALLOC-INV-050"], holds, PROVED, ["bounded", "matrix"],
    holds.__doc__ or "")
add("alloc.slowpath.nonvacuity.ALLOC-INV-050", ["ALLOC-INV-050"], nonvacuity, PROVED,
    ["bounded", "nonvacuity"], nonvacuity.__doc__ or "")
add("alloc.slowpath.twin.ALLOC-INV-050", ["ALLOC-INV-050"], twin, COUNTEREXAMPLE,
    ["bounded", "twin"], twin.__doc__ or "")
