"""KSM: Kernel Samepage Merging as mm/ksm.c runs it, with every counter computed exactly.

The model follows ksmd pass by pass: mm slots in list order, pages in address order, one
``ksm_rmap_item`` per (mm, address) seen present, the checksum test that makes a changed page
volatile, the unstable tree rebuilt every pass, the stable tree with ``max_page_sharing``
chains and dups, ``use_zero_pages`` and ``smart_scan``. User operations (madvise, writes,
fork, munmap, exit, prctl) change page tables the way the kernel does, and only the counters
the kernel updates synchronously change at once (``ksm_zero_pages``); everything else changes
when ksmd next visits the address.

Contents are labels (``str``): equal labels are equal bytes, ``"0"`` is a zero-filled page.
A checksum is the label itself (the kernel's xxhash is a function of the bytes, and the model
assumes no collision). Physical pages have identities (``Page.id``) because the kernel's
decisions depend on them (fork-shared pages are never merged with themselves, the page
scanned later becomes the KSM page, a stable node goes stale when its page is freed).

Operations are ``op(state, args) -> (state', result)`` on a :class:`KsmState`; the state is
copied first, so a caller's state is never changed. The state is a tree of attrs classes.

The stable tree is an rbtree ordered by memcmp of the pages (the model orders labels by
the bytes checker.ksm_scenario.content_bytes gives them) with lib/rbtree.c's balancing,
because a lookup prunes, collapses or frees every chain on its search path: which chains
a lookup passes depends on the tree's shape.

Known holes (written down, as kernel-tla does): NUMA (merge_across_nodes=0 with more than
one node: migrate_nodes, per-node trees) is not modelled; failure paths (folio trylock,
raised refcounts from pins, THP split) are assumed not to happen; the scan-time advisor is
not modelled (scenarios run with advisor_mode none); stable_node_chains_prune_millisecs is
fixed at 0 (prune on every lookup) because any other value makes results timing-dependent.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

import attrs

from spec.rules import declare, register_variants, rule

VARIANTS = register_variants("KSM", ("v6.18", "v6.17", "sksm"))

PAGE_SIZE = 4096
#: sizeof(struct ksm_rmap_item) on x86_64 (general_profit charges it per rmap_item).
RMAP_ITEM_SIZE = 64
ZERO = "0"
#: Page-table entries that are not a normal page: KSM's dirty-marked zero PTE, and SKSM's
#: plain zero-page mapping (SKSM keeps no statistics).
KSM_ZERO_PTE = -1
SKSM_ZERO_PTE = -2
UNSTABLE, STABLE = 1, 2
U8_MAX = 255
MAX_PASSES = 64

COUNTERS = ("pages_shared", "pages_sharing", "pages_unshared", "pages_volatile",
            "ksm_zero_pages", "general_profit", "stable_node_chains", "stable_node_dups")
PROCESS_COUNTERS = ("ksm_rmap_items", "ksm_merging_pages", "ksm_zero_pages",
                    "ksm_process_profit")

KNOB_DEFAULTS: dict[str, int] = {
    "use_zero_pages": 0, "max_page_sharing": 256, "merge_across_nodes": 1, "smart_scan": 0,
    "stable_node_chains_prune_millisecs": 0,
}

declare("KSM-POL-001", "scenario knob defaults",
        """Absent knobs take the kernel defaults (use_zero_pages 0, max_page_sharing 256,
        merge_across_nodes 1), except smart_scan, which defaults to 0, and
        stable_node_chains_prune_millisecs, which is 0 (prune on every chain lookup): both
        kernel defaults make results depend on wall-clock timing.""",
        "mm/ksm.c:ksm_init @ v6.18", obj=KNOB_DEFAULTS, module=__name__)


class KsmError(Exception):
    """An operation the kernel would refuse, or a scenario the model cannot run."""


@attrs.define
class Page:
    id: int
    content: str
    mapcount: int = 1
    #: id of the stable node when this is a KSM page ("PageKsm", folio->mapping tag).
    stable_node: int | None = None
    ksm: bool = False
    #: SKSM canonical copy (write always COWs).
    sksm: bool = False


@attrs.define
class RmapItem:
    mm: str
    address: int
    flags: int = 0
    head: int | None = None
    #: None: zero-allocated item (the kernel's oldchecksum 0 never equals a real checksum).
    oldchecksum: str | None = None
    age: int = 0
    remaining_skips: int = 0
    seqnr: int = 0


@attrs.define
class StableNode:
    id: int
    #: the tree key (see _tree_key)
    content: str
    kpage: int
    #: rmap_items in hlist order (hlist_add_head: newest first).
    hlist: list[RmapItem] = attrs.Factory(list)
    chain: int | None = None
    #: appends past max_page_sharing allowed for forked KSM pages (max_page_sharing_bypass).
    bypassed: int = 0


@attrs.define
class Chain:
    id: int
    content: str
    dups: list[int] = attrs.Factory(list)


@attrs.define
class Mm:
    name: str
    #: per page index: page id, KSM_ZERO_PTE / SKSM_ZERO_PTE, or None (unmapped).
    ptes: list[int | None]
    mergeable: list[bool]
    registered: bool = False
    merge_any: bool = False
    exited: bool = False
    #: security domain (only used by the per-domain merge policy, KSM-PROP-002)
    domain: str = ""
    rmap: dict[int, RmapItem] = attrs.Factory(dict)
    ksm_rmap_items: int = 0
    ksm_merging_pages: int = 0
    ksm_zero_pages: int = 0
    #: what each page reads as (isolation invariant, KSM-INV-001).
    expected: list[str | None] = attrs.Factory(list)


@attrs.define
class KsmState:
    knobs: dict[str, int]
    variant: str = "v6.18"
    #: model-only policy: pages merge only with pages of the same domain (KSM-PROP-002).
    per_domain: bool = False
    mms: dict[str, Mm] = attrs.Factory(dict)
    #: ksm_mm_head order; the scan cursor rests at the head between passes.
    mm_list: list[str] = attrs.Factory(list)
    pages: dict[int, Page] = attrs.Factory(dict)
    nodes: dict[int, StableNode] = attrs.Factory(dict)
    chains: dict[int, Chain] = attrs.Factory(dict)
    #: the stable tree: tree key (the content; "domain/content" per domain) -> ("node", id)
    #: or ("chain", id).
    stable: dict[str, tuple[str, int]] = attrs.Factory(dict)
    #: the stable rbtree's shape: tree key -> [left, right, parent, red] (lib/rbtree.c).
    rb: dict[str, list[Any]] = attrs.Factory(dict)
    rb_root: str | None = None
    #: the unstable tree of the current pass: content -> rmap_item.
    unstable: dict[str, RmapItem] = attrs.Factory(dict)
    #: SKSM's hash table: content -> canonical page id (ZERO maps the zero page).
    sksm_ht: dict[str, int] = attrs.Factory(dict)
    next_id: int = 1
    seqnr: int = 0
    pages_shared: int = 0
    pages_sharing: int = 0
    pages_unshared: int = 0
    ksm_rmap_items: int = 0
    ksm_zero_pages: int = 0
    stable_node_chains: int = 0
    stable_node_dups: int = 0
    pages_scanned: int = 0
    pages_skipped: int = 0

    @property
    def full_scans(self) -> int:
        return self.seqnr

    @property
    def max_page_sharing(self) -> int:
        return self.knobs["max_page_sharing"]


def new_state(knobs: dict[str, int] | None = None, variant: str = "v6.18",
              per_domain: bool = False) -> KsmState:
    k = dict(KNOB_DEFAULTS)
    k.update(knobs or {})
    if k["max_page_sharing"] < 2:
        raise KsmError("max_page_sharing must be >= 2 (max_page_sharing_store: EINVAL)")
    if variant not in VARIANTS:
        raise KsmError(f"unknown KSM variant {variant!r} (known: {', '.join(VARIANTS)})")
    return KsmState(knobs=k, variant=variant, per_domain=per_domain)


def _tree_key(s: KsmState, mm: str, content: str) -> str:
    """The key pages are matched by in both trees: the content, prefixed by the mm's domain
    under the per-domain policy (so pages of two domains never compare equal)."""
    return f"{s.mms[mm].domain}/{content}" if s.per_domain else content


def _alloc_id(s: KsmState) -> int:
    s.next_id += 1
    return s.next_id


def _new_page(s: KsmState, content: str) -> int:
    pid = _alloc_id(s)
    s.pages[pid] = Page(pid, content)
    return pid


def _put_page(s: KsmState, pid: int) -> None:
    """Drop one mapping; a page with no mapping left is freed (its stable node goes stale)."""
    p = s.pages[pid]
    p.mapcount -= 1
    if p.mapcount == 0:
        del s.pages[pid]
        if p.sksm and s.sksm_ht.get(p.content) == pid:
            del s.sksm_ht[p.content]


def _read(s: KsmState, pte: int | None) -> str | None:
    if pte is None:
        return None
    if pte in (KSM_ZERO_PTE, SKSM_ZERO_PTE):
        return ZERO
    return s.pages[pte].content


# --- user operations -------------------------------------------------------------------------

def _op(fn: Any) -> Any:
    """Run ``fn`` on a copy: operations never change the caller's state."""

    def wrapper(state: KsmState, *args: Any, **kw: Any) -> tuple[KsmState, Any]:
        s = copy.deepcopy(state)
        return s, fn(s, *args, **kw)

    wrapper.__doc__ = fn.__doc__
    wrapper.__name__ = fn.__name__
    wrapper.__qualname__ = fn.__qualname__
    wrapper.__wrapped__ = fn  # type: ignore[attr-defined]
    return wrapper


def _mm(s: KsmState, name: str) -> Mm:
    mm = s.mms.get(name)
    if mm is None or mm.exited:
        raise KsmError(f"no live process {name!r}")
    return mm


def _range(mm: Mm, start: int, count: int) -> range:
    if start < 0 or count < 0 or start + count > len(mm.ptes):
        raise KsmError(f"pages {start}..{start + count - 1} outside process {mm.name!r} "
                       f"({len(mm.ptes)} pages)")
    return range(start, start + count)


@_op
def create_process(s: KsmState, name: str, contents: Iterable[str], domain: str = "") -> None:
    """mmap(MAP_PRIVATE|MAP_ANONYMOUS) and write every page: each page is a fresh exclusive
    anonymous page holding its content (a written zero page is a real page, not ZERO_PAGE)."""
    if name in s.mms:
        raise KsmError(f"process {name!r} exists")
    ptes: list[int | None] = [_new_page(s, c) for c in contents]
    s.mms[name] = Mm(name, ptes, [False] * len(ptes), expected=list(contents), domain=domain)


def _ksm_enter(s: KsmState, mm: Mm) -> None:
    # __ksm_enter: insert just behind the scan cursor; between passes the cursor rests at the
    # head, so the new slot goes to the list tail and is first scanned in the next pass.
    mm.registered = True
    s.mm_list.append(mm.name)


@rule("KSM-OP-010", "MADV_MERGEABLE registers the mm at the tail and marks the range",
      "mm/ksm.c:ksm_madvise @ v6.18")
def _madvise_mergeable(s: KsmState, mm: Mm, pages: range) -> None:
    """MADV_MERGEABLE sets VM_MERGEABLE on the range (splitting VMAs: per page here). The
    first time an mm without MMF_VM_MERGEABLE asks, __ksm_enter adds its mm_slot just
    behind the scan cursor (the list tail between passes). Nothing is merged in the call."""
    if not mm.registered:
        _ksm_enter(s, mm)
    for i in pages:
        if mm.ptes[i] is not None:
            mm.mergeable[i] = True


def _break_ksm(s: KsmState, mm: Mm, i: int) -> None:
    pte = mm.ptes[i]
    if pte == KSM_ZERO_PTE:
        # unshare fault on the zero page: a fresh zeroed page; ksm_might_unmap_zero_page.
        s.ksm_zero_pages -= 1
        mm.ksm_zero_pages -= 1
        mm.ptes[i] = _new_page(s, ZERO)
    elif pte is not None and s.pages[pte].ksm:
        content = s.pages[pte].content
        _put_page(s, pte)
        mm.ptes[i] = _new_page(s, content)


@rule("KSM-OP-011", "MADV_UNMERGEABLE breaks COW at once; counters follow at the next visit",
      "mm/ksm.c:unmerge_ksm_pages @ v6.18")
def _madvise_unmergeable(s: KsmState, mm: Mm, pages: range) -> None:
    """On VM_MERGEABLE pages of the range, break_ksm unshares every KSM page and every KSM
    zero PTE (FAULT_FLAG_UNSHARE: a private copy with the same content), and VM_MERGEABLE is
    cleared. ksm_zero_pages drops at once; rmap_items, pages_shared/pages_sharing and
    ksm_merging_pages are left for ksmd's next visit of those addresses."""
    for i in pages:
        if mm.ptes[i] is not None and mm.mergeable[i]:
            _break_ksm(s, mm, i)
            mm.mergeable[i] = False


@rule("KSM-OP-017", "SKSM MADV_MERGE merges the range synchronously",
      "mm/sksm.c:sksm_merge @ RFC v6.13 (Desnoyers, 2025-02-28)", variants=("sksm",))
def _madvise_merge(s: KsmState, mm: Mm, pages: range) -> None:
    """MADV_MERGE (26), SKSM RFC: for every present anonymous page of the range, in address
    order, write-protect it, checksum it and look the content up in the global hash table
    (ZERO_PAGE pre-inserted): on a hit the PTE is replaced by the canonical page (zero
    content maps the shared zero page), otherwise this page becomes the canonical copy. No
    ksmd, no rmap_items, no max_page_sharing; any later write to a merged page COWs."""
    for i in pages:
        pte = mm.ptes[i]
        if pte is None or pte < 0:
            continue
        p = s.pages[pte]
        if p.content == ZERO:
            _put_page(s, pte)
            mm.ptes[i] = SKSM_ZERO_PTE
            continue
        canon = s.sksm_ht.get(p.content)
        if canon == pte:
            continue
        if canon is None:
            p.sksm = True
            s.sksm_ht[p.content] = pte
            continue
        _put_page(s, pte)
        s.pages[canon].mapcount += 1
        mm.ptes[i] = canon


@_op
def madvise(s: KsmState, name: str, start: int, count: int, advice: str) -> None:
    """madvise(MADV_MERGEABLE=12 | MADV_UNMERGEABLE=13 | MADV_MERGE=26) on page range."""
    mm = _mm(s, name)
    pages = _range(mm, start, count)
    sksm = s.variant == "sksm"
    if advice == "merge":
        if not sksm:
            raise KsmError("MADV_MERGE is SKSM (variant 'sksm'); Kconfig SKSM depends on !KSM")
        _madvise_merge(s, mm, pages)
    elif advice in ("mergeable", "unmergeable"):
        if sksm:
            raise KsmError(f"advice {advice!r} needs KSM; variant 'sksm' has no KSM")
        (_madvise_mergeable if advice == "mergeable" else _madvise_unmergeable)(s, mm, pages)
    else:
        raise KsmError(f"unknown advice {advice!r}")


@rule("KSM-OP-012", "a write to a shared page copies it; counters follow at the next visit",
      "mm/memory.c:do_wp_page @ v6.18")
def _write(s: KsmState, mm: Mm, i: int, content: str) -> None:
    """A write to a KSM page, an SKSM page, a page still shared after fork, or a zero PTE
    takes a copy-on-write fault: the writer gets a private page with the new content, the
    old page loses a mapping (a KSM page with none left is freed, so its stable node is
    stale). wp_can_reuse_anon_folio never reuses a KSM folio, even with one mapping. A KSM
    zero PTE decrements ksm_zero_pages at once; nothing else changes until ksmd visits."""
    pte = mm.ptes[i]
    if pte is None:
        raise KsmError(f"write to unmapped page {i} of {mm.name!r}")
    if pte == KSM_ZERO_PTE:
        s.ksm_zero_pages -= 1
        mm.ksm_zero_pages -= 1
        mm.ptes[i] = _new_page(s, content)
    elif pte == SKSM_ZERO_PTE:
        mm.ptes[i] = _new_page(s, content)
    else:
        p = s.pages[pte]
        if p.ksm or p.sksm or p.mapcount > 1:
            _put_page(s, pte)
            mm.ptes[i] = _new_page(s, content)
        else:
            p.content = content
    mm.expected[i] = content


@_op
def write(s: KsmState, name: str, page: int, content: str) -> None:
    """Store ``content`` into one page of a process."""
    mm = _mm(s, name)
    _range(mm, page, 1)
    _write(s, mm, page, content)


def _zap(s: KsmState, mm: Mm, i: int) -> None:
    pte = mm.ptes[i]
    if pte == KSM_ZERO_PTE:
        s.ksm_zero_pages -= 1
        mm.ksm_zero_pages -= 1
    elif pte is not None and pte >= 0:
        _put_page(s, pte)
    mm.ptes[i] = None
    mm.mergeable[i] = False
    mm.expected[i] = None


@rule("KSM-OP-015", "munmap zaps the range; a KSM zero PTE is uncounted at once",
      "mm/memory.c:zap_pte_range @ v6.18")
def _munmap(s: KsmState, mm: Mm, pages: range) -> None:
    """munmap unmaps the pages (ksm_might_unmap_zero_page decrements ksm_zero_pages for
    each KSM zero PTE). rmap_items of the range are freed at ksmd's next visit of the mm; an
    mm left with no VM_MERGEABLE VMA loses its mm_slot at that visit."""
    for i in pages:
        _zap(s, mm, i)


@_op
def munmap(s: KsmState, name: str, start: int, count: int) -> None:
    """munmap a page range of a process."""
    mm = _mm(s, name)
    _munmap(s, mm, _range(mm, start, count))


@rule("KSM-OP-013", "fork shares every page; the child is registered at the tail",
      "kernel/fork.c:dup_mmap, include/linux/ksm.h:ksm_fork @ v6.18")
def _fork(s: KsmState, parent: Mm, child: str) -> None:
    """The child maps the parent's pages (copy-on-write) and inherits VM_MERGEABLE and
    MMF_VM_MERGE_ANY. If the parent has MMF_VM_MERGEABLE, ksm_fork registers the child at the
    list tail with ksm_rmap_items = ksm_merging_pages = 0 and the parent's ksm_zero_pages,
    which the global ksm_zero_pages also gains (4d6fc29f3634, v6.18). Variant v6.17 (before
    that fix): the child copies the parent's ksm_rmap_items and ksm_merging_pages and the
    global counter does not gain the inherited zero pages."""
    if child in s.mms:
        raise KsmError(f"process {child!r} exists")
    ptes = list(parent.ptes)
    for pte in ptes:
        if pte is not None and pte >= 0:
            s.pages[pte].mapcount += 1
    c = Mm(child, ptes, list(parent.mergeable), merge_any=parent.merge_any,
           expected=list(parent.expected), domain=parent.domain)
    c.ksm_zero_pages = parent.ksm_zero_pages
    s.mms[child] = c
    if parent.registered:
        if s.variant == "v6.17":
            c.ksm_rmap_items = parent.ksm_rmap_items
            c.ksm_merging_pages = parent.ksm_merging_pages
        else:
            s.ksm_zero_pages += c.ksm_zero_pages
        _ksm_enter(s, c)


@_op
def fork(s: KsmState, name: str, child: str) -> None:
    """fork(): ``child`` is a copy of process ``name``."""
    _fork(s, _mm(s, name), child)


@rule("KSM-OP-014", "exit zaps every page; the slot is freed now or at ksmd's next visit",
      "mm/ksm.c:__ksm_exit @ v6.18")
def _exit(s: KsmState, mm: Mm) -> None:
    """At exit every page is zapped (KSM zero PTEs uncounted at once). __ksm_exit frees an
    mm_slot without rmap_items at once; one with rmap_items is moved right after the scan
    cursor (the list head between passes), so the next pass visits it first and frees its
    rmap_items (counters of the dead mm stay until then)."""
    for i in range(len(mm.ptes)):
        _zap(s, mm, i)
    mm.exited = True
    if mm.registered:
        s.mm_list.remove(mm.name)
        if mm.rmap:
            s.mm_list.insert(0, mm.name)
        else:
            mm.registered = False
    if not mm.registered:
        del s.mms[mm.name]


@_op
def exit_process(s: KsmState, name: str) -> None:
    """The process exits."""
    _exit(s, _mm(s, name))


@rule("KSM-OP-016", "PR_SET_MEMORY_MERGE marks every VMA; clearing it unmerges all",
      "mm/ksm.c:ksm_enable_merge_any, ksm_disable_merge_any @ v6.18")
def _prctl(s: KsmState, mm: Mm, value: int) -> None:
    """prctl(PR_SET_MEMORY_MERGE, 1): registers the mm (if not yet), sets MMF_VM_MERGE_ANY
    and VM_MERGEABLE on every compatible VMA. Value 0: if MMF_VM_MERGE_ANY is set, every
    VMA is unmerged as by MADV_UNMERGEABLE and the flag is cleared."""
    everything = range(len(mm.ptes))
    if value:
        if mm.merge_any:
            return
        if not mm.registered:
            _ksm_enter(s, mm)
        mm.merge_any = True
        for i in everything:
            if mm.ptes[i] is not None:
                mm.mergeable[i] = True
    elif mm.merge_any:
        _madvise_unmergeable(s, mm, everything)
        mm.merge_any = False


@_op
def prctl_memory_merge(s: KsmState, name: str, value: int) -> None:
    """prctl(PR_SET_MEMORY_MERGE, value)."""
    if s.variant == "sksm":
        raise KsmError("PR_SET_MEMORY_MERGE needs KSM; variant 'sksm' has no KSM")
    _prctl(s, _mm(s, name), value)


# --- ksmd: stable tree ------------------------------------------------------------------------

def _stale(s: KsmState, node: StableNode) -> bool:
    # ksm_get_folio: the "keyhole" check fails once the KSM page has been freed.
    return node.kpage not in s.pages


def _remove_node_from_stable_tree(s: KsmState, node: StableNode) -> None:
    for n, item in enumerate(node.hlist):
        if n < len(node.hlist) - 1:
            s.pages_sharing -= 1
        else:
            s.pages_shared -= 1
        s.mms[item.mm].ksm_merging_pages -= 1
        item.flags = 0
        item.head = None
    node.hlist.clear()
    if node.chain is not None:
        s.chains[node.chain].dups.remove(node.id)
        s.stable_node_dups -= 1
    else:
        _rb_erase(s, node.content)
        del s.stable[node.content]
    del s.nodes[node.id]


@rule("KSM-OP-003", "removing an rmap_item from the trees updates the counters",
      "mm/ksm.c:remove_rmap_item_from_tree @ v6.18")
def _remove_rmap_item_from_tree(s: KsmState, item: RmapItem) -> None:
    """A stable item is unlinked from its node (pages_sharing-- if other items remain, else
    pages_shared--; its mm's ksm_merging_pages--); if the node's page was freed, the whole
    node is removed instead (remove_node_from_stable_tree: the same decrements for every
    item still on it, and stable_node_dups-- for a dup). An unstable item decrements
    pages_unshared (lazily: the tree itself was reset at the pass start)."""
    if item.flags == STABLE:
        assert item.head is not None
        node = s.nodes[item.head]
        if _stale(s, node):
            _remove_node_from_stable_tree(s, node)
            return
        node.hlist.remove(item)
        if node.hlist:
            s.pages_sharing -= 1
        else:
            s.pages_shared -= 1
        s.mms[item.mm].ksm_merging_pages -= 1
        item.head = None
        item.flags = 0
    elif item.flags == UNSTABLE:
        if item.seqnr == s.seqnr and s.unstable.get(_item_content(s, item)) is item:
            del s.unstable[_item_content(s, item)]
        s.pages_unshared -= 1
        item.flags = 0


def _item_content(s: KsmState, item: RmapItem) -> str:
    return _tree_key(s, item.mm, item.oldchecksum or "")


def _candidate(node: StableNode, mps: int, offset: int = 0) -> bool:
    """is_page_sharing_candidate: at least one mapping, and room for one more (+offset)."""
    return len(node.hlist) > 0 and len(node.hlist) + offset < mps


@rule("KSM-OP-006", "a chain lookup prunes stale dups, picks the best, collapses a lone dup",
      "mm/ksm.c:stable_node_dup @ v6.18")
def _stable_node_dup(s: KsmState, chain: Chain, prune: bool) -> StableNode | None:
    """Walk the dups in list order, dropping stale ones. The first live dup is taken, then
    replaced by any sharing candidate when the taken one is not, or by a candidate with more
    rmap_items; outside a prune walk the walk stops at the first candidate. If the found dup
    is the only one left the chain collapses into a plain node (stable_node_chains--,
    stable_node_dups--); otherwise a found dup that could take two more sharers moves to
    the head. A chain with no live dup is freed (stable_node_chains--)."""
    mps = s.max_page_sharing
    found: StableNode | None = None
    for dup_id in list(chain.dups):
        dup = s.nodes[dup_id]
        if _stale(s, dup):
            _remove_node_from_stable_tree(s, dup)
            continue
        if found is None or (_candidate(dup, mps) and (
                not _candidate(found, mps) or len(dup.hlist) > len(found.hlist))):
            found = dup
            if not prune and _candidate(found, mps):
                break
    if found is None:
        _rb_erase(s, chain.content)
        del s.stable[chain.content]
        del s.chains[chain.id]
        s.stable_node_chains -= 1
        return None
    if len(chain.dups) == 1:
        found.chain = None
        s.stable[chain.content] = ("node", found.id)
        del s.chains[chain.id]
        s.stable_node_chains -= 1
        s.stable_node_dups -= 1
    elif chain.dups[0] != found.id and _candidate(found, mps, 1):
        chain.dups.remove(found.id)
        chain.dups.insert(0, found.id)
    return found


def _lookup(s: KsmState, key: str, prune: bool) -> tuple[str, StableNode] | None:
    """Descend the stable rbtree towards ``key`` as stable_tree_search (prune) and
    stable_tree_insert (no prune) do: every node on the path is resolved first (chain_prune
    or chain: stale dups dropped, a lone dup collapses its chain, a dead chain or a stale node
    is erased and the descent restarts from the root), then compared by memcmp order. Returns
    the resolved (kind, node) of ``key``, or None."""
    target = _memcmp_key(s, key)
    while True:
        cur = s.rb_root
        restart = False
        while cur is not None:
            kind, ident = s.stable[cur]
            if kind == "node":
                node = s.nodes[ident]
                if _stale(s, node):
                    _remove_node_from_stable_tree(s, node)
                    restart = True
                    break
                found: StableNode | None = node
            else:
                found = _stable_node_dup(s, s.chains[ident], prune)
                if found is None:
                    restart = True
                    break
            here = _memcmp_key(s, cur)
            if target < here:
                cur = s.rb[cur][0]
            elif target > here:
                cur = s.rb[cur][1]
            else:
                assert found is not None
                return ("node" if found.chain is None else "chain"), found
        if not restart:
            return None


# --- the stable tree's rbtree (lib/rbtree.c: rb_insert_color, rb_erase) ----------------------
# Only the shape matters here: it decides which nodes a lookup passes, and a lookup prunes
# and collapses the chains it passes. Node = [left, right, parent, red].

def _memcmp_key(s: KsmState, key: str) -> tuple[str, bytes]:
    """The order memcmp_pages gives the pages of a tree key: the label's bytes are a 32-byte
    SHA-256 digest repeated (zeros for "0"), see checker.ksm_scenario.content_bytes."""
    import hashlib
    dom, content = key.split("/", 1) if s.per_domain and "/" in key else ("", key)
    return dom, (bytes(32) if content == ZERO else hashlib.sha256(content.encode()).digest())


def _rb_insert(s: KsmState, key: str) -> None:
    """rb_link_node at the leaf where the descent for ``key`` ends, then rb_insert_color."""
    target = _memcmp_key(s, key)
    parent, cur, side = None, s.rb_root, 0
    while cur is not None:
        parent = cur
        side = 0 if target < _memcmp_key(s, cur) else 1
        cur = s.rb[cur][side]
    s.rb[key] = [None, None, parent, True]
    if parent is None:
        s.rb_root = key
    else:
        s.rb[parent][side] = key
    _rb_insert_color(s, key)


def _rb_change_child(s: KsmState, old: str, new: str | None, parent: str | None) -> None:
    if parent is None:
        s.rb_root = new
    elif s.rb[parent][0] == old:
        s.rb[parent][0] = new
    else:
        s.rb[parent][1] = new


def _rb_rotate_set_parents(s: KsmState, old: str, new: str, red: bool) -> None:
    parent = s.rb[old][2]
    s.rb[new][2], s.rb[new][3] = parent, s.rb[old][3]
    s.rb[old][2], s.rb[old][3] = new, red
    _rb_change_child(s, old, new, parent)


def _set(s: KsmState, n: str | None, parent: str | None, red: bool) -> None:
    if n is not None:
        s.rb[n][2], s.rb[n][3] = parent, red


def _rb_insert_color(s: KsmState, node: str) -> None:
    rb = s.rb
    parent = rb[node][2]
    while True:
        if parent is None:
            _set(s, node, None, False)
            return
        if not rb[parent][3]:
            return
        gparent = rb[parent][2]
        assert gparent is not None
        left = rb[gparent][1] != parent       # parent is gparent's left child
        a, b = (0, 1) if left else (1, 0)      # mirror for the right-hand case
        uncle = rb[gparent][b]
        if uncle is not None and rb[uncle][3]:
            _set(s, uncle, gparent, False)
            _set(s, parent, gparent, False)
            node = gparent
            parent = rb[node][2]
            _set(s, node, parent, True)
            continue
        tmp = rb[parent][b]
        if node == tmp:
            tmp = rb[node][a]
            rb[parent][b] = tmp
            rb[node][a] = parent
            if tmp is not None:
                _set(s, tmp, parent, False)
            _set(s, parent, node, True)
            parent = node
            tmp = rb[node][b]
        rb[gparent][a] = tmp
        rb[parent][b] = gparent
        if tmp is not None:
            _set(s, tmp, gparent, False)
        _rb_rotate_set_parents(s, gparent, parent, True)
        return


def _rb_erase(s: KsmState, node: str) -> None:
    rb = s.rb
    child, tmp = rb[node][1], rb[node][0]
    rebalance: str | None
    if tmp is None:
        parent, red = rb[node][2], rb[node][3]
        _rb_change_child(s, node, child, parent)
        if child is not None:
            _set(s, child, parent, red)
            rebalance = None
        else:
            rebalance = parent if not red else None
    elif child is None:
        parent, red = rb[node][2], rb[node][3]
        _set(s, tmp, parent, red)
        _rb_change_child(s, node, tmp, parent)
        rebalance = None
    else:
        successor = child
        tmp = rb[child][0]
        if tmp is None:
            parent = successor
            child2 = rb[successor][1]
        else:
            while tmp is not None:
                parent = successor
                successor = tmp
                tmp = rb[tmp][0]
            child2 = rb[successor][1]
            rb[parent][0] = child2
            rb[successor][1] = child
            rb[child][2] = successor
        tmp = rb[node][0]
        rb[successor][0] = tmp
        assert tmp is not None
        rb[tmp][2] = successor
        npar, nred = rb[node][2], rb[node][3]
        _rb_change_child(s, node, successor, npar)
        if child2 is not None:
            _set(s, child2, parent, False)
            rebalance = None
        else:
            rebalance = parent if not rb[successor][3] else None
        rb[successor][2], rb[successor][3] = npar, nred
    del rb[node]
    if rebalance is not None:
        _rb_erase_color(s, rebalance)


def _rb_erase_color(s: KsmState, parent: str) -> None:
    rb = s.rb
    node: str | None = None
    while True:
        left = rb[parent][1] != node          # node is parent's left child
        a, b = (0, 1) if left else (1, 0)
        sibling = rb[parent][b]
        assert sibling is not None
        if rb[sibling][3]:
            tmp1 = rb[sibling][a]
            rb[parent][b] = tmp1
            rb[sibling][a] = parent
            _set(s, tmp1, parent, False)
            _rb_rotate_set_parents(s, parent, sibling, True)
            sibling = tmp1
            assert sibling is not None
        tmp1 = rb[sibling][b]
        if tmp1 is None or not rb[tmp1][3]:
            tmp2 = rb[sibling][a]
            if tmp2 is None or not rb[tmp2][3]:
                _set(s, sibling, parent, True)
                if rb[parent][3]:
                    rb[parent][3] = False
                else:
                    node = parent
                    nxt = rb[node][2]
                    if nxt is not None:
                        parent = nxt
                        continue
                return
            tmp1 = rb[tmp2][b]
            rb[sibling][a] = tmp1
            rb[tmp2][b] = sibling
            rb[parent][b] = tmp2
            if tmp1 is not None:
                _set(s, tmp1, sibling, False)
            tmp1 = sibling
            sibling = tmp2
        tmp2 = rb[sibling][a]
        rb[parent][b] = tmp2
        rb[sibling][a] = parent
        _set(s, tmp1, sibling, False)
        if tmp2 is not None:
            rb[tmp2][2] = parent
        _rb_rotate_set_parents(s, parent, sibling, False)
        return


@rule("KSM-OP-004", "the stable tree is searched after the checksum test; full dups miss",
      "mm/ksm.c:stable_tree_search @ v6.18")
def _stable_tree_search(s: KsmState, page: Page, key: str) -> int | None:
    """A KSM page found at a visit is returned as is ("ksm page forked"). Otherwise the
    content is looked up (chain_prune on a chain, pruning on every lookup since
    stable_node_chains_prune_millisecs is 0); the KSM page of the found node is returned
    only if that node is a sharing candidate (0 < rmap_hlist_len < max_page_sharing), else
    the page must pair in the unstable tree to start a new dup."""
    if page.ksm:
        return page.id
    found = _lookup(s, key, prune=s.knobs["stable_node_chains_prune_millisecs"] == 0)
    if found is None or not _candidate(found[1], s.max_page_sharing):
        return None
    return found[1].kpage


@rule("KSM-OP-005", "a new KSM page of an existing content becomes a dup of a chain",
      "mm/ksm.c:stable_tree_insert, alloc_stable_node_chain @ v6.18")
def _stable_tree_insert(s: KsmState, kpage: Page, key: str) -> StableNode:
    """A new stable node (rmap_hlist_len 0) for the new KSM page. If the content is already
    in the stable tree (all its dups were full), a plain node is first turned into a chain
    (stable_node_chains++, the old node a dup: stable_node_dups++) and the new node is added
    as a dup at the chain head (stable_node_dups++)."""
    found = _lookup(s, key, prune=False)
    node = StableNode(_alloc_id(s), key, kpage.id)
    s.nodes[node.id] = node
    kpage.ksm = True
    kpage.stable_node = node.id
    if found is None:
        s.stable[key] = ("node", node.id)
        _rb_insert(s, key)
        return node
    kind, old = found
    if kind == "node":
        chain = Chain(_alloc_id(s), key, [old.id])
        s.chains[chain.id] = chain
        s.stable[key] = ("chain", chain.id)
        old.chain = chain.id
        s.stable_node_chains += 1
        s.stable_node_dups += 1
    else:
        assert old.chain is not None
        chain = s.chains[old.chain]
    node.chain = chain.id
    chain.dups.insert(0, node.id)
    s.stable_node_dups += 1
    return node


def _stable_tree_append(s: KsmState, item: RmapItem, node: StableNode, bypass: bool) -> None:
    node.hlist.insert(0, item)
    if bypass:
        node.bypassed += 1
    item.head = node.id
    item.flags = STABLE
    if len(node.hlist) > 1:
        s.pages_sharing += 1
    else:
        s.pages_shared += 1
    s.mms[item.mm].ksm_merging_pages += 1


declare("KSM-OP-007", "stable_tree_append counts the first item as shared, others as sharing",
        """stable_tree_append adds the rmap_item at the head of the node's hlist: if the hlist
        was empty pages_shared++, else pages_sharing++; the item's mm gains one
        ksm_merging_pages. Hence pages_shared = number of stable nodes with an item and
        pages_sharing = sum over nodes of (rmap_hlist_len - 1).""",
        "mm/ksm.c:stable_tree_append @ v6.18", obj=_stable_tree_append, module=__name__)


def _replace_mapping(s: KsmState, item: RmapItem, kpage: Page) -> None:
    """replace_page: the item's PTE now maps ``kpage``; the old page loses a mapping."""
    mm = s.mms[item.mm]
    old = mm.ptes[item.address]
    assert old is not None and old >= 0
    if old == kpage.id:
        return
    kpage.mapcount += 1
    mm.ptes[item.address] = kpage.id
    _put_page(s, old)


@rule("KSM-OP-002", "a page is compared and merged only once its checksum is unchanged",
      "mm/ksm.c:cmp_and_merge_page @ v6.18")
def _cmp_and_merge_page(s: KsmState, page: Page, item: RmapItem) -> None:
    """One visit. A KSM page whose node already holds this item: nothing. A KSM page mapped
    by an item that is not on its node (a forked mapping): the item is appended to the node,
    over max_page_sharing if need be. Any other page: the item leaves its tree; if the page's
    checksum differs from the item's oldchecksum it is stored and the visit ends (volatile:
    a fresh item always ends here, so a merge needs two visits). With use_zero_pages a
    zero-content page is then replaced by the zero page. Else the stable tree is searched
    (merge into a found candidate); else the unstable tree: a match T (not the same
    physical page) merges with this page, which becomes the KSM page (T's PTE is re-pointed
    to it), a new stable node gets T then this item (pages_shared++, pages_sharing++,
    pages_unshared-- for T); no match inserts the item (pages_unshared++)."""
    bypass = False
    node_id = page.stable_node if page.ksm else None
    if node_id is not None:
        node = s.nodes[node_id]
        if item.flags == STABLE and item.head == node_id:
            return
        bypass = not _candidate(node, s.max_page_sharing)
    else:
        _remove_rmap_item_from_tree(s, item)
        if item.oldchecksum != page.content:
            item.oldchecksum = page.content
            return
        if s.knobs["use_zero_pages"] and page.content == ZERO:
            _merge_with_zero_page(s, item)
            return
    key = _tree_key(s, item.mm, page.content)
    kpage = _stable_tree_search(s, page, key)
    _remove_rmap_item_from_tree(s, item)
    if kpage is not None:
        kp = s.pages[kpage]
        _replace_mapping(s, item, kp)
        assert kp.stable_node is not None
        _stable_tree_append(s, item, s.nodes[kp.stable_node], bypass)
        return
    tree_item = s.unstable.get(key)
    if tree_item is not None:
        tree_mm = s.mms[tree_item.mm]
        if tree_mm.ptes[tree_item.address] == page.id:
            return  # "Don't substitute a ksm page for a forked page."
        _remove_rmap_item_from_tree(s, tree_item)
        node = _stable_tree_insert(s, page, key)
        _replace_mapping(s, tree_item, page)
        _stable_tree_append(s, tree_item, node, False)
        _stable_tree_append(s, item, node, False)
        return
    item.flags = UNSTABLE
    item.seqnr = s.seqnr
    s.unstable[key] = item
    s.pages_unshared += 1


@rule("KSM-OP-008", "use_zero_pages maps an unchanged zero page to the zero page",
      "mm/ksm.c:try_to_merge_with_zero_page @ v6.18")
def _merge_with_zero_page(s: KsmState, item: RmapItem) -> None:
    """With use_zero_pages, a page whose unchanged checksum is the zero checksum is
    replaced by a dirty-marked zero-page PTE: ksm_zero_pages++ globally and in the mm; no
    stable node. The rmap_item stays (volatile) until the next visit of the mm frees it,
    since the zero page is not a normal page and is not scanned."""
    mm = s.mms[item.mm]
    old = mm.ptes[item.address]
    assert old is not None and old >= 0
    mm.ptes[item.address] = KSM_ZERO_PTE
    _put_page(s, old)
    s.ksm_zero_pages += 1
    mm.ksm_zero_pages += 1


def _skip_age(age: int) -> int:
    if age <= 3:
        return 1
    if age <= 5:
        return 2
    if age <= 8:
        return 4
    return 8


@rule("KSM-OP-009", "smart_scan skips pages that keep failing to merge",
      "mm/ksm.c:should_skip_rmap_item @ v6.18")
def _should_skip_rmap_item(s: KsmState, page: Page, item: RmapItem) -> bool:
    """With smart_scan, a non-KSM page's item ages by one per visit (saturating at 255).
    Ages 0..2 are scanned; then, when remaining_skips is 0 it is set to skip_age(age)
    (<=3: 1, <=5: 2, <=8: 4, else 8) and the page is scanned; otherwise the page is skipped:
    remaining_skips--, pages_skipped++, and the item leaves its tree (so it counts as
    volatile). Skipped pages use no pages_to_scan budget and are not pages_scanned."""
    if not s.knobs["smart_scan"] or page.ksm:
        return False
    age = item.age
    if age != U8_MAX:
        item.age += 1
    if age < 3:
        return False
    if not item.remaining_skips:
        item.remaining_skips = _skip_age(age)
        return False
    s.pages_skipped += 1
    item.remaining_skips -= 1
    _remove_rmap_item_from_tree(s, item)
    return True


def _free_rmap_item(s: KsmState, mm: Mm, item: RmapItem) -> None:
    _remove_rmap_item_from_tree(s, item)
    del mm.rmap[item.address]
    s.ksm_rmap_items -= 1
    mm.ksm_rmap_items -= 1


@rule("KSM-OP-001", "a full scan visits mm slots in list order and pages in address order",
      "mm/ksm.c:scan_get_next_rmap_item @ v6.18")
def _full_scan(s: KsmState) -> None:
    """A pass resets the unstable tree, then visits every mm slot in list order; inside an
    mm, every present normal anonymous page of a VM_MERGEABLE VMA in address order (the
    zero page and unmapped addresses are skipped). get_next_rmap_item reuses the item of
    that address or allocates one (ksm_rmap_items++ globally and in the mm), freeing items
    of addresses passed over; items above the last visited address are freed at the end of
    the mm. An exited mm has all its items freed. An mm with no VM_MERGEABLE VMA left loses
    its slot. The pass ends with full_scans++."""
    s.unstable = {}
    for name in list(s.mm_list):
        mm = s.mms[name]
        visited: set[int] = set()
        passed = _Passed(sorted(mm.rmap))
        if not mm.exited:
            for i, pte in enumerate(mm.ptes):
                if not mm.mergeable[i] or pte is None or pte < 0:
                    continue
                passed.free_below(s, mm, visited, i)
                item = mm.rmap.get(i)
                if item is None:
                    item = mm.rmap[i] = RmapItem(name, i)
                    s.ksm_rmap_items += 1
                    mm.ksm_rmap_items += 1
                visited.add(i)
                page = s.pages[pte]
                if _should_skip_rmap_item(s, page, item):
                    continue
                _cmp_and_merge_page(s, page, item)
                s.pages_scanned += 1
        # remove_trailing_rmap_items (and, for an exited mm, every item)
        passed.free_below(s, mm, visited, None)
        if mm.exited or not any(m for m, p in zip(mm.mergeable, mm.ptes, strict=True)
                                if p is not None):
            s.mm_list.remove(name)
            mm.registered = False
            if mm.exited:
                del s.mms[name]
    s.seqnr += 1


class _Passed:
    """The mm's rmap_list walked once in address order: get_next_rmap_item frees the items
    of addresses the scan passes over without finding a page there."""

    def __init__(self, addresses: list[int]) -> None:
        self.addresses = addresses
        self.next = 0

    def free_below(self, s: KsmState, mm: Mm, visited: set[int], below: int | None) -> None:
        while self.next < len(self.addresses) and (below is None
                                                   or self.addresses[self.next] < below):
            a = self.addresses[self.next]
            self.next += 1
            if a not in visited and a in mm.rmap:
                _free_rmap_item(s, mm, mm.rmap[a])


@_op
def full_scan(s: KsmState) -> None:
    """One complete ksmd pass (see KSM-OP-001)."""
    if s.variant == "sksm":
        return
    _full_scan(s)


# --- counters ---------------------------------------------------------------------------------

@rule("KSM-POL-002", "general_profit and pages_volatile as the sysfs files compute them",
      "mm/ksm.c:general_profit_show, pages_volatile_show @ v6.18")
def counters(s: KsmState) -> dict[str, int]:
    """general_profit = (pages_sharing + ksm_zero_pages) * PAGE_SIZE - ksm_rmap_items *
    sizeof(struct ksm_rmap_item) (64 on x86_64); pages_volatile = ksm_rmap_items -
    pages_shared - pages_sharing - pages_unshared, shown as 0 when negative."""
    volatile = s.ksm_rmap_items - s.pages_shared - s.pages_sharing - s.pages_unshared
    return {
        "pages_shared": s.pages_shared,
        "pages_sharing": s.pages_sharing,
        "pages_unshared": s.pages_unshared,
        "pages_volatile": max(volatile, 0),
        "ksm_zero_pages": s.ksm_zero_pages,
        "general_profit": (s.pages_sharing + s.ksm_zero_pages) * PAGE_SIZE
        - s.ksm_rmap_items * RMAP_ITEM_SIZE,
        "stable_node_chains": s.stable_node_chains,
        "stable_node_dups": s.stable_node_dups,
    }


@rule("KSM-POL-003", "ksm_process_profit and the ksm_stat lines of a process",
      "mm/ksm.c:ksm_process_profit, fs/proc/base.c:proc_pid_ksm_stat @ v6.18")
def process_counters(mm: Mm) -> dict[str, int]:
    """/proc/PID/ksm_stat: ksm_rmap_items, ksm_zero_pages, ksm_merging_pages (every item on
    a stable node, the "shared" one included) and ksm_process_profit = (ksm_merging_pages +
    ksm_zero_pages) * PAGE_SIZE - ksm_rmap_items * 64."""
    return {
        "ksm_rmap_items": mm.ksm_rmap_items,
        "ksm_merging_pages": mm.ksm_merging_pages,
        "ksm_zero_pages": mm.ksm_zero_pages,
        "ksm_process_profit": (mm.ksm_merging_pages + mm.ksm_zero_pages) * PAGE_SIZE
        - mm.ksm_rmap_items * RMAP_ITEM_SIZE,
    }


def sksm_counters(s: KsmState) -> dict[str, int]:
    """SKSM keeps no statistics; these are what a reader of the page tables would count:
    canonical pages, extra mappings of them, and PTEs merged into the zero page."""
    canon = [s.pages[p] for p in s.sksm_ht.values()]
    zero = sum(pte == SKSM_ZERO_PTE for mm in s.mms.values() for pte in mm.ptes)
    return {"sksm_pages_shared": len(canon),
            "sksm_pages_sharing": sum(p.mapcount - 1 for p in canon),
            "sksm_zero_pages": zero}


def observe(s: KsmState) -> dict[str, Any]:
    """One output record: the sysfs counters and every live process's ksm_stat."""
    rec: dict[str, Any] = counters(s)
    rec["processes"] = {n: process_counters(mm) for n, mm in s.mms.items() if not mm.exited}
    if s.variant == "sksm":
        rec["sksm"] = sksm_counters(s)
    return rec


def _fingerprint(rec: dict[str, Any]) -> Any:
    return ({k: rec[k] for k in COUNTERS},
            {n: dict(v) for n, v in sorted(rec["processes"].items())})


@rule("KSM-OP-018", "a scenario 'scan' runs full scans until two leave the counters unchanged",
      "mm/ksm.c:ksm_do_scan @ v6.18")
def scan(state: KsmState) -> tuple[KsmState, dict[str, Any]]:
    """The scenario step "scan": run full passes until the counters (sysfs and every
    ksm_stat) are the same before and after two consecutive passes; the record is taken
    then. The live oracle does the same, stopping ksmd at pass boundaries."""
    s = copy.deepcopy(state)
    history = [_fingerprint(observe(s))]
    for _ in range(MAX_PASSES):
        if s.variant == "sksm":
            break
        _full_scan(s)
        history.append(_fingerprint(observe(s)))
        if len(history) >= 3 and history[-1] == history[-2] == history[-3]:
            break
    else:
        raise KsmError(f"counters did not settle within {MAX_PASSES} full scans")
    return s, observe(s)


# --- invariants -------------------------------------------------------------------------------

@rule("KSM-INV-001", "isolation: every mapping reads what its own writes last put there",
      "mm/ksm.c:try_to_merge_one_page, mm/memory.c:do_wp_page @ v6.18")
def check_isolation(s: KsmState) -> list[str]:
    """Merging only ever maps a page with identical content (pages_identical under the
    write-protected PTE), and every write to a shared page copies it first: so each page of
    each process reads exactly the content that process last wrote (or inherited) there."""
    bad = []
    for mm in s.mms.values():
        for i, pte in enumerate(mm.ptes):
            if _read(s, pte) != mm.expected[i]:
                bad.append(f"{mm.name}[{i}] reads {_read(s, pte)!r}, "
                           f"its last write was {mm.expected[i]!r}")
    return bad


@rule("KSM-INV-002", "every KSM page is mapped; a dup holds at most max_page_sharing items",
      "mm/ksm.c:stable_tree_append, is_page_sharing_candidate @ v6.18")
def check_stable_nodes(s: KsmState) -> list[str]:
    """A stable node with rmap_items points to a KSM page with at least one mapping; its
    rmap_hlist_len never exceeds max_page_sharing except by appends of forked KSM mappings
    (max_page_sharing_bypass); every item on a node maps that node's page or was left
    there for ksmd's next visit; dups of a chain are distinct KSM pages of the chain's
    content (a chain may be left with no dup until its next lookup frees it)."""
    bad = []
    for node in s.nodes.values():
        if node.hlist and node.kpage in s.pages:
            p = s.pages[node.kpage]
            key = node.content.split("/", 1)[1] if s.per_domain else node.content
            if p.mapcount < 1 or not p.ksm or key != p.content:
                bad.append(f"stable node {node.id} page {node.kpage} is not a mapped KSM page")
        if len(node.hlist) - node.bypassed > s.max_page_sharing:
            bad.append(f"stable node {node.id} holds {len(node.hlist)} > max_page_sharing")
    for chain in s.chains.values():
        if any(s.nodes[d].content != chain.content for d in chain.dups):
            bad.append(f"chain {chain.id} has a dup of another content")
        if len({s.nodes[d].kpage for d in chain.dups}) != len(chain.dups):
            bad.append(f"chain {chain.id} has two dups on one page")
    return bad


@rule("KSM-INV-003", "the counter identities",
      "mm/ksm.c:stable_tree_append, remove_rmap_item_from_tree, free_rmap_item @ v6.18")
def check_counters(s: KsmState) -> list[str]:
    """pages_shared = number of stable nodes with an rmap_item; pages_sharing = sum of
    (rmap_hlist_len - 1) over them; pages_unshared = number of items flagged unstable;
    ksm_rmap_items = sum over mms; sum of ksm_merging_pages = pages_shared + pages_sharing;
    ksm_zero_pages = sum over mms = number of KSM zero PTEs; stable_node_chains = number of
    chains; stable_node_dups = number of nodes linked under a chain."""
    bad = []
    nodes = [n for n in s.nodes.values() if n.hlist]
    items = [it for mm in s.mms.values() for it in mm.rmap.values()]
    want = {
        "pages_shared": len(nodes),
        "pages_sharing": sum(len(n.hlist) - 1 for n in nodes),
        "pages_unshared": sum(it.flags == UNSTABLE for it in items),
        "ksm_rmap_items": len(items),
        "ksm_zero_pages": sum(pte == KSM_ZERO_PTE for mm in s.mms.values() for pte in mm.ptes),
        "stable_node_chains": len(s.chains),
        "stable_node_dups": sum(n.chain is not None for n in s.nodes.values()),
    }
    for k, v in want.items():
        if getattr(s, k) != v:
            bad.append(f"{k} = {getattr(s, k)}, the state holds {v}")
    merging = sum(mm.ksm_merging_pages for mm in s.mms.values())
    if s.variant != "v6.17" and merging != s.pages_shared + s.pages_sharing:
        bad.append(f"sum of ksm_merging_pages {merging} != pages_shared + pages_sharing "
                   f"{s.pages_shared + s.pages_sharing}")
    for mm in s.mms.values():
        if s.variant != "v6.17" and mm.ksm_rmap_items != len(mm.rmap):
            bad.append(f"{mm.name}: ksm_rmap_items {mm.ksm_rmap_items} != {len(mm.rmap)}")
        z = sum(pte == KSM_ZERO_PTE for pte in mm.ptes)
        if mm.ksm_zero_pages != z:
            bad.append(f"{mm.name}: ksm_zero_pages {mm.ksm_zero_pages} != {z} zero PTEs")
    return bad


def check_invariants(s: KsmState) -> list[str]:
    """Every KSM state invariant; an empty list when all hold."""
    return check_isolation(s) + check_stable_nodes(s) + check_counters(s)


def page_sharing(s: KsmState) -> dict[str, list[str]]:
    """Per page of each live process, what it maps: 'ksm:<node>' (by the node's first
    rmap position is not stable across implementations, so by content and dup rank),
    'zero', 'anon', or '-' (unmapped). Used by lockstep comparison."""
    out: dict[str, list[str]] = {}
    for mm in s.mms.values():
        if mm.exited:
            continue
        row = []
        for pte in mm.ptes:
            if pte is None:
                row.append("-")
            elif pte == KSM_ZERO_PTE:
                row.append("zero")
            elif s.pages[pte].ksm:
                row.append("ksm")
            else:
                row.append("anon")
        out[mm.name] = row
    return out


# --- the deduplication side channel -------------------------------------------------------------

@rule("KSM-PROP-001", "a write to a merged page faults: what a co-tenant observes",
      "mm/memory.c:do_wp_page, mm/ksm.c:cmp_and_merge_page @ v6.18")
def write_faults(s: KsmState, name: str) -> tuple[bool, ...]:
    """The attacker's observation: for each of its pages, whether a write would take a
    copy-on-write fault (a KSM page, a KSM or SKSM zero PTE, an SKSM page, or a page still
    shared after fork) rather than complete in place. Because KSM merges pages of different
    processes by content alone, this reveals whether any other mergeable page, in any
    process, holds the content the attacker wrote (CVE-2015-2877, CAIN)."""
    mm = s.mms[name]
    out = []
    for pte in mm.ptes:
        if pte is None:
            out.append(False)
        elif pte < 0:
            out.append(True)
        else:
            p = s.pages[pte]
            out.append(p.ksm or p.sksm or p.mapcount > 1)
    return tuple(out)


declare("KSM-PROP-002", "per-domain merging: the attacker's write faults do not depend on "
        "another domain's memory",
        """Under a policy that merges only pages of the same security domain (the tree key is
        the pair domain, content), for every attacker layout and schedule the sequence of
        write-fault outcomes of the attacker's pages is the same whatever the other domains'
        pages hold (noninterference for the copy-on-write channel). The world-readable
        global counters of /sys/kernel/mm/ksm are a separate channel the policy does not
        close: they sum over all domains.""",
        "mm/ksm.c:stable_tree_search, unstable_tree_search_insert @ v6.18 (policy: model only)",
        obj=write_faults, module=__name__)
