"""A CXL hotness monitoring unit (CXL r3.2 CHMU) feeding promotion from its hot list.

The device counts accesses to its memory per unit (``2**chmu_unit_order`` pages) in a finite
set of counters of finite width, optionally counting only every ``2**downsample``-th access;
units at or above the threshold enter a hot list of finite capacity (epoch mode: at the end
of each epoch, counters cleared; always-on mode: when a counter crosses the threshold, its
counter freed). The host reads the hot list in aggregate. There is no in-kernel consumer yet
(Jonathan Cameron's RFCs are perf/sysfs drivers), so the consumer here is the model's:
every listed unit's lower-tier pages are promoted to pghot_target_nid (the device gives no
accessing node) through the same throttle as NUMA balancing (TIER-POL-020/021/024). Source:
Documentation/trace/cxl-hmu.rst in <20241121101845.1815660-1-Jonathan.Cameron@huawei.com>.
"""

from __future__ import annotations

from spec.numab import migrate_misplaced, promotion_throttle
from spec.rules import rule
from spec.tier_common import CHMU_DEVICE, mask
from spec.tier_state import TierWork


@rule("TIER-OP-030", "CHMU counts one device access",
      "Documentation/trace/cxl-hmu.rst (CHMU epoch / always-on) @ RFC 2024-11-21",
      variants=("chmu",))
def chmu_record_access(w: TierWork, pfn: int, src: int) -> int:
    """
    Only accesses to pages on lower-tier (device) nodes are seen. With downsampling, only the
    first of every ``2**k`` seen accesses is counted. The unit's counter saturates at
    ``2**counter_bits - 1``; a unit without a counter gets one if a counter is free,
    otherwise the access is lost (counter exhaustion, ``chmu_untracked``). In always-on mode a
    unit whose count reaches the threshold is appended to the hot list (or counted as an
    overflow when the list is full) and its counter is freed.
    """
    cfg = w.config
    w.check_page(pfn)
    if src != CHMU_DEVICE:
        return -22
    if cfg.toptier(w.node_of[pfn]):
        return 0
    seen = w.chmu_seen
    w.chmu_seen += 1
    if seen & mask(cfg.chmu_downsample):
        return 0
    unit = pfn >> cfg.chmu_unit_order
    if unit in w.chmu_counters:
        w.chmu_counters[unit] = min(w.chmu_counters[unit] + 1, mask(cfg.chmu_counter_bits))
    elif len(w.chmu_counters) < cfg.chmu_counters:
        w.chmu_counters[unit] = 1
    else:
        w.count("chmu_untracked")
        return 0
    if not cfg.chmu_epoch_mode and w.chmu_counters[unit] >= cfg.chmu_threshold:
        del w.chmu_counters[unit]
        _append(w, unit)
    return 0


def _append(w: TierWork, unit: int) -> None:
    if len(w.chmu_hotlist) < w.config.chmu_hotlist:
        w.chmu_hotlist.append(unit)
    else:
        w.chmu_overflow += 1


@rule("TIER-OP-031", "CHMU epoch end and host consumption of the hot list",
      "Documentation/trace/cxl-hmu.rst; model consumer @ RFC 2024-11-21", variants=("chmu",))
def chmu_promote(w: TierWork, now: int) -> list[tuple[int, int, str]]:
    """
    Epoch mode: at the epoch's end units with count >= threshold are appended in unit order
    and all counters are cleared. The host then drains the whole hot list in order and, for
    each unit, tries each of its pages still on a lower tier: target pghot_target_nid,
    TIER-POL-020 bypass or TIER-POL-021 rate limit (no latency threshold: the list is the
    verdict), TIER-POL-024. Returns ``(pfn, target, reason)`` per promotion.
    """
    cfg = w.config
    if cfg.chmu_epoch_mode:
        for unit in sorted(w.chmu_counters):
            if w.chmu_counters[unit] >= cfg.chmu_threshold:
                _append(w, unit)
        w.chmu_counters.clear()
    done = []
    target = cfg.pghot_target_nid
    for unit in w.chmu_hotlist:
        first = unit << cfg.chmu_unit_order
        for pfn in range(first, min(first + (1 << cfg.chmu_unit_order), cfg.nr_pages)):
            if cfg.toptier(w.node_of[pfn]):
                continue
            ok, why = promotion_throttle(w, target, now, cfg.hot_threshold_ms,
                                         cfg.scan_period_max_ms, 0)
            if ok and migrate_misplaced(w, pfn, target):
                if why == "ok":
                    w.pgdat[target]["slot_promoted"] += 1
                done.append((pfn, target, why))
    w.chmu_hotlist.clear()
    return done
