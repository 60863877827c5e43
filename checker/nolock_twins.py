"""Broken twins of the NOLOCK spec's rules: negative evidence that each rule is pinned down.

For a rule stated by a function of :mod:`spec.nolock`, its twin is a plausible wrong version
of that function (an inverted test, a step skipped on one configuration, a lock treated as
recursive). :func:`catch` puts the twin in place of the function in every ``spec`` and
``checker`` module that holds it (:func:`checker.spec_twins.installed`) and runs the NOLOCK
checks (:func:`run_checks`):

1. the explorer (every interleaving, every state rule, deadlock, waiting in a context that
   must not wait, the lock-order graph) on the default configuration of each variant, the
   one-CPU SMP configuration first because it is the cheapest; then
2. the independent reference (:mod:`reference.nolock`, never patched) against the spec
   with the twin inside, on every edge of small configurations' state graphs
   (:func:`checker.nolock_explore.lockstep_graph`); then
3. a short lockstep fuzz (``mmspec fuzz nolock``) of the reference against the spec.

The random lockstep alone misses the NOLOCK-OP-009 twin (30 s, 2700 examples): it needs an
NMI to arrive while the task is inside consume_stock, 11 task steps deep, and random moves
let the NMI in long before. The graph walk, added for this, finds it in 0.2 s. The
NOLOCK-POL-001 twin is invisible to any lockstep by design: the reference takes whatever
interrupt the driver delivers (its ``interrupt`` leaves the decision to the caller), so only
the explorer's properties judge which interrupts may arrive.

A twin that survives both means the rule's statement is not constrained by any check; the
tests require every twin to be caught, and :func:`baseline` (the same checks, no twin) to
find nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

# Imported before any twin is installed: modules that bind spec names at import time must
# see the originals first (see checker.spec_twins.installed).
import checker.commands.nolock  # noqa: F401  (registers the nolock lockstep area)
import checker.nolock_explore
import reference.nolock  # noqa: F401
from checker import spec_twins
from checker.spec_twins import Twin, _noop, installed

#: The explored configurations, cheapest first: (variant, cpus).
EXPLORATIONS: tuple[tuple[str, int | None], ...] = (
    ("SMP=n", None), ("v6.18", 1), ("PREEMPT_RT", None), ("v6.18", None))


def explore_findings(stop_at_first: bool = True) -> list[str]:
    """The properties the explorer finds broken, per configuration ("variant/cpus: rule")."""
    out = []
    for variant, cpus in EXPLORATIONS:
        rep = checker.nolock_explore.run(variant, cpus=cpus, stop_at_first=stop_at_first)
        where = f"explore {variant}" + ("" if cpus is None else f" --cpus {cpus}")
        out += [f"{where}: {v['property']} ({len(v['trace'])}-step trace)"
                for v in rep.violations]
        if out and stop_at_first:
            break
    return out


def lockstep_finding(fuzz_seconds: float) -> str | None:
    from checker.fuzz import run_fuzz

    res = run_fuzz("reference", seconds=fuzz_seconds, seed=0, shrink_seconds=2, area="nolock")
    if res.failure is None:
        return None
    return "lockstep fuzz: " + res.failure.strip().splitlines()[0][:200]


def graph_findings(stop_at_first: bool = True) -> list[str]:
    """Where the reference and the spec first differ, per walked configuration."""
    out = []
    for cfg in checker.nolock_explore.graph_configs():
        diff = checker.nolock_explore.lockstep_graph(cfg)
        if diff:
            out.append(f"lockstep graph {cfg.variant} --cpus {cfg.nr_cpus}: {diff[:200]}")
            if stop_at_first:
                break
    return out


def run_checks(fuzz_seconds: float) -> str | None:
    """What the NOLOCK checks find (the first finding), or None."""
    return spec_twins.first_finding((explore_findings, graph_findings), lockstep_finding,
                                    fuzz_seconds)


def baseline(fuzz_seconds: float = 5.0) -> list[str]:
    """The same checks without a twin, run to the end: they must find nothing."""
    out = explore_findings(stop_at_first=False) + graph_findings(stop_at_first=False)
    lock = lockstep_finding(fuzz_seconds)
    return out + ([lock] if lock else [])


# --- the twins ---------------------------------------------------------------------------

def _hardirq_ignores_irqs_off(orig: Callable[..., Any]) -> Callable[..., Any]:
    def twin(top_level: int | None, irqs_enabled: bool, level: int,
             nmi_on_stack: bool) -> bool:
        return bool(orig(top_level, True, level, nmi_on_stack))
    return twin


def _recursive_trylock(orig: Callable[..., Any]) -> Callable[..., Any]:
    def twin(m: Any, s: Any, cpu: int, f: Any, lock: int) -> bool:
        holder = s.locks[lock]
        return bool(orig(m, s, cpu, f, lock)) or holder // 4 == cpu
    return twin


def _inverted_trylock_test(orig: Callable[..., Any]) -> Callable[..., Any]:
    def twin(m: Any, cpu: int, f: Any) -> bool:
        from spec.nolock import _alloc_flags_trylock
        return not _alloc_flags_trylock(m, cpu, f)
    return twin


def _stock_test_inverted(orig: Callable[..., Any]) -> Callable[..., Any]:
    def twin(m: Any, gfp: int) -> bool:
        return not orig(m, gfp)
    return twin


TWINS: dict[str, Twin] = {t.rules[0]: t for t in (
    Twin(("NOLOCK-POL-001",), "spec.nolock:may_interrupt", _hardirq_ignores_irqs_off,
         "a hardirq arrives even while interrupts are disabled (local_irq_save ignored)",
         check=run_checks),
    Twin(("NOLOCK-OP-002",), "spec.nolock:spin_trylock", _recursive_trylock,
         "spin_trylock succeeds when a context of the same CPU holds the lock (as if the "
         "lock were recursive per CPU)", check=run_checks),
    Twin(("NOLOCK-OP-003",), "spec.nolock:spin_lock_waits", _noop(False),
         "spin_lock never waits on SMP either (the UP no-op lock)", check=run_checks),
    Twin(("NOLOCK-OP-005",), "spec.nolock:pcp_trylock_irqs", _noop(0),
         "pcp_trylock_prepare does not disable interrupts on UP", check=run_checks),
    Twin(("NOLOCK-OP-006",), "spec.nolock:rmqueue_bulk_trylock", _inverted_trylock_test,
         "rmqueue_bulk's ALLOC_TRYLOCK test inverted: nolock refills spin on zone->lock, "
         "ordinary ones trylock", check=run_checks),
    Twin(("NOLOCK-OP-008",), "spec.nolock:rmqueue_buddy_trylock", _inverted_trylock_test,
         "rmqueue_buddy's ALLOC_TRYLOCK test inverted: nolock allocations spin on "
         "zone->lock, ordinary ones trylock and fail", check=run_checks),
    Twin(("NOLOCK-OP-009",), "spec.nolock:stock_trylock", _stock_test_inverted,
         "consume_stock's lock choice inverted: the nolock charge takes stock_lock with "
         "local_lock_irqsave", check=run_checks),
    Twin(("NOLOCK-OP-010",), "spec.nolock:free_nolock_defers_at_once", _noop(False),
         "free_pages_nolock never defers at once: in RT hardirq/NMI and UP NMI context it "
         "tries the pcp lock", check=run_checks),
    Twin(("NOLOCK-OP-013",), "spec.nolock:drain_lock_irqs", _noop(0),
         "drain_pages_zone takes the pcp lock with interrupts enabled on UP too (before "
         "038a102535eb)", check=run_checks),
)}


#: Twins the reference comparison cannot see, with the reason (the explorer catches them).
REFERENCE_BLIND: dict[str, str] = {
    "NOLOCK-POL-001": "the reference takes every interrupt its driver delivers; which may "
                      "arrive is the driver's (the spec's) decision",
}


def reference_finding(rule_id: str) -> str | None:
    """The graph lockstep alone with the rule's twin installed: the first difference."""
    with installed(TWINS[rule_id]):
        found = graph_findings()
    return found[0] if found else None


def catch(rule_id: str, fuzz_seconds: float = 5.0) -> dict[str, Any]:
    """Run the NOLOCK checks with the rule's twin installed; say what caught it, how fast."""
    twin = TWINS[rule_id]
    assert twin.check is not None
    return spec_twins.catch_twin(twin, fuzz_seconds)
