"""NOLOCK obligations: the spec's context and refusal rules (``spec.nolock``) checked over their
whole, finite input domains (tag ``finite``: exhaustive enumeration, a complete proof for a
finite domain), and the inverted-spinning test of the v9 series as a broken twin.

The state-space explorations of the NOLOCK area pin their own counts in
``checker/nolock_manifest.json`` (``mmspec explore nolock``); they are not repeated here.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
from collections.abc import Callable
from typing import Any

import spec.constants as C
from checker.explore import ExploreResult, explore
from checker.nolock_explore import annotated_trace
from checker.spec_twins import Twin, installed
from proofs.runner import COUNTEREXAMPLE, PROVED, Outcome, add, obligation
from spec.nolock import (
    ALL_VARIANTS,
    ENTRY_STEPS,
    HARDIRQ,
    NMI,
    NOLOCK_GFP,
    PCP,
    SECTION,
    SOFTIRQ,
    STATE_RULES,
    TASK,
    VARIANTS,
    ZONE_LOCK,
    Frame,
    NolockModel,
    NolockState,
    check_state,
    default_config,
    describe_state,
    gfpflags_allow_spinning,
    may_interrupt,
    nolock_refuses,
    successors,
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


# --- every NOLOCK invariant: a non-vacuity witness and a broken twin (bounded) -------------
#
# Both kinds run the NOLOCK explorer (:func:`checker.explore.explore`, breadth-first, so the
# trace printed is a shortest one) on a small configuration of ``spec.nolock``. A witness is
# a reachable state where the invariant holds and its premise is exercised; a twin is a
# plausible wrong version of the operation the invariant protects (a NOLOCK bug-zoo variant,
# or a spec function replaced with :func:`checker.spec_twins.installed`), under which the
# exploration must reach a state the invariant rejects. Both stop at the first such state;
# the distinct states seen by then are the obligation's state count.

NolockPremise = Callable[[NolockModel, NolockState], bool]
#: The explored configuration of the witnesses and of the new twins: v6.18 on one CPU (the
#: task allocates GFP_KERNEL_ACCOUNT, frees and drains; a hardirq allocates GFP_ATOMIC and
#: frees; an NMI frees a page it holds with free_pages_nolock, then allocates with
#: alloc_pages_nolock and frees that), 4,483 states in all.
WITNESS_CONFIG = ("v6.18", 1)


def _nolock_rule(rule_id: str) -> Callable[[NolockModel, NolockState], str | None]:
    return dict(STATE_RULES)[rule_id]


def _replay_text(config: tuple[str, int | None], m: NolockModel, s: NolockState,
                 trace: list[Any], what: str) -> str:
    """Valid Python replaying ``trace`` on the spec (labels are unique among a state's
    successors), with the annotated trace and the final state as comments."""
    variant, cpus = config
    lines = [f"# {what}: {len(trace)} moves",
             "from spec.nolock import NolockModel, default_config, successors",
             f"m = NolockModel(default_config({variant!r}, cpus={cpus!r}))",
             "s = m.initial()"]
    for label, text in zip(trace, annotated_trace(m, trace), strict=True):
        lines.append(f"s = dict(successors(m, s))[{label!r}]  # {text}")
    lines += [f"# {line}" for line in describe_state(m, s).splitlines()]
    return "\n".join(lines)


def _search(config: tuple[str, int | None], hit: Callable[[NolockModel, NolockState], bool]
            ) -> tuple[NolockModel, ExploreResult]:
    variant, cpus = config
    m = NolockModel(default_config(variant, cpus=cpus))
    res = explore([m.initial()], lambda s: successors(m, s),
                  check=lambda s: "hit" if hit(m, s) else None, stop_at_first=True)
    return m, res


def _nolock_witness(rule_id: str, premise: NolockPremise, what: str) -> Outcome:
    inv = _nolock_rule(rule_id)
    m, res = _search(WITNESS_CONFIG, lambda m, s: not s.bad and check_state(m, s) is None
                     and inv(m, s) is None and premise(m, s))
    if not res.violations:
        return Outcome(COUNTEREXAMPLE, f"{rule_id}: no reachable state where {what} "
                       f"({res.states} states): the invariant is vacuous here",
                       states=res.states)
    v = res.violations[0]
    return Outcome(PROVED, f"{rule_id} holds where {what}, {len(v.trace)} moves from boot",
                   _replay_text(WITNESS_CONFIG, m, v.state, v.trace, "witness"),
                   states=res.states)


def _nolock_twin(rule_id: str, config: tuple[str, int | None], twin: Twin | None,
                 what: str) -> Outcome:
    inv = _nolock_rule(rule_id)
    with installed(twin) if twin is not None else contextlib.nullcontext():
        m, res = _search(config, lambda m, s: inv(m, s) is not None)
        if not res.violations:
            return Outcome(PROVED, f"{what}: no state breaks {rule_id} ({res.states} states)",
                           states=res.states)
        v = res.violations[0]
        text = _replay_text(config, m, v.state, v.trace, f"{rule_id}: {inv(m, v.state)}")
    if twin is not None:
        text = (f"# with {twin.target} replaced by {twin.make.__name__} of proofs.nolock, "
                f"installed by checker.spec_twins.installed\n{text}")
    return Outcome(COUNTEREXAMPLE, f"{what}: {inv(m, v.state)}", text, states=res.states)


def _below_top(m: NolockModel, s: NolockState, test: Callable[[int, Frame], bool]) -> bool:
    """Some CPU runs a context interrupted (not the top of its stack) that passes ``test``."""
    return any(test(cpu, f) for cpu, st in enumerate(s.stacks) for f in st[:-1])


def _premise_places(m: NolockModel, s: NolockState) -> bool:
    """Pages in three kinds of place at once: a pcp list, the buddy list, a context's hand."""
    return any(s.pcp) and s.buddy != 0 and any(p >= 0 for p in s.hands)


def _premise_sections(m: NolockModel, s: NolockState) -> bool:
    """An interrupt over a context inside a pcp critical section."""
    return _below_top(m, s, lambda cpu, f: bool(SECTION.get(f[2], 0) & PCP))


def _premise_counters(m: NolockModel, s: NolockState) -> bool:
    """A page charged from the memcg stock, a page on a pcp list (not counted in
    NR_FREE_PAGES) and NR_FREE_PAGES below the pages that started free."""
    return s.charged > 0 and any(s.pcp) and s.nr_free < m.initial().nr_free


def _premise_balanced(m: NolockModel, s: NolockState) -> bool:
    """An interrupt starts an operation over a context that holds a lock."""
    return any(len(st) >= 2 and st[-1][2] in ENTRY_STEPS
               and any(cpu * 4 + f[0] in s.locks for f in st[:-1])
               for cpu, st in enumerate(s.stacks))


def _pcp_list_del_forgotten(orig: Callable[..., Any]) -> Callable[..., Any]:
    """``list_del`` forgotten: the page taken from the head of the pcp list stays on it."""
    return lambda lst, pfn: lst


def _bulk_free_uncounted(orig: Callable[..., Any]) -> Callable[..., Any]:
    """free_pcppages_bulk puts the pages back on the buddy list without
    ``__mod_zone_freepage_state``: NR_FREE_PAGES misses them."""
    def twin(s: NolockState, cpu: int, n: int) -> tuple[tuple[int, ...], int, int]:
        lst, buddy, _ = orig(s, cpu, n)
        return lst, buddy, 0
    return twin


def _zone_unlock_forgotten(orig: Callable[..., Any]) -> Callable[..., Any]:
    """``spin_unlock(&zone->lock)`` forgotten on every path: the lock stays held."""
    return lambda s, lock: s.locks if lock == ZONE_LOCK else orig(s, lock)


NOLOCK_INV_OBLIGATIONS: tuple[tuple[str, NolockPremise, tuple[str, int | None],
                                    Twin | None, str], ...] = (
    ("NOLOCK-INV-001", _premise_places, WITNESS_CONFIG,
     Twin(("NOLOCK-INV-001", "NOLOCK-OP-007"), "spec.nolock:pcp_list_del",
          _pcp_list_del_forgotten, _pcp_list_del_forgotten.__doc__ or ""),
     "the pcp list_del forgotten"),
    ("NOLOCK-INV-002", _premise_sections, ("smp-n-nmi", None), None,
     "bug zoo smp-n-nmi (6.18 as released on UP: an NMI's spin_trylock always succeeds)"),
    ("NOLOCK-INV-003", _premise_counters, WITNESS_CONFIG,
     Twin(("NOLOCK-INV-003",), "spec.nolock:_bulk_free", _bulk_free_uncounted,
          _bulk_free_uncounted.__doc__ or ""),
     "free_pcppages_bulk without __mod_zone_freepage_state"),
    ("NOLOCK-INV-004", _premise_balanced, WITNESS_CONFIG,
     Twin(("NOLOCK-INV-004",), "spec.nolock:_release", _zone_unlock_forgotten,
          _zone_unlock_forgotten.__doc__ or ""),
     "zone->lock never released"),
)


def _register_invariant_obligations() -> None:
    for rid, premise, twin_config, twin, twin_what in NOLOCK_INV_OBLIGATIONS:
        what = " ".join((premise.__doc__ or "").split()).rstrip(".")
        what = what[0].lower() + what[1:]
        add(f"nolock.nonvacuity.{rid}", [rid],
            functools.partial(_nolock_witness, rid, premise, what), PROVED,
            ["bounded", "nonvacuity"],
            f"Non-vacuity of {rid}: a state reachable in v6.18 on one CPU where the invariant "
            f"holds and {what}; the shortest trace to it is printed as Python.")
        rules = [rid] if twin is None else list(dict.fromkeys([rid, *twin.rules]))
        variant = twin_config[0]
        add(f"nolock.twin.{rid}", rules,
            functools.partial(_nolock_twin, rid, twin_config, twin, twin_what),
            COUNTEREXAMPLE, ["bounded", "twin"],
            f"Broken twin of {rid}, expected to fail: {twin_what}"
            + (f" ({twin.doc})" if twin is not None else "")
            + f"; the exploration of {variant} on {twin_config[1] or 'its default'} CPU(s) "
            "reaches a state the invariant rejects, printed with its shortest trace.")


_register_invariant_obligations()
