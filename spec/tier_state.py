"""Tiered-memory machine: configuration, immutable state, and the working copy operations use.

The model's pages are numbered; a page's number doubles as its pfn (the model does not
renumber a page when it migrates, so per-pfn records follow the page, and a page demoted back
to a lower tier starts with an empty record where the kernel would reuse whatever the target
pfn's slot held). Time is in jiffies (``now``); the rate limit and the NUMA-balancing access
time are in milliseconds, as in the kernel.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import attrs

from spec.tier_common import (
    CHMU_DEVICE,
    KPROMOTED_HW_HINTS,
    KPROMOTED_PGTABLE_SCAN,
    NUMA_NO_NODE,
    PGHOT_HINT_FAULT,
    TIER_VARIANTS,
)


class TierError(Exception):
    """An operation was called outside its precondition (unknown page, node or source)."""


@attrs.frozen
class NodeConfig:
    """One NUMA node: capacity in pages, whether it is in a top tier, whether it has CPUs."""

    capacity: int
    toptier: bool
    has_cpu: bool
    #: zone_watermark high + promo gap: promotion needs more free pages than this
    #: (migrate_balanced_pgdat); kswapd demotes until this many are free.
    high_wmark: int = 0


#: Default window per variant, ms: kpromoted v0/v1/v3 5 s (KPROMOTED_FREQ_WINDOW), v6
#: default mode 3 s (PGHOT_FREQ_WINDOW_DEFAULT, the v6 doc), v6 precise mode 5 s.
DEFAULT_WINDOW_MS = {"kpromoted-v0": 5000, "pghot-v1": 5000, "pghot-v2": 5000, "pghot-v3": 5000,
                     "pghot-v6-default": 3000, "pghot-v6-precise": 5000, "numab2": 1000,
                     "chmu": 1000}


@attrs.frozen
class TierConfig:
    """A machine and the knobs of the variant under study (kernel sysctl names)."""

    variant: str = "pghot-v6-default"
    nodes: tuple[NodeConfig, ...] = (NodeConfig(8, True, True), NodeConfig(32, False, False))
    #: initial node of every page (its length is the number of pages).
    placement: tuple[int, ...] = tuple([1] * 16)
    hz: int = 1000
    #: the model's page size: MB_TO_PAGES(x) = x << (20 - page_shift). Tiny models may use
    #: large pages so that small rate limits are expressible in MB/s.
    page_shift: int = 12
    #: kpromoted/pghot frequency window (ms); None = the variant's default.
    freq_window_ms: int | None = None
    freq_threshold: int = 2
    promote_rate_limit_MBps: int = 65536
    pghot_target_nid: int = 0
    #: kernel/sched/fair.c sysctl_numa_balancing_hot_threshold (debugfs hot_threshold_ms).
    hot_threshold_ms: int = 1000
    scan_period_max_ms: int = 60000
    #: floor of pgdat_free_space_enough's margin: 1 GiB of pages in the kernel.
    enough_floor_pages: int | None = None
    pages_per_section: int = 32768
    kmigrated_batch_nr: int = 512
    #: kpromoted v0 computes the window as last_update - now (reversed, unsigned). False
    #: models the v1 fix (now - last_update) with v0's record and walk.
    kpromoted_as_posted: bool = True
    #: pghot v1: hash entries = 50 % of lower-tier pages, heap = 25 % of those per node.
    heap_pct: int = 25
    hash_pct: int = 50
    #: CHMU: unit = 2**chmu_unit_order pages, counters, hot-list capacity, threshold, counter
    #: width, downsampling 2**chmu_downsample, epoch mode (True) or always-on (False).
    chmu_unit_order: int = 0
    chmu_counters: int = 64
    chmu_hotlist: int = 64
    chmu_threshold: int = 2
    chmu_counter_bits: int = 16
    chmu_downsample: int = 0
    chmu_epoch_mode: bool = True
    #: PAGE_ACCESS_TIME_MASK width: LAST_CPUPID_SHIFT = 8 + NR_CPUS_BITS (13 on Debian x86-64).
    access_time_bits: int = 21

    def __attrs_post_init__(self) -> None:
        if self.variant not in TIER_VARIANTS:
            raise TierError(f"unknown TIER variant {self.variant!r}; known: "
                            f"{', '.join(TIER_VARIANTS)}")
        if not self.nodes or not any(n.toptier for n in self.nodes):
            raise TierError("a machine needs at least one top-tier node")
        if self.placement and not 0 <= min(self.placement) <= max(self.placement) \
                < len(self.nodes):
            raise TierError("placement names a node that does not exist")
        held = Counter(self.placement)
        for nid, n in enumerate(self.nodes):
            if held.get(nid, 0) > n.capacity:
                raise TierError(f"node {nid} holds more pages than its capacity")
        if not 1 <= self.freq_threshold <= self.freq_max:
            raise TierError(f"freq_threshold must lie in 1..{self.freq_max}")
        if not 0 <= self.pghot_target_nid < len(self.nodes):
            raise TierError("pghot_target_nid is not a node")
        if not 1 <= self.page_shift <= 20:
            raise TierError("page_shift must lie in 1..20")

    @property
    def heap_tracker(self) -> bool:
        """pghot v1/v2: hash lists and per-node heaps."""
        return self.variant in ("pghot-v1", "pghot-v2")

    @property
    def nr_pages(self) -> int:
        return len(self.placement)

    @property
    def window_ms(self) -> int:
        return DEFAULT_WINDOW_MS[self.variant] if self.freq_window_ms is None \
            else self.freq_window_ms

    @property
    def freq_max(self) -> int:
        """Largest stored frequency: 2 bits (default), 3 bits (precise, v3), int otherwise."""
        if self.variant == "pghot-v6-default":
            return 3
        if self.variant in ("pghot-v6-precise", "pghot-v3", "pghot-v2"):
            return 7
        return 1 << 30

    @property
    def rate_limit_pages(self) -> int:
        """MB_TO_PAGES(promote_rate_limit_MBps), per target node per second."""
        return self.promote_rate_limit_MBps << (20 - self.page_shift)

    def enough_wmark(self, nid: int) -> int:
        """pgdat_free_space_enough: max(1 GiB of pages, node_present_pages >> 4)."""
        floor = (1 << (30 - self.page_shift)) if self.enough_floor_pages is None \
            else self.enough_floor_pages
        return max(floor, self.nodes[nid].capacity >> 4)

    def toptier(self, nid: int) -> bool:
        return self.nodes[nid].toptier

    def sources(self) -> tuple[int, ...]:
        if self.variant == "kpromoted-v0":
            return (KPROMOTED_HW_HINTS, KPROMOTED_PGTABLE_SCAN)
        if self.variant in ("pghot-v1",):
            return (KPROMOTED_HW_HINTS, KPROMOTED_PGTABLE_SCAN)
        if self.variant in ("pghot-v2", "pghot-v3"):
            return (KPROMOTED_HW_HINTS, KPROMOTED_PGTABLE_SCAN, PGHOT_HINT_FAULT)
        if self.variant.startswith("pghot-v6"):
            return (KPROMOTED_HW_HINTS, PGHOT_HINT_FAULT)
        if self.variant == "numab2":
            return (PGHOT_HINT_FAULT,)
        return (CHMU_DEVICE,)


@attrs.frozen
class KRecord:
    """kpromoted v0 ``struct page_hotness_info`` / v1 ``struct pghot_info`` (pfn is the key).

    ``seq`` orders records of one hash bucket: hlist_add_head puts the newest first.
    """

    last_update: int
    frequency: int
    recency: int
    hot_node: int
    seq: int


@attrs.frozen
class Pgdat:
    """Per-node promotion state (struct pglist_data fields and node vmstat counters)."""

    nbp_rl_start: int = 0
    nbp_rl_nr_cand: int = 0
    nbp_th_start: int = 0
    nbp_th_nr_cand: int = 0
    nbp_threshold: int = 0
    pgpromote_candidate: int = 0
    pgpromote_candidate_nrl: int = 0
    pgpromote_success: int = 0
    pgdemote: int = 0
    #: pages promoted on the rate-limited path since nbp_rl_start (for TIER-INV-003).
    slot_promoted: int = 0


@attrs.frozen
class TierState:
    config: TierConfig
    node_of: tuple[int, ...]
    #: page -> record: KRecord (kpromoted-v0, pghot-v1) or the raw record word (v3, v6).
    records: tuple[tuple[int, Any], ...] = ()
    seq: int = 0
    #: pghot-v1: per-node heap members (pages).
    heaps: tuple[frozenset[int], ...] = ()
    hot_sections: frozenset[int] = frozenset()
    kmigrated_activate: frozenset[int] = frozenset()
    pgdat: tuple[Pgdat, ...] = ()
    #: numab2: folio access time (ms, masked) and PROT_NONE pages.
    access_time: tuple[tuple[int, int], ...] = ()
    prot_none: frozenset[int] = frozenset()
    #: chmu: unit -> count, hot list (units in append order), downsample counter, overflows.
    chmu_counters: tuple[tuple[int, int], ...] = ()
    chmu_hotlist: tuple[int, ...] = ()
    chmu_seen: int = 0
    chmu_overflow: int = 0
    stats: tuple[tuple[str, int], ...] = ()

    def placement(self) -> tuple[frozenset[int], ...]:
        """The observation: the set of pages on each node."""
        sets: list[list[int]] = [[] for _ in self.config.nodes]
        for p, n in enumerate(self.node_of):
            if 0 <= n < len(sets):  # a page on no existing node is on none of them
                sets[n].append(p)
        return tuple(frozenset(ps) for ps in sets)

    def record(self, page: int) -> Any:
        return dict(self.records).get(page)

    def stat(self, name: str) -> int:
        return dict(self.stats).get(name, 0)


def initial_state(config: TierConfig) -> TierState:
    n = len(config.nodes)
    return TierState(config=config, node_of=tuple(config.placement),
                     heaps=tuple(frozenset() for _ in range(n)) if config.heap_tracker
                     else (), pgdat=tuple(Pgdat() for _ in range(n)))


class TierWork:
    """A mutable copy of a :class:`TierState` that one operation works on."""

    def __init__(self, s: TierState) -> None:
        self.config = s.config
        self.node_of = list(s.node_of)
        self.records: dict[int, Any] = dict(s.records)
        self.seq = s.seq
        self.heaps = [set(h) for h in s.heaps]
        self.hot_sections = set(s.hot_sections)
        self.kmigrated_activate = set(s.kmigrated_activate)
        self.pgdat = [attrs.asdict(p) for p in s.pgdat]
        self.access_time = dict(s.access_time)
        self.prot_none = set(s.prot_none)
        self.chmu_counters = dict(s.chmu_counters)
        self.chmu_hotlist = list(s.chmu_hotlist)
        self.chmu_seen = s.chmu_seen
        self.chmu_overflow = s.chmu_overflow
        self.stats = dict(s.stats)

    def count(self, name: str, n: int = 1) -> None:
        self.stats[name] = self.stats.get(name, 0) + n

    def used(self, nid: int) -> int:
        return sum(1 for n in self.node_of if n == nid)

    def check_page(self, page: int) -> None:
        if not 0 <= page < len(self.node_of):
            raise TierError(f"page {page} does not exist")

    def check_nid(self, nid: int) -> None:
        if nid != NUMA_NO_NODE and not 0 <= nid < len(self.config.nodes):
            raise TierError(f"node {nid} does not exist")

    def freeze(self) -> TierState:
        return TierState(
            config=self.config, node_of=tuple(self.node_of),
            records=tuple(sorted(self.records.items())), seq=self.seq,
            heaps=tuple(frozenset(h) for h in self.heaps),
            hot_sections=frozenset(self.hot_sections),
            kmigrated_activate=frozenset(self.kmigrated_activate),
            pgdat=tuple(Pgdat(**p) for p in self.pgdat),
            access_time=tuple(sorted(self.access_time.items())),
            prot_none=frozenset(self.prot_none),
            chmu_counters=tuple(sorted(self.chmu_counters.items())),
            chmu_hotlist=tuple(self.chmu_hotlist), chmu_seen=self.chmu_seen,
            chmu_overflow=self.chmu_overflow,
            stats=tuple(sorted((k, v) for k, v in self.stats.items() if v)))
