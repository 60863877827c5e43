"""Broken twins of the KSM spec's rules: negative evidence that each rule is pinned down.

For a rule stated by a function (or table) of :mod:`spec.ksm`, its twin is a plausible wrong
version of it (the scan order reversed, a counter left behind, a chain that never
collapses, unmerge that leaves the mapping shared). :func:`catch` puts the twin in place in
every ``spec`` and ``checker`` module that holds it (:func:`checker.spec_twins.installed`)
and runs the KSM checks (:func:`run_checks`), cheapest and strongest first:

1. the corpus: every committed scenario of ``tests/data/ksm`` run on the spec and compared
   counter by counter with the records Linux 6.18 printed for it (the kernel's own numbers,
   no live kernel needed), with every KSM state invariant after every step; then
2. lockstep against the independent numpy reference (:mod:`reference.ksm`, never patched)
   over seeded random scenarios, some with PR_SET_MEMORY_MERGE (which the live kernel
   cannot run in the corpus: it would make the oracle's own heap mergeable): counters,
   per-page sharing, contents and invariants after every step, and after every scan the
   spec's write-fault observation (KSM-PROP-001) against a write actually done on a copy of
   the reference (a fault is a write that gets a new page); then
3. a short Hypothesis lockstep fuzz (``mmspec fuzz ksm``).

What catches each twin is in ``docs/ksm.md`` ("Broken twins"). The tests require every twin
to be caught and :func:`baseline` (the same checks, no twin) to find nothing.
"""

from __future__ import annotations

import copy
import json
import random
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

# Imported before any twin is installed: modules that bind spec names at import time must
# see the originals first (see checker.spec_twins.installed).
import checker.commands.ksm  # noqa: F401  (registers the ksm lockstep area)
import checker.ksm_scenario
import reference.ksm
import spec.ksm as K
from checker import spec_twins
from checker.spec_twins import Twin, catch_twin

DATA = Path(__file__).resolve().parent.parent / "tests" / "data" / "ksm"

#: Seeds of the random lockstep scenarios (checker.ksm_scenario.random_scenario).
LOCKSTEP_SEEDS = range(1000, 1040)


@cache
def corpus() -> tuple[tuple[str, dict[str, Any], dict[str, Any]], ...]:
    """(name, scenario JSON, recorded kernel output), smallest scenarios first."""
    out = []
    for p in sorted((DATA / "scenarios").glob("*.json")):
        obj = json.loads(p.read_text())
        want = json.loads((DATA / "expected" / p.name).read_text())
        size = sum(c for runs in obj["processes"].values() for _, c in runs)
        out.append((size, p.stem, obj, want))
    out.sort(key=lambda t: (t[0], t[1]))
    return tuple((n, o, w) for _, n, o, w in out)


def _spec_run_checked(sc: checker.ksm_scenario.Scenario) -> tuple[dict[str, Any], str | None]:
    """The spec's records for a scenario, and the first invariant broken after a step."""
    runner = checker.ksm_scenario.SpecRunner(checker.ksm_scenario.model_knobs(sc), sc.variant)
    for name, contents in sc.processes.items():
        runner.create_process(name, contents)
    scans = []
    first_bad = None
    for n, st in enumerate(sc.steps):
        rec = checker.ksm_scenario.apply_step(runner, st)
        if rec is not None:
            scans.append(rec)
        bad = K.check_invariants(runner.state)
        if bad and first_bad is None:
            first_bad = f"step {n} ({st['op']}): invariant: {bad[0]}"
    return {"scans": scans}, first_bad


def corpus_findings(stop_at_first: bool = True) -> list[str]:
    """Where the spec differs from the kernel's recorded outputs (or breaks an invariant)."""
    out = []
    for name, obj, want in corpus():
        sc = checker.ksm_scenario.parse(obj, name)
        got, bad = _spec_run_checked(sc)
        diff = checker.ksm_scenario.diff_records(want, got)
        if diff:
            out.append(f"corpus {name}: {diff[0]} (kernel vs spec)")
        elif bad:
            out.append(f"corpus {name}: {bad}")
        if out and stop_at_first:
            break
    return out


def lockstep_scenario(seed: int) -> dict[str, Any]:
    """A random scenario, and for every third seed one whose first process merges by
    PR_SET_MEMORY_MERGE instead of MADV_MERGEABLE and clears it again before the last scan."""
    obj = checker.ksm_scenario.random_scenario(seed)
    if seed % 3:
        return obj
    rng = random.Random(seed)
    p = sorted(obj["processes"])[0]
    steps = [st for st in obj["steps"]
             if not (st["op"] == "madvise" and st["process"] == p and st["advice"] == "mergeable"
                     and st is obj["steps"][0])]
    steps.insert(0, {"op": "prctl", "process": p, "value": 1})
    exits = [i for i, st in enumerate(steps) if st["op"] == "exit" and st["process"] == p]
    end = exits[0] if exits else len(steps) - 1
    at = rng.randint(1, max(1, end))
    steps.insert(at, {"op": "prctl", "process": p, "value": 0})
    obj["steps"] = steps
    return obj


def _write_faults_of_reference(ref: Any, name: str) -> tuple[bool, ...]:
    """Whether a write to each page of ``name`` faults, found by writing: the page's own
    content is written to a copy of the reference, and a fault is a write that gets a new
    page (an unmapped page cannot be written: no fault to observe)."""
    out = []
    contents = ref.read(name)
    for i, c in enumerate(contents):
        if c is None:
            out.append(False)
            continue
        r = copy.deepcopy(ref)
        before = int(r.mms[name].ptes[i])
        r.write(name, i, c)
        out.append(int(r.mms[name].ptes[i]) != before)
    return tuple(out)


def _passes_in_lockstep(spec: Any, ref: Any, where: str) -> str | None:
    """Single full passes on both until the counters settle, compared after every pass."""
    history = [K._fingerprint(spec.observe())]
    for n in range(K.MAX_PASSES):
        spec.full_scan()
        ref.full_scan()
        if spec.observe() != ref.observe():
            return (f"{where}: counters differ after pass {n + 1}: spec {spec.observe()} vs "
                    f"reference {ref.observe()}")
        if spec.page_sharing() != ref.page_sharing():
            return f"{where}: per-page sharing differs after pass {n + 1}"
        history.append(K._fingerprint(spec.observe()))
        if len(history) >= 3 and history[-1] == history[-2] == history[-3]:
            return None
    return None


def _lockstep_one(obj: dict[str, Any], name: str) -> str | None:
    sc = checker.ksm_scenario.parse(obj, name)
    knobs = checker.ksm_scenario.model_knobs(sc)
    spec = checker.ksm_scenario.SpecRunner(knobs, sc.variant)
    ref = reference.ksm.Ksm(knobs, sc.variant)
    for p, contents in sc.processes.items():
        spec.create_process(p, contents)
        ref.create_process(p, contents)
    for n, st in enumerate(sc.steps):
        where = f"lockstep {name} step {n} ({st['op']})"
        # pass by pass first: the scan records show only settled states
        if st["op"] == "scan" and sc.variant != "sksm":
            found = _passes_in_lockstep(spec, ref, where)
            if found:
                return found
        a = checker.ksm_scenario.apply_step(spec, st)
        b = checker.ksm_scenario.apply_step(ref, st)
        if a != b:
            return f"{where}: scan records differ: spec {a} vs reference {b}"
        if spec.observe() != ref.observe():
            return f"{where}: counters differ: spec {spec.observe()} vs reference {ref.observe()}"
        # (per-page sharing is a KSM view: SKSM's sharing is in its counters and reads)
        if sc.variant != "sksm" and spec.page_sharing() != ref.page_sharing():
            return f"{where}: per-page sharing differs"
        live = sorted(n for n, m in spec.state.mms.items() if not m.exited)
        for p in live:
            if ref.read(p) != spec.state.mms[p].expected:
                return f"{where}: {p} reads {ref.read(p)} in the reference"
        bad = K.check_invariants(spec.state)
        if bad:
            return f"{where}: invariant: {bad[0]}"
        if st["op"] == "scan":
            for p in live:
                want = _write_faults_of_reference(ref, p)
                got = K.write_faults(spec.state, p)
                if got != want:
                    return (f"{where}: write faults of {p}: spec {got} vs a write on the "
                            f"reference {want}")
    return None


#: Hand-made lockstep scenarios for states the settled records cannot show (compared pass by
#: pass with the reference; the live corpus records only settled counters).
TARGETED: dict[str, dict[str, Any]] = {
    # mps 2: a and b share X (the node is full), e's X waits unshared. When a exits, its
    # slot is visited first in the next pass, so its item leaves the node before e is
    # visited and e merges in that very pass (KSM-OP-014: the slot goes behind the cursor).
    # A slot visited last lets e go to the unstable tree first; both settle alike.
    "exit_frees_room": {
        "knobs": {"max_page_sharing": 2},
        "processes": {"a": [["X", 1]], "b": [["X", 1]], "e": [["X", 1]]},
        "steps": [*({"op": "madvise", "process": p, "start": 0, "count": 1,
                     "advice": "mergeable"} for p in "abe"),
                  {"op": "scan"}, {"op": "exit", "process": "a"}, {"op": "scan"}]},
    # SKSM (model only: the RFC is not in the live kernel): MADV_MERGE on zero, duplicate
    # and unique pages, a write to a canonical page, a repeated merge, fork and exit.
    "sksm_merge": {
        "variant": "sksm",
        "processes": {"a": [["X", 2], ["0", 2], ["u", 1]], "b": [["X", 1], ["0", 1], ["Y", 1]]},
        "steps": [{"op": "madvise", "process": "a", "start": 0, "count": 5, "advice": "merge"},
                  {"op": "madvise", "process": "b", "start": 0, "count": 3, "advice": "merge"},
                  {"op": "scan"},
                  {"op": "write", "process": "a", "page": 0, "content": "Y"},
                  {"op": "fork", "process": "b", "child": "c"},
                  {"op": "madvise", "process": "a", "start": 0, "count": 2, "advice": "merge"},
                  {"op": "write", "process": "c", "page": 1, "content": "X"},
                  {"op": "madvise", "process": "c", "start": 0, "count": 3, "advice": "merge"},
                  {"op": "scan"}, {"op": "exit", "process": "b"},
                  {"op": "munmap", "process": "a", "start": 1, "count": 1}, {"op": "scan"}]},
}


def lockstep_findings(stop_at_first: bool = True) -> list[str]:
    """Where the spec and the reference first part, per lockstep scenario."""
    out = []
    todo = [*TARGETED.items(), *((f"random-{n}", lockstep_scenario(n)) for n in LOCKSTEP_SEEDS)]
    for name, obj in todo:
        try:
            found = _lockstep_one(obj, name)
        except K.KsmError as e:  # one side refused a step the other took
            found = f"lockstep {name}: {type(e).__name__}: {e}"
        if found:
            out.append(found)
            if stop_at_first:
                break
    return out


def fuzz_finding(fuzz_seconds: float) -> str | None:
    from checker.fuzz import run_fuzz

    res = run_fuzz("reference", seconds=fuzz_seconds, seed=0, shrink_seconds=1, area="ksm",
                   steps=25)
    if res.failure is None:
        return None
    return "lockstep fuzz: " + res.failure.strip().splitlines()[0][:200]


def run_checks(fuzz_seconds: float) -> str | None:
    """What the KSM checks find (the first finding), or None."""
    return spec_twins.first_finding((corpus_findings, lockstep_findings), fuzz_finding,
                                    fuzz_seconds)


def baseline(fuzz_seconds: float = 3.0) -> list[str]:
    """The same checks without a twin, run to the end: they must find nothing."""
    out = corpus_findings(stop_at_first=False) + lockstep_findings(stop_at_first=False)
    f = fuzz_finding(fuzz_seconds)
    return out + ([f] if f else [])


# --- the twins ---------------------------------------------------------------------------

def _sksm_zero_not_special(orig: Callable[..., Any]) -> Callable[..., Any]:
    # A zero-filled page is merged like any other content: the first one becomes the
    # canonical copy, later ones map it (the rest of the range as sksm_merge does).
    def twin(s: K.KsmState, mm: K.Mm, pages: range) -> None:
        for i in pages:
            pte = mm.ptes[i]
            if pte is None or pte < 0 or s.pages[pte].content != K.ZERO:
                orig(s, mm, range(i, i + 1))
            elif (canon := s.sksm_ht.setdefault(K.ZERO, pte)) == pte:
                s.pages[pte].sksm = True
            else:
                K._put_page(s, pte)
                s.pages[canon].mapcount += 1
                mm.ptes[i] = canon
    return twin


def _scan_newest_mm_first(orig: Callable[..., Any]) -> Callable[..., Any]:
    def twin(s: K.KsmState) -> None:
        s.mm_list.reverse()
        orig(s)
        s.mm_list.reverse()
    return twin


def _last_item_counted_as_sharing(orig: Callable[..., Any]) -> Callable[..., Any]:
    def twin(s: K.KsmState, item: K.RmapItem) -> None:
        last = False
        if item.flags == K.STABLE and item.head is not None:
            node = s.nodes[item.head]
            last = not K._stale(s, node) and len(node.hlist) == 1
        orig(s, item)
        if last:  # the last item leaves: pages_sharing-- instead of pages_shared--
            s.pages_shared += 1
            s.pages_sharing -= 1
    return twin


def _chain_forgets_first_dup(orig: Callable[..., Any]) -> Callable[..., Any]:
    def twin(s: K.KsmState, kpage: K.Page, key: str) -> K.StableNode:
        chains = s.stable_node_chains
        node = orig(s, kpage, key)
        if s.stable_node_chains > chains:  # the old node became a dup but is not counted
            s.stable_node_dups -= 1
        return node
    return twin


def _lone_dup_keeps_chain(orig: Callable[..., Any]) -> Callable[..., Any]:
    # stable_node_dup as written in spec/ksm.py, without the collapse of a lone dup.
    def twin(s: K.KsmState, chain: K.Chain, prune: bool) -> K.StableNode | None:
        mps = s.max_page_sharing
        found: K.StableNode | None = None
        for dup_id in list(chain.dups):
            dup = s.nodes[dup_id]
            if K._stale(s, dup):
                K._remove_node_from_stable_tree(s, dup)
                continue
            if found is None or (K._candidate(dup, mps) and (
                    not K._candidate(found, mps) or len(dup.hlist) > len(found.hlist))):
                found = dup
                if not prune and K._candidate(found, mps):
                    break
        if found is None:
            K._rb_erase(s, chain.content)
            del s.stable[chain.content]
            del s.chains[chain.id]
            s.stable_node_chains -= 1
            return None
        if chain.dups[0] != found.id and K._candidate(found, mps, 1):
            chain.dups.remove(found.id)
            chain.dups.insert(0, found.id)
        return found
    return twin


def _zero_merge_not_counted_in_mm(orig: Callable[..., Any]) -> Callable[..., Any]:
    def twin(s: K.KsmState, item: K.RmapItem) -> None:
        orig(s, item)
        s.mms[item.mm].ksm_zero_pages -= 1
    return twin


def _skip_from_age_four(orig: Callable[..., Any]) -> Callable[..., Any]:
    # should_skip_rmap_item with "age < 4" instead of "age < 3": one more visit before the
    # first skip.
    def twin(s: K.KsmState, page: K.Page, item: K.RmapItem) -> bool:
        if not s.knobs["smart_scan"] or page.ksm:
            return False
        age = item.age
        if age != K.U8_MAX:
            item.age += 1
        if age < 4:
            return False
        if not item.remaining_skips:
            item.remaining_skips = K._skip_age(age)
            return False
        s.pages_skipped += 1
        item.remaining_skips -= 1
        K._remove_rmap_item_from_tree(s, item)
        return True
    return twin


def _register_at_head(orig: Callable[..., Any]) -> Callable[..., Any]:
    def twin(s: K.KsmState, mm: K.Mm, pages: range) -> None:
        if not mm.registered:
            mm.registered = True
            s.mm_list.insert(0, mm.name)
        orig(s, mm, pages)
    return twin


def _unmerge_without_break(orig: Callable[..., Any]) -> Callable[..., Any]:
    def twin(s: K.KsmState, mm: K.Mm, pages: range) -> None:
        for i in pages:
            if mm.ptes[i] is not None and mm.mergeable[i]:
                mm.mergeable[i] = False  # VM_MERGEABLE cleared, the mapping stays shared
    return twin


def _exit_slot_to_tail(orig: Callable[..., Any]) -> Callable[..., Any]:
    def twin(s: K.KsmState, mm: K.Mm) -> None:
        orig(s, mm)
        if mm.registered and s.mm_list and s.mm_list[0] == mm.name:
            s.mm_list.append(s.mm_list.pop(0))
    return twin


def _munmap_keeps_zero_count(orig: Callable[..., Any]) -> Callable[..., Any]:
    def twin(s: K.KsmState, mm: K.Mm, pages: range) -> None:
        zeros = sum(mm.ptes[i] == K.KSM_ZERO_PTE for i in pages)
        orig(s, mm, pages)
        s.ksm_zero_pages += zeros
        mm.ksm_zero_pages += zeros
    return twin


def _prctl_clear_keeps_merged(orig: Callable[..., Any]) -> Callable[..., Any]:
    def twin(s: K.KsmState, mm: K.Mm, value: int) -> None:
        if not value and mm.merge_any:
            mm.merge_any = False  # the flag is cleared, nothing is unmerged
            return
        orig(s, mm, value)
    return twin


def _scan_stops_after_one_quiet_pass(orig: Callable[..., Any]) -> Callable[..., Any]:
    def twin(state: K.KsmState) -> tuple[K.KsmState, dict[str, Any]]:
        s = copy.deepcopy(state)
        last = K._fingerprint(K.observe(s))
        for _ in range(K.MAX_PASSES):
            K._full_scan(s)
            now = K._fingerprint(K.observe(s))
            if now == last:
                break
            last = now
        return s, K.observe(s)
    return twin


def _smart_scan_kernel_default(orig: Any) -> Any:
    return {**orig, "smart_scan": 1}


def _profit_without_zero_pages(orig: Callable[..., Any]) -> Callable[..., Any]:
    def twin(s: K.KsmState) -> dict[str, int]:
        out: dict[str, int] = orig(s)
        out["general_profit"] -= s.ksm_zero_pages * K.PAGE_SIZE
        return out
    return twin


def _process_profit_without_zero_pages(orig: Callable[..., Any]) -> Callable[..., Any]:
    def twin(mm: K.Mm) -> dict[str, int]:
        out: dict[str, int] = orig(mm)
        out["ksm_process_profit"] -= mm.ksm_zero_pages * K.PAGE_SIZE
        return out
    return twin


def _fork_sharing_not_observed(orig: Callable[..., Any]) -> Callable[..., Any]:
    def twin(s: K.KsmState, name: str) -> tuple[bool, ...]:
        mm = s.mms[name]
        return tuple(pte is not None and (pte < 0 or s.pages[pte].ksm or s.pages[pte].sksm)
                     for pte in mm.ptes)
    return twin


TWINS: dict[str, Twin] = {t.rules[0]: t for t in (
    Twin(("KSM-OP-001",), "spec.ksm:_full_scan", _scan_newest_mm_first,
         "a pass visits the mm slots newest first", check=run_checks),
    Twin(("KSM-OP-003",), "spec.ksm:_remove_rmap_item_from_tree", _last_item_counted_as_sharing,
         "the last item leaving a stable node decrements pages_sharing, not pages_shared",
         check=run_checks),
    Twin(("KSM-OP-005",), "spec.ksm:_stable_tree_insert", _chain_forgets_first_dup,
         "a node turned into a chain is not counted in stable_node_dups", check=run_checks),
    Twin(("KSM-OP-006",), "spec.ksm:_stable_node_dup", _lone_dup_keeps_chain,
         "a chain left with one dup is not collapsed into a plain node", check=run_checks),
    Twin(("KSM-OP-008",), "spec.ksm:_merge_with_zero_page", _zero_merge_not_counted_in_mm,
         "a zero-page merge counts ksm_zero_pages globally only, not in the mm",
         check=run_checks),
    Twin(("KSM-OP-009",), "spec.ksm:_should_skip_rmap_item", _skip_from_age_four,
         "smart_scan starts skipping one visit late (age < 4 scanned)", check=run_checks),
    Twin(("KSM-OP-010",), "spec.ksm:_madvise_mergeable", _register_at_head,
         "MADV_MERGEABLE registers a new mm at the list head", check=run_checks),
    Twin(("KSM-OP-011",), "spec.ksm:_madvise_unmergeable", _unmerge_without_break,
         "MADV_UNMERGEABLE clears VM_MERGEABLE but leaves merged pages shared",
         check=run_checks),
    Twin(("KSM-OP-014",), "spec.ksm:_exit", _exit_slot_to_tail,
         "an exiting mm with rmap_items is moved to the list tail, not behind the cursor",
         check=run_checks),
    Twin(("KSM-OP-015",), "spec.ksm:_munmap", _munmap_keeps_zero_count,
         "munmap of a KSM zero PTE leaves ksm_zero_pages counted", check=run_checks),
    Twin(("KSM-OP-016",), "spec.ksm:_prctl", _prctl_clear_keeps_merged,
         "PR_SET_MEMORY_MERGE 0 clears the flag without unmerging", check=run_checks),
    Twin(("KSM-OP-017",), "spec.ksm:_madvise_merge", _sksm_zero_not_special,
         "SKSM MADV_MERGE does not map zero-filled pages to the zero page", check=run_checks),
    Twin(("KSM-OP-018",), "spec.ksm:scan", _scan_stops_after_one_quiet_pass,
         "a scenario 'scan' stops after one pass that leaves the counters unchanged",
         check=run_checks),
    Twin(("KSM-POL-001",), "spec.ksm:KNOB_DEFAULTS", _smart_scan_kernel_default,
         "an absent smart_scan takes the kernel default 1", check=run_checks),
    Twin(("KSM-POL-002",), "spec.ksm:counters", _profit_without_zero_pages,
         "general_profit leaves out ksm_zero_pages", check=run_checks),
    Twin(("KSM-POL-003",), "spec.ksm:process_counters", _process_profit_without_zero_pages,
         "ksm_process_profit leaves out the process's ksm_zero_pages", check=run_checks),
    Twin(("KSM-PROP-001",), "spec.ksm:write_faults", _fork_sharing_not_observed,
         "a page still shared after fork is reported as written in place", check=run_checks),
)}


def catch(rule_id: str, fuzz_seconds: float = 3.0) -> dict[str, Any]:
    """Run the KSM checks with the rule's twin installed; say what caught it, how fast."""
    return catch_twin(TWINS[rule_id], fuzz_seconds)
