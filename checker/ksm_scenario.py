"""KSM scenarios: one JSON format for the model, the reference and the live kernel.

A scenario is ``{"knobs": {...}, "processes": {name: [[label, count], ...]}, "steps": [...]}``
(see docs/ksm.md). :func:`load` parses and validates it into a :class:`Scenario` whose labels
are resolved: ``"u"`` becomes a content unique to that page (``u:<process>:<page>`` at
creation, ``u:<process>:<page>:<step>`` for a write), so every implementation sees the same
concrete contents. :func:`content_bytes` gives the 4 KiB a label stands for on the live
kernel. Malformed input raises :class:`ScenarioError` with one line naming the problem.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import attrs

from spec import ksm

PAGE_SIZE = ksm.PAGE_SIZE
MAX_PAGES = 1 << 16

#: knob name -> (lowest, highest) accepted. pages_to_scan and sleep_millisecs only tune
#: the oracle's ksmd speed; they do not change a converged result.
KNOBS: dict[str, tuple[int, int]] = {
    "use_zero_pages": (0, 1), "max_page_sharing": (2, 1 << 20), "merge_across_nodes": (0, 1),
    "smart_scan": (0, 1), "stable_node_chains_prune_millisecs": (0, 0),
    "pages_to_scan": (1, 1 << 20), "sleep_millisecs": (0, 10_000),
}
OPS = {"madvise": ("process", "start", "count", "advice"), "scan": (),
       "write": ("process", "page", "content"), "fork": ("process", "child"),
       "munmap": ("process", "start", "count"), "exit": ("process",),
       "prctl": ("process", "value")}
ADVICE = ("mergeable", "unmergeable", "merge")


class ScenarioError(Exception):
    """A malformed scenario: the message names the problem in one line."""


@attrs.frozen
class Scenario:
    knobs: dict[str, int]
    #: process -> concrete page contents.
    processes: dict[str, tuple[str, ...]]
    #: steps with resolved contents (dicts as in the JSON).
    steps: tuple[dict[str, Any], ...]
    variant: str = "v6.18"
    name: str = ""

    @property
    def model_only(self) -> str:
        """Why the live kernel cannot run this scenario ('' if it can)."""
        if self.variant == "sksm":
            return "SKSM (MADV_MERGE) is not in the live kernel"
        if any(st["op"] == "prctl" for st in self.steps):
            return "PR_SET_MEMORY_MERGE would make the oracle's own Python heap mergeable"
        return ""

    def to_json(self) -> dict[str, Any]:
        return {"knobs": self.knobs, "variant": self.variant,
                "processes": {n: _runs(c) for n, c in self.processes.items()},
                "steps": list(self.steps)}


def _runs(contents: tuple[str, ...]) -> list[list[Any]]:
    out: list[list[Any]] = []
    for c in contents:
        if out and out[-1][0] == c:
            out[-1][1] += 1
        else:
            out.append([c, 1])
    return out


def content_bytes(label: str) -> bytes:
    """The page a label stands for: zeros for "0", else a 32-byte digest repeated."""
    if label == ksm.ZERO:
        return bytes(PAGE_SIZE)
    return hashlib.sha256(label.encode()).digest() * (PAGE_SIZE // 32)


def _int(obj: Any, what: str, lo: int, hi: int) -> int:
    if isinstance(obj, bool) or not isinstance(obj, int):
        raise ScenarioError(f"{what} must be an integer, got {obj!r}")
    if not lo <= obj <= hi:
        raise ScenarioError(f"{what} = {obj} is outside {lo}..{hi}")
    return obj


def _label(obj: Any, what: str) -> str:
    if not isinstance(obj, str) or not obj or len(obj) > 64:
        raise ScenarioError(f"{what} must be a non-empty label of at most 64 characters, "
                            f"got {obj!r}")
    if ":" in obj:
        raise ScenarioError(f"{what} {obj!r}: ':' is reserved for resolved unique contents")
    return obj


def _name(obj: Any, what: str) -> str:
    if not isinstance(obj, str) or not obj.isidentifier() or len(obj) > 32:
        raise ScenarioError(f"{what} must be a short identifier, got {obj!r}")
    return obj


def parse(obj: Any, name: str = "") -> Scenario:
    """Validate a decoded scenario and resolve its labels."""
    if not isinstance(obj, dict):
        raise ScenarioError("a scenario is a JSON object with knobs, processes and steps")
    extra = set(obj) - {"knobs", "processes", "steps", "variant", "comment", "source"}
    if extra:
        raise ScenarioError(f"unknown scenario key {sorted(extra)[0]!r}")
    knobs_in = obj.get("knobs", {})
    if not isinstance(knobs_in, dict):
        raise ScenarioError("knobs must be an object")
    knobs: dict[str, int] = {}
    for k, v in knobs_in.items():
        if k not in KNOBS:
            raise ScenarioError(f"unknown knob {k!r} (known: {', '.join(KNOBS)})")
        knobs[k] = _int(v, f"knob {k}", *KNOBS[k])
    variant = obj.get("variant", "v6.18")
    if variant not in ksm.VARIANTS:
        raise ScenarioError(f"unknown variant {variant!r} (known: {', '.join(ksm.VARIANTS)})")
    procs_in = obj.get("processes")
    if not isinstance(procs_in, dict) or not procs_in:
        raise ScenarioError("processes must be a non-empty object of name -> [[label, count]]")
    processes: dict[str, tuple[str, ...]] = {}
    total = 0
    for pname, layout in procs_in.items():
        _name(pname, "process name")
        if not isinstance(layout, list):
            raise ScenarioError(f"process {pname!r}: layout must be a list of [label, count]")
        contents: list[str] = []
        for run in layout:
            if not (isinstance(run, list) and len(run) == 2):
                raise ScenarioError(f"process {pname!r}: {run!r} is not a [label, count] pair")
            label = _label(run[0], f"process {pname!r} label")
            count = _int(run[1], f"process {pname!r} count of {label!r}", 0, MAX_PAGES)
            for _ in range(count):
                i = len(contents)
                contents.append(f"u:{pname}:{i}" if label == "u" else label)
        if not contents:
            raise ScenarioError(f"process {pname!r} has no pages")
        total += len(contents)
        processes[pname] = tuple(contents)
    if total > MAX_PAGES:
        raise ScenarioError(f"{total} pages in all: at most {MAX_PAGES}")
    steps_in = obj.get("steps")
    if not isinstance(steps_in, list):
        raise ScenarioError("steps must be a list")
    # validate against the life and size of each process
    size = {p: len(c) for p, c in processes.items()}
    mapped = {p: [True] * len(c) for p, c in processes.items()}
    steps: list[dict[str, Any]] = []
    uses = set()
    for n, st in enumerate(steps_in):
        where = f"step {n}"
        if not isinstance(st, dict) or not isinstance(st.get("op"), str):
            raise ScenarioError(f"{where}: a step is an object with an 'op'")
        op = st["op"]
        if op not in OPS:
            raise ScenarioError(f"{where}: unknown op {op!r} (known: {', '.join(OPS)})")
        want = set(OPS[op]) | {"op"}
        if set(st) != want:
            diff = sorted((set(st) - want) or (want - set(st)))
            raise ScenarioError(f"{where} ({op}): field {diff[0]!r} "
                                f"{'unexpected' if set(st) - want else 'missing'}")
        out = dict(st)
        if "process" in st:
            p = st["process"]
            if p not in size:
                raise ScenarioError(f"{where} ({op}): no live process {p!r}")
        if op in ("madvise", "munmap"):
            start = _int(st["start"], f"{where} start", 0, size[p] - 1)
            _int(st["count"], f"{where} count", 1, size[p] - start)
        if op == "madvise":
            if st["advice"] not in ADVICE:
                raise ScenarioError(f"{where}: advice must be one of {', '.join(ADVICE)}")
            uses.add("merge" if st["advice"] == "merge" else "ksm")
        elif op == "write":
            page = _int(st["page"], f"{where} page", 0, size[p] - 1)
            if not mapped[p][page]:
                raise ScenarioError(f"{where}: page {page} of {p!r} is unmapped")
            label = _label(st["content"], f"{where} content")
            out["content"] = f"u:{p}:{page}:{n}" if label == "u" else label
        elif op == "munmap":
            for i in range(st["start"], st["start"] + st["count"]):
                mapped[p][i] = False
        elif op == "fork":
            child = _name(st["child"], f"{where} child")
            if child in size or child in processes:
                raise ScenarioError(f"{where}: process {child!r} exists")
            size[child] = size[p]
            mapped[child] = list(mapped[p])
        elif op == "exit":
            del size[p]
        elif op == "prctl":
            _int(st["value"], f"{where} value", 0, 1)
            uses.add("ksm")
        steps.append(out)
    if "merge" in uses:
        if "ksm" in uses:
            raise ScenarioError("MADV_MERGE (SKSM) and KSM advice in one scenario: Kconfig SKSM "
                                "depends on !KSM")
        if variant != "sksm":
            variant = "sksm"
    elif variant == "sksm" and "ksm" in uses:
        raise ScenarioError("variant 'sksm' has no KSM: use advice 'merge'")
    if not any(st["op"] == "scan" for st in steps):
        raise ScenarioError("a scenario needs at least one 'scan' step (one record each)")
    k = dict(ksm.KNOB_DEFAULTS)
    k.update(knobs)
    return Scenario(k, processes, tuple(steps), variant, name)


def load(path: str | Path) -> Scenario:
    """Read and validate a scenario file."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as e:
        raise ScenarioError(f"cannot read {path}: {e.strerror}") from None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        raise ScenarioError(f"{path}: not JSON ({e.msg} at line {e.lineno})") from None
    return parse(obj, p.stem)


# --- running on the spec ----------------------------------------------------------------------

def model_knobs(sc: Scenario) -> dict[str, int]:
    return {k: v for k, v in sc.knobs.items() if k in ksm.KNOB_DEFAULTS}


def apply_step(impl: Any, st: dict[str, Any]) -> dict[str, Any] | None:
    """Apply one step to an implementation with the spec's operation names (the
    :class:`SpecRunner` below, or the reference); returns a record for 'scan'."""
    op = st["op"]
    if op == "scan":
        return impl.scan()  # type: ignore[no-any-return]
    if op == "madvise":
        impl.madvise(st["process"], st["start"], st["count"], st["advice"])
    elif op == "write":
        impl.write(st["process"], st["page"], st["content"])
    elif op == "fork":
        impl.fork(st["process"], st["child"])
    elif op == "munmap":
        impl.munmap(st["process"], st["start"], st["count"])
    elif op == "exit":
        impl.exit_process(st["process"])
    elif op == "prctl":
        impl.prctl_memory_merge(st["process"], st["value"])
    return None


class SpecRunner:
    """The spec behind a small mutable facade (the shape the reference also has)."""

    def __init__(self, knobs: dict[str, int], variant: str = "v6.18") -> None:
        self.state = ksm.new_state(knobs, variant)

    def create_process(self, name: str, contents: tuple[str, ...]) -> None:
        self.state, _ = ksm.create_process(self.state, name, contents)

    def madvise(self, p: str, start: int, count: int, advice: str) -> None:
        self.state, _ = ksm.madvise(self.state, p, start, count, advice)

    def write(self, p: str, page: int, content: str) -> None:
        self.state, _ = ksm.write(self.state, p, page, content)

    def fork(self, p: str, child: str) -> None:
        self.state, _ = ksm.fork(self.state, p, child)

    def munmap(self, p: str, start: int, count: int) -> None:
        self.state, _ = ksm.munmap(self.state, p, start, count)

    def exit_process(self, p: str) -> None:
        self.state, _ = ksm.exit_process(self.state, p)

    def prctl_memory_merge(self, p: str, value: int) -> None:
        self.state, _ = ksm.prctl_memory_merge(self.state, p, value)

    def full_scan(self) -> None:
        self.state, _ = ksm.full_scan(self.state)

    def scan(self) -> dict[str, Any]:
        self.state, rec = ksm.scan(self.state)
        return rec

    def observe(self) -> dict[str, Any]:
        return ksm.observe(self.state)

    def page_sharing(self) -> dict[str, list[str]]:
        return ksm.page_sharing(self.state)


def run(sc: Scenario, impl: str = "spec") -> dict[str, Any]:
    """The prediction: ``{"scans": [record per scan step]}``."""
    if impl == "spec":
        runner: Any = SpecRunner(model_knobs(sc), sc.variant)
    elif impl == "reference":
        from reference.ksm import Ksm
        runner = Ksm(model_knobs(sc), sc.variant)
    else:
        raise ScenarioError(f"unknown implementation {impl!r} (spec or reference)")
    for name, contents in sc.processes.items():
        runner.create_process(name, contents)
    scans = []
    for st in sc.steps:
        rec = apply_step(runner, st)
        if rec is not None:
            scans.append(rec)
    return {"scans": scans}


def diff_records(want: dict[str, Any], got: dict[str, Any]) -> list[str]:
    """Human-readable differences between two ``{"scans": [...]}`` results."""
    out = []
    a, b = want["scans"], got["scans"]
    if len(a) != len(b):
        out.append(f"{len(a)} scan records vs {len(b)}")
    for n, (x, y) in enumerate(zip(a, b, strict=False)):
        for k in ksm.COUNTERS:
            if x.get(k) != y.get(k):
                out.append(f"scan {n}: {k} {x.get(k)} vs {y.get(k)}")
        for p in sorted(set(x.get("processes", {})) | set(y.get("processes", {}))):
            px, py = x.get("processes", {}).get(p), y.get("processes", {}).get(p)
            if px is None or py is None:
                out.append(f"scan {n}: process {p} only on one side")
                continue
            for k in ksm.PROCESS_COUNTERS:
                if px.get(k) != py.get(k):
                    out.append(f"scan {n}: {p}.{k} {px.get(k)} vs {py.get(k)}")
        if x.get("sksm") != y.get("sksm"):
            out.append(f"scan {n}: sksm {x.get('sksm')} vs {y.get('sksm')}")
    return out


def random_scenario(seed: int, max_pages: int = 40, chains: bool = True) -> dict[str, Any]:
    """A random valid scenario (JSON form): small processes over a few shared labels, with
    madvise ranges, writes, forks, munmaps, exits and scans. Deterministic in ``seed``."""
    import random
    rng = random.Random(seed)
    labels = ["A", "B", "C", "0", "u"]
    knobs = {"use_zero_pages": rng.randint(0, 1), "smart_scan": rng.choice((0, 0, 1)),
             "max_page_sharing": rng.choice((2, 3, 4, 256, 256)) if chains else 256}
    procs: dict[str, list[list[Any]]] = {}
    size: dict[str, int] = {}
    for n in range(rng.randint(1, 3)):
        runs, total = [], 0
        while total < 2 or (total < max_pages // 2 and rng.random() < 0.7):
            c = rng.randint(1, 6)
            runs.append([rng.choice(labels), c])
            total += c
        procs[f"p{n}"] = runs
        size[f"p{n}"] = total
    mapped = {p: [True] * s for p, s in size.items()}
    steps: list[dict[str, Any]] = []
    for p, s in size.items():
        if rng.random() < 0.9:
            st = 0 if rng.random() < 0.6 else rng.randrange(s)
            steps.append({"op": "madvise", "process": p, "start": st, "count": s - st,
                          "advice": "mergeable"})
    steps.append({"op": "scan"})
    nfork = 0
    for _ in range(rng.randint(2, 6)):
        live = sorted(size)
        if not live:
            break
        p = rng.choice(live)
        r = rng.random()
        if r < 0.45:
            pages = [i for i in range(size[p]) if mapped[p][i]]
            if pages:
                steps.append({"op": "write", "process": p, "page": rng.choice(pages),
                              "content": rng.choice(labels)})
        elif r < 0.6:
            st = rng.randrange(size[p])
            steps.append({"op": "madvise", "process": p, "start": st,
                          "count": rng.randint(1, size[p] - st),
                          "advice": rng.choice(("mergeable", "unmergeable"))})
        elif r < 0.7 and nfork < 2:
            child = f"c{nfork}"
            nfork += 1
            steps.append({"op": "fork", "process": p, "child": child})
            size[child] = size[p]
            mapped[child] = list(mapped[p])
        elif r < 0.8:
            st = rng.randrange(size[p])
            cnt = rng.randint(1, min(4, size[p] - st))
            steps.append({"op": "munmap", "process": p, "start": st, "count": cnt})
            for i in range(st, st + cnt):
                mapped[p][i] = False
        elif r < 0.85 and len(live) > 1:
            steps.append({"op": "exit", "process": p})
            del size[p]
        else:
            steps.append({"op": "scan"})
    steps.append({"op": "scan"})
    return {"knobs": knobs, "processes": procs, "steps": steps,
            "source": f"checker.ksm_scenario.random_scenario({seed})"}
