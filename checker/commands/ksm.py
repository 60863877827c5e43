"""``mmspec ksm``: run KSM scenarios on the spec, the reference or the live kernel; estimate
what KSM and SKSM would save for a real process; show the deduplication side channel.

Also registers the ``ksm`` lockstep area (``mmspec fuzz ksm --impl reference|spec|mutant:NAME``)
and adds a short lockstep fuzz and a sample of the live-kernel corpus to ``mmspec verify``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from checker import fuzz

CORPUS = Path(__file__).resolve().parent.parent.parent / "tests" / "data" / "ksm"


# --- lockstep machine and mutants --------------------------------------------------------------

def _mutants() -> dict[str, Any]:
    """Seeded bugs in the reference, each breaking one KSM rule the way a patch could."""
    import numpy as np

    from reference.ksm import KSM_ZERO, Ksm

    class NoChecksumWait(Ksm):
        """Breaks KSM-OP-002: merges on the first visit (no unchanged-checksum test)."""

        def _prepare_mm(self, mm: Any) -> Any:
            fresh = mm.mergeable & (mm.ptes >= 0) & ~mm.has
            idx = np.flatnonzero(fresh)
            mm.old[idx] = self.pg_content[mm.ptes[idx]]
            mm.has[idx] = True
            self.rmap_items += len(idx)
            mm.rmap_items += len(idx)
            return super()._prepare_mm(mm)

    class SharingCountsShared(Ksm):
        """Breaks KSM-OP-007: a new KSM page pair counts pages_sharing 2 (the first item too)."""

        def _append(self, mm: Any, a: int, node: int) -> None:
            super()._append(mm, a, node)
            if self.node_len[node] == 1:
                self.sharing += 1
                self.shared -= 1

    class IgnoreMaxPageSharing(Ksm):
        """Breaks KSM-OP-004/KSM-INV-002: full stable nodes still take new sharers."""

        def _cand(self, node: int, offset: int = 0) -> bool:
            return self.node_len[node] > 0

    class ZeroWriteNotUncounted(Ksm):
        """Breaks KSM-OP-012: a write to a KSM zero PTE leaves ksm_zero_pages unchanged."""

        def write(self, name: str, page: int, content: str) -> None:
            mm = self._mm(name)
            was_zero = 0 <= page < len(mm.ptes) and int(mm.ptes[page]) == KSM_ZERO
            super().write(name, page, content)
            if was_zero:
                self.zero += 1
                mm.zero += 1

    class WriteInPlace(Ksm):
        """Breaks KSM-INV-001 (isolation): a write to a KSM page changes it in place, so every
        other mapping of the page sees the write."""

        def write(self, name: str, page: int, content: str) -> None:
            mm = self._mm(name)
            pte = int(mm.ptes[page]) if 0 <= page < len(mm.ptes) else -3
            if pte >= 0 and self.pg_node[pte] >= 0:
                self.pg_content[pte] = self._key(content)
                return
            super().write(name, page, content)

    class ForkCopiesCounters(Ksm):
        """Breaks KSM-OP-013: the child inherits ksm_merging_pages and ksm_rmap_items (the
        bug 4d6fc29f3634 fixed in 6.18)."""

        def fork(self, name: str, child: str) -> None:
            super().fork(name, child)
            p, c = self.mms[name], self.mms[child]
            if c.registered:
                c.merging, c.rmap_items = p.merging, p.rmap_items

    return {"no-checksum-wait": NoChecksumWait, "sharing-counts-shared": SharingCountsShared,
            "ignore-max-page-sharing": IgnoreMaxPageSharing,
            "zero-write-not-uncounted": ZeroWriteNotUncounted, "write-in-place": WriteInPlace,
            "fork-copies-counters": ForkCopiesCounters}


MUTANT_RULES = {"no-checksum-wait": ("KSM-OP-002",), "sharing-counts-shared": ("KSM-OP-007",),
                "ignore-max-page-sharing": ("KSM-OP-004", "KSM-INV-002"),
                "zero-write-not-uncounted": ("KSM-OP-012",), "write-in-place": ("KSM-INV-001",),
                "fork-copies-counters": ("KSM-OP-013",)}


def _impl_factory(impl: str) -> Any:
    from checker.ksm_scenario import SpecRunner
    from reference.ksm import Ksm

    if impl == "reference":
        return Ksm
    if impl == "spec":
        return SpecRunner
    if impl.startswith("mutant:"):
        mutants = _mutants()
        name = impl.split(":", 1)[1]
        if name not in mutants:
            raise ValueError(f"unknown KSM mutant {name!r} (known: {', '.join(mutants)})")
        return mutants[name]
    raise ValueError(f"unknown implementation {impl!r} (reference, spec, mutant:NAME)")


def machine_for_impl(impl: str) -> Any:
    """The KSM lockstep machine: the spec and ``impl`` driven by the same operations, with
    counters, per-page sharing and page contents compared after every step."""
    from hypothesis import strategies as st
    from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

    from checker.ksm_scenario import SpecRunner
    from spec import ksm

    factory = _impl_factory(impl)
    labels = ("A", "B", "0", "C")

    class KsmLockstep(RuleBasedStateMachine):
        first_failure_at: float | None = None

        def __init__(self) -> None:
            super().__init__()
            self.model: Any = None
            self.impl: Any = None
            self.uniq = 0
            self.settled = True

        def _fail(self, msg: str) -> None:
            if type(self).first_failure_at is None:
                type(self).first_failure_at = time.monotonic()
            raise AssertionError(msg)

        @initialize(data=st.data())
        def init(self, data: st.DataObject) -> None:
            knobs = {"use_zero_pages": data.draw(st.integers(0, 1), "use_zero_pages"),
                     "max_page_sharing": data.draw(st.sampled_from((2, 3, 4, 256)),
                                                   "max_page_sharing"),
                     "smart_scan": data.draw(st.integers(0, 1), "smart_scan")}
            self.model = SpecRunner(knobs)
            self.impl = factory(knobs)
            for n in range(data.draw(st.integers(1, 3), "processes")):
                contents = data.draw(st.lists(st.sampled_from(labels), min_size=1,
                                              max_size=12), f"p{n}")
                self._both("create_process", f"p{n}", tuple(contents))
                if data.draw(st.booleans(), f"madvise p{n}"):
                    self._both("madvise", f"p{n}", 0, len(contents), "mergeable")

        def _both(self, op: str, *args: Any) -> Any:
            # a scan that never settles (smart_scan phases) must fail on both sides alike
            if not self.settled:
                return None
            try:
                want = getattr(self.model, op)(*args)
            except ksm.KsmError as e:
                want = ("KsmError", str(e).split(" (")[0])
            try:
                got = getattr(self.impl, op)(*args)
            except ksm.KsmError as e:
                got = ("KsmError", str(e).split(" (")[0])
            if isinstance(want, tuple) or isinstance(got, tuple):
                if want != got:
                    self._fail(f"{op}: spec {want} vs impl {got}")
                self.settled = False   # the states parted at the error: stop comparing
                return want
            if op == "scan" and want != got:
                self._fail(f"scan records differ: spec {want} vs impl {got}")
            return want

        def _live(self) -> list[str]:
            return sorted(n for n, m in self.model.state.mms.items() if not m.exited)

        def _proc(self, data: st.DataObject) -> Any:
            live = self._live()
            return data.draw(st.sampled_from(live), "process") if live else None

        @rule(data=st.data())
        def madvise(self, data: st.DataObject) -> None:
            p = self._proc(data)
            if p is None:
                return
            n = len(self.model.state.mms[p].ptes)
            start = data.draw(st.integers(0, n - 1), "start")
            count = data.draw(st.integers(1, n - start), "count")
            advice = data.draw(st.sampled_from(("mergeable", "unmergeable")), "advice")
            self._both("madvise", p, start, count, advice)

        @rule(data=st.data())
        def write(self, data: st.DataObject) -> None:
            p = self._proc(data)
            if p is None:
                return
            mapped = [i for i, x in enumerate(self.model.state.mms[p].ptes) if x is not None]
            if not mapped:
                return
            page = data.draw(st.sampled_from(mapped), "page")
            label = data.draw(st.sampled_from((*labels, "u")), "content")
            if label == "u":
                self.uniq += 1
                label = f"u:{self.uniq}"
            self._both("write", p, page, label)

        @rule(data=st.data())
        def fork(self, data: st.DataObject) -> None:
            p = self._proc(data)
            if p is None or len(self.model.state.mms) >= 5:
                return
            self._both("fork", p, f"f{len(self.model.state.mms)}{self.uniq}")
            self.uniq += 1

        @rule(data=st.data())
        def munmap(self, data: st.DataObject) -> None:
            p = self._proc(data)
            if p is None:
                return
            n = len(self.model.state.mms[p].ptes)
            start = data.draw(st.integers(0, n - 1), "start")
            self._both("munmap", p, start, data.draw(st.integers(1, min(3, n - start))))

        @rule(data=st.data())
        def exit_process(self, data: st.DataObject) -> None:
            if len(self._live()) > 1:
                self._both("exit_process", self._proc(data))

        @rule()
        def full_scan(self) -> None:
            self._both("full_scan")

        @rule()
        def scan(self) -> None:
            self._both("scan")

        @invariant()
        def lockstep(self) -> None:
            if self.model is None or not self.settled:
                return
            want, got = self.model.observe(), self.impl.observe()
            if want != got:
                self._fail(f"counters differ: spec {want} vs impl {got}")
            if self.model.page_sharing() != self.impl.page_sharing():
                self._fail("per-page sharing differs")
            if hasattr(self.impl, "read"):
                for n in self._live():
                    if self.impl.read(n) != self.model.state.mms[n].expected:
                        self._fail(f"{n} reads {self.impl.read(n)}, its writes say "
                                   f"{self.model.state.mms[n].expected} (KSM-INV-001)")
            bad = ksm.check_invariants(self.model.state)
            if bad:
                self._fail("spec invariant: " + bad[0])

    return KsmLockstep


fuzz.register_area("ksm", machine_for_impl)


# --- commands ----------------------------------------------------------------------------------

def register(sub: Any, cli: Any) -> None:
    k = sub.add_parser("ksm", help="KSM scenarios: spec, reference and live kernel; estimate; "
                       "side channel")
    ks = k.add_subparsers(dest="ksm_cmd")
    for name, hlp in (("run", "the model's prediction for a scenario"),
                      ("oracle", "run a scenario on the live kernel (root)"),
                      ("diff", "run on the model and the live kernel and compare")):
        p = ks.add_parser(name, help=hlp)
        p.add_argument("scenario")
        if name == "run":
            p.add_argument("--impl", default="spec", help="spec (default) or reference")
        if name != "run":
            p.add_argument("--timeout", type=float, default=60.0,
                           help="bound on the live run in seconds (default 60)")
        p.add_argument("--json", action="store_true")
        p.set_defaults(func=lambda args, cli=cli: cmd_scenario(args, cli))
    b = ks.add_parser("bench", help="reference throughput: pages scanned and merged per second")
    b.add_argument("--pages", type=int, default=1_000_000)
    b.add_argument("--dup", type=float, default=0.5, help="fraction of duplicated pages")
    b.add_argument("--contents", type=int, default=50_000,
                   help="distinct duplicated contents (default 50000)")
    b.add_argument("--json", action="store_true")
    b.set_defaults(func=lambda args, cli=cli: cmd_bench(args, cli))
    e = ks.add_parser("estimate", help="what KSM and SKSM would save for a running process")
    e.add_argument("--pid", type=int, required=True)
    e.add_argument("--json", action="store_true")
    e.set_defaults(func=lambda args, cli=cli: cmd_estimate(args, cli))
    s = ks.add_parser("sidechannel", help="the COW-fault side channel, across and within "
                      "security domains")
    s.add_argument("--secrets", type=int, default=3, help="secret values (default 3)")
    s.add_argument("--pages", type=int, default=2, help="victim pages (default 2)")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=lambda args, cli=cli: cmd_sidechannel(args, cli))
    k.set_defaults(func=lambda args, cli=cli: _no_sub(cli))


def _no_sub(cli: Any) -> int:
    raise cli.UsageError("mmspec ksm: choose run, oracle, diff, bench, estimate or sidechannel")


def _load(args: argparse.Namespace, cli: Any) -> Any:
    from checker.ksm_scenario import ScenarioError, load
    try:
        return load(args.scenario)
    except ScenarioError as e:
        raise cli.UsageError(f"mmspec ksm {args.ksm_cmd}: {e}") from None


def _table(rec: dict[str, Any], title: str) -> None:
    from spec import ksm
    print(title)
    print("  " + "  ".join(f"{k}={rec[k]}" for k in ksm.COUNTERS))
    for p, c in rec["processes"].items():
        print(f"  {p}: " + "  ".join(f"{k}={v}" for k, v in c.items()))
    if "sksm" in rec:
        print("  sksm: " + "  ".join(f"{k}={v}" for k, v in rec["sksm"].items()))


def _tables(records: list[dict[str, Any]], suffix: str) -> None:
    for i, r in enumerate(records):
        _table(r, f"scan {i}{suffix}")


def cmd_scenario(args: argparse.Namespace, cli: Any) -> int:
    from checker import ksm_oracle
    from checker.ksm_scenario import ScenarioError, diff_records, run
    from spec.ksm import KsmError

    sc = _load(args, cli)
    cmd = args.ksm_cmd
    try:
        if cmd == "run":
            if args.impl not in ("spec", "reference"):
                raise cli.UsageError(f"mmspec ksm run: unknown --impl {args.impl!r} "
                                     "(spec or reference)")
            result = run(sc, args.impl)
            cli.emit(args, result, lambda: _tables(result["scans"], ""))
            return int(cli.EXIT_OK)
        if args.timeout <= 0:
            raise cli.UsageError(f"mmspec ksm {cmd}: --timeout must be positive")
        why = sc.model_only or ksm_oracle.unavailable()
        if why:
            raise cli.UsageError(f"mmspec ksm {cmd}: live kernel unavailable: {why}")
        live = ksm_oracle.run(sc, timeout=args.timeout)
    except (ScenarioError, KsmError) as e:
        raise cli.UsageError(f"mmspec ksm {cmd}: {e}") from None
    except ksm_oracle.OracleError as e:
        raise cli.UsageError(f"mmspec ksm {cmd}: live kernel: {e}") from None
    if cmd == "oracle":
        cli.emit(args, live, lambda: _tables(live["scans"], " (live)"))
        return int(cli.EXIT_OK)
    model = run(sc)
    diffs = diff_records(model, live)
    obj = {"agree": not diffs, "differences": diffs, "model": model, "live": live}

    def text() -> None:
        if not diffs:
            print(f"{sc.name}: model and live kernel agree on {len(model['scans'])} scan "
                  f"record(s) ({live['passes']} full scans)")
        for d in diffs:
            print(f"DIFF (model vs live) {d}")
    cli.emit(args, obj, text)
    return int(cli.EXIT_OK if not diffs else cli.EXIT_VIOLATION)


def bench(pages: int, dup: float, contents: int, seed: int = 0) -> dict[str, Any]:
    """Time the reference's scan (until converged) over ``pages`` pages in 4 processes."""
    import numpy as np

    from reference.ksm import Ksm
    rng = np.random.default_rng(seed)
    k = Ksm({})
    per = max(1, pages // 4)
    for p in range(4):
        is_dup = rng.random(per) < dup
        pick = rng.integers(0, max(1, contents), per)
        k.create_process(f"p{p}", [f"d{x}" if d else f"u{p}_{i}"
                                   for i, (d, x) in enumerate(zip(is_dup, pick, strict=True))])
        k.madvise(f"p{p}", 0, per, "mergeable")
    t = time.perf_counter()
    rec = k.scan()
    dt = time.perf_counter() - t
    return {"pages": per * 4, "full_scans": k.seqnr, "pages_scanned": k.pages_scanned,
            "seconds": round(dt, 3), "pages_per_s": round(k.pages_scanned / dt),
            "pages_shared": rec["pages_shared"], "pages_sharing": rec["pages_sharing"]}


def cmd_bench(args: argparse.Namespace, cli: Any) -> int:
    if args.pages <= 0 or not 0 <= args.dup <= 1 or args.contents <= 0:
        raise cli.UsageError("mmspec ksm bench: --pages and --contents must be positive, "
                             "--dup in 0..1")
    r = bench(args.pages, args.dup, args.contents)
    cli.emit(args, r, lambda: print(
        f"reference KSM: {r['pages']} pages, {r['full_scans']} full scans, "
        f"{r['pages_scanned']} pages scanned in {r['seconds']} s = {r['pages_per_s']:,} "
        f"pages/s (shared {r['pages_shared']}, sharing {r['pages_sharing']})"))
    return int(cli.EXIT_OK)


def cmd_estimate(args: argparse.Namespace, cli: Any) -> int:
    import checker.ksm_estimate as ksm_estimate
    try:
        r = ksm_estimate.estimate_pid(args.pid)
    except ksm_estimate.EstimateError as e:
        raise cli.UsageError(f"mmspec ksm estimate: {e}") from None
    cli.emit(args, r, lambda: ksm_estimate.print_text(r))
    return int(cli.EXIT_OK)


def cmd_sidechannel(args: argparse.Namespace, cli: Any) -> int:
    import checker.ksm_sidechannel as ksm_sidechannel
    if not 2 <= args.secrets <= 6 or not 1 <= args.pages <= 3:
        raise cli.UsageError("mmspec ksm sidechannel: --secrets must be 2..6, --pages 1..3")
    r = ksm_sidechannel.analyse(args.secrets, args.pages)
    cli.emit(args, r, lambda: ksm_sidechannel.print_text(r))
    return int(cli.EXIT_OK if r["ok"] else cli.EXIT_VIOLATION)


def verify_checks() -> list[tuple[str, Any]]:
    def lockstep() -> dict[str, Any]:
        res = fuzz.run_fuzz("reference", examples=40, area="ksm", steps=20)
        ok = res.failure is None
        return {"ok": ok, "detail": f"{res.examples} lockstep programs, spec vs reference",
                "violations": [] if ok else [{"rule": "KSM-OP-001",
                                              "message": res.failure or ""}]}

    def live_sample() -> dict[str, Any]:
        from checker import ksm_oracle
        from checker.ksm_scenario import diff_records, load, run
        why = ksm_oracle.unavailable()
        if why:
            return {"ok": True, "detail": "skipped", "skipped": why, "violations": []}
        names = ("selftest_ksm_tests_merge", "chain_limit_plus_two", "zero_on_with_merged",
                 "fork_exit_child", "random_005")
        viol = []
        for n in names:
            sc = load(CORPUS / "scenarios" / f"{n}.json")
            for d in diff_records(run(sc), ksm_oracle.run(sc, timeout=30)):
                viol.append({"rule": "KSM-OP-018", "message": f"{n}: {d}"})
        return {"ok": not viol, "detail": f"{len(names)} corpus scenarios on the live kernel",
                "violations": viol}

    return [("ksm lockstep fuzz", lockstep), ("ksm live corpus sample", live_sample)]
