"""NOLOCK obligations: the spec's context and refusal rules (``spec.nolock``) checked over their
whole, finite input domains (tag ``finite``: exhaustive enumeration, a complete proof for a
finite domain), and the inverted-spinning test of the v9 series as a broken twin.

The state-space explorations of the NOLOCK area pin their own counts in
``checker/nolock_manifest.json`` (``mmspec explore nolock``); they are not repeated here.
"""

from __future__ import annotations

import itertools

import spec.constants as C
from proofs.runner import COUNTEREXAMPLE, PROVED, Outcome, obligation
from spec.nolock import (
    ALL_VARIANTS,
    HARDIRQ,
    NMI,
    NOLOCK_GFP,
    SOFTIRQ,
    TASK,
    VARIANTS,
    gfpflags_allow_spinning,
    may_interrupt,
    nolock_refuses,
)

LEVELS = (TASK, SOFTIRQ, HARDIRQ, NMI)
LEVEL_NAMES = {TASK: "TASK", SOFTIRQ: "SOFTIRQ", HARDIRQ: "HARDIRQ", NMI: "NMI"}


def _first_failure(cases: list[tuple[str, bool]], what: str) -> Outcome:
    for text, ok in cases:
        if not ok:
            return Outcome(COUNTEREXAMPLE, what, counterexample=text)
    return Outcome(PROVED, f"{len(cases)} cases: {what}")


@obligation("nolock.context.stack_order", ["NOLOCK-POL-001"], tags=["finite", "context"])
def stack_order() -> Outcome:
    """Whatever interrupts a context runs at a higher level (task < softirq < hardirq < NMI),
    except on an idle CPU; nothing but an NMI interrupts with interrupts disabled; an NMI
    never interrupts an NMI. Every (top, irqs_enabled, level, nmi_on_stack) is checked, for
    the levels that interrupt (the explorer asks only about softirq, hardirq and NMI)."""
    cases = []
    for top, enabled, level, nmi in itertools.product((None, *LEVELS), (False, True),
                                                      (SOFTIRQ, HARDIRQ, NMI), (False, True)):
        if nmi and top is None:
            continue
        ok = may_interrupt(top, enabled, level, nmi)
        good = (not ok or top is None or level > top or (level == NMI and not nmi)) and (
            not ok or enabled or level == NMI or top is None) and not (ok and level == NMI
                                                                      and nmi)
        cases.append((f"may_interrupt({top!r}, {enabled!r}, {LEVEL_NAMES[level]}, {nmi!r})",
                      good))
    return _first_failure(cases, "contexts nest in level order")


@obligation("nolock.context.nonvacuous", ["NOLOCK-POL-001"], tags=["finite", "nonvacuity"])
def stack_nonvacuous() -> Outcome:
    """Non-vacuity: the full stack task -> softirq -> hardirq -> NMI is possible."""
    chain = [(TASK, True, SOFTIRQ, False), (SOFTIRQ, True, HARDIRQ, False),
             (HARDIRQ, False, NMI, False)]
    if all(may_interrupt(*c) for c in chain):
        return Outcome(PROVED, "task, softirq, hardirq and NMI stack on one CPU",
                       counterexample="\n".join(f"may_interrupt{c!r}" for c in chain))
    return Outcome(COUNTEREXAMPLE, "the four contexts cannot stack")


def _composites(exclude: tuple[str, ...] = ()) -> dict[str, int]:
    return {name: v for name, v in C.GFP_COMPOSITES.items() if name.startswith("GFP_")
            and name not in ("GFP_DMA", "GFP_DMA32", *exclude)}


@obligation("nolock.gfp.composites_spin", ["NOLOCK-POL-002"], tags=["finite", "gfp"])
def composites_spin() -> Outcome:
    """Every GFP_* composite of the kernel but GFP_TRANSHUGE_LIGHT (GFP_ATOMIC and GFP_NOWAIT
    included) may spin; alloc_pages_nolock's own mask may not."""
    cases = [(f"gfpflags_allow_spinning(Gfp({name!r}))", gfpflags_allow_spinning(v))
             for name, v in _composites(("GFP_TRANSHUGE_LIGHT",)).items()]
    cases.append(("gfpflags_allow_spinning(NOLOCK_GFP)", not gfpflags_allow_spinning(NOLOCK_GFP)))
    return _first_failure(cases, "GFP composites spin, the nolock mask does not")


@obligation("nolock.gfp.every_composite_spins", ["NOLOCK-POL-002"], expected=COUNTEREXAMPLE,
            tags=["finite", "gfp", "edge"])
def every_composite_spins() -> Outcome:
    """Edge, expected to fail: NOLOCK-POL-002's text says every GFP_* composite has a reclaim
    bit. GFP_TRANSHUGE_LIGHT is defined with ``& ~__GFP_RECLAIM``, so
    ``gfpflags_allow_spinning(GFP_TRANSHUGE_LIGHT)`` is false in 6.18 as in the spec: a
    light THP request is treated like a nolock one by every caller of that test."""
    cases = [(f"gfpflags_allow_spinning(Gfp({name!r}))", gfpflags_allow_spinning(v))
             for name, v in _composites().items()]
    return _first_failure(cases, "every GFP composite spins")


@obligation("nolock.gfp.flipped_twin", ["NOLOCK-POL-002"], expected=COUNTEREXAMPLE,
            tags=["finite", "gfp", "twin"])
def flipped_twin() -> Outcome:
    """Broken twin, expected to fail: the v9 series' inverted test (``flipped``) makes
    GFP_KERNEL refuse to spin, so the same check must produce a counterexample."""
    cases = [(f"gfpflags_allow_spinning(Gfp({name!r}), flipped=True)",
              gfpflags_allow_spinning(v, flipped=True))
             for name, v in _composites(("GFP_TRANSHUGE_LIGHT",)).items()]
    return _first_failure(cases, "GFP composites spin (flipped test)")


@obligation("nolock.refuses.orders_and_contexts", ["NOLOCK-OP-001"], tags=["finite", "nolock"])
def refuses() -> Outcome:
    """For every variant (the broken ones included), context and order 0..10:
    alloc_pages_nolock refuses orders the per-CPU lists do not serve (4..8 and 10) everywhere;
    refuses nothing else in task or softirq context; under PREEMPT_RT refuses hardirq and
    NMI; on SMP=n (as fixed) refuses NMI; in the released 6.18 (SMP) refuses no pcp order."""
    cases = []
    for variant, level, order in itertools.product(ALL_VARIANTS, LEVELS, range(11)):
        got = nolock_refuses(variant, level, order)
        pcp_order = order <= 3 or order == 9
        if not pcp_order:
            want = True
        elif level in (TASK, SOFTIRQ):
            want = False
        elif variant == "v6.18":
            want = False
        elif variant == "PREEMPT_RT":
            want = True
        elif variant == "SMP=n":
            want = level == NMI
        else:
            continue  # the broken variants' context rules are the bug zoo's business
        cases.append((f"nolock_refuses({variant!r}, {LEVEL_NAMES[level]}, {order})",
                      got == want))
    assert set(VARIANTS) <= set(ALL_VARIANTS)
    return _first_failure(cases, "refusals by order and context")
