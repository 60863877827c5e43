"""Allocator traces from real kernels, judged against the spec.

Rules: ALLOC-INV-200..209, ALLOC-POL-200..202, ALLOC-PROP-200..201.

Input is the text tracefs produces: the ``trace`` file (with its header and its ``##### CPU N
buffer started ####`` markers) or ``trace_pipe`` (with ``CPU:N [LOST n EVENTS]`` markers),
plain, gzip or xz. The checker streams it line by line; its memory is bounded by the page
frames the trace touches (one byte and one line number per page, in chunks of 64 Ki pages), a
bounded set of pending conflicts and bounded example lists, never by the trace's length.

Judged events: ``kmem:mm_page_alloc``, ``mm_page_free``, ``mm_page_free_batched``,
``mm_page_alloc_zone_locked``, ``mm_page_pcpu_drain``, ``mm_page_alloc_extfrag``, and the
compaction events with pfn ranges; every other event is counted and skipped.

**What the 6.18 source says about untraced paths** (ALLOC-PROP-200). Reading 6.12 and a
post-6.18 mm/page_alloc.c, every way back to a per-CPU list or the buddy lists for a page that
``mm_page_alloc`` reported passes ``__free_pages_prepare()``, whose first statement after the
``VM_BUG_ON`` is ``trace_mm_page_free()`` (before the HWPoison and bad-page early returns,
so a traced free may even leave the page out of the allocator): ``__free_frozen_pages()``
(``free_frozen_pages``, ``free_frozen_pages_nolock``, ``free_pages_nolock`` with
FPI_TRYLOCK, also when the page is parked on ``zone->trylock_free_pages``),
``__free_pages_ok()``, ``free_unref_folios()`` (folio batching: its first loop prepares every
folio, its second emits ``mm_page_free_batched`` for those put on a pcp list -- two events per
page, and the batched one always prints ``order=0``), ``compaction_free()``. Post-6.18 trees
add ``FPI_PREPARED``, which skips the tracepoint only for pages already traced when prepared.
What the source shows untraced are *allocations* and returns of pages never reported handed
out: ``alloc_pages_bulk_noprof()`` takes pages off the pcp list with ``prep_new_page()`` and
no ``mm_page_alloc``; ``__isolate_free_page()`` (compaction's free scanner, page reporting,
page isolation), ``compaction_alloc()``, ``release_free_list()``'s ``mark_allocated()`` and
``take_page_off_buddy()`` take pages off the buddy silently; ``__putback_isolated_page()``
returns isolated pages silently. So a page freed twice with no traced allocation between is
normal: an *inferred untraced allocation*.

Yet traces recorded on this project's machine show what the issue reported: pages handed out, or
drained from a per-CPU list, again with no event between. That machine does not run upstream
6.18: ``uname -r`` is ``6.18.44-fc-v669``, a Firecracker guest build with local boot options
(``deferred_init=lazy``, ``page_reporting.page_reporting_order=11``), virtio-balloon and
virtio-mem, no kprobes and no hist triggers, so its own source cannot be read and its paths
cannot be probed; only tracepoints with filters and stack-trace triggers work. What the traces
themselves establish, for tests/data/traces/redrain.trace.xz (recorded with every event on from
the first instant, nothing lost by the header): the vmstat worker's ``decay_pcp_high`` drains
2,016 = 63 << ``CONFIG_PCP_BATCH_SCALE_MAX`` (5) pages of CPU 0 (lines 178-2193) into the buddy
-- they really went there: of the 110 UNMOVABLE pages after the first 48, the 47 that never come
back include 44 whose buddy was drained too (merged into higher orders), and none of the 63 that
do come back had its buddy drained -- and 0.39 s later a drain on CPU 0 moves those 63 again
(lines 134326-134388), in the same relative order, which a refill gives (``rmqueue_bulk`` takes
the buddy list's head, where the last drained page went, and appends at the per-CPU list's tail,
which drains pop), and 63 is ``pcp->batch``. So the missing event is a *refill* (63
``mm_page_alloc_zone_locked`` and the ``mm_page_alloc`` that triggered it: about one ring-buffer
page of events), not a free; and CPU 0 recorded no event at all for 91 ms right after the first
drain (lines 2193-18083) while CPU 1 recorded 15,889. Upstream, every refill is traced
(``rmqueue_bulk`` -> ``__rmqueue``: ``__rmqueue_smallest`` traces ``mm_page_alloc_zone_locked``,
the claim and steal paths ``mm_page_alloc_extfrag``). Fresh recordings of a bounded mixed
workload (page cache, pipes, tmpfs, anonymous churn, compaction; 2.9, 10.2 and 6.5 million
events, one with another tracing instance switching the same events on and off every 50 ms; then
two more of 3.5 and 3.3 million events) show no untraced free and no second drain: the anomaly
did not reproduce. They do show silent windows (one and three; the longest 2.4 s of CPU 1 while
CPU 0 recorded 2.7 million events): an idle virtual CPU is silent too, so a window explains only
what its own CPU would have recorded. The checker therefore models a fourth recording effect
next to three that produce the same picture: (1) events switched on one by one in a running
buffer (``echo 1 > events/kmem/…/enable`` in turn, ``set_event``): until ``mm_page_free`` is on,
pages are seen allocated and not freed (tests/data/traces/sequential-enable.trace.xz), and again
after it is switched off; (2) lost events: a CPU's buffer overwritten (``##### CPU N buffer
started``), ``LOST`` markers, a header with fewer entries in the buffer than written; (3)
timestamps of different CPUs, which order the merged output, disagreeing by more than the gap
between a free on one CPU and the page's reuse on another; (4) a *silent window*: a CPU that
records no event for more than ``SILENCE`` (50 ms) while the other CPUs record at least
``SILENCE_OTHERS`` (100) events. Every silent window is reported (``silent_windows``: count and
examples with CPU, lines, milliseconds and the other CPUs' events), and a page conflict or
second drain is reported as explained by one that lies between its two events on the CPU of the
later event (a per-CPU list is refilled, and a page freed to it handed out again, on its own
CPU), in both modes. By default, every page conflict that implies a missing ``mm_page_free``
(ALLOC-INV-205, -206, -207) is reported as an *inferred untraced free* (count and examples, with
the line of each event), a page drained again with no refill as a gap, and neither is a
violation. With ``strict`` (``--strict``: for kernels and traces where every free is traced)
such a conflict is a violation unless one of (1)-(4) explains it: its earlier event comes after
the first event of every kind whose absence it implies, a later event of each such kind comes
more than ``SKEW`` seconds after it (so they were still being recorded), no event of those kinds
for the same page follows within ``SKEW``, no silent window of the later event's CPU lies
between its two events, and the header reports no loss. ALLOC-INV-208 (a batched free without
its ``mm_page_free``) is judged in both modes, silent windows or not: the two events come from
one call on one CPU.
"""

from __future__ import annotations

import gzip
import io
import lzma
import re
import sys
from array import array
from collections import deque
from collections.abc import Iterable, Iterator
from typing import IO, Any

from spec.constants import (
    FALLBACKS,
    GFP_BITS,
    GFP_COMPOSITES,
    GFP_TRACE_NAMES,
    MIGRATE_PCPTYPES,
    MIGRATE_TYPES,
    PAGE_ALLOC_COSTLY_ORDER,
    gfp_migratetype,
)
from spec.fallback import should_try_claim_block
from spec.rules import declare, rule

ANCHOR = "v6.18"
#: MAX_PAGE_ORDER on x86-64 (CONFIG_ARCH_FORCE_MAX_ORDER unset): the largest buddy order.
MAX_PAGE_ORDER = 10
#: The largest folio the free path may see at once: PUD_ORDER on x86-64 (a 1 GiB gigantic
#: folio freed through ``__free_pages_ok`` -> ``split_large_buddy``).
MAX_FREE_ORDER = 18
#: ``HPAGE_PMD_ORDER``: with THP, ``pcp_allowed_order()`` also admits this order.
HPAGE_PMD_ORDER = 9
#: Seconds by which CPU clocks may disagree (see ALLOC-PROP-200).
SKEW = 0.010
#: A CPU that records no event for longer than SILENCE seconds while the other CPUs record at
#: least SILENCE_OTHERS events has a *silent window* (ALLOC-PROP-200).
SILENCE = 0.050
SILENCE_OTHERS = 100
#: silent windows kept for explaining later conflicts (the oldest are dropped beyond this)
SILENT_KEPT = 1024
PENDING_CAP = 4096
EXAMPLES = 8
VIOLATIONS_KEPT = 1000

# Page states, one byte per page frame.
UNKNOWN, ALLOC, FREED, PCP, BUDDY, TAKEN = range(6)
STATE_NAMES = ("unknown", "allocated", "freed", "on a pcp list", "in the buddy",
               "taken off the buddy")

# Event kinds whose absence a conflict may imply.
K_FREE, K_TAKE, K_DRAIN = "mm_page_free", "take", "mm_page_pcpu_drain"

#: Page state -> (rule, event kinds one of which must have been lost) for one event.
Conflicts = dict[int, tuple[str, tuple[str, ...]]]

CHUNK_SHIFT = 16
CHUNK = 1 << CHUNK_SHIFT


class TraceError(Exception):
    """The input cannot be read as a trace (not text, a broken archive, no trace lines)."""


# --- rules --------------------------------------------------------------------------------------

declare(
    "ALLOC-INV-200", "Trace lines are well formed",
    """
    Every line of a tracefs trace is a comment (``#``), a buffer marker (``##### CPU N buffer
    started ####``, ``CPU:N [LOST n EVENTS]``), blank, or an event line ``TASK-PID [CPU]
    FLAGS TIMESTAMP: EVENT: FIELDS``. A judged event has exactly the fields of its format
    (``page=%p pfn=0x%lx order=%d migratetype=%d gfp_flags=%s`` for ``mm_page_alloc``, and so
    on), numbers where the format prints numbers, and GFP flag names that
    ``__def_gfpflag_names`` knows (ALLOC-POL-002) or a hexadecimal rest. A failed allocation
    prints ``page=(null)`` (or a zero pointer) and ``pfn=0x0`` and changes no page.
    """,
    f"include/trace/events/kmem.h @ {ANCHOR}", module=__name__)

declare(
    "ALLOC-INV-201", "Orders are in range and pfns aligned to them",
    """
    Buddy blocks are naturally aligned: every pfn a page event reports is a multiple of
    ``1 << order`` (``alloc_order`` for ``mm_page_alloc_extfrag``). ``mm_page_alloc``,
    ``mm_page_alloc_zone_locked`` and ``mm_page_alloc_extfrag`` orders are at most
    MAX_PAGE_ORDER (10 on x86-64); ``mm_page_pcpu_drain`` orders are the orders a per-CPU list
    holds (``pcp_allowed_order``: at most PAGE_ALLOC_COSTLY_ORDER, or HPAGE_PMD_ORDER with THP);
    ``mm_page_free`` orders are at most PUD_ORDER (18), since a gigantic folio is freed whole
    and split by ``split_large_buddy``. ``mm_page_free_batched`` always prints ``order=0``.
    """,
    f"mm/page_alloc.c:__rmqueue_smallest, free_pcppages_bulk @ {ANCHOR}", module=__name__)

declare(
    "ALLOC-INV-202", "Migratetypes are in range and mm_page_alloc's follows its GFP mask",
    """
    ``mm_page_alloc`` prints ``ac.migratetype``, which ``prepare_alloc_pages`` sets to
    ``gfp_migratetype(gfp)`` (ALLOC-POL-005) of the mask it prints, so the two agree (with
    mobility grouping disabled every request is UNMOVABLE, which the checker also accepts).
    ``mm_page_alloc_zone_locked`` prints the free list taken from: any type but ISOLATE.
    ``mm_page_pcpu_drain`` prints the pageblock's current type: any of the MIGRATE_TYPES.
    """,
    f"mm/page_alloc.c:prepare_alloc_pages, __rmqueue_smallest @ {ANCHOR}", module=__name__)

declare(
    "ALLOC-INV-203", "percpu_refill is pcp_allowed_order(order) && migratetype < MIGRATE_PCPTYPES",
    """
    ``__rmqueue_smallest`` passes ``pcp_allowed_order(order) && migratetype <
    MIGRATE_PCPTYPES`` as ``percpu_refill``: it says whether the page *could* sit on a per-CPU
    list, not whether this call is a refill, and it is exactly that predicate of the printed
    order and migratetype.
    """,
    f"mm/page_alloc.c:__rmqueue_smallest @ {ANCHOR}", module=__name__)

declare(
    "ALLOC-INV-204", "Fallback orders and pageblock_order",
    """
    ``mm_page_alloc_extfrag`` reports an allocation of ``alloc_order`` served from a free
    block of ``fallback_order``: ``alloc_order <= fallback_order <= MAX_PAGE_ORDER``. The
    printed ``pageblock_order`` is the kernel's constant (the same on every line, at most
    MAX_PAGE_ORDER), and ``fragmenting`` is exactly ``fallback_order < pageblock_order``.
    """,
    f"include/trace/events/kmem.h:mm_page_alloc_extfrag @ {ANCHOR}", module=__name__)

declare(
    "ALLOC-POL-200", "Fallbacks follow the fallback table",
    """
    A fallback is taken only for a request of a per-CPU type (UNMOVABLE, MOVABLE,
    RECLAIMABLE) and only from a type of its row in ``fallbacks[]`` (ALLOC-POL-004):
    UNMOVABLE from RECLAIMABLE or MOVABLE, MOVABLE from RECLAIMABLE or UNMOVABLE, RECLAIMABLE
    from UNMOVABLE or MOVABLE. HIGHATOMIC, CMA and ISOLATE are never either side.
    """,
    f"mm/page_alloc.c:find_suitable_fallback @ {ANCHOR}", module=__name__)

declare(
    "ALLOC-POL-201", "change_ownership agrees with the claim rules",
    """
    ``change_ownership`` is whether the returned page's pageblock now has the requested type.
    ``__rmqueue_claim`` traces after a successful claim (the block was retyped, so 1);
    ``__rmqueue_steal`` splits the block on the fallback type's lists (so 0). A claim is only
    tried when ``should_try_claim_block(fallback_order, alloc_migratetype)`` holds
    (ALLOC-POL-030): ``change_ownership=1`` requires it. A candidate of pageblock order or more
    is always claimed whole (ALLOC-OP-010), and stealing only scans blocks claiming left
    behind, so ``change_ownership=0`` requires ``fallback_order < pageblock_order``.
    """,
    f"mm/page_alloc.c:__rmqueue_claim, __rmqueue_steal @ {ANCHOR}", module=__name__)

declare(
    "ALLOC-INV-205", "A page is not handed out while it is still allocated",
    """
    Once ``mm_page_alloc`` has reported a page handed out, the page can be handed out again by
    ``mm_page_alloc``, or taken off the buddy (``mm_page_alloc_zone_locked``,
    ``mm_page_alloc_extfrag``), only after an ``mm_page_free`` covering it (a split compound
    page may be freed piecemeal; each freed page counts on its own). On 6.18 some pages come
    back without that event (ALLOC-PROP-200), so by default a conflict is reported as an
    inferred untraced free; with ``--strict`` it is a violation unless lost events, events
    switched on or off one at a time, CPU clock skew, or a silent window of a CPU between the
    two events explain it.
    """,
    f"mm/page_alloc.c:__free_pages_prepare @ {ANCHOR}", module=__name__)

declare(
    "ALLOC-INV-206", "Drains move pages that are on a per-CPU list",
    """
    ``mm_page_pcpu_drain`` (``free_pcppages_bulk``) moves a page from a per-CPU list to the
    buddy. The page got onto the list by a free (``mm_page_free``, ``mm_page_free_batched``)
    or a refill from the buddy (``mm_page_alloc_zone_locked``/``mm_page_alloc_extfrag``), so a
    page reported handed out and not freed since cannot be drained (judged as in
    ALLOC-INV-205). A page drained already and neither freed nor taken since is drained again
    on 6.18 (tests/data/traces/redrain.trace.xz): reported as a gap, never a violation.
    """,
    f"mm/page_alloc.c:free_pcppages_bulk @ {ANCHOR}", module=__name__)

declare(
    "ALLOC-INV-207", "Pages are taken off the buddy only when they are in it",
    """
    ``mm_page_alloc_zone_locked`` and ``mm_page_alloc_extfrag`` take a page off the buddy
    lists. A page known to be on a per-CPU list (``mm_page_free_batched``), or taken off the
    buddy already and neither drained nor freed since, is not in the buddy; since an untraced
    free could have put it back, this is judged as in ALLOC-INV-205 (a violation only with
    ``--strict``). A handed-out page falls under ALLOC-INV-205.
    """,
    f"mm/page_alloc.c:__rmqueue_smallest, rmqueue_bulk @ {ANCHOR}", module=__name__)

declare(
    "ALLOC-INV-208", "A batched free follows the page's mm_page_free",
    """
    ``free_unref_folios`` calls ``__free_pages_prepare`` (which traces ``mm_page_free`` with
    the folio's order) on every folio before its second loop traces ``mm_page_free_batched``
    for those it puts on a pcp list, on the same CPU. So a page reported handed out and not
    freed since cannot appear in ``mm_page_free_batched`` (unless ALLOC-PROP-200 explains the
    gap). The batched event prints ``order=0`` whatever the folio's order; the checker takes
    the order of the page's ``mm_page_free`` on that CPU.
    """,
    f"mm/page_alloc.c:free_unref_folios @ {ANCHOR}", module=__name__)

declare(
    "ALLOC-INV-209", "Compaction events report ranges inside the zone",
    """
    ``mm_compaction_begin`` and ``mm_compaction_end`` report ``zone_start <= migrate_pfn <=
    zone_end`` and ``zone_start <= free_pfn <= zone_end`` (the scanners' cached positions lie
    in the zone); the isolate events report ranges with ``start_pfn <= end_pfn``.
    """,
    f"mm/compaction.c:compact_zone @ {ANCHOR}", module=__name__)

declare(
    "ALLOC-PROP-200", "Untraced allocations and inferred untraced frees",
    __doc__.split("**What the 6.18 source says about untraced paths** (ALLOC-PROP-200). ")[1],
    f"mm/page_alloc.c:__free_pages_prepare, alloc_pages_bulk_noprof, __isolate_free_page; "
    f"mm/compaction.c:compaction_free, release_free_list @ {ANCHOR}", module=__name__)

declare(
    "ALLOC-PROP-201", "Lost events make the checker forget, never accuse",
    """
    At a ``##### CPU N buffer started ####`` marker (that CPU's older events were
    overwritten while other CPUs' were kept) or a ``CPU:N [LOST n EVENTS]`` marker, every page
    state is forgotten and pending conflicts are dropped: pages are unknown again, as at the
    start of a trace. When the header says fewer entries are in the buffer than were written,
    no page conflict is a violation (the loss may lie anywhere in a CPU's stream).
    """,
    f"kernel/trace/trace.c:test_cpu_buff_start, print_trace_line, print_event_info @ {ANCHOR}",
    module=__name__)


# --- field rules as functions (also usable on their own) ----------------------------------------

@rule("ALLOC-POL-202", "pcp_allowed_order", f"mm/page_alloc.c:pcp_allowed_order @ {ANCHOR}")
def pcp_allowed_order(order: int) -> bool:
    """
    Orders up to PAGE_ALLOC_COSTLY_ORDER go to per-CPU lists, and so does HPAGE_PMD_ORDER
    (with CONFIG_TRANSPARENT_HUGEPAGE, as on x86-64 distribution kernels).
    """
    return order <= PAGE_ALLOC_COSTLY_ORDER or order == HPAGE_PMD_ORDER


def fallback_verdict(alloc_order: int, fallback_order: int, pageblock_order: int,
                     alloc_mt: int, fallback_mt: int, fragmenting: int,
                     change_ownership: int) -> list[tuple[str, str]]:
    """The (rule, message) pairs an ``mm_page_alloc_extfrag`` event breaks (ALLOC-INV-204,
    ALLOC-POL-200, ALLOC-POL-201)."""
    out: list[tuple[str, str]] = []
    if not 0 <= alloc_order <= fallback_order <= MAX_PAGE_ORDER:
        out.append(("ALLOC-INV-204", f"alloc_order={alloc_order} fallback_order="
                    f"{fallback_order}: want 0 <= alloc_order <= fallback_order <= "
                    f"{MAX_PAGE_ORDER}"))
    if fragmenting != int(fallback_order < pageblock_order):
        out.append(("ALLOC-INV-204", f"fragmenting={fragmenting} but fallback_order="
                    f"{fallback_order} {'<' if fallback_order < pageblock_order else '>='} "
                    f"pageblock_order={pageblock_order}"))
    if alloc_mt not in FALLBACKS or fallback_mt not in FALLBACKS[alloc_mt]:
        row = FALLBACKS.get(alloc_mt)
        out.append(("ALLOC-POL-200", f"alloc_migratetype={alloc_mt} may not fall back to "
                    f"fallback_migratetype={fallback_mt}"
                    + (f" (its row is {list(row)})" if row else " (no fallbacks)")))
    if change_ownership == 1:
        if alloc_mt < MIGRATE_PCPTYPES and not should_try_claim_block(
                fallback_order, alloc_mt, pageblock_order):
            out.append(("ALLOC-POL-201", f"change_ownership=1 but a claim is never tried for "
                        f"a migratetype {alloc_mt} request from an order-{fallback_order} "
                        f"block (pageblock_order {pageblock_order})"))
    elif change_ownership == 0:
        if fallback_order >= pageblock_order:
            out.append(("ALLOC-POL-201", f"change_ownership=0 from an order-{fallback_order} "
                        f"block: a block of pageblock order or more is always claimed whole"))
    else:
        out.append(("ALLOC-INV-204", f"change_ownership={change_ownership} is not 0 or 1"))
    return out


# --- parsing ------------------------------------------------------------------------------------

_GFP_TABLE: dict[str, int] = dict(GFP_TRACE_NAMES) | GFP_BITS | GFP_COMPOSITES
_gfp_cache: dict[str, int] = {}


def _gfp(text: str) -> int:
    value = _gfp_cache.get(text)
    if value is not None:
        return value
    if text == "none":
        value = 0
    else:
        value = 0
        for part in text.split("|"):
            bit = _GFP_TABLE.get(part)
            if bit is None:
                if not part.startswith("0x"):
                    raise ValueError(f"unknown GFP flag {part!r}")
                bit = int(part, 16)
            value |= bit
    if len(_gfp_cache) < 4096:
        _gfp_cache[text] = value
    return value


class _Chunked:
    """Per-page-frame state and line number, in chunks allocated on first touch."""

    def __init__(self) -> None:
        self.state: dict[int, bytearray] = {}
        self.line: dict[int, array[int]] = {}

    def clear(self) -> None:
        self.state.clear()
        self.line.clear()

    def chunk(self, pfn: int) -> tuple[bytearray, array[int], int]:
        c = pfn >> CHUNK_SHIFT
        st = self.state.get(c)
        if st is None:
            st = self.state[c] = bytearray(CHUNK)
            self.line[c] = array("Q", bytes(8 * CHUNK))
        return st, self.line[c], pfn & (CHUNK - 1)

    def ranges(self, pfn: int, n: int) -> Iterator[tuple[bytearray, array[int], int, int, int]]:
        """(state, lines, start, stop, pfn at start) per chunk covering [pfn, pfn + n)."""
        end = pfn + n
        while pfn < end:
            st, ln, off = self.chunk(pfn)
            stop = min(CHUNK, off + (end - pfn))
            yield st, ln, off, stop, pfn
            pfn += stop - off


class Report:
    """The result of a check; ``to_json()`` is the ``--json`` object."""

    def __init__(self) -> None:
        self.events = 0
        self.lines = 0
        self.by_event: dict[str, int] = {}
        self.violations: list[dict[str, Any]] = []
        self.violation_count = 0
        self.by_rule: dict[str, int] = {}
        self.untraced_frees: dict[str, Any] = {"count": 0, "examples": []}
        self.untraced_allocations: dict[str, Any] = {"count": 0, "examples": []}
        self.other_gaps: dict[str, Any] = {"count": 0, "examples": []}
        self.silent_windows: dict[str, Any] = {"count": 0, "examples": []}
        self.lost: dict[str, Any] = {"header_entries": None, "header_written": None,
                                     "cpu_buffer_started": 0, "lost_markers": 0,
                                     "lost_events": 0}
        self.cpus: set[int] = set()
        self.seconds = 0.0
        self.cpu_seconds = 0.0

    def violation(self, rule_id: str, line: int, message: str) -> None:
        self.violation_count += 1
        self.by_rule[rule_id] = self.by_rule.get(rule_id, 0) + 1
        if len(self.violations) < VIOLATIONS_KEPT:
            self.violations.append({"rule": rule_id, "line": line, "message": message})

    def to_json(self) -> dict[str, Any]:
        return {"events": self.events, "lines": self.lines, "by_event": dict(self.by_event),
                "violations": list(self.violations), "violation_count": self.violation_count,
                "violations_by_rule": dict(self.by_rule),
                "inferred_untraced_frees": self.untraced_frees,
                "inferred_untraced_allocations": self.untraced_allocations,
                "other_inferred_gaps": self.other_gaps,
                "silent_windows": self.silent_windows,
                "lost": self.lost, "cpus": sorted(self.cpus),
                "seconds": round(self.seconds, 3), "cpu_seconds": round(self.cpu_seconds, 3),
                "events_per_s": round(self.events / self.seconds) if self.seconds else None,
                "events_per_cpu_s": (round(self.events / self.cpu_seconds)
                                     if self.cpu_seconds else None)}


def _note(bucket: dict[str, Any], example: dict[str, Any]) -> None:
    bucket["count"] += 1
    if len(bucket["examples"]) < EXAMPLES:
        bucket["examples"].append(example)


class Checker:
    """Feed lines with :meth:`feed` (1-based numbering is the caller's count), then
    :meth:`finish`."""

    def __init__(self, strict: bool = False) -> None:
        self.strict = strict
        self.r = Report()
        self.pages = _Chunked()
        self.first: dict[str, int] = {}          # kind -> first line it was seen
        self.last_ts: dict[str, float] = {}      # kind -> latest timestamp seen
        self.pending: deque[dict[str, Any]] = deque()
        self.pending_pfn: dict[int, dict[str, Any]] = {}
        self.recent_free: dict[int, dict[int, int]] = {}   # cpu -> pfn -> order
        self.pageblock_order: int | None = None
        self.header_lost = False
        self.seen_event_line = False
        self.last_ts_free = -1.0   # the latest mm_page_free timestamp (kept apart: hot path)
        #: cpu -> [timestamp, line, events seen] of its latest event
        self.cpu_last: dict[int, list[Any]] = {}
        self.seen = 0              # events seen by feed() (run() keeps its own count)
        self.cpu = -1              # the CPU of the event being judged
        #: (first line, last line, cpu, ms, other CPUs' events) of recent silent windows
        self.silent: deque[tuple[int, int, int, int, int]] = deque(maxlen=SILENT_KEPT)

    # -- state machine ------------------------------------------------------------------------

    def _forget(self) -> None:
        self.pages.clear()
        self.recent_free.clear()
        for p in self.pending:
            self._infer(p, "events lost")
        self.pending.clear()
        self.pending_pfn.clear()

    def _infer(self, p: dict[str, Any], why: str) -> None:
        example = {"pfn": hex(p["pfn"]), "line": p["line"], "earlier_line": p["earlier"],
                   "was": p["was"], "event": p["event"], "explained_by": why}
        if K_FREE in p["missing"] and p["was"] == STATE_NAMES[ALLOC]:
            _note(self.r.untraced_frees, example)
        else:
            _note(self.r.other_gaps, example)

    def _conflict(self, rule_id: str, pfn: int, line: int, ts: float, earlier: int,
                  was: int, event: str, missing: tuple[str, ...]) -> None:
        p = {"rule": rule_id, "pfn": pfn, "line": line, "ts": ts, "earlier": earlier,
             "was": STATE_NAMES[was], "event": event, "missing": missing}
        if self.header_lost:
            self._infer(p, "the header reports lost events")
            return
        if rule_id != "ALLOC-INV-208":
            why = self._silent_between(earlier, line, self.cpu)
            if why:
                self._infer(p, why)
                return
        if not self.strict and K_FREE in missing and rule_id != "ALLOC-INV-208":
            self._infer(p, _UNTRACED_FREE)
            return
        for kind in missing:
            first = self.first.get(kind)
            if first is None or earlier < first:
                self._infer(p, f"before the first {kind} event of the trace")
                return
        if pfn in self.pending_pfn:
            self._infer(p, "an earlier conflict on this page is pending")
            return
        if len(self.pending) >= PENDING_CAP:
            self._infer(self.pending.popleft(), "too many pending conflicts")
        self.pending.append(p)
        self.pending_pfn[pfn] = p

    def _resolve(self, kind: str, ts: float, pfn: int, n: int) -> None:
        """An event of ``kind`` at ``ts`` covering [pfn, pfn+n): withdraw or confirm."""
        if self.pending_pfn:
            for q in range(pfn, pfn + n) if n <= 512 else ():
                p = self.pending_pfn.get(q)
                if p is not None and kind in p["missing"] and ts <= p["ts"] + SKEW:
                    p["withdrawn"] = True
                    del self.pending_pfn[q]
                    self._infer(p, f"a {kind} event for the page follows within {SKEW} s "
                                   "(clock skew between CPUs)")
        while self.pending:
            p = self.pending[0]
            if p.get("withdrawn"):
                self.pending.popleft()
                continue
            self.last_ts[K_FREE] = self.last_ts_free
            if all(self.last_ts.get(k, -1.0) > p["ts"] + SKEW for k in p["missing"]):
                self.pending.popleft()
                self.pending_pfn.pop(p["pfn"], None)
                self.r.violation(p["rule"], p["line"],
                                 f"pfn {hex(p['pfn'])} {p['event']} while {p['was']} "
                                 f"(line {p['earlier']}) with no "
                                 f"{' or '.join(p['missing'])} in between")
                continue
            break

    def _apply(self, pfn: int, order: int, line: int, ts: float, new: int, event: str,
               conflicts: dict[int, tuple[str, tuple[str, ...]]],
               untraced_alloc_from: tuple[int, ...] = ()) -> None:
        """Move [pfn, pfn + 2^order) to state ``new``; report the first page in a state that
        conflicts with ``event`` (one report per event) or that shows an untraced allocation."""
        reported = False
        for st, ln, a, b, base in self.pages.ranges(pfn, 1 << order):
            if b - a == 1:
                olds: Iterable[int] = (st[a],)
            else:
                olds = set(st[a:b])
            if not reported:
                for old in olds:
                    if old in conflicts or old in untraced_alloc_from:
                        i = a if b - a == 1 else st.index(old, a, b)
                        q = base + (i - a)
                        if old in conflicts:
                            rid, missing = conflicts[old]
                            self._conflict(rid, q, line, ts, ln[i], old, event, missing)
                        else:
                            _note(self.r.untraced_allocations,
                                  {"pfn": hex(q), "line": line, "earlier_line": ln[i],
                                   "was": STATE_NAMES[old], "event": event})
                        reported = True
                        break
            if b - a == 1:
                st[a] = new
                ln[a] = line
            else:
                st[a:b] = bytes((new,)) * (b - a)
                ln[a:b] = array("Q", (line,)) * (b - a)

    def _heard(self, cpu: int, ts: float, line: int, seen: int | None = None) -> None:
        """CPU ``cpu`` recorded an event at ``ts`` (line ``line``), the ``seen``-th of the
        trace (default ``self.seen``); :meth:`run` does the same inline for judged events."""
        seen = self.seen if seen is None else seen
        last = self.cpu_last.get(cpu)
        if last is None:
            self.cpu_last[cpu] = [ts, line, seen]
            return
        if ts - last[0] > SILENCE:
            self._silence(cpu, last, ts, line, seen)
        last[0], last[1], last[2] = ts, line, seen

    def _silence(self, cpu: int, last: list[Any], ts: float, line: int, seen: int) -> None:
        """CPU ``cpu`` recorded nothing between ``last`` and ``ts`` (line ``line``)."""
        others = seen - last[2] - 1  # the events between, not this one
        if others < SILENCE_OTHERS:
            return
        ms = round((ts - last[0]) * 1000)
        self.silent.append((last[1], line, cpu, ms, others))
        _note(self.r.silent_windows, {"cpu": cpu, "from_line": last[1], "to_line": line,
                                      "ms": ms, "other_events": others})

    def _silent_between(self, earlier: int, line: int, cpu: int) -> str | None:
        """The explanation a silent window of ``cpu`` between lines ``earlier`` and ``line``
        gives, or None. Only the CPU of the later event counts: a per-CPU list is refilled,
        and a page freed to it is handed out again, on its own CPU; an idle CPU's silence
        explains nothing elsewhere."""
        for a, b, c, ms, others in reversed(self.silent):
            if b <= earlier:
                break
            if a < line and c == cpu:
                return (f"CPU {c} recorded no event for {ms} ms (lines {a}-{b}) while the "
                        f"others recorded {others}: events the trace does not hold "
                        "(ALLOC-PROP-200)")
        return None

    # -- events ---------------------------------------------------------------------------------

    _ALLOC_CONFLICTS: Conflicts = {ALLOC: ("ALLOC-INV-205", (K_FREE,))}
    _TAKE_CONFLICTS: Conflicts = {ALLOC: ("ALLOC-INV-205", (K_FREE,)),
                                  PCP: ("ALLOC-INV-207", (K_DRAIN, K_FREE)),
                                  TAKEN: ("ALLOC-INV-207", (K_DRAIN, K_FREE))}
    _DRAIN_CONFLICTS: Conflicts = {ALLOC: ("ALLOC-INV-206", (K_FREE,))}
    _BATCHED_CONFLICTS: Conflicts = {ALLOC: ("ALLOC-INV-208", (K_FREE,))}
    _EXTFRAG_CONFLICTS: Conflicts = {ALLOC: ("ALLOC-INV-205", (K_FREE,)),
                                     PCP: ("ALLOC-INV-207", (K_DRAIN, K_FREE))}

    def _aligned(self, line: int, event: str, pfn: int, order: int, limit: int) -> bool:
        if not 0 <= order <= limit:
            self.r.violation("ALLOC-INV-201", line, f"{event} order={order} out of range "
                             f"0..{limit}")
            return False
        if pfn & ((1 << order) - 1):
            self.r.violation("ALLOC-INV-201", line, f"{event} pfn={hex(pfn)} is not aligned "
                             f"to order {order}")
            return False
        return True

    def _set(self, pfn: int, order: int, line: int, ts: float, new: int, event: str,
             conflicts: dict[int, tuple[str, tuple[str, ...]]],
             untraced_alloc_from: tuple[int, ...] = ()) -> None:
        if order:
            self._apply(pfn, order, line, ts, new, event, conflicts, untraced_alloc_from)
            return
        c = pfn >> CHUNK_SHIFT
        st = self.pages.state.get(c)
        if st is None:
            st, ln, off = self.pages.chunk(pfn)
        else:
            ln, off = self.pages.line[c], pfn & (CHUNK - 1)
        old = st[off]
        if old in conflicts:
            rid, missing = conflicts[old]
            self._conflict(rid, pfn, line, ts, ln[off], old, event, missing)
        elif old in untraced_alloc_from:
            _note(self.r.untraced_allocations, {"pfn": hex(pfn), "line": line,
                                                "earlier_line": ln[off],
                                                "was": STATE_NAMES[old], "event": event})
        st[off] = new
        ln[off] = line

    def _alloc(self, line: int, cpu: int, ts: float, m: re.Match[str]) -> None:
        page, pfn_s, order_s, mt_s, gfp_s = m.groups()
        want = _want_migratetype(gfp_s)
        if mt_s != want and mt_s != "0":
            self.r.violation("ALLOC-INV-202", line, f"mm_page_alloc migratetype={mt_s} but "
                             f"gfp_flags={gfp_s} give migratetype {want}")
        if page in _NULL:
            return
        pfn = int(pfn_s, 16)
        if order_s != "0":
            order = int(order_s)
            if self._aligned(line, "mm_page_alloc", pfn, order, MAX_PAGE_ORDER):
                self._apply(pfn, order, line, ts, ALLOC, "mm_page_alloc",
                            self._ALLOC_CONFLICTS)
            return
        st = self.pages.state.get(pfn >> CHUNK_SHIFT)
        if st is None:
            st, ln, off = self.pages.chunk(pfn)
        else:
            ln, off = self.pages.line[pfn >> CHUNK_SHIFT], pfn & (CHUNK - 1)
        if st[off] == ALLOC:
            rid, missing = self._ALLOC_CONFLICTS[ALLOC]
            self._conflict(rid, pfn, line, ts, ln[off], ALLOC, "mm_page_alloc", missing)
        st[off] = ALLOC
        ln[off] = line

    def _free(self, line: int, cpu: int, ts: float, m: re.Match[str]) -> None:
        pfn = int(m.group(2), 16)
        order_s = m.group(3)
        if self.last_ts_free < 0:
            self.first[K_FREE] = line
        self.last_ts_free = ts
        recent = self.recent_free.get(cpu)
        if recent is None:
            recent = self.recent_free[cpu] = {}
        elif len(recent) > 64:
            recent.clear()
        if order_s != "0":
            order = int(order_s)
            if not self._aligned(line, K_FREE, pfn, order, MAX_FREE_ORDER):
                return
            recent[pfn] = order
            if self.pending:
                self._resolve(K_FREE, ts, pfn, 1 << order)
            self._apply(pfn, order, line, ts, FREED, K_FREE, _NO_CONFLICTS,
                        _UNTRACED_ALLOC_FROM)
            return
        recent[pfn] = 0
        if self.pending:
            self._resolve(K_FREE, ts, pfn, 1)
        self._set(pfn, 0, line, ts, FREED, K_FREE, _NO_CONFLICTS, _UNTRACED_ALLOC_FROM)

    def _batched(self, line: int, cpu: int, ts: float, m: re.Match[str]) -> None:
        pfn = int(m.group(2), 16)
        if m.group(3) != "0":
            self.r.violation("ALLOC-INV-201", line, f"mm_page_free_batched prints "
                             f"order={m.group(3)}; its format prints order=0")
            return
        recent = self.recent_free.get(cpu)
        order = recent.pop(pfn, 0) if recent else 0
        self._set(pfn, order, line, ts, PCP, "mm_page_free_batched", self._BATCHED_CONFLICTS)

    def _zone_locked(self, line: int, cpu: int, ts: float, m: re.Match[str]) -> None:
        pfn, order, mt, refill = (int(m.group(2), 16), int(m.group(3)), int(m.group(4)),
                                  int(m.group(5)))
        if not 0 <= mt < MIGRATE_TYPES - 1:
            self.r.violation("ALLOC-INV-202", line, f"mm_page_alloc_zone_locked "
                             f"migratetype={mt}: want a free list type 0..{MIGRATE_TYPES - 2}")
        elif refill != int(pcp_allowed_order(order) and mt < MIGRATE_PCPTYPES):
            self.r.violation("ALLOC-INV-203", line, f"percpu_refill={refill} but order "
                             f"{order}, migratetype {mt} give "
                             f"{int(pcp_allowed_order(order) and mt < MIGRATE_PCPTYPES)}")
        if K_TAKE not in self.first:
            self.first[K_TAKE] = line
        self.last_ts[K_TAKE] = ts
        if order and not self._aligned(line, "mm_page_alloc_zone_locked", pfn, order,
                                       MAX_PAGE_ORDER):
            return
        if self.pending:
            self._resolve(K_TAKE, ts, pfn, 1 << order)
        self._set(pfn, order, line, ts, TAKEN, "mm_page_alloc_zone_locked",
                  self._TAKE_CONFLICTS)

    def _drain(self, line: int, cpu: int, ts: float, m: re.Match[str]) -> None:
        pfn, order, mt = int(m.group(2), 16), int(m.group(3)), int(m.group(4))
        if not 0 <= mt < MIGRATE_TYPES:
            self.r.violation("ALLOC-INV-202", line, f"mm_page_pcpu_drain migratetype={mt} "
                             f"out of range 0..{MIGRATE_TYPES - 1}")
        if K_DRAIN not in self.first:
            self.first[K_DRAIN] = line
        self.last_ts[K_DRAIN] = ts
        if order:
            if order < 0 or not pcp_allowed_order(order):
                self.r.violation("ALLOC-INV-201", line, f"mm_page_pcpu_drain order={order} "
                                 "is not an order a per-CPU list holds")
                return
            if not self._aligned(line, K_DRAIN, pfn, order, MAX_PAGE_ORDER):
                return
        if self.pending:
            self._resolve(K_DRAIN, ts, pfn, 1 << order)
        for st, ln, a, b, base in self.pages.ranges(pfn, 1 << order):
            if BUDDY in st[a:b]:
                i = st.index(BUDDY, a, b)
                why = self._silent_between(ln[i], line, cpu)
                _note(self.r.other_gaps, {"pfn": hex(base + i - a), "line": line,
                                          "earlier_line": ln[i], "was": STATE_NAMES[BUDDY],
                                          "event": K_DRAIN,
                                          "explained_by": (f"{_REDRAIN}; {why}" if why
                                                           else _REDRAIN)})
                break
        self._set(pfn, order, line, ts, BUDDY, K_DRAIN, self._DRAIN_CONFLICTS)

    def _extfrag(self, line: int, cpu: int, ts: float, m: re.Match[str]) -> None:
        pfn = int(m.group(2), 16)
        ao, fo, pbo, amt, fmt, frag, chown = (int(v) for v in m.groups()[2:])
        if self.pageblock_order is None:
            self.pageblock_order = pbo
        if pbo != self.pageblock_order or not 0 < pbo <= MAX_PAGE_ORDER:
            self.r.violation("ALLOC-INV-204", line, f"pageblock_order={pbo}, earlier "
                             f"lines print {self.pageblock_order}")
        for rid, msg in fallback_verdict(ao, fo, pbo, amt, fmt, frag, chown):
            self.r.violation(rid, line, msg)
        if K_TAKE not in self.first:
            self.first[K_TAKE] = line
        self.last_ts[K_TAKE] = ts
        if self._aligned(line, "mm_page_alloc_extfrag", pfn, ao, MAX_PAGE_ORDER):
            if self.pending:
                self._resolve(K_TAKE, ts, pfn, 1 << ao)
            self._set(pfn, ao, line, ts, TAKEN, "mm_page_alloc_extfrag",
                      self._EXTFRAG_CONFLICTS)

    def _compaction_span(self, line: int, cpu: int, ts: float, m: re.Match[str]) -> None:
        zs, mp, fp, ze = (int(v, 16) for v in m.groups()[1:5])
        if not (zs <= mp <= ze and zs <= fp <= ze):
            self.r.violation("ALLOC-INV-209", line, f"{_name_of(m)}: migrate_pfn {hex(mp)} or "
                             f"free_pfn {hex(fp)} outside the zone [{hex(zs)}, {hex(ze)}]")

    def _compaction_range(self, line: int, cpu: int, ts: float, m: re.Match[str]) -> None:
        start, end = int(m.group(2), 16), int(m.group(3), 16)
        if start > end:
            self.r.violation("ALLOC-INV-209", line, f"{_name_of(m)}: range start {hex(start)} "
                             f"after its end {hex(end)}")

    # -- lines ----------------------------------------------------------------------------------

    def feed(self, line: int, text: str) -> None:
        if text[:1] == "#":
            if text.startswith("##### CPU") and "buffer started" in text:
                self.r.lost["cpu_buffer_started"] += 1
                self._forget()
            elif text.startswith("# entries-in-buffer/entries-written:"):
                self._header(line, text)
            return
        m = _HEAD.search(text)
        if m is None:
            s = text.strip()
            if not s:
                return
            if s.startswith("CPU:") and "LOST" in s:
                self.r.lost["lost_markers"] += 1
                digits = s.partition("[LOST ")[2].partition(" ")[0]
                if digits.isdigit():
                    self.r.lost["lost_events"] += int(digits)
                self._forget()
                return
            self.r.violation("ALLOC-INV-200", line, f"not a trace line: {s[:80]!r}")
            return
        self.seen_event_line = True
        r = self.r
        event = m.group(3)
        by = r.by_event
        judged = _BODY.get(event)
        if judged is None:
            r.events += 1
            by[event] = by.get(event, 0) + 1
            self.seen += 1
            if int(m.group(1)) in self.cpu_last:
                self._heard(int(m.group(1)), float(m.group(2)), line)
            return
        cpu = int(m.group(1))
        pattern, handler = judged
        b = pattern.match(text, m.end())
        if b is None:
            r.violation("ALLOC-INV-200", line, f"{event}: fields do not match its format: "
                        f"{text[m.end():].strip()[:100]!r}")
            return
        r.events += 1
        by[event] = by.get(event, 0) + 1
        r.cpus.add(cpu)
        self.cpu = cpu
        ts = float(m.group(2))
        self.seen += 1
        self._heard(cpu, ts, line)
        try:
            handler(self, line, cpu, ts, b)
        except ValueError as e:
            r.violation("ALLOC-INV-200", line, f"{event}: {e}")

    def run(self, lines: Iterable[str], start: int = 1) -> int:
        """Feed ``lines`` (the first numbered ``start``); return the last line's number.

        The same work as :meth:`feed` per line, with the hot names bound to locals: this loop
        is what the events-per-second figure measures.
        """
        search = _HEAD.search
        body = _BODY
        r = self.r
        by = r.by_event
        cpus = r.cpus
        feed = self.feed
        cpu_last = self.cpu_last
        silence = self._silence
        events = 0
        n = start - 1
        try:
            for n, text in enumerate(lines, start):
                m = search(text)
                if m is None or text[0] == "#":
                    feed(n, text)
                    continue
                cpu_s, ts_s, event = m.groups()
                judged = body.get(event)
                if judged is None:
                    events += 1
                    by[event] = by.get(event, 0) + 1
                    self.seen_event_line = True
                    if int(cpu_s) in cpu_last:
                        self._heard(int(cpu_s), float(ts_s), n, events + self.seen)
                    continue
                b = judged[0].match(text, m.end())
                if b is None:
                    feed(n, text)
                    continue
                events += 1
                by[event] = by.get(event, 0) + 1
                cpu = int(cpu_s)
                ts = float(ts_s)
                last = cpu_last.get(cpu)
                if last is None:
                    cpus.add(cpu)
                    self.seen_event_line = True
                    cpu_last[cpu] = [ts, n, events + self.seen]
                else:
                    if ts - last[0] > SILENCE:
                        silence(cpu, last, ts, n, events + self.seen)
                    last[0] = ts
                    last[1] = n
                    last[2] = events + self.seen
                self.cpu = cpu
                try:
                    judged[1](self, n, cpu, ts, b)
                except ValueError as e:
                    r.violation("ALLOC-INV-200", n, f"{event}: {e}")
        finally:
            r.events += events
            self.seen += events
        return n

    def _header(self, line: int, text: str) -> None:
        nums = text.split(":", 1)[1].split()[0]
        a, _, b = nums.partition("/")
        if a.isdigit() and b.isdigit():
            self.r.lost["header_entries"], self.r.lost["header_written"] = int(a), int(b)
            if int(a) < int(b):
                self.header_lost = True
        else:
            self.r.violation("ALLOC-INV-200", line, f"malformed header: {text.strip()[:80]!r}")

    def finish(self) -> Report:
        for p in self.pending:
            if not p.get("withdrawn"):
                self._infer(p, "the trace ends before events of the missing kind were seen "
                               f"{SKEW} s later")
        self.pending.clear()
        self.pending_pfn.clear()
        return self.r


_NO_CONFLICTS: dict[int, tuple[str, tuple[str, ...]]] = {}
_UNTRACED_FREE = ("an untraced free: 6.18 returns some pages without mm_page_free "
                  "(ALLOC-PROP-200; --strict judges it)")
_REDRAIN = ("drained again with no traced refill or free in between: a refill of the per-CPU "
            "list the trace does not show (ALLOC-PROP-200)")
_UNTRACED_ALLOC_FROM = (FREED, PCP, BUDDY)
_NULL = frozenset(("(null)", "0000000000000000", "00000000"))
_HEAD = re.compile(r"\[(\d+)\]\s+(?:\S+\s+)?(\d+(?:\.\d+)?): ([^\s:]+): ")
_PAGE = r"page=(\S+) pfn=0x([0-9a-f]+) "
_N = r"(-?\d+)"
_X = r"0x([0-9a-f]+)"
_BODY: dict[str, tuple[re.Pattern[str], Any]] = {
    "mm_page_alloc": (re.compile(_PAGE + rf"order={_N} migratetype={_N} gfp_flags=(\S+)\s*$"),
                      Checker._alloc),
    "mm_page_free": (re.compile(_PAGE + rf"order={_N}\s*$"), Checker._free),
    "mm_page_free_batched": (re.compile(_PAGE + rf"order={_N}\s*$"), Checker._batched),
    "mm_page_alloc_zone_locked": (re.compile(
        _PAGE + rf"order={_N} migratetype={_N} percpu_refill={_N}\s*$"), Checker._zone_locked),
    "mm_page_pcpu_drain": (re.compile(_PAGE + rf"order={_N} migratetype={_N}\s*$"),
                           Checker._drain),
    "mm_page_alloc_extfrag": (re.compile(
        _PAGE + rf"alloc_order={_N} fallback_order={_N} pageblock_order={_N} "
        rf"alloc_migratetype={_N} fallback_migratetype={_N} fragmenting={_N} "
        rf"change_ownership={_N}\s*$"), Checker._extfrag),
    "mm_compaction_begin": (re.compile(
        rf"(mm_compaction_begin)?zone_start={_X} migrate_pfn={_X} free_pfn={_X} "
        rf"zone_end={_X}, mode=\w+\s*$"), Checker._compaction_span),
    "mm_compaction_end": (re.compile(
        rf"(mm_compaction_end)?zone_start={_X} migrate_pfn={_X} free_pfn={_X} "
        rf"zone_end={_X}, mode=\w+ status=\w+\s*$"), Checker._compaction_span),
}
for _name in ("mm_compaction_isolate_freepages", "mm_compaction_isolate_migratepages",
              "mm_compaction_fast_isolate_freepages"):
    # the optional group never matches: it only carries the event's name for messages
    _BODY[_name] = (re.compile(rf"({_name})?range=\({_X} ~ {_X}\) nr_scanned=\d+ "
                               rf"nr_taken=\d+\s*$"), Checker._compaction_range)


def _name_of(m: re.Match[str]) -> str:
    """The event name a compaction pattern carries in its first (never matching) group."""
    return m.re.pattern[1:m.re.pattern.index(")")]


_want_cache: dict[str, str] = {}


def _want_migratetype(gfp_text: str) -> str:
    """``gfp_migratetype`` of a printed mask, as the tracepoint prints it (cached)."""
    want = _want_cache.get(gfp_text)
    if want is None:
        want = str(gfp_migratetype(_gfp(gfp_text)))
        if len(_want_cache) < 4096:
            _want_cache[gfp_text] = want
    return want


# --- input --------------------------------------------------------------------------------------

def open_trace(path: str) -> IO[str]:
    """A text stream of ``path`` (``-`` is stdin), decompressed by content (gzip, xz)."""
    try:
        raw: IO[bytes] = sys.stdin.buffer if path == "-" else open(path, "rb")  # noqa: SIM115
    except OSError as e:
        raise TraceError(f"cannot read {path}: {e.strerror}") from None
    buffered: Any = io.BufferedReader(raw, 1 << 20) if path == "-" else raw  # type: ignore[type-var]
    head = buffered.peek(6)[:6] if hasattr(buffered, "peek") else b""
    stream: IO[bytes]
    if head.startswith(b"\x1f\x8b"):
        stream = gzip.GzipFile(fileobj=buffered)  # type: ignore[assignment]
    elif head.startswith(b"\xfd7zXZ\x00"):
        stream = lzma.LZMAFile(buffered)  # type: ignore[assignment]
    else:
        stream = buffered
    return io.TextIOWrapper(stream, encoding="utf-8", errors="strict", newline=None)


def check_lines(lines: Iterable[str], strict: bool = False) -> Report:
    """Check an iterable of trace lines (numbered from 1); ``strict``: see ALLOC-PROP-200."""
    import time
    t0, c0 = time.perf_counter(), time.process_time()
    c = Checker(strict)
    n = 0
    try:
        n = c.run(lines)
    except UnicodeDecodeError:
        raise TraceError(f"line {n + 1} is not UTF-8 text: not a trace") from None
    except (EOFError, OSError, lzma.LZMAError) as e:
        raise TraceError(f"cannot read the input after line {n}: {e}") from None
    if n and not c.seen_event_line and c.r.violation_count == n:
        raise TraceError("no line of the input is a trace line")
    r = c.finish()
    r.lines = n
    r.seconds = time.perf_counter() - t0
    r.cpu_seconds = time.process_time() - c0
    return r


def check_file(path: str, strict: bool = False) -> Report:
    """Check a trace file (``-`` for stdin; gzip and xz by content)."""
    stream = open_trace(path)
    try:
        return check_lines(stream, strict)
    finally:
        if path != "-":
            stream.close()
