"""The explorer on the default configurations (against the results manifest) and on the bug
zoo, the state rules on broken states, and the lock-order check."""

from __future__ import annotations

import json

import pytest

from checker.cli import main
from checker.explore import explore
from checker.nolock_explore import load_manifest, lock_order_cycle, manifest_entry, run
from spec.nolock import (
    ENTRY_STEPS,
    HARDIRQ,
    NMI,
    SECTION,
    STATE_RULES,
    TASK,
    NolockModel,
    NolockState,
    balanced,
    counters,
    default_config,
    is_final,
    page_places,
    sections_exclusive,
    successors,
)

from .helpers import run_schedule, steps

INVARIANTS = (("NOLOCK-INV-001", page_places), ("NOLOCK-INV-002", sections_exclusive),
              ("NOLOCK-INV-003", counters), ("NOLOCK-INV-004", balanced))


@pytest.mark.parametrize("variant", ["v6.18", "PREEMPT_RT", "SMP=n"])
def test_default_variants_hold_and_match_manifest(variant: str) -> None:
    """NOLOCK-PROP-001, NOLOCK-PROP-002, NOLOCK-PROP-003, NOLOCK-PROP-004, NOLOCK-PROP-005,
    NOLOCK-INV-001, NOLOCK-INV-002, NOLOCK-INV-003 and NOLOCK-INV-004 hold in every reachable
    state of the default configurations, and the state counts are the recorded ones (a model
    change shows as a diff here)."""
    rep = run(variant)
    assert rep.result.complete and rep.ok, rep.violations
    # The kernel's only nested waiting acquisition: zone->lock inside pcp->lock.
    assert rep.lock_edges == [("pcp->lock", "zone->lock")]
    assert manifest_entry(rep) == load_manifest()["default"][variant]


def test_explorer_checks_every_invariant() -> None:
    # The explorer's state check (check_state) is exactly the four invariants.
    assert STATE_RULES == INVARIANTS


@pytest.mark.parametrize(("variant", "cpus"), [("v6.18", 1), ("PREEMPT_RT", None),
                                               ("SMP=n", None)])
def test_invariants_hold_in_every_reachable_state(variant: str, cpus: int | None) -> None:
    """NOLOCK-INV-001, NOLOCK-INV-002, NOLOCK-INV-003, NOLOCK-INV-004, each evaluated on its
    own (not through check_state) in every reachable state of a default configuration; and
    the states that could break them are reached: two contexts on one CPU with the lower one
    inside a section (INV-002), a stock page charged (INV-003), an interrupt starting an
    operation over an unfinished one (INV-004)."""
    m = NolockModel(default_config(variant, cpus=cpus))
    reached = {"nested in a section": 0, "charged": 0, "op started over an op": 0}

    def check(s: NolockState) -> str | None:
        for rid, fn in INVARIANTS:
            msg = fn(m, s)
            if msg:
                return f"{rid}: {msg}"
        for stack in s.stacks:
            if len(stack) > 1 and SECTION.get(stack[0][2]):
                reached["nested in a section"] += 1
            if len(stack) > 1 and stack[-1][2] in ENTRY_STEPS:
                reached["op started over an op"] += 1
        reached["charged"] += s.charged > 0
        return None

    r = explore([m.initial()], lambda s: successors(m, s), check=check, is_final=is_final,
                deadlock="NOLOCK-PROP-001")
    assert r.complete and not r.violations, r.violations[:1]
    assert all(reached.values()), reached


# Hand-derived: which property each broken variant must break first (BFS: shortest trace).
ZOO = {
    # The NMI spins on zone->lock held by the task it interrupted: a deadlock.
    "nolock-spins": "NOLOCK-PROP-001",
    # The nolock charge enters memcg_stock with local_lock inside the task's section.
    "flipped-allow-spinning": "NOLOCK-INV-002",
    # UP: the IRQ's pcp trylock "succeeds" inside the task's drain_pages_zone.
    "smp-n-pcp": "NOLOCK-INV-002",
    # UP, 6.18 as released: the NMI's pcp trylock succeeds inside the task's pcp section.
    "smp-n-nmi": "NOLOCK-INV-002",
    # The deferred page outlives the next ordinary free_one_page.
    "deferred-never-drained": "NOLOCK-PROP-004",
    # An ordinary allocation fails because zone->lock is busy.
    "second-trylock": "NOLOCK-PROP-005",
}


@pytest.mark.seeded_bug
@pytest.mark.parametrize("variant", sorted(ZOO))
def test_bug_zoo_rejected(variant: str) -> None:
    """Cites NOLOCK-PROP-001 (nolock-spins), NOLOCK-INV-002 (flipped-allow-spinning,
    smp-n-pcp, smp-n-nmi), NOLOCK-PROP-004 (deferred-never-drained), NOLOCK-PROP-005
    (second-trylock)."""
    rep = run(variant, stop_at_first=True)
    assert [v["property"] for v in rep.violations] == [ZOO[variant]]
    assert len(rep.violations[0]["trace"]) == load_manifest()["broken"][variant]["trace_steps"]


@pytest.mark.seeded_bug
def test_nolock_spins_also_waits_in_nmi_NOLOCK_PROP_002() -> None:
    rep = run("nolock-spins")
    props = {v["property"] for v in rep.violations}
    assert props == {"NOLOCK-PROP-001", "NOLOCK-PROP-002"}
    trace = next(v["trace"] for v in rep.violations if v["property"] == "NOLOCK-PROP-002")
    assert trace[-1].startswith("cpu0 nmi") and trace[-1].endswith("spin_lock_irqsave waits")


@pytest.mark.seeded_bug
def test_smp_n_nmi_trace_reads_like_the_kernel() -> None:
    rep = run("smp-n-nmi", stop_at_first=True)
    trace = rep.violations[0]["trace"]
    # Task enters its pcp section (interrupts off on UP), an NMI arrives anyway and its
    # pcp_spin_trylock succeeds: two contexts in one pcp section (NOLOCK-INV-002).
    task = "cpu0 task    alloc_pages(GFP_KERNEL_ACCOUNT): "
    nmi = "cpu0 nmi     free_pages_nolock: "
    assert trace == [
        task + "alloc_pages  -> zone_watermark_fast",
        task + "zone_watermark_fast  -> rmqueue_pcplist:pcp_spin_trylock",
        task + "rmqueue_pcplist:pcp_spin_trylock  -> __rmqueue_pcplist",
        "cpu0 nmi     -- nmi enters",
        nmi + "free_pages_nolock  -> free:pcp_spin_trylock",
        nmi + "free:pcp_spin_trylock  -> free_frozen_page_commit",
    ]


def test_lock_order_cycle_NOLOCK_PROP_003() -> None:
    assert lock_order_cycle({("pcp->lock", "zone->lock")}) is None


@pytest.mark.seeded_bug
def test_lock_order_cycle_found_NOLOCK_PROP_003() -> None:
    edges = {("pcp->lock", "zone->lock"), ("zone->lock", "pcp->lock")}
    cycle = lock_order_cycle(edges)
    assert cycle is not None and set(cycle) == edges


def _state_after(variant: str, moves: list[tuple[int, int | str]]) -> tuple[NolockModel, object]:
    m = NolockModel(default_config(variant))
    return m, run_schedule(m, m.initial(), moves)


def test_state_rules_hold_on_a_reachable_state() -> None:
    m, s = _state_after("v6.18", steps(0, 5) + [(0, NMI)] + steps(0, 3))
    for fn in (page_places, sections_exclusive, counters, balanced):
        assert fn(m, s) is None  # type: ignore[arg-type]


@pytest.mark.seeded_bug
def test_page_places_catches_lost_and_doubled_NOLOCK_INV_001() -> None:
    m = NolockModel(default_config())
    s = m.initial()  # pages 0, 1 free; page 2 held by cpu0's NMI
    lost = s._replace(buddy=0b001)
    twice = s._replace(pcp=((0,), ()))
    assert "lost" in (page_places(m, lost) or "")
    assert "two places" in (page_places(m, twice) or "")
    assert page_places(m, s) is None


@pytest.mark.seeded_bug
def test_sections_exclusive_catches_nesting_NOLOCK_INV_002() -> None:
    m = NolockModel(default_config())
    task = (TASK, 0, "__rmqueue_pcplist", 0, 0)
    nmi = (NMI, 0, "free_frozen_page_commit", 0, 1)
    s = m.initial()._replace(stacks=((task, nmi), ()))
    assert "pcp critical section" in (sections_exclusive(m, s) or "")


@pytest.mark.seeded_bug
def test_counters_catch_drift_NOLOCK_INV_003() -> None:
    m = NolockModel(default_config())
    s = m.initial()
    assert counters(m, s) is None
    assert "NR_FREE_PAGES" in (counters(m, s._replace(nr_free=3)) or "")
    assert "lost update" in (counters(m, s._replace(stock=(0, 1))) or "")


@pytest.mark.seeded_bug
def test_balanced_catches_leaked_irq_and_lock_NOLOCK_INV_004() -> None:
    m = NolockModel(default_config())
    s = m.initial()
    leaked_irq = s._replace(stacks=(((TASK, 1, "free_pages", 0, 1),), ()))
    leaked_lock = s._replace(stacks=(((HARDIRQ, 1, "free_pages", 0, 1),), ()),
                             locks=(0 * 4 + HARDIRQ, -1, -1, -1, -1))
    assert "irq depth" in (balanced(m, leaked_irq) or "")
    assert "holding a lock" in (balanced(m, leaked_lock) or "")


@pytest.mark.seeded_bug
def test_cli_full_run_lists_every_broken_property(capsys: pytest.CaptureFixture[str]) -> None:
    """Without --first the search goes on: smp-n-pcp breaks only NOLOCK-INV-002."""
    assert main(["explore", "nolock", "--variant", "smp-n-pcp", "--json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert [v["property"] for v in out["violations"]] == ["NOLOCK-INV-002"]
    assert out["lock_order"] == [["pcp->lock", "zone->lock"]]


def test_cli_default_passes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explore", "nolock", "--variant", "SMP=n", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["states"] == load_manifest()["default"]["SMP=n"]["states"]
    assert out["violations"] == [] and out["states_per_s"] > 0 and out["depth"] > 0


@pytest.mark.seeded_bug
@pytest.mark.parametrize("variant", sorted(ZOO))
def test_cli_bug_zoo_exits_1(variant: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explore", "nolock", "--variant", variant, "--first", "--json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert [v["property"] for v in out["violations"]] == [ZOO[variant]]
    assert all(v["trace"] for v in out["violations"])


@pytest.mark.parametrize("args", [["--variant", "nope"], ["--bound", "0"],
                                  ["--cpus", "9"], ["--variant", "SMP=n", "--cpus", "2"],
                                  ["--max-states", "0"]])
def test_cli_bad_arguments_exit_2(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explore", "nolock", *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_softirq_config_holds_NOLOCK_POL_001() -> None:
    """A softirq allocating and freeing over a task, a hardirq over both, an NMI over all:
    every property holds, and the softirq really runs between the task's steps."""
    from spec.nolock import (
        ALLOC_ATOMIC,
        ALLOC_KERNEL,
        FREE,
        FREE_NOLOCK,
        SOFTIRQ,
        NolockConfig,
    )
    cfg = NolockConfig(
        nr_cpus=1, nr_pages=3, tasks=((ALLOC_KERNEL, FREE),),
        handlers=(((), (ALLOC_ATOMIC, FREE), (ALLOC_ATOMIC, FREE), (FREE_NOLOCK,)),),
        preowned=((0, NMI, 2),))
    rep = run(config=cfg)
    assert rep.ok and rep.result.complete, rep.violations
    m = NolockModel(cfg)
    s = run_schedule(m, m.initial(), steps(0, 3) + [(0, SOFTIRQ), (0, HARDIRQ), (0, NMI)])
    assert [f[0] for f in s.stacks[0]] == [TASK, SOFTIRQ, HARDIRQ, NMI]


def test_verify_checks_pass() -> None:
    from checker.commands.nolock import verify_checks
    names = [name for name, _ in verify_checks()]
    assert names[0].startswith("nolock exploration")
    result = verify_checks()[0][1]()
    assert result["ok"] and "v6.18: 145229 states" in result["detail"]
