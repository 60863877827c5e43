"""NUMA-balancing tiering mode (``kernel.numa_balancing=2``) and the promotion throttle it shares
with pghot: free-space bypass, 1-second rate-limit slots, the 60-second adaptive threshold.

The arithmetic rules are small pure functions over ints or Z3 bit-vectors (``spec.tier_common``
helpers only). ``pghot`` calls the same functions from kmigrated (v2 onwards "moved from NUMA
Balancing mode 2").
"""

from __future__ import annotations

from typing import Any

from spec.rules import rule
from spec.tier_common import (
    MSEC_PER_SEC,
    NUMA_NO_NODE,
    ite,
    jiffies_to_msecs,
    mask,
    udiv,
    uge,
    ugt,
    ult,
    umax,
    umin,
    usub,
)
from spec.tier_state import TierWork

NUMA_MIGRATION_ADJUST_STEPS = 16


@rule("TIER-POL-020", "Free-space bypass of the hot threshold",
      "kernel/sched/fair.c:pgdat_free_space_enough @ v6.18")
def free_space_enough(free: Any, promo_wmark: Any, enough_wmark: Any) -> Any:
    """
    When the target node has more than ``promo_wmark + enough_wmark`` free pages, with
    ``enough_wmark = max(1 GiB of pages, node_present_pages >> 4)``, every recently accessed
    slow page is promoted without the hot threshold or the rate limit, and the adaptive
    threshold is reset to its default (``nbp_threshold = 0``). pghot's kmigrated counts such
    promotions in PGPROMOTE_CANDIDATE_NRL ("not rate limited").
    """
    return ugt(free, promo_wmark + enough_wmark)


@rule("TIER-POL-021", "Promotion rate limit in one-second slots",
      "kernel/sched/fair.c:numa_promotion_rate_limit @ v6.18")
def rate_limit_slot(now_ms: Any, start: Any, nr_cand: Any, slot_base: Any,
                    rate_limit: Any) -> tuple[Any, Any, Any]:
    """
    Every candidate first adds its pages to PGPROMOTE_CANDIDATE (``nr_cand`` is the counter
    after that). When more than 1000 ms (unsigned 32-bit difference) have passed since the
    slot start, a new slot starts now and its base is the current ``nr_cand``. The candidate
    is throttled when ``nr_cand - base >= rate_limit`` (rate_limit in pages per second,
    ``MB << (20 - PAGE_SHIFT)``). Hence at most ``rate_limit`` base pages are promoted per
    slot, the first of them being the one that opened the slot. Returns
    ``(throttled, start', base')``.
    """
    new_slot = ugt(usub(now_ms, start, 32), MSEC_PER_SEC)
    start2 = ite(new_slot, now_ms, start)
    base2 = ite(new_slot, nr_cand, slot_base)
    return uge(usub(nr_cand, base2, 64), rate_limit), start2, base2


@rule("TIER-POL-022", "Adaptive hot threshold",
      "kernel/sched/fair.c:numa_promotion_adjust_threshold @ v6.18")
def adjust_threshold(th_cur: Any, ref_th: Any, diff_cand: Any, ref_cand: Any) -> Any:
    """
    Once per period (``scan_period_max``, 60 s, for NUMA balancing; 60000 ms in pghot) the
    threshold moves by ``unit = ref_th * 2 / 16``: down (not below ``unit``) when the period's
    candidates exceed 110 % of ``ref_cand = rate_limit * period / 1000``; up (not above
    ``2 * ref_th``) when they are below 90 %. ``th_cur == 0`` means the default ``ref_th``.
    """
    unit = udiv(ref_th * 2, NUMA_MIGRATION_ADJUST_STEPS)
    th = ite(th_cur == 0, ref_th, th_cur)
    hi = ugt(diff_cand, udiv(ref_cand * 11, 10))
    lo = ult(diff_cand, udiv(ref_cand * 9, 10))
    # th - unit is unsigned int arithmetic in C: it wraps if th < unit (after a sysctl change).
    down = umax(usub(th, unit, 32), unit)
    up = umin(th + unit, ref_th * 2)
    return ite(hi, down, ite(lo, up, th))


@rule("TIER-POL-023", "Hint-fault latency",
      "kernel/sched/fair.c:numa_hint_fault_latency @ v6.18")
def hint_fault_latency(now_ms: Any, last_time: Any, bits: int) -> Any:
    """
    In tiering mode the scanner stamps each slow-tier folio it makes PROT_NONE with the scan
    time in ms, stored in the folio's cpupid bits (PAGE_ACCESS_TIME_MASK: 21 bits on x86-64
    with NR_CPUS_BITS = 13). The fault computes ``(now_ms - last_time) & mask`` and stores
    ``now_ms``; the page is hot iff the latency is below the threshold (default
    ``hot_threshold_ms`` = 1000).
    """
    return usub(now_ms, last_time, bits)


def promotion_throttle(w: TierWork, dst: int, now: int, ref_th: int, period_ms: int,
                       latency_ms: int) -> tuple[bool, str]:
    """The common tail of should_numa_migrate_memory and kmigrated_should_migrate_memory.

    Returns (promote, reason); reason is ``nrl`` (bypass), ``cold`` (latency >= threshold),
    ``throttled`` or ``ok``. Updates the node's counters and slots.
    """
    cfg = w.config
    p = w.pgdat[dst]
    now_ms = jiffies_to_msecs(now, cfg.hz) & mask(32)
    free = cfg.nodes[dst].capacity - w.used(dst)
    if free_space_enough(free, cfg.nodes[dst].high_wmark, cfg.enough_wmark(dst)):
        p["nbp_threshold"] = 0
        p["pgpromote_candidate_nrl"] += 1
        return True, "nrl"
    rate_limit = cfg.rate_limit_pages
    if ugt(usub(now_ms, p["nbp_th_start"], 32), period_ms):
        p["nbp_th_start"] = now_ms
        ref_cand = rate_limit * period_ms // MSEC_PER_SEC
        diff = usub(p["pgpromote_candidate"], p["nbp_th_nr_cand"], 64)
        p["nbp_threshold"] = adjust_threshold(p["nbp_threshold"], ref_th, diff, ref_cand)
        p["nbp_th_nr_cand"] = p["pgpromote_candidate"]
    th = p["nbp_threshold"] or ref_th
    if latency_ms is None or latency_ms >= th:
        return False, "cold"
    p["pgpromote_candidate"] += 1
    old_start = p["nbp_rl_start"]
    throttled, p["nbp_rl_start"], p["nbp_rl_nr_cand"] = rate_limit_slot(
        now_ms, p["nbp_rl_start"], p["pgpromote_candidate"], p["nbp_rl_nr_cand"], rate_limit)
    if p["nbp_rl_start"] != old_start:
        p["slot_promoted"] = 0
    if throttled:
        return False, "throttled"
    return True, "ok"


@rule("TIER-POL-024", "Promotion needs a balanced target node",
      "mm/migrate.c:migrate_misplaced_folio_prepare (migrate_balanced_pgdat) @ v6.18")
def migrate_balanced(free: Any, high_wmark: Any, nr_pages: Any) -> Any:
    """
    A misplaced folio is migrated only if the target node stays above its high watermark
    after taking it: ``free > high_wmark + nr_pages`` (zone_watermark_ok at order 0). A
    promotion that fails this test leaves the page where it is (the kernel then wakes kswapd
    on the target to demote, when demotion is enabled).
    """
    return ugt(free, high_wmark + nr_pages)


def migrate_misplaced(w: TierWork, page: int, target: int) -> bool:
    """Move ``page`` to ``target`` if TIER-POL-024 allows; count PGPROMOTE_SUCCESS."""
    node = w.config.nodes[target]
    if not migrate_balanced(node.capacity - w.used(target), node.high_wmark, 1):
        w.count("pgmigrate_fail")
        return False
    w.node_of[page] = target
    w.pgdat[target]["pgpromote_success"] += 1
    w.count("pgpromote_success")
    return True


@rule("TIER-OP-021", "NUMA-balancing scan in tiering mode",
      "mm/mprotect.c:change_pte_range (prot_numa) @ v6.18", variants=("numab2",))
def numa_scan(w: TierWork, pages: list[int], now: int) -> None:
    """
    task_numa_work makes up to scan_size (256 MB) of the task's pages PROT_NONE per scan
    period (1 s .. 60 s). In tiering mode pages on top-tier nodes are skipped, and each
    slow-tier folio made PROT_NONE is stamped with the scan time in ms
    (folio_xchg_access_time), masked to PAGE_ACCESS_TIME_MASK.
    """
    cfg = w.config
    now_ms = jiffies_to_msecs(now, cfg.hz)
    for page in pages:
        w.check_page(page)
        if cfg.toptier(w.node_of[page]):
            continue
        w.prot_none.add(page)
        w.access_time[page] = now_ms & mask(cfg.access_time_bits)
        w.count("numa_pte_updates")


@rule("TIER-OP-020", "NUMA hint fault on a slow-tier page (tiering mode)",
      "kernel/sched/fair.c:should_numa_migrate_memory; mm/memory.c:do_numa_page @ v6.18",
      variants=("numab2",))
def numab2_hint_fault(w: TierWork, page: int, nid: int, now: int) -> tuple[int, str] | None:
    """
    An access to a PROT_NONE page faults once (the fault restores the PTE). For a slow-tier
    page the target is the faulting CPU's node ``nid``; TIER-POL-020 promotes at once and
    resets the threshold; otherwise TIER-POL-022 adapts the threshold (period
    scan_period_max), the latency TIER-POL-023 (which stores the fault time) must be below it,
    and TIER-POL-021 must not throttle; then TIER-POL-024 must hold. The migration happens in
    the faulting task. Returns ``(target, reason)`` when promoted, None otherwise.
    """
    cfg = w.config
    w.check_page(page)
    w.check_nid(nid)
    if page not in w.prot_none:
        return None
    w.prot_none.discard(page)
    w.count("numa_hint_faults")
    if cfg.toptier(w.node_of[page]) or nid == NUMA_NO_NODE or nid == w.node_of[page]:
        return None
    now_ms = jiffies_to_msecs(now, cfg.hz)
    p = w.pgdat[nid]
    free = cfg.nodes[nid].capacity - w.used(nid)
    latency: int | None = None
    if not free_space_enough(free, cfg.nodes[nid].high_wmark, cfg.enough_wmark(nid)):
        last = w.access_time.get(page, 0)
        w.access_time[page] = now_ms & mask(cfg.access_time_bits)
        latency = hint_fault_latency(now_ms, last, cfg.access_time_bits)
        # promotion_throttle repeats the bypass test (false here) before the threshold.
    ok, why = promotion_throttle(w, nid, now, cfg.hot_threshold_ms, cfg.scan_period_max_ms,
                                 latency if latency is not None else 0)
    if not ok or not migrate_misplaced(w, page, nid):
        return None
    if why == "ok":
        p["slot_promoted"] += 1
    return nid, why
