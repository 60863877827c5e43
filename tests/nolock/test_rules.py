"""Hand-derived checks of the NOLOCK rules, each against the kernel code it cites."""

from __future__ import annotations

from typing import Any

import attrs
import pytest

import spec.constants as C
from spec.nolock import (
    ALLOC_KERNEL,
    FREE,
    FREE_NOLOCK,
    HARDIRQ,
    NMI,
    NO_HANDLER,
    SOFTIRQ,
    TASK,
    ZONE_LOCK,
    NolockConfig,
    NolockModel,
    commit_drains,
    default_config,
    drain_lock_irqs,
    free_nolock_defers_at_once,
    gfpflags_allow_spinning,
    may_interrupt,
    nolock_refuses,
    pcp_list_del,
    pcp_trylock_irqs,
    spin_lock_waits,
    spin_trylock,
    stock_trylock,
    watermark_ok,
)

from .helpers import run_schedule, steps, top_pc


def test_contexts_NOLOCK_POL_001() -> None:
    # NMIs do not nest; everything else is open to an NMI.
    assert may_interrupt(TASK, False, NMI, nmi_on_stack=False)
    assert may_interrupt(HARDIRQ, False, NMI, nmi_on_stack=False)
    assert not may_interrupt(NMI, False, NMI, nmi_on_stack=True)
    # Hardirqs need interrupts on and do not nest.
    assert may_interrupt(TASK, True, HARDIRQ, nmi_on_stack=False)
    assert not may_interrupt(TASK, False, HARDIRQ, nmi_on_stack=False)
    assert not may_interrupt(HARDIRQ, True, HARDIRQ, nmi_on_stack=False)
    assert may_interrupt(SOFTIRQ, True, HARDIRQ, nmi_on_stack=False)
    # Softirqs run over task context only; an idle CPU takes anything.
    assert may_interrupt(TASK, True, SOFTIRQ, nmi_on_stack=False)
    assert not may_interrupt(HARDIRQ, True, SOFTIRQ, nmi_on_stack=False)
    assert may_interrupt(None, False, HARDIRQ, nmi_on_stack=False)


def test_gfpflags_allow_spinning_NOLOCK_POL_002() -> None:
    # include/linux/gfp.h: !!(gfp & __GFP_RECLAIM); every composite has a reclaim bit.
    for gfp in (C.GFP_KERNEL, C.GFP_ATOMIC, C.GFP_NOWAIT, C.GFP_NOIO, C.GFP_KERNEL_ACCOUNT):
        assert gfpflags_allow_spinning(gfp)
        assert not gfpflags_allow_spinning(gfp, flipped=True)
    assert not gfpflags_allow_spinning(0)
    assert not gfpflags_allow_spinning(C.__GFP_ACCOUNT | C.__GFP_ZERO | C.__GFP_NOWARN)
    assert gfpflags_allow_spinning(0, flipped=True)


def test_nolock_refuses_NOLOCK_OP_001() -> None:
    # pcp orders only (0..3, and 9 = HPAGE_PMD_ORDER with THP).
    assert not nolock_refuses("v6.18", NMI, 3)
    assert nolock_refuses("v6.18", NMI, 4)
    assert not nolock_refuses("v6.18", NMI, 9)
    # PREEMPT_RT: NULL in NMI and hardirq, fine in task and softirq context.
    assert nolock_refuses("PREEMPT_RT", NMI, 0)
    assert nolock_refuses("PREEMPT_RT", HARDIRQ, 0)
    assert not nolock_refuses("PREEMPT_RT", SOFTIRQ, 0)
    # UP: NULL in NMI with 620b46ed6ae17; 6.18 as released did not refuse.
    assert nolock_refuses("SMP=n", NMI, 0)
    assert not nolock_refuses("SMP=n", HARDIRQ, 0)
    assert not nolock_refuses("smp-n-nmi", NMI, 0)
    # Only __GFP_ACCOUNT may be passed (6.18 warns and goes on; the model refuses the config).
    with pytest.raises(ValueError, match="only __GFP_ACCOUNT"):
        NolockConfig(nr_cpus=1, tasks=((("alloc_pages_nolock", C.__GFP_ZERO),),),
                     handlers=((NO_HANDLER,) * 4,))


def _one_cpu(variant: str = "v6.18", **kw: Any) -> NolockModel:
    cfg = NolockConfig(variant=variant, nr_cpus=1, nr_pages=3, tasks=((ALLOC_KERNEL, FREE),),
                       handlers=((NO_HANDLER, NO_HANDLER, NO_HANDLER, (FREE_NOLOCK,)),),
                       preowned=((0, NMI, 1),))
    return NolockModel(attrs.evolve(cfg, **kw))


def test_spin_trylock_NOLOCK_OP_002() -> None:
    m = _one_cpu()
    s = m.initial()
    held = s._replace(locks=(0, -1, -1))  # zone->lock held by cpu0's task
    f = (NMI, 0, "x", 0, 1)
    assert spin_trylock(m, s, 0, f, ZONE_LOCK)
    assert not spin_trylock(m, held, 0, f, ZONE_LOCK)
    up = _one_cpu("SMP=n")
    assert spin_trylock(up, held, 0, f, ZONE_LOCK)  # UP: always succeeds


def test_spin_lock_waits_NOLOCK_OP_003() -> None:
    m, up = _one_cpu(), _one_cpu("SMP=n")
    held = m.initial()._replace(locks=(4 + 0, -1, -1))
    assert spin_lock_waits(m, held, ZONE_LOCK)
    assert not spin_lock_waits(m, m.initial(), ZONE_LOCK)
    assert not spin_lock_waits(up, held, ZONE_LOCK)


def test_watermark_NOLOCK_OP_004() -> None:
    m = _one_cpu()  # wmark_min 0, wmark_low 1
    assert watermark_ok(m, 1, trylock=True)      # 1 > min 0
    assert not watermark_ok(m, 1, trylock=False)  # 1 > low 1 fails
    assert not watermark_ok(m, 0, trylock=True)


def test_pcp_trylock_NOLOCK_OP_005() -> None:
    assert pcp_trylock_irqs(_one_cpu()) == 0
    assert pcp_trylock_irqs(_one_cpu("SMP=n")) == 1
    # An NMI whose task holds the pcp lock falls back to free_one_page.
    m = _one_cpu()
    s = run_schedule(m, m.initial(), steps(0, 3) + [(0, NMI)] + steps(0, 2))
    assert s.locks[m.pcp_lock(0)] == 0  # the task's
    assert top_pc(s, 0) == "free_one_page:spin_lock_irqsave"


def test_rmqueue_bulk_and_buddy_trylock_NOLOCK_OP_006_NOLOCK_OP_008() -> None:
    # CPU1's task holds zone->lock; CPU0's NMI allocates with alloc_pages_nolock and gets NULL
    # instead of waiting (pcp list empty -> rmqueue_bulk trylock fails -> rmqueue_buddy
    # trylock fails).
    cfg = NolockConfig(
        nr_cpus=2, nr_pages=2, tasks=((), (ALLOC_KERNEL, FREE)),
        handlers=((NO_HANDLER, NO_HANDLER, NO_HANDLER, (("alloc_pages_nolock", 0),)),
                  (NO_HANDLER,) * 4))
    m = NolockModel(cfg)
    s = run_schedule(m, m.initial(), steps(1, 5))  # cpu1 task: ... rmqueue_bulk took the lock
    assert s.locks[ZONE_LOCK] == 4 * 1 + TASK
    s = run_schedule(m, s, [(0, NMI)] + steps(0, 6))
    assert top_pc(s, 0) == "rmqueue_buddy:spin_lock_irqsave"
    s = run_schedule(m, s, steps(0, 1))
    assert s.stacks[0] == () and s.hands[0 * 4 + NMI] == -1  # returned NULL


def test_pcp_list_del_NOLOCK_OP_007() -> None:
    assert pcp_list_del((5, 3, 7), 5) == (3, 7)
    assert pcp_list_del((5,), 5) == ()


def test_stock_lock_NOLOCK_OP_009() -> None:
    m, flipped = _one_cpu(), _one_cpu("flipped-allow-spinning")
    assert stock_trylock(m, C.__GFP_ACCOUNT)                 # nolock: trylock
    assert not stock_trylock(m, C.GFP_KERNEL_ACCOUNT)        # ordinary: local_lock
    assert not stock_trylock(flipped, C.__GFP_ACCOUNT)       # the March 2025 bug
    assert stock_trylock(flipped, C.GFP_KERNEL_ACCOUNT)


def test_free_nolock_deferral_NOLOCK_OP_010() -> None:
    rt, up, smp = _one_cpu("PREEMPT_RT"), _one_cpu("SMP=n"), _one_cpu()
    assert free_nolock_defers_at_once(rt, NMI) and free_nolock_defers_at_once(rt, HARDIRQ)
    assert not free_nolock_defers_at_once(rt, TASK)
    assert free_nolock_defers_at_once(up, NMI) and not free_nolock_defers_at_once(up, HARDIRQ)
    assert not free_nolock_defers_at_once(smp, NMI)
    # RT: the NMI's page goes straight to zone->trylock_free_pages, no lock touched.
    s = run_schedule(rt, rt.initial(), [(0, NMI)] + steps(0, 2))
    assert s.llist == (1,) and s.locks == (-1, -1, -1)


def test_commit_never_drains_under_trylock_NOLOCK_OP_011() -> None:
    m = _one_cpu()  # pcp_high 2
    assert not commit_drains(m, 5, fpi_trylock=True)
    assert commit_drains(m, 2, fpi_trylock=False)
    assert not commit_drains(m, 1, fpi_trylock=False)


def test_deferred_then_drained_NOLOCK_OP_012() -> None:
    # cpu0 task inside rmqueue_bulk holds its pcp lock and zone->lock; the NMI's
    # free_pages_nolock fails both trylocks and defers page 1. Later the hardirq (after the
    # task released zone->lock but still holds pcp->lock) frees its page with an ordinary
    # free_pages: pcp trylock fails, free_one_page locks and drains page 1 first.
    cfg = NolockConfig(
        nr_cpus=1, nr_pages=3, tasks=((ALLOC_KERNEL, FREE),),
        handlers=((NO_HANDLER, NO_HANDLER, (FREE,), (FREE_NOLOCK,)),),
        preowned=((0, NMI, 1), (0, HARDIRQ, 2)), pcp_batch=1, wmark_low=0)
    m = NolockModel(cfg)
    s = run_schedule(m, m.initial(), steps(0, 5))
    assert s.locks[ZONE_LOCK] == 0 and s.locks[m.pcp_lock(0)] == 0
    s = run_schedule(m, s, [(0, NMI)] + steps(0, 4))
    # The deferred page is not counted in NR_FREE_PAGES (page 0 is still free).
    assert s.llist == (1,) and s.nr_free == 1 and s.stacks[0][-1][0] == TASK
    # task: __rmqueue, unlock zone (pcp still held, interrupts back on)
    s = run_schedule(m, s, steps(0, 2))
    assert top_pc(s, 0) == "__rmqueue_pcplist:list_first_entry"
    s = run_schedule(m, s, [(0, HARDIRQ)] + steps(0, 3))
    assert top_pc(s, 0) == "free_one_page:llist_del_all"
    s = run_schedule(m, s, steps(0, 1))
    assert s.llist == () and s.buddy & (1 << 1)
    s = run_schedule(m, s, steps(0, 2))
    assert s.buddy == 0b110 and s.nr_free == 2 and not s.bad


def test_drain_irqs_NOLOCK_OP_013() -> None:
    assert drain_lock_irqs(_one_cpu()) == 0
    assert drain_lock_irqs(_one_cpu("SMP=n")) == 1
    assert drain_lock_irqs(_one_cpu("smp-n-pcp")) == 0


def test_default_configs_are_valid() -> None:
    for v in ("v6.18", "PREEMPT_RT", "SMP=n"):
        cfg = default_config(v)
        assert cfg.nr_cpus == (1 if v == "SMP=n" else 2)
    with pytest.raises(ValueError):
        default_config("SMP=n", cpus=2)
    with pytest.raises(ValueError):
        NolockConfig(variant="nope", nr_cpus=1, tasks=((),), handlers=((),) * 1)
