"""KSM obligations: the counter identities and the other invariants of ``spec.ksm`` on every
program of up to four user steps (madvise, write, fork, munmap, a settling scan) from a small
two-process start, run on the spec's own operations (tag ``bounded``).

The sysfs formulas themselves (``spec.ksm.counters``) use Python's ``max`` and cannot run on
Z3 terms without a change to ``spec/ksm.py``; they are checked here on every reached state
instead. States are counted by :func:`observation`: the sysfs counters, every process's
``ksm_stat``, what each process reads, its madvise flags and its sharing pattern.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import attrs

from checker import ksm_twins
from checker.spec_twins import Twin, installed
from proofs.runner import COUNTEREXAMPLE, PROVED, Outcome, add
from spec import ksm

#: max_page_sharing 2 (the smallest the knob accepts) so that two sharers of one content make
#: a stable node chain within three steps.
KNOBS = {"max_page_sharing": 2}
START = (("A", ("x", "x", "y")), ("B", ("x", "x", "y")))
DEPTH = 4

Step = tuple[str, tuple[Any, ...]]


def start() -> tuple[ksm.KsmState, list[Step]]:
    s = ksm.new_state(dict(KNOBS))
    steps: list[Step] = []
    for name, contents in START:
        s, _ = ksm.create_process(s, name, contents)
        steps.append(("create_process", (name, contents)))
    return s, steps


def moves(s: ksm.KsmState) -> list[Step]:
    out: list[Step] = [("scan", ())]
    live = [n for n, mm in s.mms.items() if not mm.exited]
    for name in live:
        n = len(s.mms[name].ptes)
        out.append(("madvise", (name, 0, n, "mergeable")))
        out.append(("madvise", (name, 0, n, "unmergeable")))
        out.append(("write", (name, 0, "z")))
        out.append(("munmap", (name, n - 1, 1)))
    if "C" not in s.mms:
        out.append(("fork", ("A", "C")))
    return out


def observation(s: ksm.KsmState) -> str:
    """What distinguishes two states here: the sysfs counters and ksm_stat lines, and per
    process what it reads, its madvise flags, and which of its pages share one physical page
    (page ids renamed in order of first use), KSM or not."""
    names: dict[int, int] = {}
    procs = []
    for n, mm in sorted(s.mms.items()):
        pages = []
        for p in mm.ptes:
            if p is None or p not in s.pages:
                pages.append(repr(p) if p is None or p < 0 else "?")
                continue
            names.setdefault(p, len(names))
            pages.append(f"{names[p]}{'k' if s.pages[p].ksm else ''}")
        procs.append((n, [ksm._read(s, p) for p in mm.ptes], pages, mm.mergeable,
                      mm.registered, mm.exited))
    return repr((ksm.observe(s), procs, s.mm_list))


@attrs.frozen
class KsmExploration:
    #: every reached state with the shortest program that reached it
    reached: list[tuple[ksm.KsmState, list[Step]]]
    observations: int


def explore_programs() -> KsmExploration:
    """Every program of up to DEPTH steps from :func:`start`, breadth-first (so each state's
    program is a shortest one); a program whose state was seen already is not extended. Run
    on the ``spec.ksm`` functions as currently installed (a twin, if one is)."""
    s0, prog0 = start()
    frontier = [(s0, prog0)]
    reached = [(s0, prog0)]
    seen = {observation(s0)}
    for _ in range(DEPTH):
        nxt = []
        for s, prog in frontier:
            for name, args in moves(s):
                try:
                    s2, _ = getattr(ksm, name)(s, *args)
                except ksm.KsmError:
                    continue
                p2 = [*prog, (name, args)]
                reached.append((s2, p2))
                obs = observation(s2)
                if obs not in seen:
                    seen.add(obs)
                    nxt.append((s2, p2))
        frontier = nxt
    return KsmExploration(reached, len(seen))


#: The exploration of the correct spec, computed once per process.
exploration = functools.lru_cache(maxsize=1)(explore_programs)


def program(prog: list[Step], twin: str = "") -> str:
    lines = ["from spec import ksm", f"s = ksm.new_state({KNOBS!r})"]
    if twin:
        lines.insert(1, f"from proofs.ksm import {twin}")
    for i, (name, args) in enumerate(prog):
        fn = twin if twin and i == len(prog) - 1 else f"ksm.{name}"
        lines.append(f"s, _ = {fn}(s, {', '.join(map(repr, args))})")
    return "\n".join(lines)


def _holds(check: Callable[[ksm.KsmState], list[str]], rule_id: str) -> Outcome:
    ex = exploration()
    for s, prog in ex.reached:
        bad = check(s)
        if bad:
            return Outcome(COUNTEREXAMPLE, f"{rule_id}: {bad[0]}", program(prog),
                           states=ex.observations)
    return Outcome(PROVED, f"{len(ex.reached)} programs of up to {DEPTH} steps, "
                   f"{ex.observations} distinct observations", states=ex.observations)


def write_uncounted_twin(s: ksm.KsmState, name: str, page: int,
                         content: str) -> tuple[ksm.KsmState, None]:
    """A write that breaks COW on a KSM page without dropping its rmap_item from the stable
    node (remove_rmap_item_from_tree skipped): pages_sharing stays one too high."""
    s2, _ = ksm.write(s, name, page, content)
    if s2.pages_sharing and s.pages_sharing == s2.pages_sharing:
        s2.pages_sharing += 1
    return s2, None


def _twin() -> Outcome:
    ex = exploration()
    for s, prog in ex.reached:
        for name, args in moves(s):
            if name != "write":
                continue
            try:
                s2, _ = write_uncounted_twin(s, *args)
            except ksm.KsmError:
                continue
            bad = ksm.check_counters(s2)
            if bad:
                return Outcome(COUNTEREXAMPLE, f"KSM-INV-003: {bad[0]}",
                               program([*prog, (name, args)], "write_uncounted_twin"),
                               states=ex.observations)
    return Outcome(PROVED, "the twin never broke the counters", states=ex.observations)


def _nonvacuous() -> Outcome:
    ex = exploration()
    for s, prog in ex.reached:
        if s.pages_sharing > 0 and s.pages_shared > 0 and s.stable_node_chains > 0 \
                and not ksm.check_invariants(s):
            return Outcome(PROVED, "a reachable state shares pages through a chain",
                           program(prog), states=ex.observations)
    return Outcome(COUNTEREXAMPLE, "no state with pages_sharing and a stable node chain",
                   states=ex.observations)


add("ksm.bounded.counter_identities", ["KSM-INV-003", "KSM-POL-002"],
    lambda: _holds(ksm.check_counters, "KSM-INV-003"), PROVED, ["bounded", "ksm"],
    "The counter identities hold after every program of up to four steps.", exploration)
add("ksm.bounded.isolation", ["KSM-INV-001"],
    lambda: _holds(ksm.check_isolation, "KSM-INV-001"), PROVED, ["bounded", "ksm"],
    "Every mapping reads what its own writes put there, after every program.", exploration)
add("ksm.bounded.stable_nodes", ["KSM-INV-002"],
    lambda: _holds(ksm.check_stable_nodes, "KSM-INV-002"), PROVED, ["bounded", "ksm"],
    "Every KSM page is mapped and no dup exceeds max_page_sharing, after every program.",
    exploration)
add("ksm.bounded.nonvacuity", ["KSM-INV-003", "KSM-INV-002"], _nonvacuous, PROVED,
    ["bounded", "ksm", "nonvacuity"],
    "Non-vacuity: some program shares pages through a stable node chain.", exploration)
add("ksm.twin.write_uncounted", ["KSM-INV-003", "KSM-OP-012"], _twin, COUNTEREXAMPLE,
    ["bounded", "ksm", "twin"], write_uncounted_twin.__doc__ or "", exploration)


# --- every KSM invariant: a non-vacuity witness and a broken twin (bounded) ---------------
#
# Both run on the bounded exploration above. A witness is the first reached state (in
# breadth-first order: a shortest program) where the invariant holds and its premise is
# exercised. A twin replaces one function of ``spec.ksm`` with a plausible wrong version
# (:func:`checker.spec_twins.installed`), the exploration is redone under it, and the first
# reached state the invariant rejects is printed with its program.

KsmPremise = Callable[[ksm.KsmState], bool]


def _premise_isolation(s: ksm.KsmState) -> bool:
    """A process wrote over one of its VM_MERGEABLE pages while a KSM page of the old
    content is still mapped twice (the write had to leave the shared page alone)."""
    return any(p.ksm and p.mapcount >= 2 and p.content == "x" for p in s.pages.values()) \
        and any(e == "z" and m for mm in s.mms.values()
                for e, m in zip(mm.expected, mm.mergeable, strict=False))


def _premise_stable_nodes(s: ksm.KsmState) -> bool:
    """A stable node holds exactly max_page_sharing items: the bound is reached."""
    return any(len(n.hlist) - n.bypassed == s.max_page_sharing for n in s.nodes.values())


def _premise_counters(s: ksm.KsmState) -> bool:
    """Every kind of counter is non-zero at once: pages shared, pages sharing, items in the
    unstable tree and dups under a chain."""
    return (s.pages_shared > 0 and s.pages_sharing > 0 and s.pages_unshared > 0
            and s.stable_node_dups > 0)


def _ksm_witness(rule_id: str, check: Callable[[ksm.KsmState], list[str]],
                 premise: KsmPremise, what: str) -> Outcome:
    ex = exploration()
    for s, prog in ex.reached:
        if premise(s) and not check(s) and not ksm.check_invariants(s):
            return Outcome(PROVED, f"{rule_id} holds where {what}, after {len(prog) - 2} "
                           "user steps", program(prog), states=ex.observations)
    return Outcome(COUNTEREXAMPLE, f"{rule_id}: no reached state where {what}: the invariant "
                   "is vacuous here", states=ex.observations)


def _write_in_place(orig: Callable[..., Any]) -> Callable[..., Any]:
    """A write to a KSM page stores into the shared page (break_cow forgotten): every other
    mapping of that page reads the new content."""
    def twin(s: ksm.KsmState, mm: Any, i: int, content: str) -> None:
        pte = mm.ptes[i]
        if pte is not None and pte >= 0 and s.pages[pte].ksm:
            s.pages[pte].content = content
            mm.expected[i] = content
            return
        orig(s, mm, i, content)
    return twin


def _candidate_at_limit(orig: Callable[..., Any]) -> Callable[..., Any]:
    """is_page_sharing_candidate tests ``rmap_hlist_len <= max_page_sharing`` (off by one):
    a full stable node takes one more item."""
    return lambda node, mps, offset=0: orig(node, mps + 1, offset)


KSM_INV_OBLIGATIONS: tuple[tuple[str, Callable[[ksm.KsmState], list[str]], KsmPremise, Twin],
                           ...] = (
    ("KSM-INV-001", ksm.check_isolation, _premise_isolation,
     Twin(("KSM-INV-001", "KSM-OP-012"), "spec.ksm:_write", _write_in_place,
          _write_in_place.__doc__ or "")),
    ("KSM-INV-002", ksm.check_stable_nodes, _premise_stable_nodes,
     Twin(("KSM-INV-002", "KSM-OP-004"), "spec.ksm:_candidate", _candidate_at_limit,
          _candidate_at_limit.__doc__ or "")),
    # The existing twin of ``_stable_tree_insert`` (checker.ksm_twins, KSM-OP-005) is the one
    # of the area's twins that this exploration catches: it breaks the counters.
    ("KSM-INV-003", ksm.check_counters, _premise_counters, ksm_twins.TWINS["KSM-OP-005"]),
)


def _ksm_twin(rule_id: str, check: Callable[[ksm.KsmState], list[str]], twin: Twin) -> Outcome:
    with installed(twin):
        ex = explore_programs()
        for s, prog in ex.reached:
            bad = check(s)
            if bad:
                doc = " ".join(twin.doc.split())
                text = (f"# with {twin.target} replaced by the twin ({doc}),\n"
                        "# installed by checker.spec_twins.installed\n" + program(prog))
                return Outcome(COUNTEREXAMPLE, f"{rule_id}: {bad[0]}", text,
                               states=ex.observations)
    return Outcome(PROVED, f"the twin never broke {rule_id}", states=ex.observations)


def _register_invariant_obligations() -> None:
    for rid, check, premise, twin in KSM_INV_OBLIGATIONS:
        what = " ".join((premise.__doc__ or "").split()).rstrip(".")
        what = what[0].lower() + what[1:]
        add(f"ksm.nonvacuity.{rid}", [rid],
            functools.partial(_ksm_witness, rid, check, premise, what), PROVED,
            ["bounded", "nonvacuity"],
            f"Non-vacuity of {rid}: a program of up to {DEPTH} steps reaches a state where "
            f"every invariant holds and {what}; the program is printed.", exploration)
        add(f"ksm.twin.{rid}", list(dict.fromkeys([rid, *twin.rules])),
            functools.partial(_ksm_twin, rid, check, twin), COUNTEREXAMPLE,
            ["bounded", "twin"],
            f"Broken twin of {rid}, expected to fail: {' '.join(twin.doc.split())} The bounded "
            "exploration, redone with the twin installed, reaches a state the invariant rejects.")


_register_invariant_obligations()
