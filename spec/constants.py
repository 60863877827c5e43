"""Vocabulary shared by every layer: migratetypes, GFP bits, ALLOC_* flags, the fallback table.

Values are the kernel's own (Linux 6.18, x86-64, CONFIG_CMA and CONFIG_MEMORY_ISOLATION on,
CONFIG_KASAN_HW_TAGS off), so that a number pasted from a tracepoint or from
``/proc/pagetypeinfo`` means the same thing here.
"""

from __future__ import annotations

from spec.rules import declare, rule

# --- migratetypes (include/linux/mmzone.h: enum migratetype) -------------------------------

MIGRATE_UNMOVABLE = 0
MIGRATE_MOVABLE = 1
MIGRATE_RECLAIMABLE = 2
MIGRATE_PCPTYPES = 3
MIGRATE_HIGHATOMIC = MIGRATE_PCPTYPES
MIGRATE_CMA = 4
MIGRATE_ISOLATE = 5
MIGRATE_TYPES = 6

MIGRATETYPE_NAMES: dict[int, str] = {
    MIGRATE_UNMOVABLE: "MIGRATE_UNMOVABLE",
    MIGRATE_MOVABLE: "MIGRATE_MOVABLE",
    MIGRATE_RECLAIMABLE: "MIGRATE_RECLAIMABLE",
    MIGRATE_HIGHATOMIC: "MIGRATE_HIGHATOMIC",
    MIGRATE_CMA: "MIGRATE_CMA",
    MIGRATE_ISOLATE: "MIGRATE_ISOLATE",
}
#: ``migratetype_names[]`` as /proc/pagetypeinfo prints them.
MIGRATETYPE_SHORT_NAMES: dict[int, str] = {
    MIGRATE_UNMOVABLE: "Unmovable",
    MIGRATE_MOVABLE: "Movable",
    MIGRATE_RECLAIMABLE: "Reclaimable",
    MIGRATE_HIGHATOMIC: "HighAtomic",
    MIGRATE_CMA: "CMA",
    MIGRATE_ISOLATE: "Isolate",
}

declare(
    "ALLOC-POL-001", "Migratetype numbering",
    """
    Migratetypes are numbered as in ``enum migratetype``: UNMOVABLE 0, MOVABLE 1,
    RECLAIMABLE 2, HIGHATOMIC 3 (= MIGRATE_PCPTYPES), CMA 4, ISOLATE 5 (with CONFIG_CMA and
    CONFIG_MEMORY_ISOLATION). Only the three types below MIGRATE_PCPTYPES are mergeable and
    have per-CPU lists; HIGHATOMIC, CMA and ISOLATE never merge with another type.
    """,
    "include/linux/mmzone.h:enum migratetype @ v6.18", obj=MIGRATETYPE_NAMES,
    module=__name__)


def migratetype_is_mergeable(mt: int) -> bool:
    return mt < MIGRATE_PCPTYPES


# --- orders ---------------------------------------------------------------------------------

PAGE_ALLOC_COSTLY_ORDER = 3
PAGE_SHIFT = 12
#: ``CONFIG_PCP_BATCH_SCALE_MAX`` (Kconfig default 5).
PCP_BATCH_SCALE_MAX = 5
SWAP_CLUSTER_MAX = 32

# --- GFP bits (include/linux/gfp_types.h) ---------------------------------------------------

__GFP_DMA = 0x01
__GFP_HIGHMEM = 0x02
__GFP_DMA32 = 0x04
__GFP_MOVABLE = 0x08
__GFP_RECLAIMABLE = 0x10
__GFP_HIGH = 0x20
__GFP_IO = 0x40
__GFP_FS = 0x80
__GFP_ZERO = 0x100
# 0x200 is ___GFP_UNUSED_BIT
__GFP_DIRECT_RECLAIM = 0x400
__GFP_KSWAPD_RECLAIM = 0x800
__GFP_WRITE = 0x1000
__GFP_NOWARN = 0x2000
__GFP_RETRY_MAYFAIL = 0x4000
__GFP_NOFAIL = 0x8000
__GFP_NORETRY = 0x10000
__GFP_MEMALLOC = 0x20000
__GFP_COMP = 0x40000
__GFP_NOMEMALLOC = 0x80000
__GFP_HARDWALL = 0x100000
__GFP_THISNODE = 0x200000
__GFP_ACCOUNT = 0x400000
__GFP_ZEROTAGS = 0x800000
__GFP_NO_OBJ_EXT = 0x1000000  # with CONFIG_SLAB_OBJ_EXT (memcg), as on x86-64 distributions
__GFP_SKIP_ZERO = 0  # without CONFIG_KASAN_HW_TAGS
__GFP_SKIP_KASAN = 0  # without CONFIG_KASAN_HW_TAGS

__GFP_RECLAIM = __GFP_DIRECT_RECLAIM | __GFP_KSWAPD_RECLAIM
GFP_ATOMIC = __GFP_HIGH | __GFP_KSWAPD_RECLAIM
GFP_KERNEL = __GFP_RECLAIM | __GFP_IO | __GFP_FS
GFP_KERNEL_ACCOUNT = GFP_KERNEL | __GFP_ACCOUNT
GFP_NOWAIT = __GFP_KSWAPD_RECLAIM | __GFP_NOWARN
GFP_NOIO = __GFP_RECLAIM
GFP_NOFS = __GFP_RECLAIM | __GFP_IO
GFP_USER = __GFP_RECLAIM | __GFP_IO | __GFP_FS | __GFP_HARDWALL
GFP_DMA = __GFP_DMA
GFP_DMA32 = __GFP_DMA32
GFP_HIGHUSER = GFP_USER | __GFP_HIGHMEM
GFP_HIGHUSER_MOVABLE = GFP_HIGHUSER | __GFP_MOVABLE | __GFP_SKIP_KASAN
GFP_TRANSHUGE_LIGHT = ((GFP_HIGHUSER_MOVABLE | __GFP_COMP | __GFP_NOMEMALLOC | __GFP_NOWARN)
                       & ~__GFP_RECLAIM)
GFP_TRANSHUGE = GFP_TRANSHUGE_LIGHT | __GFP_DIRECT_RECLAIM

GFP_BITS: dict[str, int] = {
    "__GFP_DMA": __GFP_DMA, "__GFP_HIGHMEM": __GFP_HIGHMEM, "__GFP_DMA32": __GFP_DMA32,
    "__GFP_MOVABLE": __GFP_MOVABLE, "__GFP_RECLAIMABLE": __GFP_RECLAIMABLE,
    "__GFP_HIGH": __GFP_HIGH, "__GFP_IO": __GFP_IO, "__GFP_FS": __GFP_FS,
    "__GFP_ZERO": __GFP_ZERO, "__GFP_DIRECT_RECLAIM": __GFP_DIRECT_RECLAIM,
    "__GFP_KSWAPD_RECLAIM": __GFP_KSWAPD_RECLAIM, "__GFP_WRITE": __GFP_WRITE,
    "__GFP_NOWARN": __GFP_NOWARN, "__GFP_RETRY_MAYFAIL": __GFP_RETRY_MAYFAIL,
    "__GFP_NOFAIL": __GFP_NOFAIL, "__GFP_NORETRY": __GFP_NORETRY,
    "__GFP_MEMALLOC": __GFP_MEMALLOC, "__GFP_COMP": __GFP_COMP,
    "__GFP_NOMEMALLOC": __GFP_NOMEMALLOC, "__GFP_HARDWALL": __GFP_HARDWALL,
    "__GFP_THISNODE": __GFP_THISNODE, "__GFP_ACCOUNT": __GFP_ACCOUNT,
    "__GFP_ZEROTAGS": __GFP_ZEROTAGS, "__GFP_NO_OBJ_EXT": __GFP_NO_OBJ_EXT,
}
GFP_COMPOSITES: dict[str, int] = {
    "__GFP_RECLAIM": __GFP_RECLAIM, "GFP_ATOMIC": GFP_ATOMIC, "GFP_KERNEL": GFP_KERNEL,
    "GFP_KERNEL_ACCOUNT": GFP_KERNEL_ACCOUNT, "GFP_NOWAIT": GFP_NOWAIT, "GFP_NOIO": GFP_NOIO,
    "GFP_NOFS": GFP_NOFS, "GFP_USER": GFP_USER, "GFP_DMA": GFP_DMA, "GFP_DMA32": GFP_DMA32,
    "GFP_HIGHUSER": GFP_HIGHUSER, "GFP_HIGHUSER_MOVABLE": GFP_HIGHUSER_MOVABLE,
    "GFP_TRANSHUGE_LIGHT": GFP_TRANSHUGE_LIGHT, "GFP_TRANSHUGE": GFP_TRANSHUGE,
}

#: ``__def_gfpflag_names`` of 6.18 (include/trace/events/mmflags.h), as the running 6.18 kernel's
#: ``mm_page_alloc`` format file lists it: the order in which ``show_gfp_flags()`` matches
#: names, composites first; each match removes its bits from what is left to print.
GFP_TRACE_NAMES: tuple[tuple[str, int], ...] = (
    ("GFP_TRANSHUGE", GFP_TRANSHUGE), ("GFP_TRANSHUGE_LIGHT", GFP_TRANSHUGE_LIGHT),
    ("GFP_HIGHUSER_MOVABLE", GFP_HIGHUSER_MOVABLE), ("GFP_HIGHUSER", GFP_HIGHUSER),
    ("GFP_USER", GFP_USER), ("GFP_KERNEL_ACCOUNT", GFP_KERNEL_ACCOUNT),
    ("GFP_KERNEL", GFP_KERNEL), ("GFP_NOFS", GFP_NOFS), ("GFP_ATOMIC", GFP_ATOMIC),
    ("GFP_NOIO", GFP_NOIO), ("GFP_NOWAIT", GFP_NOWAIT), ("GFP_DMA", GFP_DMA),
    ("GFP_DMA32", GFP_DMA32), ("__GFP_RECLAIM", __GFP_RECLAIM),
    ("__GFP_DMA", __GFP_DMA), ("__GFP_HIGHMEM", __GFP_HIGHMEM), ("__GFP_DMA32", __GFP_DMA32),
    ("__GFP_MOVABLE", __GFP_MOVABLE), ("__GFP_RECLAIMABLE", __GFP_RECLAIMABLE),
    ("__GFP_HIGH", __GFP_HIGH), ("__GFP_IO", __GFP_IO), ("__GFP_FS", __GFP_FS),
    ("__GFP_ZERO", __GFP_ZERO), ("__GFP_DIRECT_RECLAIM", __GFP_DIRECT_RECLAIM),
    ("__GFP_KSWAPD_RECLAIM", __GFP_KSWAPD_RECLAIM), ("__GFP_WRITE", __GFP_WRITE),
    ("__GFP_NOWARN", __GFP_NOWARN), ("__GFP_RETRY_MAYFAIL", __GFP_RETRY_MAYFAIL),
    ("__GFP_NOFAIL", __GFP_NOFAIL), ("__GFP_NORETRY", __GFP_NORETRY),
    ("__GFP_MEMALLOC", __GFP_MEMALLOC), ("__GFP_COMP", __GFP_COMP),
    ("__GFP_NOMEMALLOC", __GFP_NOMEMALLOC), ("__GFP_HARDWALL", __GFP_HARDWALL),
    ("__GFP_THISNODE", __GFP_THISNODE), ("__GFP_ACCOUNT", __GFP_ACCOUNT),
    ("__GFP_ZEROTAGS", __GFP_ZEROTAGS), ("__GFP_NO_OBJ_EXT", __GFP_NO_OBJ_EXT),
)

declare(
    "ALLOC-POL-002", "GFP bits and composites",
    """
    GFP bits have the kernel's bit positions (``enum ___GFP_*_BIT``, 0x200 unused) and the
    composites are the kernel's unions: GFP_ATOMIC = __GFP_HIGH|__GFP_KSWAPD_RECLAIM,
    GFP_KERNEL = __GFP_RECLAIM|__GFP_IO|__GFP_FS, GFP_NOWAIT = __GFP_KSWAPD_RECLAIM|__GFP_NOWARN,
    GFP_HIGHUSER_MOVABLE = GFP_USER|__GFP_HIGHMEM|__GFP_MOVABLE, GFP_TRANSHUGE_LIGHT =
    (GFP_HIGHUSER_MOVABLE|__GFP_COMP|__GFP_NOMEMALLOC|__GFP_NOWARN) & ~__GFP_RECLAIM, and
    GFP_TRANSHUGE = GFP_TRANSHUGE_LIGHT|__GFP_DIRECT_RECLAIM. The ``mm_page_alloc`` tracepoint
    prints a mask by matching ``__def_gfpflag_names`` in order, composites first; ``format_gfp``
    and ``parse_gfp`` do the same. The table and its order are checked against the running
    kernel's ``mm_page_alloc`` format file (6.18 moved GFP_DMA32 and __GFP_RECLAIM ahead of the
    single bits and lists every bit by name, where 6.12 listed fewer, in another order).
    """,
    "include/linux/gfp_types.h @ v6.18; include/trace/events/mmflags.h:__def_gfpflag_names",
    obj=GFP_BITS, module=__name__)


def format_gfp(gfp: int) -> str:
    """Print ``gfp`` as ``show_gfp_flags()`` does (``__print_flags`` with ``|``)."""
    if gfp == 0:
        return "none"
    names = []
    rest = gfp
    for name, mask in GFP_TRACE_NAMES:
        if mask and rest & mask == mask:
            names.append(name)
            rest &= ~mask
    if rest:
        names.append(hex(rest))
    return "|".join(names)


def parse_gfp(text: str) -> int:
    """Inverse of :func:`format_gfp`; raises ValueError on an unknown name."""
    text = text.strip()
    if text == "none":
        return 0
    table = dict(GFP_TRACE_NAMES) | GFP_BITS | GFP_COMPOSITES
    gfp = 0
    for part in text.split("|"):
        part = part.strip()
        if part in table:
            gfp |= table[part]
        elif part.startswith("0x"):
            gfp |= int(part, 16)
        else:
            raise ValueError(f"unknown GFP flag {part!r}")
    return gfp


# --- ALLOC_* (mm/internal.h) ----------------------------------------------------------------

WMARK_MIN = 0
WMARK_LOW = 1
WMARK_HIGH = 2
WMARK_PROMO = 3
NR_WMARK = 4

ALLOC_WMARK_MIN = WMARK_MIN
ALLOC_WMARK_LOW = WMARK_LOW
ALLOC_WMARK_HIGH = WMARK_HIGH
ALLOC_NO_WATERMARKS = 0x04
ALLOC_WMARK_MASK = ALLOC_NO_WATERMARKS - 1
ALLOC_OOM = 0x08
ALLOC_NON_BLOCK = 0x10
ALLOC_MIN_RESERVE = 0x20
ALLOC_CPUSET = 0x40
ALLOC_CMA = 0x80
ALLOC_NOFRAGMENT = 0x100
ALLOC_HIGHATOMIC = 0x200
ALLOC_TRYLOCK = 0x400
ALLOC_KSWAPD = 0x800
ALLOC_RESERVES = ALLOC_NON_BLOCK | ALLOC_MIN_RESERVE | ALLOC_HIGHATOMIC | ALLOC_OOM

ALLOC_FLAGS: dict[str, int] = {
    "ALLOC_WMARK_MIN": ALLOC_WMARK_MIN, "ALLOC_WMARK_LOW": ALLOC_WMARK_LOW,
    "ALLOC_WMARK_HIGH": ALLOC_WMARK_HIGH, "ALLOC_NO_WATERMARKS": ALLOC_NO_WATERMARKS,
    "ALLOC_WMARK_MASK": ALLOC_WMARK_MASK, "ALLOC_OOM": ALLOC_OOM,
    "ALLOC_NON_BLOCK": ALLOC_NON_BLOCK, "ALLOC_MIN_RESERVE": ALLOC_MIN_RESERVE,
    "ALLOC_CPUSET": ALLOC_CPUSET, "ALLOC_CMA": ALLOC_CMA, "ALLOC_NOFRAGMENT": ALLOC_NOFRAGMENT,
    "ALLOC_HIGHATOMIC": ALLOC_HIGHATOMIC, "ALLOC_TRYLOCK": ALLOC_TRYLOCK,
    "ALLOC_KSWAPD": ALLOC_KSWAPD, "ALLOC_RESERVES": ALLOC_RESERVES,
}

declare(
    "ALLOC-POL-003", "ALLOC_* flag values",
    """
    Allocation flags have the values of mm/internal.h in 6.15-6.18: the low two bits select
    the watermark (MIN 0, LOW 1, HIGH 2), ALLOC_NO_WATERMARKS 0x4, ALLOC_OOM 0x8,
    ALLOC_NON_BLOCK 0x10, ALLOC_MIN_RESERVE 0x20, ALLOC_CPUSET 0x40, ALLOC_CMA 0x80,
    ALLOC_NOFRAGMENT 0x100 (a kernel with CONFIG_ZONE_DMA32, as x86-64), ALLOC_HIGHATOMIC
    0x200, ALLOC_TRYLOCK 0x400, ALLOC_KSWAPD 0x800; ALLOC_RESERVES is NON_BLOCK|MIN_RESERVE|
    HIGHATOMIC|OOM. __GFP_HIGH equals ALLOC_MIN_RESERVE and __GFP_KSWAPD_RECLAIM equals
    ALLOC_KSWAPD, so both are copied from the GFP mask by masking.
    """,
    "mm/internal.h:ALLOC_* @ v6.18", obj=ALLOC_FLAGS, module=__name__)

assert __GFP_HIGH == ALLOC_MIN_RESERVE and __GFP_KSWAPD_RECLAIM == ALLOC_KSWAPD

# --- the fallback table (mm/page_alloc.c: fallbacks[]) --------------------------------------

FALLBACKS: dict[int, tuple[int, int]] = {
    MIGRATE_UNMOVABLE: (MIGRATE_RECLAIMABLE, MIGRATE_MOVABLE),
    MIGRATE_MOVABLE: (MIGRATE_RECLAIMABLE, MIGRATE_UNMOVABLE),
    MIGRATE_RECLAIMABLE: (MIGRATE_UNMOVABLE, MIGRATE_MOVABLE),
}

declare(
    "ALLOC-POL-004", "The fallback table",
    """
    When the free lists of the requested type are empty, the allocator looks at the other
    pcp types in this order: UNMOVABLE -> RECLAIMABLE, MOVABLE; MOVABLE -> RECLAIMABLE,
    UNMOVABLE; RECLAIMABLE -> UNMOVABLE, MOVABLE. HIGHATOMIC, CMA and ISOLATE have no
    fallbacks and are never fallback targets.
    """,
    "mm/page_alloc.c:fallbacks @ v6.18", obj=FALLBACKS, module=__name__)


@rule("ALLOC-POL-005", "gfp_migratetype", "include/linux/gfp.h:gfp_migratetype @ v6.18")
def gfp_migratetype(gfp: int, page_group_by_mobility_disabled: bool = False) -> int:
    """
    The migratetype of a request is ``(gfp & (__GFP_RECLAIMABLE|__GFP_MOVABLE)) >> 3``:
    MOVABLE for __GFP_MOVABLE, RECLAIMABLE for __GFP_RECLAIMABLE, UNMOVABLE for neither.
    Both bits together are invalid (the kernel warns). With mobility grouping disabled
    every request is UNMOVABLE.
    """
    if page_group_by_mobility_disabled:
        return MIGRATE_UNMOVABLE
    return (gfp & (__GFP_RECLAIMABLE | __GFP_MOVABLE)) >> 3


@rule("ALLOC-POL-006", "gfp_to_alloc_flags (slow-path flags)",
      "mm/page_alloc.c:gfp_to_alloc_flags @ v6.18")
def gfp_to_alloc_flags(gfp: int, order: int, defrag_mode: int = 0,
                       variant: str = "v6.18", rt_task: bool = False) -> int:
    """
    The slow path's flags are ALLOC_WMARK_MIN|ALLOC_CPUSET plus __GFP_HIGH (as
    ALLOC_MIN_RESERVE) and __GFP_KSWAPD_RECLAIM (as ALLOC_KSWAPD). A request that cannot
    reclaim directly gets ALLOC_NON_BLOCK unless it has __GFP_NOMEMALLOC; it gets
    ALLOC_HIGHATOMIC when order > 0 and, since 6.18 ("only set ALLOC_HIGHATOMIC for
    __GFP_HIGH allocations"), only when ALLOC_MIN_RESERVE is set too; with
    ALLOC_MIN_RESERVE it loses ALLOC_CPUSET. A blocking request from a real-time task gets
    ALLOC_MIN_RESERVE. Movable requests get ALLOC_CMA. With ``defrag_mode`` every request
    gets ALLOC_NOFRAGMENT.
    """
    alloc_flags = ALLOC_WMARK_MIN | ALLOC_CPUSET
    alloc_flags |= gfp & (__GFP_HIGH | __GFP_KSWAPD_RECLAIM)
    if not gfp & __GFP_DIRECT_RECLAIM:
        if not gfp & __GFP_NOMEMALLOC:
            alloc_flags |= ALLOC_NON_BLOCK
            if order > 0 and (variant == "v6.15" or alloc_flags & ALLOC_MIN_RESERVE):
                alloc_flags |= ALLOC_HIGHATOMIC
        if alloc_flags & ALLOC_MIN_RESERVE:
            alloc_flags &= ~ALLOC_CPUSET
    elif rt_task:
        alloc_flags |= ALLOC_MIN_RESERVE
    if gfp_migratetype(gfp) == MIGRATE_MOVABLE:
        alloc_flags |= ALLOC_CMA
    if defrag_mode:
        alloc_flags |= ALLOC_NOFRAGMENT
    return alloc_flags


@rule("ALLOC-POL-007", "alloc_flags_nofragment (fast-path fragmentation avoidance)",
      "mm/page_alloc.c:alloc_flags_nofragment @ v6.18")
def alloc_flags_nofragment(gfp: int, defrag_mode: int, zone_is_normal_with_dma32: bool) -> int:
    """
    The fast path's extra flags: ALLOC_KSWAPD copied from __GFP_KSWAPD_RECLAIM; with
    ``defrag_mode`` always ALLOC_NOFRAGMENT; otherwise ALLOC_NOFRAGMENT only for a
    ZONE_NORMAL preferred zone whose DMA32 zone is populated (the idea: spill into DMA32
    before fragmenting Normal). The model has one zone; ``zone_is_normal_with_dma32`` says
    whether it plays the part of such a ZONE_NORMAL.
    """
    alloc_flags = gfp & __GFP_KSWAPD_RECLAIM
    if defrag_mode:
        return alloc_flags | ALLOC_NOFRAGMENT
    if zone_is_normal_with_dma32:
        alloc_flags |= ALLOC_NOFRAGMENT
    return alloc_flags


def format_alloc_flags(flags: int) -> str:
    names = [("ALLOC_WMARK_MIN", "ALLOC_WMARK_LOW", "ALLOC_WMARK_HIGH", "?")[flags & 3]]
    for name, value in ALLOC_FLAGS.items():
        if value & ~ALLOC_WMARK_MASK and name != "ALLOC_RESERVES" and flags & value == value:
            names.append(name)
    return "|".join(names)


class Gfp(int):
    """A GFP mask that prints as the tracepoint names it: ``Gfp('GFP_KERNEL|__GFP_ZERO')``.

    It is an int everywhere; its ``repr`` is valid Python, so failing fuzz programs and spec
    states print readably and can be pasted back.
    """

    def __new__(cls, value: int | str) -> Gfp:
        return super().__new__(cls, parse_gfp(value) if isinstance(value, str) else value)

    def __repr__(self) -> str:
        return f"Gfp({format_gfp(self)!r})"
