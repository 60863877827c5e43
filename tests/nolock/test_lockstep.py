"""Lockstep fuzzing of the reference against the spec (random interleavings), and the seeded
bugs of the reference, each caught."""

from __future__ import annotations

import pytest

from checker.fuzz import AREAS, run_fuzz
from reference.nolock import MUTANTS, NolockMachine
from spec.nolock import NMI, default_config


def test_area_registered() -> None:
    import checker.commands.nolock  # noqa: F401  (registers the area on import)
    assert "nolock" in AREAS


def test_reference_agrees_with_spec() -> None:
    import checker.commands.nolock  # noqa: F401
    res = run_fuzz("reference", examples=150, seed=1, area="nolock")
    assert res.failure is None, res.program


def test_spec_agrees_with_itself() -> None:
    import checker.commands.nolock  # noqa: F401
    res = run_fuzz("spec", examples=50, seed=2, area="nolock")
    assert res.failure is None, res.program


def test_reference_waits_like_the_spec_NOLOCK_OP_003() -> None:
    # cpu1's task holds zone->lock inside rmqueue_bulk; cpu0's task reaching rmqueue_bulk
    # must wait (step returns False and nothing changes).
    r = NolockMachine(default_config())
    for _ in range(5):
        assert r.step(1)
    for _ in range(4):
        assert r.step(0)
    before = r.abstract()
    assert r.stacks[0][-1].pc == "rmqueue_bulk:spin_lock_irqsave"
    assert not r.step(0)
    assert r.abstract() == before
    r.interrupt(0, NMI)  # spinning with interrupts off, the CPU still takes an NMI
    assert r.stacks[0][-1].level == NMI


# Which rule each mutant breaks (from its docstring); the lockstep comparison catches them.
MUTANT_RULES = {
    "nolock-drains": "NOLOCK-OP-011",
    "llist-counted": "NOLOCK-OP-012",
    "pcp-tail": "NOLOCK-OP-007",
    "nolock-low-watermark": "NOLOCK-OP-004",
    "rt-hardirq-allowed": "NOLOCK-OP-001",
}


@pytest.mark.seeded_bug
@pytest.mark.parametrize("name", sorted(MUTANTS))
def test_mutant_caught(name: str) -> None:
    """Cites NOLOCK-OP-011, NOLOCK-OP-012, NOLOCK-OP-007, NOLOCK-OP-004, NOLOCK-OP-001."""
    import checker.commands.nolock  # noqa: F401
    assert MUTANT_RULES[name] in (MUTANTS[name].__doc__ or "")
    res = run_fuzz(f"mutant:{name}", seconds=60, seed=0, shrink_seconds=5, area="nolock")
    assert res.failure is not None and "differs from the spec" in res.failure
    assert res.program and "state.setup(" in res.program


def test_reference_agrees_with_spec_on_every_edge() -> None:
    """Every edge of the small state graphs (one CPU: SMP=n, PREEMPT_RT, v6.18; two CPUs:
    PREEMPT_RT), replayed on the reference: same observed state after every move, and
    waiting exactly where the spec waits. Where the random lockstep reaches a state only by
    luck, this reaches them all."""
    from checker.nolock_explore import graph_configs, lockstep_graph
    for cfg in graph_configs():
        assert lockstep_graph(cfg) is None, cfg.variant


@pytest.mark.seeded_bug
def test_lockstep_graph_finds_a_missing_wait_NOLOCK_OP_003() -> None:
    # On one CPU nothing here ever waits for a lock: use two, where cpu1's drain_pages
    # waits for cpu0's pcp->lock while cpu0's task holds it, and the implementation below
    # steps on regardless.
    from checker.nolock_explore import lockstep_graph
    diff = lockstep_graph(default_config("PREEMPT_RT"), NeverWaits)
    assert diff is not None and "the spec waits, the implementation does not" in diff


class NeverWaits(NolockMachine):
    """A seeded bug for the graph walk: a context told to wait steps on regardless (the
    spin loop's 'still held' test read as 'free')."""

    def step(self, cpu: int) -> bool:
        super().step(cpu)
        return True


@pytest.mark.seeded_bug
@pytest.mark.parametrize("name", sorted(MUTANTS))
def test_mutant_caught_on_the_state_graph(name: str) -> None:
    """Cites NOLOCK-OP-011, NOLOCK-OP-012, NOLOCK-OP-007, NOLOCK-OP-004, NOLOCK-OP-001 (through
    MUTANT_RULES): each reference mutant differs from the spec on some edge of the small
    state graphs."""
    from checker.nolock_explore import graph_configs, lockstep_graph
    assert MUTANT_RULES[name] in (MUTANTS[name].__doc__ or "")
    diffs = [lockstep_graph(cfg, f"mutant:{name}") for cfg in graph_configs()]
    assert any(d is not None for d in diffs)
