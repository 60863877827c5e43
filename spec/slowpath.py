"""``__alloc_pages_slowpath`` as the kernel orders it, one kernel-named step at a time.

The slow path is a small state machine: a :class:`Frame` holds its locals (``alloc_flags``,
``no_progress_loops``, ``compaction_retries``, ``compact_priority``, ``compact_result``, ...)
and the label of the next step; :func:`slowpath_step` executes one step on a
:class:`~spec.vmscan.MemWork`. :func:`alloc_pages_full` runs the fast path and then steps
until the frame is done. The explorer walks the same steps.

The caller is an ordinary task: not PF_MEMALLOC, not an OOM victim, in no cpuset, on one
node, so the cpuset/zonelist-race restarts never fire. ``__alloc_pages_may_oom`` is modelled
up to its last allocation attempt; invoking the OOM killer is the *result* ``oom`` (the kill
itself is not modelled). ``no_progress_loops`` saturates at MAX_RECLAIM_RETRIES + 1, the only
value the kernel ever compares it with, so the state space is finite and a slow path that
does not terminate shows as a cycle.
"""

from __future__ import annotations

import attrs

from spec.compaction import (
    COMPACT_DEFERRED,
    COMPACT_SKIPPED,
    COMPACT_SUCCESS,
    DEF_COMPACT_PRIORITY,
    INIT_COMPACT_PRIORITY,
    MIN_COMPACT_COSTLY_PRIORITY,
    MIN_COMPACT_PRIORITY,
    compaction_suitable,
    try_to_compact_pages,
)
from spec.constants import (
    __GFP_DIRECT_RECLAIM,
    __GFP_IO,
    __GFP_KSWAPD_RECLAIM,
    __GFP_MEMALLOC,
    __GFP_NOFAIL,
    __GFP_NOMEMALLOC,
    __GFP_NORETRY,
    __GFP_RETRY_MAYFAIL,
    __GFP_THISNODE,
    ALLOC_CMA,
    ALLOC_CPUSET,
    ALLOC_KSWAPD,
    ALLOC_MIN_RESERVE,
    ALLOC_NO_WATERMARKS,
    ALLOC_NOFRAGMENT,
    ALLOC_WMARK_HIGH,
    ALLOC_WMARK_LOW,
    MIGRATE_MOVABLE,
    PAGE_ALLOC_COSTLY_ORDER,
    SWAP_CLUSTER_MAX,
    WMARK_MIN,
    alloc_flags_nofragment,
    gfp_migratetype,
    gfp_to_alloc_flags,
)
from spec.fallback import unreserve_highatomic_pageblock
from spec.page_alloc import get_page_from_freelist_work
from spec.rules import alloc_base_variant, rule
from spec.vmscan import (
    MAX_RECLAIM_RETRIES,
    Memory,
    MemWork,
    Page,
    drain_all_pages,
    shrink_node,
    wake_all_kswapds,
    zone_reclaimable_pages,
)
from spec.watermark import zone_watermark_ok
from spec.zone import SpecError

MAX_COMPACT_RETRIES = 16

# Step labels: the kernel function or statement each step models.
FAST = "get_page_from_freelist(fast path)"
RESTART = "restart"
EARLY_COMPACT = "__alloc_pages_direct_compact(INIT_COMPACT_PRIORITY)"
RETRY = "retry"
DIRECT_RECLAIM = "__alloc_pages_direct_reclaim"
DIRECT_COMPACT = "__alloc_pages_direct_compact"
GIVE_UP_CHECKS = "__GFP_NORETRY/costly checks"
SHOULD_RECLAIM_RETRY = "should_reclaim_retry"
SHOULD_COMPACT_RETRY = "should_compact_retry"
DEFRAG_FALLBACK = "defrag_mode fallback"
MAY_OOM = "__alloc_pages_may_oom"
NOPAGE = "nopage"
DONE = "done"

OUTCOME_PAGE = "page"
OUTCOME_NOPAGE = "nopage"
OUTCOME_OOM = "oom"


@attrs.frozen
class Frame:
    """The slow path's locals and the next step."""

    gfp: int
    order: int
    cpu: int = 0
    pc: str = FAST
    alloc_flags: int = 0
    no_progress_loops: int = 0
    compaction_retries: int = 0
    compact_priority: int = DEF_COMPACT_PRIORITY
    compact_result: str = COMPACT_SKIPPED
    did_some_progress: bool = False
    outcome: str = ""
    page: int | None = None

    @property
    def done(self) -> bool:
        return self.pc == DONE


def _flags_str(flags: int) -> str:
    from spec.constants import format_alloc_flags
    return format_alloc_flags(flags)


def gfp_compaction_allowed(gfp: int) -> bool:
    """Compaction needs __GFP_IO (it may wait on writeback)."""
    return bool(gfp & __GFP_IO)


def _gpff(mw: MemWork, f: Frame, flags: int) -> int | None:
    page = get_page_from_freelist_work(mw.w, f.gfp, f.order, flags, f.cpu)
    if page is not None:
        mw.stats["pgalloc"] += 1 << f.order
    return page


def _got(f: Frame, page: int) -> Frame:
    return attrs.evolve(f, pc=DONE, outcome=OUTCOME_PAGE, page=page)


def _nopage(f: Frame) -> Frame:
    return attrs.evolve(f, pc=NOPAGE)


@rule("ALLOC-POL-055", "should_reclaim_retry",
      "mm/page_alloc.c:should_reclaim_retry @ v6.18")
def should_reclaim_retry(mw: MemWork, f: Frame, alloc_flags: int) -> tuple[bool, int]:
    """
    Progress of a non-costly request resets ``no_progress_loops``; otherwise it grows. Past
    MAX_RECLAIM_RETRIES (16) no-progress loops, give up. Else retry if the zone would pass
    ``__zone_watermark_ok`` at the request's order against the **min** watermark with
    ``alloc_flags`` when every reclaimable page were free (free + reclaimable; 6.18 no longer
    double-counts free pages there). On giving up, ``unreserve_highatomic_pageblock(force)``
    decides: converting a reserved block means one more try. Returns (retry, loops).
    """
    loops = f.no_progress_loops
    if f.did_some_progress and f.order <= PAGE_ALLOC_COSTLY_ORDER:
        loops = 0
    else:
        loops = min(loops + 1, MAX_RECLAIM_RETRIES + 1)
    ret = False
    if loops <= MAX_RECLAIM_RETRIES:
        w = mw.w
        available = zone_reclaimable_pages(mw) + w.nr_free_pages
        ret = zone_watermark_ok(w, f.order, w.wmark_pages(WMARK_MIN), alloc_flags, available)
    if not ret:
        ret = unreserve_highatomic_pageblock(mw.w, _ac_migratetype(mw, f.gfp), True)
    return ret, loops


def _ac_migratetype(mw: MemWork, gfp: int) -> int:
    """``ac->migratetype``: UNMOVABLE for everything when mobility grouping is off."""
    return gfp_migratetype(gfp, mw.w.config.page_group_by_mobility_disabled)


@rule("ALLOC-POL-056", "should_compact_retry",
      "mm/page_alloc.c:should_compact_retry @ v6.18")
def should_compact_retry(mw: MemWork, f: Frame, alloc_flags: int) -> tuple[bool, int, int]:
    """
    Order 0 never retries for compaction. COMPACT_SKIPPED retries iff compaction would be
    suitable (at the min watermark) with every reclaimable page free. COMPACT_SUCCESS (the
    allocation lost a race) retries up to MAX_COMPACT_RETRIES (16) times, a quarter of that
    for costly orders. Otherwise the priority is raised (numerically lowered) down to
    MIN_COMPACT_PRIORITY (MIN_COMPACT_COSTLY_PRIORITY for costly orders), each time
    resetting the retry count; at the minimum, give up. Returns (retry, retries, priority).
    """
    retries, prio = f.compaction_retries, f.compact_priority
    if not f.order:
        return False, retries, prio
    if f.compact_result == COMPACT_SKIPPED:
        w = mw.w
        available = zone_reclaimable_pages(mw) + w.nr_free_pages
        return (compaction_suitable(w, f.order, w.wmark_pages(WMARK_MIN), available),
                retries, prio)
    if f.compact_result == COMPACT_SUCCESS:
        max_retries = MAX_COMPACT_RETRIES
        if f.order > PAGE_ALLOC_COSTLY_ORDER:
            max_retries //= 4
        if retries + 1 <= max_retries:
            return True, retries + 1, prio
        retries += 1
    min_priority = (MIN_COMPACT_COSTLY_PRIORITY if f.order > PAGE_ALLOC_COSTLY_ORDER
                    else MIN_COMPACT_PRIORITY)
    if prio > min_priority:
        return True, 0, prio - 1
    return False, retries, prio


@rule("ALLOC-OP-056", "Direct reclaim and the attempt after it",
      "mm/page_alloc.c:__alloc_pages_direct_reclaim,__perform_reclaim @ v6.18")
def alloc_pages_direct_reclaim(mw: MemWork, f: Frame, alloc_flags: int
                               ) -> tuple[int | None, bool]:
    """
    Count an ``allocstall``, reclaim SWAP_CLUSTER_MAX pages (ALLOC-OP-050), and try the
    freelists. If that fails and nothing was drained yet: give back a highatomic block
    (``unreserve_highatomic_pageblock``, not forced), drain every CPU's per-CPU lists, and
    try once more. Progress is whether reclaim freed anything.
    """
    mw.stats["allocstall"] += 1
    progress = shrink_node(mw, SWAP_CLUSTER_MAX, kswapd=False) > 0
    page = _gpff(mw, f, alloc_flags)
    if page is None:
        unreserve_highatomic_pageblock(mw.w, _ac_migratetype(mw, f.gfp), False)
        drain_all_pages(mw.w)
        page = _gpff(mw, f, alloc_flags)
    return page, progress


def _direct_compact(mw: MemWork, f: Frame, alloc_flags: int, prio: int
                    ) -> tuple[int | None, str]:
    """``__alloc_pages_direct_compact``: compact, take the captured block or try again."""
    if not f.order:
        return None, COMPACT_SKIPPED
    mt = _ac_migratetype(mw, f.gfp)
    result, captured = try_to_compact_pages(mw, f.order, mt, alloc_flags, prio)
    if result in (COMPACT_SKIPPED,):
        return None, result
    page = captured
    if page is not None:
        mw.stats["pgalloc"] += 1 << f.order
    else:
        page = _gpff(mw, f, alloc_flags)
    mw.stats["compact_success" if page is not None else "compact_fail"] += 1
    return page, result


def _reserve_flags(gfp: int) -> int:
    """``__gfp_pfmemalloc_flags`` for an ordinary task: only __GFP_MEMALLOC escalates."""
    if gfp & __GFP_NOMEMALLOC:
        return 0
    if gfp & __GFP_MEMALLOC:
        return ALLOC_NO_WATERMARKS
    return 0


@rule("ALLOC-OP-057", "__alloc_pages_slowpath, step by step",
      "mm/page_alloc.c:__alloc_pages_slowpath @ v6.18")
def slowpath_step(mw: MemWork, f: Frame) -> Frame:
    """
    One step of the slow path, in the kernel's order.
    ``restart``: reset the counters, ``alloc_flags = gfp_to_alloc_flags`` (ALLOC-POL-006; with
    defrag_mode it carries ALLOC_NOFRAGMENT), wake kswapd (ALLOC-OP-051) with ALLOC_KSWAPD,
    try the freelists; a request that may reclaim and compact, costly or non-movable of order
    > 0, first tries async direct compaction; a costly __GFP_NORETRY request then gives up if
    compaction was skipped or deferred or it is __GFP_THISNODE, else keeps async priority.
    ``retry``: wake kswapd again, apply reserve flags (__GFP_MEMALLOC), try the freelists.
    Without __GFP_DIRECT_RECLAIM: ``nopage`` -- except in the atomic-fix variant, where a
    defrag_mode request still holding ALLOC_NOFRAGMENT that may wake kswapd drops the flag
    and retries. Then direct reclaim (ALLOC-OP-056), direct compaction at the current
    priority (ALLOC-OP-054), then __GFP_NORETRY and costly orders without
    __GFP_RETRY_MAYFAIL give up; ``should_reclaim_retry`` (ALLOC-POL-055) and, after reclaim
    progress, ``should_compact_retry`` (ALLOC-POL-056) loop back to ``retry``. Then the
    defrag_mode fallback: if ALLOC_NOFRAGMENT is still set, clear it and retry (taken once);
    the first posting instead did ``alloc_flags &= ALLOC_NOFRAGMENT`` and retried whenever
    defrag_mode was on. Then ``__alloc_pages_may_oom``: one last attempt at the high
    watermark with ALLOC_CPUSET only; costly orders, __GFP_RETRY_MAYFAIL and __GFP_THISNODE
    fail (``nopage``) instead of invoking the OOM killer, anything else ends with the result
    ``oom`` (for a request without __GFP_FS ``out_of_memory`` kills nothing and the kernel
    retries; the model ends there too). ``nopage``: a __GFP_NOFAIL request that can reclaim
    tries with ALLOC_MIN_RESERVE and retries; everything else fails.
    """
    cfg = mw.w.config
    gfp, order = f.gfp, f.order
    can_direct_reclaim = bool(gfp & __GFP_DIRECT_RECLAIM)
    can_compact = gfp_compaction_allowed(gfp)
    costly_order = order > PAGE_ALLOC_COSTLY_ORDER
    mt = gfp_migratetype(gfp, cfg.page_group_by_mobility_disabled)
    pc = f.pc
    if pc == FAST:
        if order > cfg.max_page_order:
            return attrs.evolve(f, pc=DONE, outcome=OUTCOME_NOPAGE)
        flags = ALLOC_WMARK_LOW | alloc_flags_nofragment(gfp, cfg.defrag_mode,
                                                         cfg.zone_is_normal_with_dma32)
        if mt == MIGRATE_MOVABLE:
            flags |= ALLOC_CMA
        page = _gpff(mw, f, flags)
        return _got(f, page) if page is not None else attrs.evolve(f, pc=RESTART)
    if pc == RESTART:
        flags = gfp_to_alloc_flags(gfp, order, cfg.defrag_mode, alloc_base_variant(cfg.variant))
        f = attrs.evolve(f, alloc_flags=flags, no_progress_loops=0, compaction_retries=0,
                         compact_result=COMPACT_SKIPPED, compact_priority=DEF_COMPACT_PRIORITY,
                         did_some_progress=False)
        if flags & ALLOC_KSWAPD:
            wake_all_kswapds(mw, order, gfp)
        page = _gpff(mw, f, flags)
        if page is not None:
            return _got(f, page)
        if (can_direct_reclaim and can_compact and (costly_order or (order > 0 and mt !=
                                                                     MIGRATE_MOVABLE))
                and not _reserve_flags(gfp)):
            return attrs.evolve(f, pc=EARLY_COMPACT)
        return attrs.evolve(f, pc=RETRY)
    if pc == EARLY_COMPACT:
        page, result = _direct_compact(mw, f, f.alloc_flags, INIT_COMPACT_PRIORITY)
        f = attrs.evolve(f, compact_result=result)
        if page is not None:
            return _got(f, page)
        if costly_order and gfp & __GFP_NORETRY:
            if result in (COMPACT_SKIPPED, COMPACT_DEFERRED) or gfp & __GFP_THISNODE:
                return _nopage(f)
            f = attrs.evolve(f, compact_priority=INIT_COMPACT_PRIORITY)
        return attrs.evolve(f, pc=RETRY)
    if pc == RETRY:
        flags = f.alloc_flags
        if flags & ALLOC_KSWAPD:
            wake_all_kswapds(mw, order, gfp)
        reserve = _reserve_flags(gfp)
        if reserve:
            flags = reserve | (ALLOC_CMA if mt == MIGRATE_MOVABLE else 0) | (flags & ALLOC_KSWAPD)
        f = attrs.evolve(f, alloc_flags=flags)
        page = _gpff(mw, f, flags)
        if page is not None:
            return _got(f, page)
        if not can_direct_reclaim:
            if (mw.has("atomic_fix") and cfg.defrag_mode and flags & ALLOC_NOFRAGMENT
                    and gfp & __GFP_KSWAPD_RECLAIM):
                return attrs.evolve(f, alloc_flags=flags & ~ALLOC_NOFRAGMENT, pc=RETRY)
            return _nopage(f)
        return attrs.evolve(f, pc=DIRECT_RECLAIM)
    if pc == DIRECT_RECLAIM:
        page, progress = alloc_pages_direct_reclaim(mw, f, f.alloc_flags)
        f = attrs.evolve(f, did_some_progress=progress)
        return _got(f, page) if page is not None else attrs.evolve(f, pc=DIRECT_COMPACT)
    if pc == DIRECT_COMPACT:
        page, result = _direct_compact(mw, f, f.alloc_flags, f.compact_priority)
        f = attrs.evolve(f, compact_result=result)
        return _got(f, page) if page is not None else attrs.evolve(f, pc=GIVE_UP_CHECKS)
    if pc == GIVE_UP_CHECKS:
        if gfp & __GFP_NORETRY:
            return _nopage(f)
        if costly_order and (not can_compact or not gfp & __GFP_RETRY_MAYFAIL):
            return _nopage(f)
        return attrs.evolve(f, pc=SHOULD_RECLAIM_RETRY)
    if pc == SHOULD_RECLAIM_RETRY:
        retry, loops = should_reclaim_retry(mw, f, f.alloc_flags)
        f = attrs.evolve(f, no_progress_loops=loops)
        if retry:
            return attrs.evolve(f, pc=RETRY)
        return attrs.evolve(f, pc=SHOULD_COMPACT_RETRY)
    if pc == SHOULD_COMPACT_RETRY:
        if f.did_some_progress and can_compact:
            retry, retries, prio = should_compact_retry(mw, f, f.alloc_flags)
            f = attrs.evolve(f, compaction_retries=retries, compact_priority=prio)
            if retry:
                return attrs.evolve(f, pc=RETRY)
        return attrs.evolve(f, pc=DEFRAG_FALLBACK)
    if pc == DEFRAG_FALLBACK:
        if cfg.defrag_mode:
            if mw.has("defrag_retry_unchecked"):
                return attrs.evolve(f, alloc_flags=f.alloc_flags & ALLOC_NOFRAGMENT, pc=RETRY)
            if f.alloc_flags & ALLOC_NOFRAGMENT:
                return attrs.evolve(f, alloc_flags=f.alloc_flags & ~ALLOC_NOFRAGMENT, pc=RETRY)
        return attrs.evolve(f, pc=MAY_OOM)
    if pc == MAY_OOM:
        page = get_page_from_freelist_work(mw.w, gfp & ~__GFP_DIRECT_RECLAIM, order,
                                           ALLOC_WMARK_HIGH | ALLOC_CPUSET, f.cpu)
        if page is not None:
            mw.stats["pgalloc"] += 1 << order
            return _got(f, page)
        if (costly_order or gfp & (__GFP_RETRY_MAYFAIL | __GFP_THISNODE)) and \
                not gfp & __GFP_NOFAIL:
            return _nopage(f)
        mw.stats["oom_kill"] += 1
        return attrs.evolve(f, pc=DONE, outcome=OUTCOME_OOM)
    if pc == NOPAGE:
        if gfp & __GFP_NOFAIL and can_direct_reclaim:
            page = _gpff(mw, f, ALLOC_MIN_RESERVE | ALLOC_CPUSET)
            if page is not None:
                return _got(f, page)
            return attrs.evolve(f, pc=RETRY)
        mw.stats["allocfail"] += 1
        return attrs.evolve(f, pc=DONE, outcome=OUTCOME_NOPAGE)
    raise SpecError(f"unknown slow-path step {pc!r}")


#: Steps after which a running slow path starts checking for a cycle.
_CYCLE_CHECK_AFTER = 400


class SlowpathLivelock(SpecError):
    """The slow path revisited a state: it would never return."""


def run_slowpath(mw: MemWork, f: Frame, max_steps: int = 100_000) -> Frame:
    """Step until done; raise :class:`SlowpathLivelock` on a cycle."""
    seen: set[tuple[Memory, Frame]] = set()
    steps = 0
    while not f.done:
        f = slowpath_step(mw, f)
        steps += 1
        if steps > _CYCLE_CHECK_AFTER and f.pc == RETRY:
            key = (mw.freeze(), f)
            if key in seen:
                raise SlowpathLivelock(f"slow path loops at step {f.pc!r} "
                                       f"(alloc_flags {_flags_str(f.alloc_flags)})")
            seen.add(key)
        if steps > max_steps:
            raise SlowpathLivelock(f"slow path still running after {max_steps} steps")
    return f


@attrs.frozen
class Step:
    """One executed slow-path step: where it ran and the frame it left."""

    pc: str
    after: Frame


@rule("ALLOC-PROP-050", "The slow path terminates",
      "mm/page_alloc.c:__alloc_pages_slowpath @ v6.18; fix 7a95a05f15d5")
def trace_slowpath(mw: MemWork, f: Frame, max_steps: int = 100_000
                   ) -> tuple[list[Step], int | None]:
    """
    For an ordinary task (no __GFP_NOFAIL), every call of the slow path returns -- a block,
    a failure, or the OOM result -- after finitely many steps, whatever the zone holds: each
    retry is bounded by ``no_progress_loops`` (MAX_RECLAIM_RETRIES), reclaim progress (finite),
    ``compaction_retries``/``compact_priority``, and the defrag_mode fallback is taken at most
    once per restart because it clears ALLOC_NOFRAGMENT. Runs the slow path from ``f`` and
    returns its steps, and the index of the first step of a cycle if the state (zone,
    contents, locals) at a ``retry`` repeats -- a proof that it never returns.
    """
    steps: list[Step] = []
    seen: dict[tuple[Memory, Frame], int] = {}
    while not f.done and len(steps) < max_steps:
        pc = f.pc
        f = slowpath_step(mw, f)
        steps.append(Step(pc, f))
        if f.pc == RETRY:
            key = (mw.freeze(), f)
            if key in seen:
                return steps, seen[key]
            seen[key] = len(steps)
    return steps, None


@rule("ALLOC-PROP-051", "An allocation that may wake kswapd does not fail while another "
      "migratetype's free memory would satisfy it",
      "mm/page_alloc.c:__alloc_pages_slowpath @ v6.18; fix 'fix defrag_mode for "
      "non-reclaimable allocations' (2026)")
def availability_violation(m: Memory, gfp: int, order: int, outcome: str,
                           cpu: int = 0) -> str | None:
    """
    If an allocation with __GFP_KSWAPD_RECLAIM fails (or ends in the OOM result), then in
    the state where it gave up, ``get_page_from_freelist`` with its slow-path flags minus
    ALLOC_NOFRAGMENT also fails: the allocator never fails a request that may wake kswapd
    solely because fragmentation avoidance forbade a fallback to free memory of another
    migratetype that passes the request's watermark. Requests that may not even wake kswapd
    (GFP_TRANSHUGE_LIGHT) are exempt: they are speculative. Returns a description of the
    violation, or None.
    """
    if outcome == OUTCOME_PAGE or not gfp & __GFP_KSWAPD_RECLAIM:
        return None
    cfg = m.zone.config
    flags = gfp_to_alloc_flags(gfp, order, cfg.defrag_mode, alloc_base_variant(cfg.variant))
    mw = MemWork(m)
    page = get_page_from_freelist_work(mw.w, gfp, order, flags & ~ALLOC_NOFRAGMENT, cpu)
    if page is None:
        return None
    from spec.constants import MIGRATETYPE_NAMES, format_gfp
    block = MIGRATETYPE_NAMES.get(m.zone.get_pfnblock_migratetype(page), "?")
    return (f"alloc_pages({format_gfp(gfp)}, order={order}) failed ({outcome}), yet "
            f"get_page_from_freelist without ALLOC_NOFRAGMENT returns pfn {page} "
            f"from a {block} pageblock")


def alloc_page(mw: MemWork, gfp: int, order: int, kind: str, cpu: int = 0) -> Frame:
    """Allocate a block for ``kind`` through the fast and slow paths; record its content."""
    f = run_slowpath(mw, Frame(gfp, order, cpu))
    if f.page is not None:
        mw.pages[f.page] = Page(f.page, order, kind, mw.clock)
    mw.clock += 1
    return f


@rule("ALLOC-OP-058", "alloc_pages with the slow path",
      "mm/page_alloc.c:__alloc_frozen_pages_noprof,__alloc_pages_slowpath @ v6.18")
def alloc_pages_full(m: Memory, gfp: int, order: int, kind: str,
                     cpu: int = 0) -> tuple[Memory, Frame]:
    """
    The whole allocator: the fast path (ALLOC-OP-033's first attempt), then the slow path
    (ALLOC-OP-057) until it returns a block (recorded with ``kind`` and the current clock
    as its age), fails, or ends in the OOM result. The clock advances by one.
    """
    mw = MemWork(m)
    f = alloc_page(mw, gfp, order, kind, cpu)
    return mw.freeze(), f


__all__ = ["Step", "trace_slowpath", "availability_violation", "Frame", "slowpath_step",
           "run_slowpath", "alloc_pages_full", "alloc_page", "should_reclaim_retry",
           "should_compact_retry", "SlowpathLivelock", "OUTCOME_PAGE", "OUTCOME_NOPAGE",
           "OUTCOME_OOM", "ALLOC_CPUSET"]
