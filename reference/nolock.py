"""A fast, mutable implementation of the NOLOCK machine: every context is a generator.

The spec (``spec.nolock``) is a table of step functions over an immutable state; here each
context on each CPU is a Python generator running its program's operations as ordinary
straight-line code, which ``yield``s the kernel name of its next step at every point where
another context may run. Lists are mutable Python lists, the buddy list a set, the locks a
list of holders. ``abstract()`` maps the machine to the spec's observation, so the lockstep
machine (``mmspec fuzz nolock``) can compare the two after every move.

Only vocabulary comes from the spec (the configuration type, context levels, GFP bits);
every decision is made here again.
"""

from __future__ import annotations

from collections.abc import Generator

from spec.constants import __GFP_ACCOUNT, __GFP_RECLAIM
from spec.nolock import HARDIRQ, NMI, SOFTIRQ, TASK, NolockConfig, NolockState

# Module-level names: inside a class body Python would mangle the kernel's __GFP_ names.
GFP_ACCOUNT_BIT = __GFP_ACCOUNT
GFP_RECLAIM_BITS = __GFP_RECLAIM

Steps = Generator[str, None, None]


class Context:
    """One context on a CPU: its level, program position, irq-save depth and generator."""

    __slots__ = ("level", "opi", "pc", "irq", "gen", "waiting")

    def __init__(self, level: int) -> None:
        self.level = level
        self.opi = 0
        self.pc = ""
        self.irq = 1 if level >= HARDIRQ else 0
        self.gen: Steps | None = None
        self.waiting = False


class NolockMachine:
    """The reference machine for one :class:`NolockConfig`."""

    def __init__(self, config: NolockConfig) -> None:
        self.config = c = config
        v = c.variant
        base = {"flipped-allow-spinning": "v6.18", "nolock-spins": "v6.18",
                "deferred-never-drained": "v6.18", "second-trylock": "v6.18",
                "smp-n-pcp": "SMP=n", "smp-n-nmi": "SMP=n"}.get(v, v)
        self.rt = base == "PREEMPT_RT"
        self.smp = base != "SMP=n"
        self.variant = v
        self.ncpu = n = c.nr_cpus
        self.buddy: set[int] = set(range(c.nr_pages))
        self.hands = [-1] * (4 * n)
        for cpu, level, pfn in c.preowned:
            self.hands[cpu * 4 + level] = pfn
            self.buddy.discard(pfn)
        self.nr_free = len(self.buddy)
        self.pcp: list[list[int]] = [[] for _ in range(n)]
        self.llist: list[int] = []
        self.zone_lock = -1
        self.pcp_lock = [-1] * n
        self.stock_lock = [-1] * n
        self.stock = [c.memcg_stock] * n
        self.charged = 0
        self.fired = [[0, 0, 0, 0] for _ in range(n)]
        self.stacks: list[list[Context]] = [[] for _ in range(n)]
        self.bad = ""
        for cpu in range(n):
            if c.tasks[cpu]:
                self._push(cpu, TASK)

    # -- moves ----------------------------------------------------------------------------

    def _program(self, cpu: int, level: int) -> tuple[tuple[str, int], ...]:
        return self.config.tasks[cpu] if level == TASK else self.config.handlers[cpu][level]

    def _push(self, cpu: int, level: int) -> None:
        ctx = Context(level)
        ctx.gen = self._run(cpu, ctx)
        ctx.pc = next(ctx.gen)
        self.stacks[cpu].append(ctx)

    def interrupt(self, cpu: int, level: int) -> None:
        """An interrupt handler of ``level`` starts on ``cpu`` (the caller checks it may)."""
        self.fired[cpu][level] += 1
        self._push(cpu, level)

    def step(self, cpu: int) -> bool:
        """Run one step of the innermost context of ``cpu``; False if it has to wait."""
        ctx = self.stacks[cpu][-1]
        assert ctx.gen is not None
        ctx.waiting = False
        try:
            pc = next(ctx.gen)
        except StopIteration:
            self.stacks[cpu].pop()
            return True
        if ctx.waiting:
            return False
        ctx.pc = pc
        return True

    # -- the programs ---------------------------------------------------------------------

    def _run(self, cpu: int, ctx: Context) -> Steps:
        prog = self._program(cpu, ctx.level)
        for i, (name, arg) in enumerate(prog):
            ctx.opi = i
            if name == "alloc_pages":
                yield from self._alloc(cpu, ctx, arg, nolock=False)
            elif name == "alloc_pages_nolock":
                yield from self._alloc(cpu, ctx, arg, nolock=True)
            elif name == "free_pages":
                yield from self._free(cpu, ctx, nolock=False)
            elif name == "free_pages_nolock":
                yield from self._free(cpu, ctx, nolock=True)
            else:
                yield from self._drain(cpu, ctx, arg)

    def _cannot_trylock(self, ctx: Context) -> bool:
        """can_spin_trylock() is false: RT in hardirq or NMI; UP in NMI (with the fix)."""
        if self.rt and ctx.level in (HARDIRQ, NMI):
            return True
        return not self.smp and self.variant != "smp-n-nmi" and ctx.level == NMI

    def _me(self, cpu: int, ctx: Context) -> int:
        return cpu * 4 + ctx.level

    def _spin(self, holder: int) -> bool:
        """Must a waiting lock wait for this holder? (UP spinlocks never wait.)"""
        return self.smp and holder != -1

    def _irqsave(self) -> int:
        return 0 if self.rt else 1

    def _pcp_prepare(self) -> int:
        return 0 if self.smp else 1

    def _pcp_trylock(self, cpu: int, ctx: Context) -> bool:
        if self.smp and self.pcp_lock[cpu] != -1:
            return False
        if self.pcp_lock[cpu] == -1:
            self.pcp_lock[cpu] = self._me(cpu, ctx)
        return True

    def _zone_trylock(self, cpu: int, ctx: Context) -> bool:
        if self.smp and self.zone_lock != -1:
            return False
        if self.zone_lock == -1:
            self.zone_lock = self._me(cpu, ctx)
        return True

    def _zone_lock(self, cpu: int, ctx: Context, label: str) -> Steps:
        while self._spin(self.zone_lock):
            ctx.waiting = True
            yield label
        if self.zone_lock == -1:
            self.zone_lock = self._me(cpu, ctx)

    def _alloc(self, cpu: int, ctx: Context, gfp: int, nolock: bool) -> Steps:
        me = self._me(cpu, ctx)
        cfg = self.config
        yield "alloc_pages_nolock" if nolock else "alloc_pages"
        if nolock and self._cannot_trylock(ctx):
            return
        yield "zone_watermark_fast"
        if self.nr_free <= (cfg.wmark_min if nolock else cfg.wmark_low):
            return
        trylock_zone = nolock and self.variant != "nolock-spins"
        yield "rmqueue_pcplist:pcp_spin_trylock"
        if self._pcp_trylock(cpu, ctx):
            ctx.irq += self._pcp_prepare()
            yield "__rmqueue_pcplist"
            lst = self.pcp[cpu]
            page = -1
            unlink = bool(lst)
            if lst:
                page = lst[0]
            else:
                yield "rmqueue_bulk:spin_lock_irqsave"
                got = True
                if trylock_zone:
                    got = self._zone_trylock(cpu, ctx)
                else:
                    yield from self._zone_lock(cpu, ctx, "rmqueue_bulk:spin_lock_irqsave")
                if got:
                    ctx.irq += self._irqsave()
                    yield "rmqueue_bulk:__rmqueue"
                    taken = sorted(self.buddy)[:cfg.pcp_batch]
                    for p in taken:
                        self.buddy.remove(p)
                    self.nr_free -= len(taken)
                    lst.extend(taken)
                    yield "rmqueue_bulk:spin_unlock_irqrestore"
                    self.zone_lock = -1
                    ctx.irq -= self._irqsave()
                    if taken:
                        yield "__rmqueue_pcplist:list_first_entry"
                        page = lst[0] if lst else -1
                        unlink = True
            if unlink:
                yield "__rmqueue_pcplist:list_del"
                if page >= 0:
                    if page in lst:
                        lst.remove(page)
                    self.hands[me] = page
            yield "rmqueue_pcplist:pcp_spin_unlock"
            self.pcp_lock[cpu] = -1
            ctx.irq -= self._pcp_prepare()
        if self.hands[me] < 0:
            yield "rmqueue_buddy:spin_lock_irqsave"
            if trylock_zone or self.variant == "second-trylock":
                if not self._zone_trylock(cpu, ctx):
                    if not nolock:
                        self.bad = "NOLOCK-PROP-005"
                    return
            else:
                yield from self._zone_lock(cpu, ctx, "rmqueue_buddy:spin_lock_irqsave")
            ctx.irq += self._irqsave()
            yield "__rmqueue_smallest"
            page = min(self.buddy) if self.buddy else -1
            yield "del_page_from_free_list"
            if page >= 0:
                self.buddy.discard(page)
                self.nr_free -= 1
                self.hands[me] = page
            yield "rmqueue_buddy:spin_unlock_irqrestore"
            self.zone_lock = -1
            ctx.irq -= self._irqsave()
            if page < 0:
                return
        yield "__memcg_kmem_charge_page"
        yield from self._charge(cpu, ctx, gfp)

    def _charge(self, cpu: int, ctx: Context, gfp: int) -> Steps:
        if not gfp & GFP_ACCOUNT_BIT:
            return
        spin = bool(gfp & GFP_RECLAIM_BITS)
        if self.variant == "flipped-allow-spinning":
            spin = not spin
        held = self.stock_lock[cpu] != -1
        if not spin:
            if held:
                return
        elif held and self.rt:
            while self.stock_lock[cpu] != -1:
                ctx.waiting = True
                yield "__memcg_kmem_charge_page"
        if self.stock_lock[cpu] == -1:
            self.stock_lock[cpu] = self._me(cpu, ctx)
        irq = 0 if self.rt else 1
        ctx.irq += irq
        yield "consume_stock:READ_ONCE"
        nr = self.stock[cpu]
        yield "consume_stock:WRITE_ONCE"
        if nr > 0:
            self.stock[cpu] = nr - 1
            self.charged += 1
        yield "consume_stock:local_unlock_irqrestore"
        self.stock_lock[cpu] = -1
        ctx.irq -= irq

    def _free(self, cpu: int, ctx: Context, nolock: bool) -> Steps:
        me = self._me(cpu, ctx)
        yield "free_pages_nolock" if nolock else "free_pages"
        if self.hands[me] < 0:
            return
        if not (nolock and self._cannot_trylock(ctx)):
            yield "free:pcp_spin_trylock"
            if self._pcp_trylock(cpu, ctx):
                ctx.irq += self._pcp_prepare()
                yield "free_frozen_page_commit"
                self.pcp[cpu].insert(0, self.hands[me])
                self.hands[me] = -1
                if not nolock and len(self.pcp[cpu]) >= self.config.pcp_high:
                    yield "free_pcppages_bulk:spin_lock_irqsave"
                    yield from self._zone_lock(cpu, ctx, "free_pcppages_bulk:spin_lock_irqsave")
                    ctx.irq += self._irqsave()
                    yield "free_pcppages_bulk:__free_one_page"
                    self._bulk(cpu, self.config.pcp_batch)
                    yield "free_pcppages_bulk:spin_unlock_irqrestore"
                    self.zone_lock = -1
                    ctx.irq -= self._irqsave()
                yield "free:pcp_spin_unlock"
                self.pcp_lock[cpu] = -1
                ctx.irq -= self._pcp_prepare()
                return
            yield "free_one_page:spin_lock_irqsave"
            trylock = nolock and self.variant != "nolock-spins"
            got = True
            if trylock:
                got = self._zone_trylock(cpu, ctx)
            else:
                yield from self._zone_lock(cpu, ctx, "free_one_page:spin_lock_irqsave")
            if got:
                pending = set() if nolock else set(self.llist)
                ctx.irq += self._irqsave()
                yield "free_one_page:llist_del_all"
                if self.llist and not nolock and self.variant != "deferred-never-drained":
                    self.buddy.update(self.llist)
                    self.nr_free += len(self.llist)
                    self.llist.clear()
                yield "free_one_page:split_large_buddy"
                self.buddy.add(self.hands[me])
                self.nr_free += 1
                self.hands[me] = -1
                yield "free_one_page:spin_unlock_irqrestore"
                if pending & set(self.llist):
                    self.bad = "NOLOCK-PROP-004"
                self.zone_lock = -1
                ctx.irq -= self._irqsave()
                return
        yield "add_page_to_zone_llist"
        self.llist.insert(0, self.hands[me])
        self.hands[me] = -1

    def _bulk(self, cpu: int, n: int) -> None:
        lst = self.pcp[cpu]
        n = min(n, len(lst))
        for _ in range(n):
            self.buddy.add(lst.pop())
        self.nr_free += n

    def _drain(self, cpu: int, ctx: Context, target: int) -> Steps:
        yield "drain_pages"
        while self._spin(self.pcp_lock[target]):
            ctx.waiting = True
            yield "drain_pages"
        if self.pcp_lock[target] == -1:
            self.pcp_lock[target] = self._me(cpu, ctx)
        irq = 0 if self.smp or self.variant == "smp-n-pcp" else 1
        ctx.irq += irq
        yield "drain_pages_zone:free_pcppages_bulk"
        if self.pcp[target]:
            yield from self._zone_lock(cpu, ctx, "drain_pages_zone:free_pcppages_bulk")
            ctx.irq += self._irqsave()
            yield "drain_pages_zone:__free_one_page"
            self._bulk(target, len(self.pcp[target]))
            yield "drain_pages_zone:spin_unlock_irqrestore"
            self.zone_lock = -1
            ctx.irq -= self._irqsave()
        yield "drain_pages_zone:pcp_spin_unlock"
        self.pcp_lock[target] = -1
        ctx.irq -= irq

    # -- abstraction ----------------------------------------------------------------------

    def abstract(self) -> NolockState:
        """The spec's observation of this machine (frames' scratch values are 0)."""
        mask = 0
        for p in self.buddy:
            mask |= 1 << p
        return NolockState(
            stacks=tuple(tuple((c.level, c.opi, c.pc, 0, c.irq) for c in st)
                         for st in self.stacks),
            fired=tuple(f[SOFTIRQ] << 4 | f[HARDIRQ] << 8 | f[NMI] << 12 for f in self.fired),
            hands=tuple(self.hands), buddy=mask, nr_free=self.nr_free,
            pcp=tuple(tuple(lst) for lst in self.pcp), llist=tuple(self.llist),
            locks=(self.zone_lock, *self.pcp_lock, *self.stock_lock),
            stock=tuple(self.stock), charged=self.charged, bad=self.bad)


# --- seeded bugs: each must be caught by the lockstep fuzzer (mmspec fuzz nolock) ----------

class NolockDrains(NolockMachine):
    """Breaks NOLOCK-OP-011: a free_pages_nolock commit drains the pcp list above high
    (taking zone->lock) instead of returning at once."""

    def _free(self, cpu: int, ctx: Context, nolock: bool) -> Steps:
        yield from super()._free(cpu, ctx, False if nolock and len(self.pcp[cpu]) else nolock)


class LlistCounted(NolockMachine):
    """Breaks NOLOCK-OP-012 / NOLOCK-INV-003: add_page_to_zone_llist counts the deferred
    page in NR_FREE_PAGES at once (the kernel counts it only when a later free drains it)."""

    def _free(self, cpu: int, ctx: Context, nolock: bool) -> Steps:
        last = ""
        for label in super()._free(cpu, ctx, nolock):
            last = label
            yield label
        if last == "add_page_to_zone_llist":
            self.nr_free += 1


class PcpTail(NolockMachine):
    """Breaks NOLOCK-OP-007: __rmqueue_pcplist takes the tail of the list, not the head."""

    def _alloc(self, cpu: int, ctx: Context, gfp: int, nolock: bool) -> Steps:
        for label in super()._alloc(cpu, ctx, gfp, nolock):
            if label == "__rmqueue_pcplist:list_del":
                self.pcp[cpu].reverse()
                yield label
                self.pcp[cpu].reverse()
            else:
                yield label


class NolockLowWatermark(NolockMachine):
    """Breaks NOLOCK-OP-004: alloc_pages_nolock checks WMARK_LOW instead of WMARK_MIN."""

    def __init__(self, config: NolockConfig) -> None:
        import attrs
        super().__init__(attrs.evolve(config, wmark_min=config.wmark_low))


class RtHardirqAllowed(NolockMachine):
    """Breaks NOLOCK-OP-001/010: under PREEMPT_RT the nolock API refuses only NMI context,
    letting hardirq context trylock a spinlock_t."""

    def _cannot_trylock(self, ctx: Context) -> bool:
        if self.rt:
            return ctx.level == NMI
        return super()._cannot_trylock(ctx)


MUTANTS: dict[str, type[NolockMachine]] = {
    "nolock-drains": NolockDrains,
    "llist-counted": LlistCounted,
    "pcp-tail": PcpTail,
    "nolock-low-watermark": NolockLowWatermark,
    "rt-hardirq-allowed": RtHardirqAllowed,
}
