"""NMI-safe page allocation: contexts, locks, ``alloc_pages_nolock`` / ``free_pages_nolock``.

The model is small on purpose, so that every interleaving can be explored: one zone of
order-0 pages (orders, merging and migratetypes are the ALLOC core's business), a per-CPU
list per CPU (``pcp->lists``, one list: every page here is order 0 and movable), the deferred
list ``zone->trylock_free_pages``, the per-CPU memcg charge stock, and on every CPU a stack of
contexts (task, softirq, hardirq, NMI) that interrupt one another.

Each context runs a program of operations (``alloc_pages``, ``free_pages``,
``drain_pages``, ``alloc_pages_nolock``, ``free_pages_nolock``). An operation is a sequence of
atomic **steps** named after the kernel code they model (``pcp_spin_trylock``,
``rmqueue_bulk:spin_lock_irqsave``, ``add_page_to_zone_llist``, …); another context may run,
and an interrupt may arrive, between any two steps, wherever the kernel allows it. A step is
``step(model, state, cpu, frame) -> state'``, or the index of the lock it is waiting for.

The state (:class:`NolockState`) is an immutable tuple of tuples and ints, chosen so that the
explorer (``mmspec explore nolock``) hashes and builds hundreds of thousands of them per
second; :func:`describe_state` prints one for people.

Variants (``register_variants("NOLOCK", …)``): ``v6.18`` (SMP, the default), ``PREEMPT_RT``
(RT locking: spinlock_t sleeps, the nolock API refuses hardirq and NMI context), and ``SMP=n``
(uniprocessor: ``spin_trylock`` always succeeds, so the pcp sections disable interrupts). The
SMP=n variant includes the 2026 fixes that make it correct: 038a102535eb ("prevent pcp
corruption with SMP=n"), 620b46ed6ae17 ("return NULL early from alloc_frozen_pages_nolock()
in NMI on UP") and its free-side twin (``can_spin_trylock()`` in ``__free_frozen_pages``).
Broken variants (the bug zoo) reuse a base variant's code with one change each; see
:data:`BROKEN_VARIANTS`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import attrs

from spec.constants import (
    __GFP_ACCOUNT,
    __GFP_RECLAIM,
    GFP_ATOMIC,
    GFP_KERNEL,
    GFP_KERNEL_ACCOUNT,
    format_gfp,
)
from spec.rules import declare, register_variants, rule

# --- contexts -------------------------------------------------------------------------------

TASK, SOFTIRQ, HARDIRQ, NMI = 0, 1, 2, 3
CONTEXT_NAMES = ("task", "softirq", "hardirq", "nmi")

VARIANTS = register_variants("NOLOCK", ("v6.18", "PREEMPT_RT", "SMP=n"))

#: Broken variants: name -> (base variant, what is broken). Accepted by the explorer's
#: ``--variant``; the explorer must reject each with a counterexample. They are not rule
#: variants: no rule applies to them.
BROKEN_VARIANTS: dict[str, tuple[str, str]] = {
    "flipped-allow-spinning": (
        "v6.18", "gfpflags_allow_spinning() returns true exactly when no __GFP_RECLAIM bit is "
        "set (the v9 series' inverted test, fixed by 'mm: Fix the flipped condition in "
        "gfpflags_allow_spinning()', March 2025): consume_stock() then takes "
        "memcg_stock.stock_lock with local_lock_irqsave() from the nolock path"),
    "nolock-spins": (
        "v6.18", "the nolock paths spin_lock_irqsave(&zone->lock) instead of "
        "spin_trylock_irqsave() (a deadlock against an interrupted holder)"),
    "smp-n-pcp": (
        "SMP=n", "drain_pages_zone() takes the pcp lock with plain spin_lock() on UP (before "
        "038a102535eb, Jan 2026): an IRQ's pcp_spin_trylock() 'succeeds' inside the drain"),
    "smp-n-nmi": (
        "SMP=n", "6.18 as released on UP: alloc_pages_nolock()/free_pages_nolock() from NMI "
        "call spin_trylock(), which always succeeds on UP (fixed by 620b46ed6ae17, 7.1-rc2, "
        "and the free-side can_spin_trylock() patch, July 2026)"),
    "deferred-never-drained": (
        "v6.18", "free_one_page() never drains zone->trylock_free_pages"),
    "second-trylock": (
        "v6.18", "ordinary (non-ALLOC_TRYLOCK) allocations trylock zone->lock and give up "
        "when it is busy: the wrong fix for 'avoid second trylock of zone->lock'"),
}

ALL_VARIANTS = (*VARIANTS, *BROKEN_VARIANTS)


def base_variant(variant: str) -> str:
    return BROKEN_VARIANTS[variant][0] if variant in BROKEN_VARIANTS else variant


@rule("NOLOCK-POL-001", "Which context may interrupt which",
      "kernel/softirq.c,arch/x86/kernel/nmi.c:irq_enter,nmi_enter @ v6.18")
def may_interrupt(top_level: int | None, irqs_enabled: bool, level: int,
                  nmi_on_stack: bool) -> bool:
    """
    An NMI may interrupt any context except another NMI on the same CPU (NMIs do not nest).
    A hardirq may interrupt task or softirq context while interrupts are enabled; handlers
    run with interrupts disabled, so hardirqs do not nest. A softirq runs on top of task
    context with interrupts enabled (on irq exit or local_bh_enable). An idle CPU (no
    context) accepts any.
    """
    if level == NMI:
        return not nmi_on_stack
    if top_level is None:
        return True
    if not irqs_enabled:
        return False
    if level == HARDIRQ:
        return top_level < HARDIRQ
    return top_level == TASK


@rule("NOLOCK-POL-002", "gfpflags_allow_spinning()",
      "include/linux/gfp.h:gfpflags_allow_spinning @ v6.18")
def gfpflags_allow_spinning(gfp: int, flipped: bool = False) -> bool:
    """
    A request may spin on locks iff its gfp mask has either reclaim bit
    (``__GFP_DIRECT_RECLAIM | __GFP_KSWAPD_RECLAIM``). GFP_ATOMIC and GFP_NOWAIT have one (the
    kswapd bit); the nolock API's internal mask has none, and neither has GFP_TRANSHUGE_LIGHT,
    which clears __GFP_RECLAIM, so such a request may not spin either. (``flipped`` is the v9
    series' inverted test, for the bug zoo.)
    """
    spin = bool(gfp & __GFP_RECLAIM)
    return not spin if flipped else spin


NOLOCK_GFP = 0  # alloc_pages_nolock()'s own mask has no reclaim bit (nor any bit used here)
#: The only gfp bit a caller of alloc_pages_nolock() may pass in 6.18. (A module-level name:
#: inside a class body Python would mangle ``__GFP_ACCOUNT``.)
NOLOCK_CALLER_GFP = __GFP_ACCOUNT


@rule("NOLOCK-OP-001", "alloc_pages_nolock() refuses what it cannot do without waiting",
      "mm/page_alloc.c:alloc_frozen_pages_nolock_noprof @ v6.18")
def nolock_refuses(variant: str, level: int, order: int) -> bool:
    """
    ``alloc_pages_nolock(gfp_flags, nid, order)`` returns NULL at once under PREEMPT_RT in
    NMI or hardirq context (an RT spin_trylock is unsafe in NMI and confuses priority
    inheritance in hardirq) and for orders the per-CPU lists do not serve
    (``!pcp_allowed_order``: above PAGE_ALLOC_COSTLY_ORDER = 3, except HPAGE_PMD_ORDER = 9
    with THP). With the 2026 UP fix (``!can_spin_trylock()``) also in NMI on a uniprocessor
    kernel, where spin_trylock() always succeeds. ``gfp_flags`` may hold only
    ``__GFP_ACCOUNT``: anything else is a caller bug that 6.18 only warns about
    (VM_WARN_ON_ONCE, the call goes on); the model's configurations reject it.
    """
    if not (order <= 3 or order == 9):
        return True
    base = base_variant(variant)
    if base == "PREEMPT_RT" and level in (HARDIRQ, NMI):
        return True
    return base == "SMP=n" and variant != "smp-n-nmi" and level == NMI


# --- configuration and state ----------------------------------------------------------------

#: An operation in a program: (name, gfp). ``drain_pages`` uses gfp as the target CPU.
Op = tuple[str, int]

ALLOC_OPS = ("alloc_pages", "alloc_pages_nolock")
FREE_OPS = ("free_pages", "free_pages_nolock")
NOLOCK_OPS = ("alloc_pages_nolock", "free_pages_nolock")


def op_name(op: Op) -> str:
    name, arg = op
    if name == "drain_pages":
        return f"drain_pages(cpu{arg})"
    if name in ALLOC_OPS:
        return f"{name}({format_gfp(arg) if arg else '0'})"
    return name


@attrs.frozen
class NolockConfig:
    """A small machine: CPUs, pages, and the program of each context on each CPU.

    ``tasks[cpu]`` is the task context's program; ``handlers[cpu][level]`` the program of an
    interrupt handler at that level (empty: none), each run at most ``bound`` times per CPU.
    ``preowned`` gives pages held from the start by (cpu, level); every other page starts on
    the buddy free list. Watermarks are in pages (order 0: an allocation needs
    NR_FREE_PAGES > mark); the pcp list refills ``pcp_batch`` pages and a free drains
    ``pcp_batch`` pages once it holds ``pcp_high``; each CPU's memcg stock starts with
    ``memcg_stock`` pre-charged pages.
    """

    variant: str = "v6.18"
    nr_cpus: int = 2
    nr_pages: int = 3
    tasks: tuple[tuple[Op, ...], ...] = ()
    handlers: tuple[tuple[tuple[Op, ...], ...], ...] = ()
    preowned: tuple[tuple[int, int, int], ...] = ()
    bound: int = 1
    wmark_min: int = 0
    wmark_low: int = 1
    pcp_batch: int = 1
    pcp_high: int = 2
    memcg_stock: int = 1

    def __attrs_post_init__(self) -> None:
        if self.variant not in ALL_VARIANTS:
            raise ValueError(f"unknown NOLOCK variant {self.variant!r}")
        if not 1 <= self.nr_cpus <= 4 or not 1 <= self.nr_pages <= 16:
            raise ValueError("nr_cpus must be 1..4 and nr_pages 1..16")
        if base_variant(self.variant) == "SMP=n" and self.nr_cpus != 1:
            raise ValueError("SMP=n has exactly one CPU")
        if len(self.tasks) != self.nr_cpus or len(self.handlers) != self.nr_cpus:
            raise ValueError("tasks and handlers need one entry per CPU")
        for progs in self.handlers:
            if len(progs) != 4 or progs[TASK]:
                raise ValueError("handlers[cpu] has 4 levels, level 0 (task) empty")
        if not 1 <= self.bound <= 15:
            raise ValueError("bound must be 1..15")
        for prog in (*self.tasks, *(p for progs in self.handlers for p in progs)):
            for name, arg in prog:
                if name == "alloc_pages_nolock" and arg & ~NOLOCK_CALLER_GFP:
                    raise ValueError("alloc_pages_nolock() takes only __GFP_ACCOUNT")
                if name == "drain_pages" and not 0 <= arg < self.nr_cpus:
                    raise ValueError("drain_pages() of a CPU that does not exist")
                if name not in (*ALLOC_OPS, *FREE_OPS, "drain_pages"):
                    raise ValueError(f"unknown operation {name!r}")
        pfns = [p for _, _, p in self.preowned]
        if len(set(pfns)) != len(pfns) or any(not 0 <= p < self.nr_pages for p in pfns):
            raise ValueError("preowned pages must be distinct pfns of this zone")


#: A context's frame: (level, index of the operation in its program, next step, a scratch
#: value the step sequence carries, local_irq_save depth).
Frame = tuple[int, int, str, int, int]


class NolockState(NamedTuple):
    """One state of the machine (a NamedTuple: C-speed hashing, immutable).

    ``stacks[cpu]``: frames, innermost last. ``fired[cpu]``: handler runs so far, 4 bits per
    level. ``hands[cpu * 4 + level]``: the page a context holds (allocated), or -1.
    ``buddy``: bitmask of pages on the buddy free list; ``nr_free``: the NR_FREE_PAGES
    counter. ``pcp[cpu]``: the CPU's pcp list, head first. ``llist``:
    zone->trylock_free_pages, head first. ``locks``: holder of zone->lock, then each CPU's
    pcp->lock, then each CPU's memcg_stock.stock_lock, as ``cpu * 4 + level`` or -1.
    ``stock[cpu]``: memcg_stock.nr_pages; ``charged``: pages charged from a stock. ``bad``:
    the rule a step saw broken ('' when none).
    """

    stacks: tuple[tuple[Frame, ...], ...]
    fired: tuple[int, ...]
    hands: tuple[int, ...]
    buddy: int
    nr_free: int
    pcp: tuple[tuple[int, ...], ...]
    llist: tuple[int, ...]
    locks: tuple[int, ...]
    stock: tuple[int, ...]
    charged: int
    bad: str


ZONE_LOCK = 0
LOCK_CLASSES = ("zone->lock", "pcp->lock", "memcg_stock.stock_lock")


class Wait(int):
    """A step's answer when it must wait: the index of the lock it spins on."""


# --- the model: configuration-derived tables and the steps ---------------------------------

StepFn = Callable[["NolockModel", NolockState, int, Frame], "NolockState | Wait"]
STEPS: dict[str, StepFn] = {}
#: Steps that acquire a lock with local_irq_save (interrupts are off while they spin).
IRQSAVE_STEPS: set[str] = set()
#: Which resource a frame whose next step is this one is inside: 1 pcp, 2 zone, 4 stock.
SECTION: dict[str, int] = {}


def step(label: str, section: int = 0, irqsave: bool = False) -> Callable[[StepFn], StepFn]:
    def register(fn: StepFn) -> StepFn:
        STEPS[label] = fn
        if section:
            SECTION[label] = section
        if irqsave:
            IRQSAVE_STEPS.add(label)
        return fn
    return register


PCP, ZONE, STOCK = 1, 2, 4


class NolockModel:
    """A configuration with its derived flags; its methods are the spec's operations."""

    def __init__(self, config: NolockConfig) -> None:
        self.config = c = config
        v = config.variant
        self.variant = v
        base = base_variant(v)
        self.rt = base == "PREEMPT_RT"
        self.smp = base != "SMP=n"
        self.ncpu = c.nr_cpus
        self.flipped = v == "flipped-allow-spinning"
        self.nolock_spins = v == "nolock-spins"
        self.up_drain_no_irqsave = v == "smp-n-pcp"
        self.up_nmi_unfixed = v == "smp-n-nmi"
        self.never_drain = v == "deferred-never-drained"
        self.second_trylock = v == "second-trylock"
        self.programs: dict[tuple[int, int], tuple[Op, ...]] = {}
        for cpu in range(c.nr_cpus):
            self.programs[(cpu, TASK)] = c.tasks[cpu]
            for level in (SOFTIRQ, HARDIRQ, NMI):
                self.programs[(cpu, level)] = c.handlers[cpu][level]
        self.lock_edges: set[tuple[str, str]] = set()
        #: per CPU: (level, the handler's first frame) of every configured handler.
        self.handlers: list[list[tuple[int, Frame]]] = [
            [(level, (level, 0, entry(self.programs[(cpu, level)][0]), 0,
                      1 if level >= HARDIRQ else 0))
             for level in (SOFTIRQ, HARDIRQ, NMI) if self.programs[(cpu, level)]]
            for cpu in range(c.nr_cpus)]
        self._section_bits: dict[tuple[int, int, int, int], int] = {}

    def section_bits(self, cpu: int, f: Frame, sec: int) -> int:
        """The resources a frame in section ``sec`` occupies, as bits: CPU x's pcp list is
        bit x, zone->lock's lists bit 8, CPU x's memcg stock bit 16 + x."""
        key = (cpu, f[0], f[1], sec)
        bits = self._section_bits.get(key)
        if bits is None:
            bits = 0
            if sec & PCP:
                bits |= 1 << section_owner(self, cpu, f)
            if sec & ZONE:
                bits |= 1 << 8
            if sec & STOCK:
                bits |= 1 << (16 + cpu)
            self._section_bits[key] = bits
        return bits

    # -- helpers the steps use --------------------------------------------------------------

    def op(self, cpu: int, f: Frame) -> Op:
        return self.programs[(cpu, f[0])][f[1]]

    def pcp_lock(self, cpu: int) -> int:
        return 1 + cpu

    def stock_lock(self, cpu: int) -> int:
        return 1 + self.ncpu + cpu

    def lock_class(self, lock: int) -> str:
        if lock == ZONE_LOCK:
            return LOCK_CLASSES[0]
        return LOCK_CLASSES[1] if lock <= self.ncpu else LOCK_CLASSES[2]

    # -- state plumbing ---------------------------------------------------------------------

    def initial(self) -> NolockState:
        c = self.config
        hands = [-1] * (4 * c.nr_cpus)
        owned = 0
        for cpu, level, pfn in c.preowned:
            hands[cpu * 4 + level] = pfn
            owned |= 1 << pfn
        buddy = ((1 << c.nr_pages) - 1) & ~owned
        stacks = tuple(((TASK, 0, entry(prog[0]), 0, 0),) if prog else ()
                       for prog in c.tasks)
        return NolockState(
            stacks=stacks, fired=(0,) * c.nr_cpus, hands=tuple(hands), buddy=buddy,
            nr_free=bin(buddy).count("1"), pcp=((),) * c.nr_cpus, llist=(),
            locks=(-1,) * (1 + 2 * c.nr_cpus), stock=(c.memcg_stock,) * c.nr_cpus,
            charged=0, bad="")


def entry(op: Op) -> str:
    return op[0]


_FIELD = {name: i for i, name in enumerate(NolockState._fields)}
_new = tuple.__new__


def _with(s: NolockState, changes: dict[str, object]) -> NolockState:
    """``s`` with some fields replaced (NamedTuple._replace, without its overhead)."""
    fields = list(s)
    for name, value in changes.items():
        fields[_FIELD[name]] = value
    return _new(NolockState, fields)  # type: ignore[no-any-return]


def _set_top(s: NolockState, cpu: int, f: Frame, **changes: object) -> NolockState:
    stacks = list(s.stacks)
    stacks[cpu] = s.stacks[cpu][:-1] + (f,)
    changes["stacks"] = tuple(stacks)
    return _with(s, changes)


def _goto(s: NolockState, cpu: int, f: Frame, label: str, tmp: int | None = None,
          irq: int = 0, **changes: object) -> NolockState:
    return _set_top(s, cpu, (f[0], f[1], label, f[3] if tmp is None else tmp, f[4] + irq),
                    **changes)


def _finish(m: NolockModel, s: NolockState, cpu: int, f: Frame,
            **changes: object) -> NolockState:
    """The operation returns: the next operation of the program starts, or the context ends
    (an interrupt handler returns to the context it interrupted)."""
    prog = m.programs[(cpu, f[0])]
    if f[1] + 1 < len(prog):
        return _set_top(s, cpu, (f[0], f[1] + 1, entry(prog[f[1] + 1]), 0, f[4]), **changes)
    stacks = list(s.stacks)
    stacks[cpu] = s.stacks[cpu][:-1]
    changes["stacks"] = tuple(stacks)
    return _with(s, changes)


def _me(cpu: int, f: Frame) -> int:
    return cpu * 4 + f[0]


def _locks(s: NolockState, lock: int, holder: int) -> tuple[int, ...]:
    locks = list(s.locks)
    locks[lock] = holder
    return tuple(locks)


@rule("NOLOCK-OP-002", "spin_trylock: fail instead of waiting",
      "include/linux/spinlock.h:spin_trylock @ v6.18")
def spin_trylock(m: NolockModel, s: NolockState, cpu: int, f: Frame, lock: int) -> bool:
    """
    ``spin_trylock`` takes a free lock and fails at once on a held one, whoever holds it:
    another CPU, or a context this one interrupted on the same CPU (the re-entrancy guard the
    pcp lists rely on, since pcp->lock is held with interrupts enabled). On a uniprocessor
    kernel without PREEMPT_RT the spinlock is compiled away and spin_trylock always succeeds,
    which is why the UP pcp paths disable interrupts around it (pcp_trylock_prepare).
    """
    if not m.smp:
        return True
    return s.locks[lock] == -1


@rule("NOLOCK-OP-003", "spin_lock: wait for the holder",
      "include/linux/spinlock.h:spin_lock,spin_lock_irqsave @ v6.18")
def spin_lock_waits(m: NolockModel, s: NolockState, lock: int) -> bool:
    """
    ``spin_lock``/``spin_lock_irqsave`` on SMP wait while another context holds the lock (a
    holder on the same CPU below the waiter can never run again: deadlock). On UP the lock is
    compiled away (no wait; mutual exclusion comes only from disabled interrupts). Under
    PREEMPT_RT a spinlock_t is a sleeping lock: the waiter blocks, and
    ``spin_lock_irqsave`` does not disable interrupts. ``local_lock`` on !PREEMPT_RT only
    disables interrupts (it never waits); on PREEMPT_RT it is a per-CPU spinlock_t.
    """
    if not m.smp:
        return False
    return s.locks[lock] != -1


def _acquire(m: NolockModel, s: NolockState, cpu: int, f: Frame, lock: int,
             trylock: bool) -> NolockState | Wait | None:
    """Take ``lock`` for the frame; None if a trylock failed, Wait if a lock must wait."""
    me = _me(cpu, f)
    if trylock:
        if not spin_trylock(m, s, cpu, f, lock):
            return None
    else:
        if spin_lock_waits(m, s, lock):
            return Wait(lock)
        for held, holder in enumerate(s.locks):
            if holder == me:
                m.lock_edges.add((m.lock_class(held), m.lock_class(lock)))
    if s.locks[lock] != -1:  # UP: the lock "succeeds" over its holder
        return s
    return _with(s, {"locks": _locks(s, lock, me)})


def _release(s: NolockState, lock: int) -> tuple[int, ...]:
    return _locks(s, lock, -1)


def _irqsave(m: NolockModel) -> int:
    """spin_lock_irqsave on a spinlock_t disables interrupts, except under PREEMPT_RT."""
    return 0 if m.rt else 1


def _lowest(mask: int) -> int:
    return (mask & -mask).bit_length() - 1


# --- alloc_pages / alloc_pages_nolock --------------------------------------------------------

def _alloc_flags_trylock(m: NolockModel, cpu: int, f: Frame) -> bool:
    """ALLOC_TRYLOCK: set by alloc_pages_nolock() only."""
    return m.op(cpu, f)[0] == "alloc_pages_nolock"


@step("alloc_pages")
def alloc_pages(m: NolockModel, s: NolockState, cpu: int, f: Frame) -> NolockState | Wait:
    return _goto(s, cpu, f, "zone_watermark_fast")


@step("alloc_pages_nolock")
def alloc_pages_nolock(m: NolockModel, s: NolockState, cpu: int,
                       f: Frame) -> NolockState | Wait:
    if nolock_refuses(m.variant, f[0], 0):
        return _finish(m, s, cpu, f)
    return _goto(s, cpu, f, "zone_watermark_fast")


@rule("NOLOCK-OP-004", "The one freelist attempt and its watermark",
      "mm/page_alloc.c:get_page_from_freelist,zone_watermark_fast @ v6.18")
def watermark_ok(m: NolockModel, nr_free: int, trylock: bool) -> bool:
    """
    Both APIs make one ``get_page_from_freelist`` attempt whose order-0 watermark test is
    ``NR_FREE_PAGES > mark``, read without a lock. alloc_pages_nolock uses ALLOC_TRYLOCK
    alone, so its mark is WMARK_MIN; the first attempt of alloc_pages uses ALLOC_WMARK_LOW.
    On failure alloc_pages_nolock returns NULL (no slow path, no kswapd wakeup, no reclaim);
    alloc_pages would enter __alloc_pages_slowpath, which this model does not include (it
    returns NULL there).
    """
    mark = m.config.wmark_min if trylock else m.config.wmark_low
    return nr_free > mark


@step("zone_watermark_fast")
def zone_watermark_fast(m: NolockModel, s: NolockState, cpu: int,
                        f: Frame) -> NolockState | Wait:
    if not watermark_ok(m, s.nr_free, _alloc_flags_trylock(m, cpu, f)):
        return _finish(m, s, cpu, f)
    return _goto(s, cpu, f, "rmqueue_pcplist:pcp_spin_trylock")


@rule("NOLOCK-OP-005", "pcp_spin_trylock: the per-CPU list or the buddy",
      "mm/page_alloc.c:rmqueue_pcplist,pcp_spin_trylock,pcp_trylock_prepare @ v6.18")
def pcp_trylock_irqs(m: NolockModel) -> int:
    """
    Every per-CPU list section starts with ``pcp_trylock_prepare`` and
    ``pcp_spin_trylock(zone->per_cpu_pageset)``: pin to the CPU and trylock its pcp->lock
    with interrupts enabled. On failure (the lock is held by a context this one interrupted,
    or by a remote drain) the allocation falls back to ``rmqueue_buddy`` and a free to
    ``free_one_page``. On UP (!SMP, !PREEMPT_RT) pcp_trylock_prepare is local_irq_save, so
    no interrupt can enter the section; returns the interrupt-disable depth it adds.
    """
    return 0 if m.smp else 1


@step("rmqueue_pcplist:pcp_spin_trylock")
def rmqueue_pcplist_trylock(m: NolockModel, s: NolockState, cpu: int,
                            f: Frame) -> NolockState | Wait:
    got = _acquire(m, s, cpu, f, m.pcp_lock(cpu), trylock=True)
    if got is None:
        return _goto(s, cpu, f, "rmqueue_buddy:spin_lock_irqsave")
    assert not isinstance(got, Wait)
    return _goto(got, cpu, f, "__rmqueue_pcplist", irq=pcp_trylock_irqs(m))


@step("__rmqueue_pcplist", section=PCP)
def rmqueue_pcplist_head(m: NolockModel, s: NolockState, cpu: int,
                         f: Frame) -> NolockState | Wait:
    lst = s.pcp[cpu]
    if not lst:
        return _goto(s, cpu, f, "rmqueue_bulk:spin_lock_irqsave")
    return _goto(s, cpu, f, "__rmqueue_pcplist:list_del", tmp=lst[0])


@rule("NOLOCK-OP-006", "Refilling a pcp list: rmqueue_bulk under zone->lock",
      "mm/page_alloc.c:rmqueue_bulk @ v6.18")
def rmqueue_bulk_trylock(m: NolockModel, cpu: int, f: Frame) -> bool:
    """
    ``rmqueue_bulk`` takes zone->lock with ``spin_trylock_irqsave`` when ALLOC_TRYLOCK is set
    (failure: nothing refilled, the caller falls back to rmqueue_buddy) and with
    ``spin_lock_irqsave`` otherwise (since 6.15-rc2's "avoid second trylock of zone->lock";
    the v9 series tried a trylock first on every path). Under the lock it moves up to
    ``batch`` pages from the buddy list to the tail of the pcp list. Returns whether this
    path uses the trylock.
    """
    return _alloc_flags_trylock(m, cpu, f) and not m.nolock_spins


@step("rmqueue_bulk:spin_lock_irqsave", section=PCP, irqsave=True)
def rmqueue_bulk_lock(m: NolockModel, s: NolockState, cpu: int,
                      f: Frame) -> NolockState | Wait:
    got = _acquire(m, s, cpu, f, ZONE_LOCK, trylock=rmqueue_bulk_trylock(m, cpu, f))
    if got is None:
        return _goto(s, cpu, f, "rmqueue_pcplist:pcp_spin_unlock", tmp=-1)
    if isinstance(got, Wait):
        return got
    return _goto(got, cpu, f, "rmqueue_bulk:__rmqueue", irq=_irqsave(m))


@step("rmqueue_bulk:__rmqueue", section=PCP | ZONE)
def rmqueue_bulk_take(m: NolockModel, s: NolockState, cpu: int,
                      f: Frame) -> NolockState | Wait:
    buddy, taken = s.buddy, []
    for _ in range(m.config.pcp_batch):
        if not buddy:
            break
        pfn = _lowest(buddy)
        buddy &= ~(1 << pfn)
        taken.append(pfn)
    pcp = list(s.pcp)
    pcp[cpu] = s.pcp[cpu] + tuple(taken)
    return _goto(s, cpu, f, "rmqueue_bulk:spin_unlock_irqrestore", tmp=len(taken),
                 buddy=buddy, nr_free=s.nr_free - len(taken), pcp=tuple(pcp))


@step("rmqueue_bulk:spin_unlock_irqrestore", section=PCP | ZONE)
def rmqueue_bulk_unlock(m: NolockModel, s: NolockState, cpu: int,
                        f: Frame) -> NolockState | Wait:
    s = _with(s, {"locks": _release(s, ZONE_LOCK)})
    if f[3] == 0:
        return _goto(s, cpu, f, "rmqueue_pcplist:pcp_spin_unlock", tmp=-1, irq=-_irqsave(m))
    return _goto(s, cpu, f, "__rmqueue_pcplist:list_first_entry", irq=-_irqsave(m))


@step("__rmqueue_pcplist:list_first_entry", section=PCP)
def rmqueue_pcplist_first(m: NolockModel, s: NolockState, cpu: int,
                          f: Frame) -> NolockState | Wait:
    lst = s.pcp[cpu]
    return _goto(s, cpu, f, "__rmqueue_pcplist:list_del", tmp=lst[0] if lst else -1)


@rule("NOLOCK-OP-007", "Taking the head of a pcp list",
      "mm/page_alloc.c:__rmqueue_pcplist @ v6.18")
def pcp_list_del(lst: tuple[int, ...], pfn: int) -> tuple[int, ...]:
    """
    The page read at the head of the list (``list_first_entry``) is unlinked
    (``list_del``) and ``pcp->count`` drops by one. Between the read and the unlink only
    this context may touch the list; that is what pcp->lock (or, on UP, disabled
    interrupts) guarantees.
    """
    return tuple(p for p in lst if p != pfn)


@step("__rmqueue_pcplist:list_del", section=PCP)
def rmqueue_pcplist_del(m: NolockModel, s: NolockState, cpu: int,
                        f: Frame) -> NolockState | Wait:
    pfn = f[3]
    if pfn < 0:
        return _goto(s, cpu, f, "rmqueue_pcplist:pcp_spin_unlock", tmp=-1)
    pcp = list(s.pcp)
    pcp[cpu] = pcp_list_del(s.pcp[cpu], pfn)
    hands = list(s.hands)
    hands[_me(cpu, f)] = pfn
    return _goto(s, cpu, f, "rmqueue_pcplist:pcp_spin_unlock", tmp=pfn, pcp=tuple(pcp),
                 hands=tuple(hands))


@step("rmqueue_pcplist:pcp_spin_unlock", section=PCP)
def rmqueue_pcplist_unlock(m: NolockModel, s: NolockState, cpu: int,
                           f: Frame) -> NolockState | Wait:
    s = _with(s, {"locks": _release(s, m.pcp_lock(cpu))})
    irq = -pcp_trylock_irqs(m)
    if f[3] >= 0:
        return _goto(s, cpu, f, "__memcg_kmem_charge_page", irq=irq)
    return _goto(s, cpu, f, "rmqueue_buddy:spin_lock_irqsave", irq=irq)


@rule("NOLOCK-OP-008", "rmqueue_buddy: trylock for ALLOC_TRYLOCK, lock otherwise",
      "mm/page_alloc.c:rmqueue_buddy @ v6.18")
def rmqueue_buddy_trylock(m: NolockModel, cpu: int, f: Frame) -> bool:
    """
    ``rmqueue_buddy`` takes zone->lock with ``spin_trylock_irqsave`` under ALLOC_TRYLOCK
    (failure: NULL) and ``spin_lock_irqsave`` otherwise; an ordinary allocation never fails
    because the lock is busy. Under the lock ``__rmqueue_smallest`` takes the first free
    page (here: the lowest pfn) and ``del_page_from_free_list`` decrements NR_FREE_PAGES.
    Returns whether this path uses the trylock.
    """
    return (_alloc_flags_trylock(m, cpu, f) and not m.nolock_spins) or m.second_trylock


@step("rmqueue_buddy:spin_lock_irqsave", irqsave=True)
def rmqueue_buddy_lock(m: NolockModel, s: NolockState, cpu: int,
                       f: Frame) -> NolockState | Wait:
    got = _acquire(m, s, cpu, f, ZONE_LOCK, trylock=rmqueue_buddy_trylock(m, cpu, f))
    if got is None:
        if not _alloc_flags_trylock(m, cpu, f):
            return _finish(m, s, cpu, f, bad="NOLOCK-PROP-005")
        return _finish(m, s, cpu, f)
    if isinstance(got, Wait):
        return got
    return _goto(got, cpu, f, "__rmqueue_smallest", irq=_irqsave(m))


@step("__rmqueue_smallest", section=ZONE)
def rmqueue_smallest(m: NolockModel, s: NolockState, cpu: int,
                     f: Frame) -> NolockState | Wait:
    return _goto(s, cpu, f, "del_page_from_free_list", tmp=_lowest(s.buddy) if s.buddy else -1)


@step("del_page_from_free_list", section=ZONE)
def del_page_from_free_list(m: NolockModel, s: NolockState, cpu: int,
                            f: Frame) -> NolockState | Wait:
    pfn = f[3]
    if pfn < 0:
        return _goto(s, cpu, f, "rmqueue_buddy:spin_unlock_irqrestore")
    hands = list(s.hands)
    hands[_me(cpu, f)] = pfn
    return _goto(s, cpu, f, "rmqueue_buddy:spin_unlock_irqrestore", buddy=s.buddy & ~(1 << pfn),
                 nr_free=s.nr_free - 1, hands=tuple(hands))


@step("rmqueue_buddy:spin_unlock_irqrestore", section=ZONE)
def rmqueue_buddy_unlock(m: NolockModel, s: NolockState, cpu: int,
                         f: Frame) -> NolockState | Wait:
    s = _with(s, {"locks": _release(s, ZONE_LOCK)})
    if f[3] < 0:
        return _finish(m, s, cpu, (f[0], f[1], f[2], f[3], f[4] - _irqsave(m)))
    return _goto(s, cpu, f, "__memcg_kmem_charge_page", irq=-_irqsave(m))


@rule("NOLOCK-OP-009", "Charging the page to the memcg: consume_stock",
      "mm/memcontrol.c:consume_stock,try_charge_memcg @ v6.18")
def stock_trylock(m: NolockModel, gfp: int) -> bool:
    """
    With ``__GFP_ACCOUNT`` the page is charged after it is taken. ``consume_stock`` takes
    the per-CPU ``memcg_stock.stock_lock`` (a local_trylock_t) with ``local_lock_irqsave``
    when ``gfpflags_allow_spinning(gfp)`` and with ``local_trylock_irqsave`` otherwise; a
    failed trylock skips the stock and charges the page counter directly (atomic, and
    without refilling the stock). Inside, one stocked page is consumed if there is one.
    Returns whether this path uses the trylock. (The page counter never refuses here:
    memcg limits are not modelled, nor the stock refill.)
    """
    return not gfpflags_allow_spinning(gfp, flipped=m.flipped)


@step("__memcg_kmem_charge_page")
def memcg_kmem_charge_page(m: NolockModel, s: NolockState, cpu: int,
                           f: Frame) -> NolockState | Wait:
    name, gfp = m.op(cpu, f)
    if name == "alloc_pages_nolock":
        gfp = gfp | NOLOCK_GFP
    if not gfp & __GFP_ACCOUNT:
        return _finish(m, s, cpu, f)
    lock = m.stock_lock(cpu)
    held = s.locks[lock] != -1
    if stock_trylock(m, gfp):
        if held:  # local_trylock fails while any context of this CPU holds it
            return _finish(m, s, cpu, f)  # page_counter_try_charge
    elif held and m.rt:
        return Wait(lock)
    # local_lock_irqsave on !RT: interrupts off, the lock marked taken; it never waits.
    locks = s.locks if held else _locks(s, lock, _me(cpu, f))
    return _goto(s, cpu, f, "consume_stock:READ_ONCE", irq=0 if m.rt else 1, locks=locks)


@step("consume_stock:READ_ONCE", section=STOCK)
def consume_stock_read(m: NolockModel, s: NolockState, cpu: int,
                       f: Frame) -> NolockState | Wait:
    return _goto(s, cpu, f, "consume_stock:WRITE_ONCE", tmp=s.stock[cpu])


@step("consume_stock:WRITE_ONCE", section=STOCK)
def consume_stock_write(m: NolockModel, s: NolockState, cpu: int,
                        f: Frame) -> NolockState | Wait:
    if f[3] <= 0:
        return _goto(s, cpu, f, "consume_stock:local_unlock_irqrestore")
    stock = list(s.stock)
    stock[cpu] = f[3] - 1
    return _goto(s, cpu, f, "consume_stock:local_unlock_irqrestore", stock=tuple(stock),
                 charged=s.charged + 1)


@step("consume_stock:local_unlock_irqrestore", section=STOCK)
def consume_stock_unlock(m: NolockModel, s: NolockState, cpu: int,
                         f: Frame) -> NolockState | Wait:
    s = _with(s, {"locks": _release(s, m.stock_lock(cpu))})
    return _finish(m, s, cpu, (f[0], f[1], f[2], f[3], f[4] - (0 if m.rt else 1)))


# --- free_pages / free_pages_nolock ------------------------------------------------------------

def _fpi_trylock(m: NolockModel, cpu: int, f: Frame) -> bool:
    """FPI_TRYLOCK: set by free_pages_nolock() only."""
    return m.op(cpu, f)[0] == "free_pages_nolock"


@step("free_pages")
def free_pages(m: NolockModel, s: NolockState, cpu: int, f: Frame) -> NolockState | Wait:
    if s.hands[_me(cpu, f)] < 0:  # free_pages(NULL): nothing to do
        return _finish(m, s, cpu, f)
    return _goto(s, cpu, f, "free:pcp_spin_trylock")


@rule("NOLOCK-OP-010", "free_pages_nolock(): where a page goes without waiting",
      "mm/page_alloc.c:__free_frozen_pages,free_pages_nolock @ v6.18")
def free_nolock_defers_at_once(m: NolockModel, level: int) -> bool:
    """
    ``free_pages_nolock(page, order)`` = ``___free_pages(page, order, FPI_TRYLOCK)``, for any
    page, from any context. Under PREEMPT_RT in NMI or hardirq context (with the UP fix: in
    NMI on UP too, ``!can_spin_trylock()``) the page goes straight onto
    ``zone->trylock_free_pages`` (``add_page_to_zone_llist``, a lock-free llist_add).
    Otherwise it tries ``pcp_spin_trylock``: on success ``free_frozen_page_commit`` adds it
    at the head of the pcp list and, because of FPI_TRYLOCK, returns **without draining**
    (pcp->count may exceed high); on failure ``free_one_page(FPI_TRYLOCK)``.
    Returns whether the page is deferred at once.
    """
    if m.rt and level in (HARDIRQ, NMI):
        return True
    return not m.smp and not m.up_nmi_unfixed and level == NMI


@step("free_pages_nolock")
def free_pages_nolock(m: NolockModel, s: NolockState, cpu: int,
                      f: Frame) -> NolockState | Wait:
    if s.hands[_me(cpu, f)] < 0:
        return _finish(m, s, cpu, f)
    if free_nolock_defers_at_once(m, f[0]):
        return _goto(s, cpu, f, "add_page_to_zone_llist")
    return _goto(s, cpu, f, "free:pcp_spin_trylock")


@step("free:pcp_spin_trylock")
def free_pcp_trylock(m: NolockModel, s: NolockState, cpu: int,
                     f: Frame) -> NolockState | Wait:
    got = _acquire(m, s, cpu, f, m.pcp_lock(cpu), trylock=True)
    if got is None:
        return _goto(s, cpu, f, "free_one_page:spin_lock_irqsave")
    assert not isinstance(got, Wait)
    return _goto(got, cpu, f, "free_frozen_page_commit", irq=pcp_trylock_irqs(m))


@rule("NOLOCK-OP-011", "free_frozen_page_commit: add at the head, drain above high",
      "mm/page_alloc.c:free_frozen_page_commit @ v6.18")
def commit_drains(m: NolockModel, count: int, fpi_trylock: bool) -> bool:
    """
    The page goes on the head of the pcp list and pcp->count grows. With FPI_TRYLOCK the
    commit returns here ("do not attempt to take a zone lock; let pcp->count get over high
    temporarily"). Otherwise, once count >= high, ``free_pcppages_bulk`` frees ``batch``
    pages from the list's tail to the buddy under ``spin_lock_irqsave(&zone->lock)``.
    Returns whether this commit drains.
    """
    return not fpi_trylock and count >= m.config.pcp_high


@step("free_frozen_page_commit", section=PCP)
def free_frozen_page_commit(m: NolockModel, s: NolockState, cpu: int,
                            f: Frame) -> NolockState | Wait:
    me = _me(cpu, f)
    pfn = s.hands[me]
    hands = list(s.hands)
    hands[me] = -1
    pcp = list(s.pcp)
    pcp[cpu] = (pfn,) + s.pcp[cpu]
    nxt = ("free_pcppages_bulk:spin_lock_irqsave"
           if commit_drains(m, len(pcp[cpu]), _fpi_trylock(m, cpu, f))
           else "free:pcp_spin_unlock")
    return _goto(s, cpu, f, nxt, hands=tuple(hands), pcp=tuple(pcp))


@step("free_pcppages_bulk:spin_lock_irqsave", section=PCP, irqsave=True)
def free_pcppages_bulk_lock(m: NolockModel, s: NolockState, cpu: int,
                            f: Frame) -> NolockState | Wait:
    got = _acquire(m, s, cpu, f, ZONE_LOCK, trylock=False)
    if isinstance(got, Wait) or got is None:
        return Wait(ZONE_LOCK)
    return _goto(got, cpu, f, "free_pcppages_bulk:__free_one_page", irq=_irqsave(m))


def _bulk_free(s: NolockState, cpu: int, n: int) -> tuple[tuple[int, ...], int, int]:
    """Free ``n`` pages from the tail of ``cpu``'s list: (list, buddy, pages freed)."""
    lst = s.pcp[cpu]
    n = min(n, len(lst))
    buddy = s.buddy
    for pfn in lst[len(lst) - n:]:
        buddy |= 1 << pfn
    return lst[:len(lst) - n], buddy, n


@step("free_pcppages_bulk:__free_one_page", section=PCP | ZONE)
def free_pcppages_bulk_free(m: NolockModel, s: NolockState, cpu: int,
                            f: Frame) -> NolockState | Wait:
    lst, buddy, n = _bulk_free(s, cpu, m.config.pcp_batch)
    pcp = list(s.pcp)
    pcp[cpu] = lst
    return _goto(s, cpu, f, "free_pcppages_bulk:spin_unlock_irqrestore", pcp=tuple(pcp),
                 buddy=buddy, nr_free=s.nr_free + n)


@step("free_pcppages_bulk:spin_unlock_irqrestore", section=PCP | ZONE)
def free_pcppages_bulk_unlock(m: NolockModel, s: NolockState, cpu: int,
                              f: Frame) -> NolockState | Wait:
    return _goto(s, cpu, f, "free:pcp_spin_unlock", irq=-_irqsave(m),
                 locks=_release(s, ZONE_LOCK))


@step("free:pcp_spin_unlock", section=PCP)
def free_pcp_unlock(m: NolockModel, s: NolockState, cpu: int,
                    f: Frame) -> NolockState | Wait:
    f = (f[0], f[1], f[2], f[3], f[4] - pcp_trylock_irqs(m))
    return _finish(m, s, cpu, f, locks=_release(s, m.pcp_lock(cpu)))


@rule("NOLOCK-OP-012", "free_one_page: trylock and defer, or lock and drain the deferred",
      "mm/page_alloc.c:free_one_page,add_page_to_zone_llist @ v6.18")
def free_one_page_trylock(m: NolockModel, cpu: int, f: Frame) -> bool:
    """
    With FPI_TRYLOCK, ``free_one_page`` takes zone->lock with ``spin_trylock_irqsave``; on
    failure ``add_page_to_zone_llist`` pushes the page on ``zone->trylock_free_pages``
    (order in page->private since 6.18) and returns. Without it, ``spin_lock_irqsave``. Once
    the lock is held and the free is not FPI_TRYLOCK, a non-empty deferred list is taken
    whole (``llist_del_all``) and every page on it freed with ``split_large_buddy`` (counted
    in PGFREE then); then the page itself. Deferred pages are not in NR_FREE_PAGES until
    then, and allocations never drain the list. Returns whether this path uses the trylock.
    """
    return _fpi_trylock(m, cpu, f) and not m.nolock_spins


def _llist_mask(llist: tuple[int, ...]) -> int:
    mask = 0
    for pfn in llist:
        mask |= 1 << pfn
    return mask


@step("free_one_page:spin_lock_irqsave", irqsave=True)
def free_one_page_lock(m: NolockModel, s: NolockState, cpu: int,
                       f: Frame) -> NolockState | Wait:
    got = _acquire(m, s, cpu, f, ZONE_LOCK, trylock=free_one_page_trylock(m, cpu, f))
    if got is None:
        return _goto(s, cpu, f, "add_page_to_zone_llist")
    if isinstance(got, Wait):
        return got
    # The deferred pages present now must be gone when this ordinary free unlocks.
    pending = 0 if _fpi_trylock(m, cpu, f) else _llist_mask(s.llist)
    return _goto(got, cpu, f, "free_one_page:llist_del_all", tmp=pending, irq=_irqsave(m))


@step("free_one_page:llist_del_all", section=ZONE)
def free_one_page_drain(m: NolockModel, s: NolockState, cpu: int,
                        f: Frame) -> NolockState | Wait:
    if not s.llist or _fpi_trylock(m, cpu, f) or m.never_drain:
        return _goto(s, cpu, f, "free_one_page:split_large_buddy")
    return _goto(s, cpu, f, "free_one_page:split_large_buddy", llist=(),
                 buddy=s.buddy | _llist_mask(s.llist), nr_free=s.nr_free + len(s.llist))


@step("free_one_page:split_large_buddy", section=ZONE)
def free_one_page_free(m: NolockModel, s: NolockState, cpu: int,
                       f: Frame) -> NolockState | Wait:
    me = _me(cpu, f)
    pfn = s.hands[me]
    hands = list(s.hands)
    hands[me] = -1
    return _goto(s, cpu, f, "free_one_page:spin_unlock_irqrestore", hands=tuple(hands),
                 buddy=s.buddy | (1 << pfn), nr_free=s.nr_free + 1)


@step("free_one_page:spin_unlock_irqrestore", section=ZONE)
def free_one_page_unlock(m: NolockModel, s: NolockState, cpu: int,
                         f: Frame) -> NolockState | Wait:
    bad = "NOLOCK-PROP-004" if _llist_mask(s.llist) & f[3] else s.bad
    f = (f[0], f[1], f[2], f[3], f[4] - _irqsave(m))
    return _finish(m, s, cpu, f, locks=_release(s, ZONE_LOCK), bad=bad)


@step("add_page_to_zone_llist")
def add_page_to_zone_llist(m: NolockModel, s: NolockState, cpu: int,
                           f: Frame) -> NolockState | Wait:
    me = _me(cpu, f)
    pfn = s.hands[me]
    hands = list(s.hands)
    hands[me] = -1
    return _finish(m, s, cpu, f, hands=tuple(hands), llist=(pfn,) + s.llist)


# --- drain_pages (drain_pages_zone) ------------------------------------------------------------

@rule("NOLOCK-OP-013", "drain_pages_zone: lock a CPU's pcp and free all of it",
      "mm/page_alloc.c:drain_pages_zone,pcp_spin_lock_maybe_irqsave @ v6.18")
def drain_lock_irqs(m: NolockModel) -> int:
    """
    ``drain_pages_zone(cpu, zone)`` (local, or remote from ``drain_all_pages``) takes that
    CPU's pcp->lock with a *waiting* lock and frees every page on it through
    ``free_pcppages_bulk`` (zone->lock irqsave). On SMP that is ``spin_lock`` with
    interrupts enabled, safe because interrupt paths only trylock the pcp. On UP the
    spinlock is compiled away, so since 038a102535eb (Jan 2026, stable >= 6.1) it is
    ``pcp_spin_lock_maybe_irqsave``, which disables interrupts there. Returns the
    interrupt-disable depth the lock adds.
    """
    if m.smp or m.up_drain_no_irqsave:
        return 0
    return 1


@step("drain_pages")
def drain_pages(m: NolockModel, s: NolockState, cpu: int, f: Frame) -> NolockState | Wait:
    target = m.op(cpu, f)[1]
    got = _acquire(m, s, cpu, f, m.pcp_lock(target), trylock=False)
    if isinstance(got, Wait) or got is None:
        return Wait(m.pcp_lock(target))
    return _goto(got, cpu, f, "drain_pages_zone:free_pcppages_bulk", irq=drain_lock_irqs(m))


@step("drain_pages_zone:free_pcppages_bulk", section=PCP)
def drain_bulk_lock(m: NolockModel, s: NolockState, cpu: int,
                    f: Frame) -> NolockState | Wait:
    target = m.op(cpu, f)[1]
    if not s.pcp[target]:
        return _goto(s, cpu, f, "drain_pages_zone:pcp_spin_unlock")
    got = _acquire(m, s, cpu, f, ZONE_LOCK, trylock=False)
    if isinstance(got, Wait) or got is None:
        return Wait(ZONE_LOCK)
    return _goto(got, cpu, f, "drain_pages_zone:__free_one_page", irq=_irqsave(m))


@step("drain_pages_zone:__free_one_page", section=PCP | ZONE)
def drain_bulk_free(m: NolockModel, s: NolockState, cpu: int,
                    f: Frame) -> NolockState | Wait:
    target = m.op(cpu, f)[1]
    lst, buddy, n = _bulk_free(s, target, len(s.pcp[target]))
    pcp = list(s.pcp)
    pcp[target] = lst
    return _goto(s, cpu, f, "drain_pages_zone:spin_unlock_irqrestore", pcp=tuple(pcp),
                 buddy=buddy, nr_free=s.nr_free + n)


@step("drain_pages_zone:spin_unlock_irqrestore", section=PCP | ZONE)
def drain_bulk_unlock(m: NolockModel, s: NolockState, cpu: int,
                      f: Frame) -> NolockState | Wait:
    return _goto(s, cpu, f, "drain_pages_zone:pcp_spin_unlock", irq=-_irqsave(m),
                 locks=_release(s, ZONE_LOCK))


@step("drain_pages_zone:pcp_spin_unlock", section=PCP)
def drain_pcp_unlock(m: NolockModel, s: NolockState, cpu: int,
                     f: Frame) -> NolockState | Wait:
    target = m.op(cpu, f)[1]
    f = (f[0], f[1], f[2], f[3], f[4] - drain_lock_irqs(m))
    return _finish(m, s, cpu, f, locks=_release(s, m.pcp_lock(target)))


#: Operations whose steps touch another CPU's pcp (the drain's target) rather than their own.
def section_owner(m: NolockModel, cpu: int, f: Frame) -> int:
    op = m.op(cpu, f)
    return op[1] if op[0] == "drain_pages" else cpu


# --- transitions -----------------------------------------------------------------------------

#: A transition label: (cpu, level, operation index, step or event name).
Label = tuple[int, int, int, str]


def irqs_enabled(m: NolockModel, s: NolockState, cpu: int, top: Frame, waiting: bool) -> bool:
    """Interrupts are on if the top context has none saved off, and it is not spinning in a
    spin_lock_irqsave (which disables them before it spins)."""
    if top[4] > 0:
        return False
    return not (waiting and top[2] in IRQSAVE_STEPS and not m.rt)


@rule("NOLOCK-PROP-001", "No deadlock",
      "mm/page_alloc.c:alloc_pages_nolock_noprof @ v6.18")
def waits_forever(s: NolockState, cpu: int, lock: int) -> bool:
    """
    No context waits for a lock held by a context it interrupted on the same CPU (that
    holder cannot run until the waiter returns), and no reachable state with work left has
    every context waiting (the explorer reports such a state as a deadlock too).
    """
    holder = s.locks[lock]
    return holder != -1 and holder // 4 == cpu


@rule("NOLOCK-PROP-002", "No wait in a context that must not wait",
      "mm/page_alloc.c:alloc_pages_nolock_noprof,free_pages_nolock @ v6.18")
def must_not_wait(m: NolockModel, cpu: int, f: Frame) -> bool:
    """
    The nolock paths never wait for a lock, in any context ("NULL rather than wait"), and
    nothing waits on a spinlock in NMI context. A context in such a path that finds its
    lock held has failed, even if the holder would eventually release it.
    """
    return m.op(cpu, f)[0] in NOLOCK_OPS or f[0] == NMI


def successors(m: NolockModel, s: NolockState) -> list[tuple[Label, NolockState]]:
    """Every state one atomic step away: a step of the innermost context of some CPU, or an
    interrupt arriving on some CPU."""
    out: list[tuple[Label, NolockState]] = []
    cfg = m.config
    for cpu in range(m.ncpu):
        stack = s.stacks[cpu]
        waiting = False
        top = stack[-1] if stack else None
        if top is not None:
            r = STEPS[top[2]](m, s, cpu, top)
            if isinstance(r, Wait):
                waiting = True
                if waits_forever(s, cpu, r):
                    out.append(((cpu, top[0], top[1], top[2] + " waits forever"),
                                _with(s, {"bad": "NOLOCK-PROP-001"})))
                elif must_not_wait(m, cpu, top):
                    out.append(((cpu, top[0], top[1], top[2] + " waits"),
                                _with(s, {"bad": "NOLOCK-PROP-002"})))
            else:
                out.append(((cpu, top[0], top[1], top[2]), r))
        handlers = m.handlers[cpu]
        if not handlers:
            continue
        fired = s.fired[cpu]
        enabled = top is None or irqs_enabled(m, s, cpu, top, waiting)
        # Nothing interrupts an NMI, so an NMI on the stack is the top context.
        nmi_on = top is not None and top[0] == NMI
        for level, first in handlers:
            if (fired >> (4 * level)) & 15 >= cfg.bound:
                continue
            if not may_interrupt(None if top is None else top[0], enabled, level, nmi_on):
                continue
            stacks = list(s.stacks)
            stacks[cpu] = stack + (first,)
            fl = list(s.fired)
            fl[cpu] = fired + (1 << (4 * level))
            out.append(((cpu, level, -1, CONTEXT_NAMES[level] + " enters"),
                        _with(s, {"stacks": tuple(stacks), "fired": tuple(fl)})))
    return out


def is_final(s: NolockState) -> bool:
    return not any(s.stacks)


# --- state properties ------------------------------------------------------------------------

@rule("NOLOCK-INV-001", "Every page in exactly one place",
      "mm/page_alloc.c:free_one_page,rmqueue_pcplist,add_page_to_zone_llist @ v6.18")
def page_places(m: NolockModel, s: NolockState) -> str | None:
    """
    Every page is in exactly one of: the buddy free list, one CPU's pcp list (once), the
    deferred list zone->trylock_free_pages (once), or allocated (held by one context). No
    page is lost, none is owned twice.
    """
    seen = s.buddy
    count = bin(seen).count("1")
    for lst in s.pcp:
        for pfn in lst:
            seen |= 1 << pfn
        count += len(lst)
    for pfn in s.llist:
        seen |= 1 << pfn
    count += len(s.llist)
    for pfn in s.hands:
        if pfn >= 0:
            seen |= 1 << pfn
            count += 1
    n = m.config.nr_pages
    if seen != (1 << n) - 1:
        return "a page is lost (in no list and not allocated)"
    if count != n:
        return "a page is in two places at once"
    return None


@rule("NOLOCK-INV-002", "pcp, zone and stock critical sections never nest",
      "mm/page_alloc.c:pcp_spin_trylock,pcp_trylock_prepare @ v6.18")
def sections_exclusive(m: NolockModel, s: NolockState) -> str | None:
    """
    At most one context at a time is inside a critical section on a given CPU's pcp list,
    on zone->lock's free lists, or on a CPU's memcg stock: in particular an interrupt never
    enters a section that the context it interrupted is in (the January 2026 SMP=n fix).
    """
    taken = 0
    for cpu, stack in enumerate(s.stacks):
        for f in stack:
            sec = SECTION.get(f[2], 0)
            if not sec:
                continue
            bits = m.section_bits(cpu, f, sec)
            both = taken & bits
            if both:
                if both & 0xff:
                    owner = (both & -both).bit_length() - 1
                    return f"two contexts inside cpu{owner}'s pcp critical section"
                if both & (1 << 8):
                    return "two contexts inside zone->lock's critical section"
                return f"two contexts inside cpu{cpu}'s memcg_stock section"
            taken |= bits
    return None


@rule("NOLOCK-INV-003", "Counters match the lists",
      "mm/page_alloc.c:__mod_zone_freepage_state,consume_stock @ v6.18")
def counters(m: NolockModel, s: NolockState) -> str | None:
    """
    NR_FREE_PAGES equals the number of pages on the buddy free list (deferred pages and pcp
    pages are not counted); every memcg stock is within [0, memcg_stock]; and the pages
    charged from stocks plus the pages still stocked equal the pages stocked at the start
    (a lost update in consume_stock breaks this).
    """
    if s.nr_free != bin(s.buddy).count("1"):
        return f"NR_FREE_PAGES = {s.nr_free} but {bin(s.buddy).count('1')} pages are free"
    c = m.config
    if any(not 0 <= x <= c.memcg_stock for x in s.stock):
        return "a memcg stock out of range"
    if sum(s.stock) + s.charged != c.memcg_stock * c.nr_cpus:
        return "memcg stock and charges disagree (a lost update)"
    return None


declare("NOLOCK-PROP-003", "The lock-order graph is acyclic",
        """
        Over all explored executions, the graph with an edge A -> B whenever a context holding
        a lock of class A waits for (spin_lock, not trylock) a lock of class B has no cycle.
        The kernel's order is pcp->lock -> zone->lock; a trylock never adds an edge, which is
        why interrupt paths may trylock either lock in any order.
        """, "mm/page_alloc.c:rmqueue_bulk,free_pcppages_bulk @ v6.18")

declare("NOLOCK-PROP-004", "Deferred frees are drained by the next ordinary free_one_page",
        """
        A page on zone->trylock_free_pages when an ordinary (non-FPI_TRYLOCK) free_one_page
        takes zone->lock is back on the buddy list when that free releases the lock: deferred
        frees are never stranded once an ordinary free happens on the zone.
        """, "mm/page_alloc.c:free_one_page @ v6.18")

declare("NOLOCK-PROP-005", "Only ALLOC_TRYLOCK allocations fail because a lock is busy",
        """
        An ordinary allocation (alloc_pages from any context) waits for zone->lock rather
        than fail; returning NULL because the lock was busy is reserved for ALLOC_TRYLOCK.
        """, "mm/page_alloc.c:rmqueue_buddy,rmqueue_bulk @ v6.18")

ENTRY_STEPS = frozenset(("alloc_pages", "alloc_pages_nolock", "free_pages",
                         "free_pages_nolock", "drain_pages"))


@rule("NOLOCK-INV-004", "Operations start with interrupts and locks as their context had them",
      "include/linux/irqflags.h,include/linux/spinlock.h:local_irq_restore,spin_unlock @ v6.18")
def balanced(m: NolockModel, s: NolockState) -> str | None:
    """
    Every local_irq_save/spin_lock_irqsave is paired with its restore and every lock taken
    is released on every path out of an operation: when a context starts an operation,
    its interrupt state is the one it began with (enabled in task and softirq context,
    disabled in hardirq and NMI context) and it holds no lock.
    """
    for cpu, stack in enumerate(s.stacks):
        for f in stack:
            if f[2] in ENTRY_STEPS:
                if f[4] != (1 if f[0] >= HARDIRQ else 0):
                    return f"cpu{cpu} {CONTEXT_NAMES[f[0]]} starts {f[2]} with irq depth {f[4]}"
                if cpu * 4 + f[0] in s.locks:
                    return f"cpu{cpu} {CONTEXT_NAMES[f[0]]} starts {f[2]} holding a lock"
    return None


STATE_RULES = (("NOLOCK-INV-001", page_places), ("NOLOCK-INV-002", sections_exclusive),
               ("NOLOCK-INV-003", counters), ("NOLOCK-INV-004", balanced))


def check_state(m: NolockModel, s: NolockState) -> str | None:
    """The first rule ``s`` breaks, or None."""
    if s.bad:
        return s.bad
    for rid, fn in STATE_RULES:
        if fn(m, s) is not None:
            return rid
    return None


# --- default configurations ------------------------------------------------------------------

ALLOC_KERNEL: Op = ("alloc_pages", GFP_KERNEL)
ALLOC_KERNEL_ACCOUNT: Op = ("alloc_pages", GFP_KERNEL_ACCOUNT)
ALLOC_ATOMIC: Op = ("alloc_pages", GFP_ATOMIC)
ALLOC_NOLOCK_ACCOUNT: Op = ("alloc_pages_nolock", __GFP_ACCOUNT)
FREE: Op = ("free_pages", 0)
FREE_NOLOCK: Op = ("free_pages_nolock", 0)
NO_HANDLER: tuple[Op, ...] = ()


def default_config(variant: str = "v6.18", bound: int = 1, cpus: int | None = None
                   ) -> NolockConfig:
    """The default small configuration for a variant (broken variants use their base's).

    SMP (v6.18): two CPUs and three pages. CPU0's task allocates (GFP_KERNEL_ACCOUNT) and
    frees; CPU1's task allocates (GFP_KERNEL), frees and drains CPU0's pcp list. On CPU0 a
    hardirq allocates GFP_ATOMIC and frees; an NMI frees a page it holds from the start with
    free_pages_nolock, then allocates with alloc_pages_nolock(__GFP_ACCOUNT) and frees that.
    PREEMPT_RT: the same, but the hardirq uses the nolock API too (a hard interrupt may not
    take a spinlock_t there). SMP=n: one CPU whose task allocates, frees and drains, with
    the same hardirq and NMI. ``cpus`` (SMP variants only) gives every further CPU the
    program of CPU1; with one CPU, CPU0's task also drains.
    """
    base = base_variant(variant)
    nmi = (FREE_NOLOCK, ALLOC_NOLOCK_ACCOUNT, FREE_NOLOCK)
    if base == "SMP=n" or cpus == 1:
        if cpus not in (None, 1):
            raise ValueError("SMP=n has exactly one CPU")
        hardirq = (ALLOC_NOLOCK_ACCOUNT, FREE_NOLOCK) if base == "PREEMPT_RT" else (
            ALLOC_ATOMIC, FREE)
        return NolockConfig(
            variant=variant, nr_cpus=1, nr_pages=3,
            tasks=((ALLOC_KERNEL_ACCOUNT, FREE, ("drain_pages", 0)),),
            handlers=((NO_HANDLER, NO_HANDLER, hardirq, nmi),),
            preowned=((0, NMI, 2),), bound=bound)
    n = 2 if cpus is None else cpus
    if not 1 <= n <= 4:
        raise ValueError("cpus must be 1..4")
    hardirq = (ALLOC_NOLOCK_ACCOUNT, FREE_NOLOCK) if base == "PREEMPT_RT" else (
        ALLOC_ATOMIC, FREE)
    others = (ALLOC_KERNEL, FREE, ("drain_pages", 0))
    return NolockConfig(
        variant=variant, nr_cpus=n, nr_pages=3,
        tasks=((ALLOC_KERNEL_ACCOUNT, FREE),) + (others,) * (n - 1),
        handlers=((NO_HANDLER, NO_HANDLER, hardirq, nmi),)
        + ((NO_HANDLER, NO_HANDLER, NO_HANDLER, NO_HANDLER),) * (n - 1),
        preowned=((0, NMI, 2),), bound=bound)


def observe(s: NolockState) -> NolockState:
    """What a lockstep comparison looks at: the whole state except each frame's scratch
    value (an implementation may carry its locals differently)."""
    stacks = tuple(tuple((f[0], f[1], f[2], 0, f[4]) for f in st) for st in s.stacks)
    return s._replace(stacks=stacks)


# --- printing --------------------------------------------------------------------------------

def describe_label(m: NolockModel, label: Label) -> str:
    """One trace line: CPU, context, operation and the kernel-named step."""
    cpu, level, opi, what = label
    ctx = CONTEXT_NAMES[level]
    if opi < 0:
        return f"cpu{cpu} {ctx:<7} -- {what}"
    op = m.programs[(cpu, level)][opi]
    return f"cpu{cpu} {ctx:<7} {op_name(op)}: {what}"


def describe_state(m: NolockModel, s: NolockState) -> str:
    """A state for people: lists, locks, and each CPU's contexts."""
    def pages(mask: int) -> list[int]:
        return [p for p in range(m.config.nr_pages) if mask >> p & 1]
    holders = []
    for i, h in enumerate(s.locks):
        if h >= 0:
            name = m.lock_class(i) + ("" if i == ZONE_LOCK else
                                      f"[cpu{(i - 1) % m.ncpu}]")
            holders.append(f"{name} by cpu{h // 4} {CONTEXT_NAMES[h % 4]}")
    lines = [f"buddy {pages(s.buddy)} NR_FREE_PAGES={s.nr_free} "
             f"trylock_free_pages {list(s.llist)}",
             f"pcp {[list(x) for x in s.pcp]} memcg_stock {list(s.stock)} charged={s.charged}",
             "locks: " + (", ".join(holders) or "none")]
    for cpu, stack in enumerate(s.stacks):
        ctxs = [f"{CONTEXT_NAMES[f[0]]}@{f[2]}" for f in stack]
        held = [f"{CONTEXT_NAMES[lv]}:{s.hands[cpu * 4 + lv]}" for lv in range(4)
                if s.hands[cpu * 4 + lv] >= 0]
        lines.append(f"cpu{cpu}: {' > '.join(ctxs) or 'idle'}; holds {held or 'nothing'}")
    return "\n".join(lines)
