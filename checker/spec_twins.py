"""Broken twins of the spec's own rules: negative evidence that each rule is pinned down.

For a rule stated by a spec function, its twin is a plausible wrong version of that function
(a flipped head/tail, a skipped step, an inverted test, an off-by-one). ``catch(rule_id)``
puts the twin in place of the function in every ``spec`` and ``checker`` module that holds
it, runs the checker (the seeded lockstep workload of ``mmspec verify`` against the
independent compiled reference, with every state invariant after every step, then the
lockstep fuzzer), and reports what caught it. A twin that nothing catches means the rule's
statement is not constrained by any check: the tests require every twin to be caught.

The twins never touch ``reference``: the reference keeps the correct behaviour, so a
difference is the rule's own.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import attrs

import spec.constants as C

Factory = Callable[[Callable[..., Any]], Callable[..., Any]]


@attrs.frozen
class Twin:
    """A broken twin of a spec function. Other areas build their own ``TWINS`` registries
    with this class and pass their checker as ``check``: a function of ``fuzz_seconds`` that
    runs the area's checks with the twin installed and returns what caught it (a short
    text) or None. Without ``check``, the ALLOC checks run."""

    rules: tuple[str, ...]
    target: str  #: "module:function"
    make: Factory = attrs.field(repr=False)
    #: What the twin does wrong, in one line.
    doc: str
    check: Callable[[float], str | None] | None = attrs.field(default=None, repr=False)


def _noop(value: Any) -> Factory:
    return lambda orig: (lambda *a, **k: value)


def _negate(orig: Callable[..., Any]) -> Callable[..., Any]:
    return lambda *a, **k: not orig(*a, **k)


def _result(f: Callable[[Any], Any]) -> Factory:
    return lambda orig: (lambda *a, **k: f(orig(*a, **k)))


def _arg(index: int, name: str, f: Callable[[Any], Any]) -> Factory:
    """Change one argument, passed by position ``index`` or by keyword ``name``."""
    def make(orig: Callable[..., Any]) -> Callable[..., Any]:
        def twin(*a: Any, **k: Any) -> Any:
            if name in k:
                k[name] = f(k[name])
            else:
                a = a[:index] + (f(a[index]),) + a[index + 1:]
            return orig(*a, **k)
        return twin
    return make


def _free_without_merging(orig: Callable[..., Any]) -> Callable[..., Any]:
    from spec import buddy

    def twin(w: Any, pfn: int, order: int, migratetype: int, fpi_flags: int = 0) -> None:
        buddy.account_freepages(w, 1 << order, migratetype)
        buddy.add_to_free_list(w, pfn, order, migratetype, False)
    return twin


def _split_backwards(orig: Callable[..., Any]) -> Callable[..., Any]:
    from spec import buddy

    def twin(w: Any, pfn: int, order: int, fpi_flags: int = 0) -> None:
        step = min(order, w.config.pageblock_order)
        for p in reversed(range(pfn, pfn + (1 << order), 1 << step)):
            buddy.free_one_page_locked(w, p, step, w.get_pfnblock_migratetype(p), fpi_flags)
    return twin


def _expand_loses_last_half(orig: Callable[..., Any]) -> Callable[..., Any]:
    # Head-or-tail of the split-off halves is the rule too, but a twin that only flips it
    # survives: when expand runs, this type's lists at orders low..high-1 are (almost always)
    # empty, because the smallest-fit search found nothing there. The off-by-one is caught.
    from spec import buddy

    def twin(w: Any, pfn: int, low: int, high: int, migratetype: int) -> int:
        size, added = 1 << high, 0
        while high > low + 1:
            high, size = high - 1, size >> 1
            buddy.add_to_free_list(w, pfn + size, high, migratetype, tail=False)
            added += size
        return added
    return twin


def _smallest_from_tail(orig: Callable[..., Any]) -> Callable[..., Any]:
    from spec import buddy

    def twin(w: Any, order: int, migratetype: int) -> int | None:
        for current_order in range(order, w.config.nr_page_orders):
            lst = w.free_area[current_order][migratetype]
            if lst:
                pfn = lst[-1]
                buddy.page_del_and_expand(w, pfn, order, current_order, migratetype)
                return int(pfn)
        return None
    return twin


def _move_keeps_block_type(orig: Callable[..., Any]) -> Callable[..., Any]:
    def twin(w: Any, pfn: int, old_mt: int, new_mt: int) -> Any:
        start = pfn & ~(w.config.pageblock_nr_pages - 1)
        before = w.get_pfnblock_migratetype(start)
        moved = orig(w, pfn, old_mt, new_mt)
        w.set_pageblock_migratetype(start, before)
        return moved
    return twin


def _drain_hot_end(orig: Callable[..., Any]) -> Callable[..., Any]:
    from spec import buddy

    def twin(w: Any, cpu: int, count: int, pindex: int) -> None:
        cfg, pcp = w.config, w.pcp[cpu]
        count = min(pcp.count, count)
        pindex -= 1
        while count > 0:
            while True:
                pindex = 0 if pindex + 1 > cfg.nr_pcp_lists - 1 else pindex + 1
                if pcp.lists[pindex]:
                    break
            lst, order = pcp.lists[pindex], cfg.pindex_to_order(pindex)
            while True:
                pfn = lst.pop(0)  # the head: the hottest page, not the coldest
                count -= 1 << order
                pcp.count -= 1 << order
                buddy.free_one_page_locked(w, pfn, order, w.get_pfnblock_migratetype(pfn))
                if not (count > 0 and lst):
                    break
    return twin


def _boot_types_wrong(orig: Callable[..., Any]) -> Callable[..., Any]:
    def twin(cfg: Any) -> Any:
        z = orig(cfg)
        types = (C.MIGRATE_UNMOVABLE,) + tuple(z.pageblock_migratetype[1:])
        return attrs.evolve(z, pageblock_migratetype=types)
    return twin


def _bypasses_pcp(orig: Callable[..., Any]) -> Callable[..., Any]:
    # A first twin, "ZONE_BOOSTED_WATERMARK is never cleared", is equivalent, not missed: a
    # claim sets the flag only for an ALLOC_KSWAPD request, and the same rmqueue() call
    # clears it (waking kswapd) before it returns, so between two operations of this
    # single-threaded model the flag is never set. Only a concurrent kswapd could see it.
    from spec import buddy, fallback
    from spec.zone import ZONE_BOOSTED_WATERMARK

    def twin(w: Any, cpu: int, order: int, alloc_flags: int, migratetype: int) -> Any:
        page = None
        if alloc_flags & C.ALLOC_HIGHATOMIC:
            page = buddy.rmqueue_smallest(w, order, C.MIGRATE_HIGHATOMIC)
        if page is None:
            page = fallback.rmqueue(w, order, migratetype, alloc_flags,
                                    [fallback.RMQUEUE_NORMAL])
            if page is None and alloc_flags & (C.ALLOC_OOM | C.ALLOC_NON_BLOCK):
                page = buddy.rmqueue_smallest(w, order, C.MIGRATE_HIGHATOMIC)
        if alloc_flags & C.ALLOC_KSWAPD and ZONE_BOOSTED_WATERMARK in w.flags:
            w.flags.discard(ZONE_BOOSTED_WATERMARK)
        return page
    return twin


def _fast_path_only(orig: Callable[..., Any]) -> Callable[..., Any]:
    from spec import page_alloc

    def twin(z: Any, gfp: int, order: int, cpu: int = 0) -> Any:
        cfg = z.config
        if not 0 <= order <= cfg.max_page_order:
            return z, None
        flags = C.ALLOC_WMARK_LOW | C.alloc_flags_nofragment(gfp, cfg.defrag_mode,
                                                             cfg.zone_is_normal_with_dma32)
        if C.gfp_migratetype(gfp, cfg.page_group_by_mobility_disabled) == C.MIGRATE_MOVABLE:
            flags |= C.ALLOC_CMA
        return page_alloc.get_page_from_freelist(z, gfp, order, flags, cpu)
    return twin


def _free_to_other_cpu(orig: Callable[..., Any]) -> Callable[..., Any]:
    def twin(z: Any, pfn: int, order: int, cpu: int = 0) -> Any:
        return orig(z, pfn, order, (cpu + 1) % z.config.nr_cpus)
    return twin


def _ignores_watermark_knobs(orig: Callable[..., Any]) -> Callable[..., Any]:
    def twin(z: Any, name: str, value: int) -> Any:
        if name in ("min_free_kbytes", "watermark_scale_factor"):
            return attrs.evolve(z, config=z.config.with_knob(name, value)), None
        return orig(z, name, value)
    return twin


def _claims_to_succeed(orig: Callable[..., Any]) -> Callable[..., Any]:
    return lambda z, pageblock: (z, True)


TWINS: dict[str, Twin] = {t.rules[0]: t for t in (
    Twin(("ALLOC-POL-005",), "spec.constants:gfp_migratetype",
         _result(lambda mt: C.MIGRATE_MOVABLE if mt == C.MIGRATE_UNMOVABLE else mt),
         "unmovable requests are grouped with movable ones"),
    Twin(("ALLOC-POL-006",), "spec.constants:gfp_to_alloc_flags",
         _result(lambda f: f | C.ALLOC_NO_WATERMARKS),
         "the slow path ignores watermarks for everybody"),
    Twin(("ALLOC-POL-007",), "spec.constants:alloc_flags_nofragment",
         _result(lambda f: f & ~C.ALLOC_NOFRAGMENT),
         "the fast path never asks for ALLOC_NOFRAGMENT"),
    Twin(("ALLOC-POL-010",), "spec.watermark:setup_per_zone_wmarks",
         _result(lambda t: (t[0], t[1], t[2] + 1, *t[3:])),
         "the high watermark is one page too high"),
    Twin(("ALLOC-POL-011",), "spec.watermark:pcp_batch_high",
         _result(lambda t: (t[0] + 1, *t[1:])),
         "the per-CPU batch is one larger"),
    Twin(("ALLOC-POL-012",), "spec.watermark:zone_watermark_unusable_free",
         _noop(0), "highatomic and CMA pages count as usable for everybody"),
    Twin(("ALLOC-POL-013",), "spec.watermark:reserve_adjusted_min",
         lambda orig: (lambda mark, *a, **k: mark), "no reserve reductions"),
    Twin(("ALLOC-POL-014",), "spec.watermark:zone_watermark_ok",
         _noop(True), "the slow watermark test always passes"),
    Twin(("ALLOC-POL-015",), "spec.watermark:zone_watermark_fast",
         _noop(True), "the fast watermark test always passes"),
    Twin(("ALLOC-POL-016",), "spec.watermark:boost_watermark",
         _noop(False), "fragmenting fallbacks never boost the watermark"),
    Twin(("ALLOC-POL-020",), "spec.buddy:find_buddy_pfn",
         lambda orig: (lambda pfn, order: pfn + (1 << order)),
         "the buddy is always the next block (wrong for odd blocks)"),
    Twin(("ALLOC-POL-030",), "spec.fallback:should_try_claim_block", _negate,
         "claim and steal swapped"),
    Twin(("ALLOC-POL-031",), "spec.fallback:claim_threshold_met", _negate,
         "the claim threshold inverted"),
    Twin(("ALLOC-POL-040",), "spec.pcp:nr_pcp_alloc", _result(lambda n: n + 1),
         "a refill takes one page more"),
    Twin(("ALLOC-POL-041",), "spec.pcp:nr_pcp_high", _result(lambda h: h + 1),
         "the effective high mark is one higher"),
    Twin(("ALLOC-POL-042",), "spec.pcp:nr_pcp_free", _result(lambda n: n + 1),
         "a drain frees one page more"),
    Twin(("ALLOC-OP-001",), "spec.buddy:add_to_free_list", _arg(4, "tail", lambda tail: not tail),
         "head and tail insertion swapped"),
    Twin(("ALLOC-OP-002",), "spec.buddy:free_one_page_locked", _free_without_merging,
         "a freed block never merges with its buddy"),
    Twin(("ALLOC-OP-003",), "spec.buddy:split_large_buddy", _split_backwards,
         "pageblock pieces freed from the last to the first"),
    Twin(("ALLOC-OP-004",), "spec.buddy:expand", _expand_loses_last_half,
         "the smallest split-off half is never put back (loop stops one order early)"),
    Twin(("ALLOC-OP-005",), "spec.buddy:rmqueue_smallest", _smallest_from_tail,
         "the smallest fit is taken from the tail"),
    Twin(("ALLOC-OP-006",), "spec.buddy:move_freepages_block", _move_keeps_block_type,
         "free pages move but the block keeps its type"),
    Twin(("ALLOC-OP-010",), "spec.fallback:try_to_claim_block", _noop(None),
         "a fallback never claims a block"),
    Twin(("ALLOC-OP-011",), "spec.fallback:rmqueue_claim", _noop(None),
         "__rmqueue_claim finds nothing"),
    Twin(("ALLOC-OP-012",), "spec.fallback:rmqueue_steal", _noop(None),
         "__rmqueue_steal finds nothing"),
    Twin(("ALLOC-OP-013",), "spec.fallback:rmqueue",
         _arg(3, "alloc_flags", lambda flags: flags | C.ALLOC_NOFRAGMENT),
         "__rmqueue never steals (as if ALLOC_NOFRAGMENT were always set)"),
    Twin(("ALLOC-OP-014",), "spec.fallback:reserve_highatomic_pageblock", _noop(None),
         "the highatomic reserve never grows"),
    Twin(("ALLOC-OP-015",), "spec.fallback:unreserve_highatomic_pageblock", _noop(False),
         "the highatomic reserve is never given back"),
    Twin(("ALLOC-OP-020",), "spec.pcp:rmqueue_bulk", _arg(2, "count", lambda n: max(0, n - 1)),
         "a refill asks for one page fewer"),
    Twin(("ALLOC-OP-021",), "spec.pcp:rmqueue_pcplist", _noop(None),
         "the per-CPU lists never serve an allocation"),
    Twin(("ALLOC-OP-022",), "spec.pcp:free_pcppages_bulk", _drain_hot_end,
         "a drain frees the hottest pages (list head) instead of the coldest"),
    Twin(("ALLOC-OP-023",), "spec.pcp:free_pcp_commit", _noop(None),
         "a page freed to a per-CPU list is lost"),
    Twin(("ALLOC-OP-024",), "spec.pcp:drain_pages_zone", _noop(None),
         "draining a CPU does nothing"),
    Twin(("ALLOC-OP-030",), "spec.page_alloc:init_zone", _boot_types_wrong,
         "the first pageblock boots UNMOVABLE with its free pages on MOVABLE lists"),
    Twin(("ALLOC-OP-031",), "spec.page_alloc:rmqueue_zone", _bypasses_pcp,
         "per-CPU orders go straight to the buddy, bypassing the per-CPU lists"),
    Twin(("ALLOC-OP-032",), "spec.page_alloc:get_page_from_freelist_work",
         _arg(3, "alloc_flags", lambda flags: flags | C.ALLOC_NO_WATERMARKS),
         "get_page_from_freelist ignores watermarks"),
    Twin(("ALLOC-OP-033",), "spec.page_alloc:alloc_pages", _fast_path_only,
         "no slow-path attempt after the fast path fails"),
    Twin(("ALLOC-OP-034",), "spec.page_alloc:free_pages", _free_to_other_cpu,
         "pages are freed to another CPU's list"),
    Twin(("ALLOC-OP-035",), "spec.page_alloc:set_knob", _ignores_watermark_knobs,
         "watermark knobs do not recompute the watermarks"),
    Twin(("ALLOC-OP-036",), "spec.page_alloc:isolate_pageblock", _claims_to_succeed,
         "isolation reports success without isolating"),
    Twin(("ALLOC-OP-037",), "spec.page_alloc:unisolate_pageblock", _claims_to_succeed,
         "un-isolation reports success without un-isolating"),
)}


@contextlib.contextmanager
def installed(twin: Twin) -> Iterator[None]:
    """The twin in place of its function in every loaded spec and checker module."""
    import importlib

    # Everything that binds spec names at import time must be imported before the patch:
    # a module first imported while the twin is in place would keep the twin for good.
    import checker.fuzz  # noqa: F401
    import checker.verify  # noqa: F401
    import reference  # noqa: F401

    module_name, attr = twin.target.split(":")
    orig = getattr(importlib.import_module(module_name), attr)
    broken = twin.make(orig)
    patched: list[tuple[Any, str]] = []
    for name, mod in list(sys.modules.items()):
        if mod is None or not (name == "spec" or name.startswith(("spec.", "checker."))):
            continue
        for key, value in list(vars(mod).items()):
            if value is orig:
                setattr(mod, key, broken)
                patched.append((mod, key))
    try:
        yield
    finally:
        for mod, key in patched:
            setattr(mod, key, orig)


#: The seeded runs: the default zone, a tiny one, and one big enough (1% of it is at least a
#: pageblock) for the highatomic reserve to exist at all.
#: (ZoneConfig arguments, steps): the big zone needs the steps to run low on memory, where
#: the slow path's ALLOC_HIGHATOMIC attempts happen.
CONFIGS: tuple[tuple[dict[str, Any], int], ...] = (
    ({}, 400),
    ({"nr_pageblocks": 4, "pageblock_order": 3, "max_page_order": 4, "min_free_kbytes": 16}, 400),
    ({"nr_pageblocks": 128, "pageblock_order": 3, "max_page_order": 5, "min_free_kbytes": 64},
     3000))


def baseline() -> list[dict[str, Any]]:
    """The same seeded runs without a twin: they must find nothing, or a catch means nothing."""
    from checker.verify import invariant_run
    from spec.zone import ZoneConfig

    out: list[dict[str, Any]] = []
    for kw, steps in CONFIGS:
        out += invariant_run(ZoneConfig(**kw), steps=steps, seed=0)["violations"]
    return out


class Hang(Exception):
    """A twin that makes the checker run without end (a loop that never terminates)."""


@contextlib.contextmanager
def _watchdog(seconds: float) -> Iterator[None]:
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def fire(signum: int, frame: Any) -> None:
        raise Hang(f"no result after {seconds:.0f} s")

    old = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def first_finding(checks: tuple[Callable[[], list[str]], ...],
                  fuzz: Callable[[float], str | None], fuzz_seconds: float) -> str | None:
    """An area's checker for its twins: the deterministic ``checks`` in order, then the
    fuzzer; the first finding wins. A twin that breaks the spec's own preconditions (an
    exception) counts as found; a hang is the watchdog's."""
    try:
        for check in checks:
            found = check()
            if found:
                return found[0]
    except Hang:
        raise
    except Exception as e:
        return f"exception: {type(e).__name__}: {e}"
    return fuzz(fuzz_seconds)


def catch(rule_id: str, fuzz_seconds: float = 20.0) -> dict[str, Any]:
    """Run the checker with the rule's twin installed; say what caught it, and how fast."""
    return catch_twin(TWINS[rule_id], fuzz_seconds)


def catch_twin(twin: Twin, fuzz_seconds: float = 20.0) -> dict[str, Any]:
    """``catch`` for a twin of any area's registry: its own ``check``, else the ALLOC one."""
    t = time.monotonic()
    try:
        with installed(twin), _watchdog(3 * fuzz_seconds + 120):
            by = (twin.check or _run_checks)(fuzz_seconds)
    except Hang as e:  # not a catch: the checker itself never answered
        return {"caught": False, "by": f"hang: {e}", "seconds": time.monotonic() - t}
    return {"caught": by is not None, "by": by or "", "seconds": time.monotonic() - t}


def _run_checks(fuzz_seconds: float) -> str | None:
    """What caught the installed twin, or None."""
    from checker.fuzz import run_fuzz
    from checker.verify import invariant_run
    from spec.zone import ZoneConfig

    for kw, steps in CONFIGS:
        try:
            run = invariant_run(ZoneConfig(**kw), steps=steps, seed=0)
        except Hang:
            raise
        except Exception as e:  # the twin broke the spec's own preconditions
            return f"exception: {type(e).__name__}: {e}"
        if run["violations"]:
            v = run["violations"][0]
            return f"{v['rule']} at step {v['step']}"
    result = run_fuzz("reference", seconds=fuzz_seconds, seed=0, shrink_seconds=2)
    if result.failure is not None:
        return f"lockstep fuzz: {result.failure}"
    return None
