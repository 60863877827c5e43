"""TIER vocabulary: variants, kernel constants, and arithmetic that runs on ints and Z3 alike.

The helpers here (``ite``, ``ult``, ``lshr``, ``usub``, ``umin``, ``field``) take Python ints or
Z3 bit-vectors: with ints they compute the C result of unsigned arithmetic (callers pass the
C type's width), with bit-vectors they build the same term (unsigned comparisons and logical
shifts, which Z3's ``<`` and ``>>`` are not). The rule functions in ``spec.kpromoted``,
``spec.pghot`` and ``spec.numab`` use nothing else, so the proofs run the spec's own code.
"""

from __future__ import annotations

from typing import Any

from spec.rules import register_variants

#: TIER variants. ``kpromoted-v0`` is the RFC of 2025-03-06 exactly as posted; ``pghot-v1``
#: the hash list + per-node max-heap of 2025-08-14; ``pghot-v2`` the same with the record
#: packed into a u32 (2025-09-10, patch 3/8); ``pghot-v3`` the per-PFN unsigned long of
#: 2025-11-10; ``pghot-v6-default``/``-precise`` the u8/u32 records of 2026-03-23; ``numab2``
#: upstream NUMA-balancing tiering mode (kernel/sched/fair.c @ v6.18); ``chmu`` a CXL hotness
#: monitoring unit feeding promotion from its hot list.
TIER_VARIANTS = ("kpromoted-v0", "pghot-v1", "pghot-v2", "pghot-v3", "pghot-v6-default",
                 "pghot-v6-precise", "numab2", "chmu")
register_variants("TIER", TIER_VARIANTS)

NUMA_NO_NODE = -1
MSEC_PER_SEC = 1000
BITS_PER_LONG = 64
#: Sources (v0 names; pghot renamed them PGHOT_HW_HINTS / PGHOT_PGTABLE_SCAN / PGHOT_HINTFAULTS).
KPROMOTED_HW_HINTS, KPROMOTED_PGTABLE_SCAN, PGHOT_HINT_FAULT, CHMU_DEVICE = 0, 1, 2, 3
SOURCES = {"hwhints": KPROMOTED_HW_HINTS, "pgtscan": KPROMOTED_PGTABLE_SCAN,
           "hintfault": PGHOT_HINT_FAULT, "chmu": CHMU_DEVICE}
GOLDEN_RATIO_64 = 0x61C8864680B583EB


def _is_int(x: Any) -> bool:
    return isinstance(x, int)


def ite(cond: Any, a: Any, b: Any) -> Any:
    """``cond ? a : b``."""
    if isinstance(cond, bool):
        return a if cond else b
    import z3
    return z3.If(cond, a, b)


def ult(a: Any, b: Any) -> Any:
    """Unsigned ``a < b``."""
    if _is_int(a) and _is_int(b):
        return bool(a < b)
    import z3
    return z3.ULT(a, b)


def ule(a: Any, b: Any) -> Any:
    if _is_int(a) and _is_int(b):
        return bool(a <= b)
    import z3
    return z3.ULE(a, b)


def ugt(a: Any, b: Any) -> Any:
    return ult(b, a)


def uge(a: Any, b: Any) -> Any:
    return ule(b, a)


def lshr(a: Any, n: int) -> Any:
    """Logical shift right."""
    if _is_int(a):
        return a >> n
    import z3
    return z3.LShR(a, n)


def mask(width: int) -> int:
    return (1 << width) - 1


def usub(a: Any, b: Any, width: int) -> Any:
    """``a - b`` in a C unsigned type of ``width`` bits (wraps)."""
    return (a - b) & mask(width)


def udiv(a: Any, b: int) -> Any:
    """Unsigned division by a constant."""
    if _is_int(a):
        return a // b
    import z3
    return z3.UDiv(a, b)


def umin(a: Any, b: Any) -> Any:
    return ite(ult(a, b), a, b)


def umax(a: Any, b: Any) -> Any:
    return ite(ugt(a, b), a, b)


def field(word: Any, shift: int, width: int) -> Any:
    """Bits ``shift .. shift+width-1`` of ``word``."""
    return lshr(word, shift) & mask(width)


def set_field(word: Any, shift: int, width: int, value: Any) -> Any:
    return (word & ~(mask(width) << shift)) | ((value & mask(width)) << shift)


def jiffies_to_msecs(j: Any, hz: int = 1000) -> Any:
    """include/linux/jiffies.h: for HZ dividing 1000, ``j * (1000 / HZ)``."""
    if MSEC_PER_SEC % hz:
        raise ValueError("the model supports HZ values that divide 1000 (100, 250, 500, 1000)")
    return j * (MSEC_PER_SEC // hz)


def msecs_to_jiffies(ms: int, hz: int = 1000) -> int:
    """Rounds up, as the kernel does."""
    return -(-ms * hz // MSEC_PER_SEC)


def hash_64(val: Any, bits: int) -> Any:
    """include/linux/hash.h:hash_64_generic: ``(val * GOLDEN_RATIO_64) >> (64 - bits)``."""
    return lshr((val * GOLDEN_RATIO_64) & mask(64), 64 - bits)
