"""Obligations: the registry, the Z3 backend of the spec's arithmetic, the parallel runner and
the results manifest.

An obligation is a named, tagged, zero-argument function that returns an :class:`Outcome`
(``proved``, ``counterexample`` or ``unknown``). It names the rules it checks and the verdict it
is expected to reach; ``proofs/manifest.json`` pins those verdicts and, for bounded
explorations, the number of distinct states, so that a change to the model shows as a diff.

Verdicts mean:

``proved``
    Z3 found the negated claim unsatisfiable over every input in the stated ranges, or (tag
    ``bounded``) the claim held on every state of a bounded exhaustive exploration, whose
    size is reported; or (tag ``nonvacuity``) a witness exists, which is shown.
``counterexample``
    an input or a state (printed as valid Python) on which the claim fails.
``unknown``
    the solver gave up (timeout); never expected.
"""

from __future__ import annotations

import importlib
import json
import multiprocessing
import os
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import attrs
import z3

PROVED, COUNTEREXAMPLE, UNKNOWN = "proved", "counterexample", "unknown"
VERDICTS = (PROVED, COUNTEREXAMPLE, UNKNOWN)
#: Modules that define obligations (one per spec area, added as the areas land).
MODULES = ("proofs.alloc", "proofs.alloc_bounded", "proofs.ksm", "proofs.nolock", "proofs.slowpath",
           "proofs.tiering")
MANIFEST = Path(__file__).resolve().parent / "manifest.json"
#: Solver time limit per query; a query that runs out reports ``unknown``.
TIMEOUT_MS = 60_000


@attrs.frozen
class Outcome:
    verdict: str
    detail: str = ""
    #: Valid Python that reproduces the counterexample (or shows the non-vacuity witness).
    counterexample: str | None = None
    #: Distinct states explored (bounded obligations only).
    states: int | None = None


@attrs.frozen
class Obligation:
    name: str
    rules: tuple[str, ...]
    expected: str
    tags: frozenset[str]
    doc: str
    fn: Callable[[], Outcome] = attrs.field(eq=False, repr=False)
    #: Shared work (e.g. a cached exploration) done once in the parent before worker
    #: processes fork, so that they inherit it instead of each redoing it.
    warm: Callable[[], Any] | None = attrs.field(eq=False, repr=False, default=None)

    @property
    def slow(self) -> bool:
        return "slow" in self.tags


@attrs.frozen
class Result:
    name: str
    rules: tuple[str, ...]
    verdict: str
    expected: str
    seconds: float
    tags: tuple[str, ...]
    detail: str = ""
    counterexample: str | None = None
    states: int | None = None
    expected_states: int | None = None

    @property
    def ok(self) -> bool:
        return self.verdict == self.expected and (
            self.expected_states is None or self.states == self.expected_states)

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name, "rules": list(self.rules),
                             "verdict": self.verdict, "expected": self.expected,
                             "seconds": round(self.seconds, 3), "tags": list(self.tags),
                             "ok": self.ok, "detail": self.detail}
        if self.states is not None or self.expected_states is not None:
            d["states"] = self.states
            d["expected_states"] = self.expected_states
        if self.counterexample is not None:
            d["counterexample"] = self.counterexample
        return d


REGISTRY: dict[str, Obligation] = {}


def obligation(name: str, rules: Sequence[str], expected: str = PROVED,
               tags: Iterable[str] = ()) -> Callable[[Callable[[], Outcome]],
                                                     Callable[[], Outcome]]:
    """Register the decorated function as obligation ``name``; its docstring states it."""

    def register(fn: Callable[[], Outcome]) -> Callable[[], Outcome]:
        add(name, rules, fn, expected, tags, fn.__doc__ or "")
        return fn

    return register


def add(name: str, rules: Sequence[str], fn: Callable[[], Outcome], expected: str = PROVED,
        tags: Iterable[str] = (), doc: str = "", warm: Callable[[], Any] | None = None) -> None:
    if name in REGISTRY:
        raise ValueError(f"obligation {name} registered twice")
    if expected not in (PROVED, COUNTEREXAMPLE):
        raise ValueError(f"obligation {name}: expected verdict must be proved or counterexample")
    if not rules:
        raise ValueError(f"obligation {name} names no rule")
    REGISTRY[name] = Obligation(name, tuple(rules), expected, frozenset(tags),
                                " ".join(doc.split()), fn, warm)


def load_all() -> dict[str, Obligation]:
    for mod in MODULES:
        importlib.import_module(mod)
    return REGISTRY


# --- the Z3 backend of the spec's arithmetic ---------------------------------------------------

class Z3Ops:
    """``spec.watermark.IntOps`` for Z3 bit-vectors: unsigned division, ``If``, ``Or``.

    Comparisons stay Python's (signed on bit-vectors); obligations choose widths and ranges in
    which every value is non-negative and far below the sign bit, so signed and unsigned
    readings agree, and state the kernel's own 64-bit limits as separate obligations.
    """

    @staticmethod
    def div(a: Any, b: Any) -> Any:
        if not z3.is_expr(a) and not z3.is_expr(b):
            return a // b
        if z3.is_int(a) or z3.is_int(b):  # mathematical integers: z3's integer division
            return a / b
        return z3.UDiv(a, b)

    @staticmethod
    def ite(cond: Any, then: Any, other: Any) -> Any:
        if isinstance(cond, bool):
            return then if cond else other
        return z3.If(cond, then, other)

    @classmethod
    def max(cls, a: Any, b: Any) -> Any:
        return cls.ite(a >= b, a, b)

    @classmethod
    def min(cls, a: Any, b: Any) -> Any:
        return cls.ite(a <= b, a, b)

    @staticmethod
    def or_(*conds: Any) -> Any:
        if all(isinstance(c, bool) for c in conds):
            return any(conds)
        return z3.Or(*conds)

    @staticmethod
    def rounddown_pow_of_two(x: Any) -> Any:
        if not z3.is_expr(x):
            return 1 << (x.bit_length() - 1)
        r = z3.BitVecVal(0, x.size())
        for i in range(x.size()):
            r = z3.If(z3.UGE(x, 1 << i), z3.BitVecVal(1 << i, x.size()), r)
        return r


Z3 = Z3Ops()


def _values(model: z3.ModelRef, variables: Sequence[z3.ExprRef]) -> dict[str, int | bool]:
    out: dict[str, int | bool] = {}
    for v in variables:
        val = model.eval(v, model_completion=True)
        out[str(v)] = z3.is_true(val) if z3.is_bool(v) else val.as_long()
    return out


def python_assignments(values: dict[str, int | bool]) -> str:
    return "\n".join(f"{k} = {v!r}" for k, v in values.items())


def check_claim(variables: Sequence[z3.ExprRef], assumptions: Sequence[Any], claim: Any,
                render: Callable[[dict[str, int | bool]], str] | None = None,
                detail: str = "") -> Outcome:
    """Prove ``assumptions => claim`` for all values of ``variables`` (a counterexample
    otherwise, rendered as Python by ``render``, by default as assignments)."""
    s = z3.Solver()
    s.set(timeout=TIMEOUT_MS)
    s.add(*assumptions)
    s.add(z3.Not(claim))
    r = s.check()
    if r == z3.unsat:
        return Outcome(PROVED, detail)
    if r == z3.sat:
        values = _values(s.model(), variables)
        text = (render or python_assignments)(values)
        return Outcome(COUNTEREXAMPLE, detail, counterexample=text)
    return Outcome(UNKNOWN, f"{detail} (z3: {s.reason_unknown()})".strip())


def find_witness(variables: Sequence[z3.ExprRef], constraints: Sequence[Any],
                 render: Callable[[dict[str, int | bool]], str] | None = None,
                 detail: str = "") -> Outcome:
    """Non-vacuity: ``proved`` with a witness when ``constraints`` are satisfiable."""
    s = z3.Solver()
    s.set(timeout=TIMEOUT_MS)
    s.add(*constraints)
    r = s.check()
    if r == z3.sat:
        values = _values(s.model(), variables)
        return Outcome(PROVED, detail, counterexample=(render or python_assignments)(values))
    if r == z3.unsat:
        return Outcome(COUNTEREXAMPLE, f"{detail}: no witness exists (vacuous)".strip(": "))
    return Outcome(UNKNOWN, f"{detail} (z3: {s.reason_unknown()})".strip())


def all_of(outcomes: Iterable[tuple[str, Outcome]]) -> Outcome:
    """Combine sub-queries: the first counterexample or unknown wins, else proved."""
    n = 0
    for label, o in outcomes:
        n += 1
        if o.verdict != PROVED:
            return attrs.evolve(o, detail=f"{label}: {o.detail}".rstrip(": "))
    return Outcome(PROVED, f"{n} cases")


# --- running ----------------------------------------------------------------------------------

def read_manifest(path: Path | None = None) -> dict[str, dict[str, Any]]:
    path = path or MANIFEST
    if not path.exists():
        return {}
    data: dict[str, dict[str, Any]] = json.loads(path.read_text())["obligations"]
    return data


def write_manifest(results: Sequence[Result], path: Path | None = None) -> None:
    """Record verdicts and state counts (merged into the existing manifest), one obligation
    per line so that a change reads as a one-line diff."""
    path = path or MANIFEST
    load_all()
    entries = read_manifest(path)
    for r in results:
        entry: dict[str, Any] = {"expected": r.verdict, "rules": list(r.rules),
                                 "tags": sorted(r.tags)}
        if r.states is not None:
            entry["states"] = r.states
        entries[r.name] = entry
    names = [k for k in sorted(entries) if k in REGISTRY]
    lines = [f"  {json.dumps(k)}: {json.dumps(entries[k])}" for k in names]
    path.write_text('{"obligations": {\n' + ",\n".join(lines) + "\n}}\n")


def select(names: Sequence[str] = (), include_slow: bool = False) -> list[Obligation]:
    """Obligations by exact name or name prefix (``alloc.buddy``); all non-slow ones if none."""
    reg = load_all()
    if not names:
        return [o for o in reg.values() if include_slow or not o.slow]
    out: list[Obligation] = []
    for n in names:
        hits = [o for k, o in reg.items() if k == n or k.startswith(n.rstrip(".") + ".")]
        if not hits:
            raise KeyError(n)
        out += [o for o in hits if o not in out]
    return out


def run_one(name: str) -> Result:
    ob = load_all()[name]
    t = time.monotonic()
    try:
        out = ob.fn()
    except Exception as e:  # an obligation that crashes is a failure, shown, not a traceback
        out = Outcome(UNKNOWN, f"error: {type(e).__name__}: {e}")
    seconds = time.monotonic() - t
    entry = read_manifest().get(name, {})
    return Result(name, ob.rules, out.verdict, entry.get("expected", ob.expected), seconds,
                  tuple(sorted(ob.tags)), out.detail, out.counterexample, out.states,
                  entry.get("states"))


def run(obligations: Sequence[Obligation], jobs: int = 1,
        tick: Callable[..., None] | None = None) -> list[Result]:
    """Run obligations, ``jobs`` at a time in worker processes; results in input order."""
    names = [o.name for o in obligations]
    results: dict[str, Result] = {}
    if jobs <= 1 or len(names) <= 1:
        for n in names:
            results[n] = run_one(n)
            if tick:
                tick()
    else:
        for warm in dict.fromkeys(o.warm for o in obligations if o.warm is not None):
            warm()
        ctx = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx) as pool:
            futures = {pool.submit(run_one, n): n for n in names}
            for f in as_completed(futures):
                results[futures[f]] = f.result()
                if tick:
                    tick()
    return [results[n] for n in names]


def default_jobs() -> int:
    return max(1, min(2, os.cpu_count() or 1))
