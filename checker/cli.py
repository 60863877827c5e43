"""The ``mmspec`` command line: parse, call the library, print.

Exit status: 0 when everything holds, 1 when a violation or counterexample is found, 2 for
usage or input errors (one line on stderr, no traceback).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any, NoReturn

EXIT_OK, EXIT_VIOLATION, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """Bad arguments or unreadable input: one line, exit 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}")


def _emit(args: argparse.Namespace, obj: dict[str, Any], text: Callable[[], None]) -> None:
    if getattr(args, "json", False):
        print(json.dumps(obj, indent=None, sort_keys=False))
    else:
        text()


def _console() -> Any:
    from rich.console import Console
    return Console(highlight=False)


class _Bar:
    """A rich progress bar on stderr; ``tick`` advances it."""

    def __init__(self, total: int | None, label: str) -> None:
        from rich.console import Console
        from rich.progress import Progress
        self.progress = Progress(transient=True, console=Console(stderr=True))
        self.total, self.label = total, label

    def __enter__(self) -> Callable[..., None]:
        self.progress.__enter__()
        task = self.progress.add_task(self.label, total=self.total)
        progress = self.progress

        class Tick:
            def __call__(self, n: int = 1) -> None:
                progress.advance(task, n)

            def describe(self, text: str) -> None:
                progress.update(task, description=text)
        return Tick()

    def __exit__(self, *exc: Any) -> None:
        self.progress.__exit__(*exc)


def _progress(total: int | None, label: str) -> Any:
    """A progress bar on a terminal, nothing otherwise."""
    import contextlib
    if not sys.stderr.isatty():
        return contextlib.nullcontext(None)
    return _Bar(total, label)


# Public names for command plugins (checker/commands/).
emit, console, progress = _emit, _console, _progress


# --- spec -----------------------------------------------------------------------------------

def cmd_spec(args: argparse.Namespace) -> int:
    from checker import rulebook

    if args.spec_cmd == "list":
        rs = rulebook.rules(args.area, args.variant)
        obj = {"rules": [{"id": r.id, "title": r.title, "anchor": r.anchor,
                          "variants": list(r.variants)} for r in rs]}

        def text() -> None:
            from rich.table import Table
            t = Table("ID", "title", "kernel anchor")
            for r in rs:
                t.add_row(r.id, r.title, r.anchor)
            _console().print(t)
        _emit(args, obj, text)
        return EXIT_OK
    if args.spec_cmd == "show":
        try:
            info = rulebook.show(args.rule_id)
        except KeyError:
            raise UsageError(f"mmspec spec show: no rule {args.rule_id!r} "
                             "(see 'mmspec spec list')") from None

        def text() -> None:
            print(f"{info['id']}: {info['title']}")
            print(f"kernel:   {info['anchor']}")
            print(f"variants: {', '.join(info['variants'])}")
            print(f"defined:  {info['defined_in']}\n")
            print(info["text"] + "\n")
            if info["code"]:
                print(info["code"])
            print("checked by:")
            for c in info["checked_by"] or ["(nothing cites this rule yet)"]:
                print(f"  {c}")
        _emit(args, info, text)
        return EXIT_OK
    if args.spec_cmd == "dump":
        d = rulebook.dump()
        print(json.dumps(d, indent=None if args.json else 2))
        return EXIT_OK
    if args.spec_cmd == "render":
        if not args.out:
            print(rulebook.render_markdown())
            return EXIT_OK
        try:
            b = rulebook.write_book(args.out)
        except OSError as e:
            raise UsageError(f"mmspec spec render: cannot write {args.out}: "
                             f"{e.strerror}") from None
        missing = [row["id"] for row in b["coverage"] if row["missing"]]
        print(f"wrote {args.out}/index.html and {args.out}/rulebook.md: {len(b['rules'])} "
              f"rules, {sum(1 for r in b['rules'] if r['unchecked'])} unchecked, "
              f"{len(missing)} without evidence")
        return EXIT_OK
    if args.spec_cmd == "diff":
        spec_diff = getattr(rulebook, "spec_diff", None)
        if spec_diff is None:
            raise UsageError("mmspec spec diff: this build has a single variant per rule")
        try:
            d = spec_diff(args.a, args.b)
        except (KeyError, ValueError) as e:
            raise UsageError(f"mmspec spec diff: {e.args[0] if e.args else e}") from None

        def text_diff() -> None:
            rows = d.get("rules", [])
            if not rows:
                print(f"no rule differs between {args.a} and {args.b}")
            for row in rows:
                print(f"{row['id']}: {row['change']}  {row.get('title', '')}")
        _emit(args, d, text_diff)
        return EXIT_OK
    raise UsageError("mmspec spec: choose list, show, dump, render or diff")


# --- fuzz -----------------------------------------------------------------------------------

def cmd_fuzz(args: argparse.Namespace) -> int:
    from checker.fuzz import AREAS, run_fuzz

    if args.area not in AREAS:
        raise UsageError(f"mmspec fuzz: unknown area {args.area!r} "
                         f"(known: {', '.join(sorted(AREAS))})")
    if args.seconds is not None and args.seconds <= 0:
        raise UsageError("mmspec fuzz: --seconds must be positive")
    if args.examples is not None and args.examples <= 0:
        raise UsageError("mmspec fuzz: --examples must be positive")
    if args.shrink_seconds <= 0:
        raise UsageError("mmspec fuzz: --shrink-seconds must be positive")
    try:
        AREAS[args.area](args.impl)
    except ValueError as e:
        raise UsageError(f"mmspec fuzz: {e}") from None
    if args.workers is not None or args.database is not None:
        return _fuzz_workers(args)
    with _progress(args.examples, "examples") as tick:
        result = run_fuzz(args.impl, seconds=args.seconds, examples=args.examples,
                          seed=args.seed, shrink_seconds=args.shrink_seconds, tick=tick,
                          area=args.area)

    def text() -> None:
        if result.failure is None:
            print(f"fuzz {args.area} ({result.implementation}): {result.examples} examples in "
                  f"{result.seconds:.1f} s, no difference from the spec")
        else:
            print(f"fuzz {args.area} ({result.implementation}): FAILED after {result.examples} "
                  f"examples: {result.failure}\n")
            print(result.program or "")
    _emit(args, result.to_json(), text)
    return EXIT_OK if result.failure is None else EXIT_VIOLATION


def _fuzz_workers(args: argparse.Namespace) -> int:
    from checker.fuzz import open_database, run_workers

    workers = args.workers if args.workers is not None else 1
    if not 1 <= workers <= 64:
        raise UsageError("mmspec fuzz: --workers must be between 1 and 64")
    if args.seconds is None:
        raise UsageError("mmspec fuzz: --workers and --database need --seconds")
    try:
        open_database(args.database)
    except ValueError as e:
        raise UsageError(f"mmspec fuzz: {e}") from None
    report = run_workers(args.area, args.impl, workers, args.seconds, seed=args.seed,
                         database=args.database)

    def text() -> None:
        head = (f"fuzz {args.area} ({args.impl}): {workers} workers, {report['examples']} "
                f"examples, database {report['database']}")
        if report["ok"]:
            print(f"{head}: no difference from the spec")
        else:
            print(f"{head}: FAILED: {report['failure']}\n")
            print(report["program"] or "")
            print("\nthe failure is saved in the database; plain pytest replays it")
    _emit(args, report, text)
    return EXIT_OK if report["ok"] else EXIT_VIOLATION


# --- check ----------------------------------------------------------------------------------

def _read_input(path: str) -> str:
    try:
        if path == "-":
            return sys.stdin.read()
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise UsageError(f"mmspec check: cannot read {path}: {e.strerror}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"mmspec check: {path} is not text") from None


def cmd_check(args: argparse.Namespace) -> int:
    from checker.snapshot import SnapshotError, check_snapshots, read_live

    if not args.files and not args.live:
        raise UsageError("mmspec check: give snapshot FILEs or --live")
    texts = [_read_input(p) for p in args.files]
    if args.live:
        texts += read_live()
    if args.drift is not None and args.drift < 0:
        raise UsageError("mmspec check: --drift must be >= 0")
    try:
        report = check_snapshots(texts, drift=args.drift)
    except SnapshotError as e:
        raise UsageError(f"mmspec check: {e}") from None
    obj = {"checked": list(report.checked), "violations": list(report.violations)}

    def text() -> None:
        print(f"checked {len(report.checked)} rules: {', '.join(report.checked)}")
        for v in report.violations:
            print(f"VIOLATION {v['rule']}: {v['message']}")
        if not report.violations:
            print("consistent")
    _emit(args, obj, text)
    return EXIT_VIOLATION if report.violations else EXIT_OK


# --- verify ---------------------------------------------------------------------------------

def cmd_verify(args: argparse.Namespace) -> int:
    from checker.verify import ktap, verify

    if args.steps <= 0 or args.fuzz_seconds <= 0:
        raise UsageError("mmspec verify: --steps and --fuzz-seconds must be positive")
    areas = tuple(args.area or ())
    if args.format == "ktap":
        args.json = False
    with _progress(None, "verify") as tick:
        def on_check(name: str) -> None:
            if tick is not None:
                tick(1)
                tick.describe(name)
        report = verify(fuzz_seconds=args.fuzz_seconds, steps=args.steps, seed=args.seed,
                        areas=areas, on_check=on_check)
    if not report["checks"]:
        raise UsageError(f"mmspec verify: no checks in areas {', '.join(areas)}")
    if args.format == "ktap":
        print(ktap(report))
        return EXIT_OK if report["ok"] else EXIT_VIOLATION

    def text() -> None:
        from rich.table import Table
        t = Table("area", "check", "result", "detail", "seconds")
        for c in report["checks"]:
            result = "skipped" if c.get("skipped") else ("ok" if c["ok"] else "FAILED")
            t.add_row(c["area"], c["name"], result, c.get("skipped") or c["detail"],
                      f"{c['seconds']:.1f}")
        con = _console()
        con.print(t)
        for c in report["checks"]:
            for v in c["violations"]:
                con.print(f"VIOLATION {v.get('rule', '?')}: {v.get('message', '')}")
                if v.get("program"):
                    print(v["program"])
        con.print(f"unchecked rules: {report['unchecked_rules']}")
        for s in report["skipped"]:
            con.print(f"skipped: {s['name']}: {s['reason']}")
        con.print("all checks hold" if report["ok"] else "violations found")
    _emit(args, report, text)
    return EXIT_OK if report["ok"] else EXIT_VIOLATION


# --- bench ----------------------------------------------------------------------------------

def cmd_bench(args: argparse.Namespace) -> int:
    from benchmarks.alloc_churn import format_report, run

    if args.area != "alloc":
        raise UsageError(f"mmspec bench: unknown area {args.area!r} (known: alloc)")
    if args.ops <= 0 or args.spec_ops <= 0 or args.repeats <= 0 or not 12 <= args.pages_log2 <= 26:
        raise UsageError("mmspec bench: --ops, --spec-ops and --repeats must be positive, "
                         "--pages-log2 between 12 and 26")
    with _progress(3 * args.repeats + 1, "benchmark runs") as tick:
        report = run(ops=args.ops, spec_ops=args.spec_ops, pages_log2=args.pages_log2,
                     seed=args.seed, repeats=args.repeats, tick=tick)
    _emit(args, report, lambda: print(format_report(report)))
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="mmspec", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", parser_class=_Parser)

    v = sub.add_parser("verify", help="run the invariant checker, a short fuzz, the live check")
    v.add_argument("--json", action="store_true")
    v.add_argument("--fuzz-seconds", type=float, default=15.0)
    v.add_argument("--steps", type=int, default=1500)
    v.add_argument("--seed", type=int, default=0)
    v.add_argument("--area", action="append",
                   help="run only this area's checks (repeatable): alloc, core, or a plugin's")
    v.add_argument("--format", choices=("text", "ktap"), default="text",
                   help="ktap: KTAP version 1, one subtest per area")
    v.set_defaults(func=cmd_verify)

    s = sub.add_parser("spec", help="the rule book")
    ssub = s.add_subparsers(dest="spec_cmd", parser_class=_Parser)
    sl = ssub.add_parser("list", help="list rules")
    sl.add_argument("--area")
    sl.add_argument("--variant")
    sl.add_argument("--json", action="store_true")
    ss = ssub.add_parser("show", help="one rule with its code and what checks it")
    ss.add_argument("rule_id")
    ss.add_argument("--json", action="store_true")
    sd = ssub.add_parser("dump", help="constants and tables reviewers quote")
    sd.add_argument("--json", action="store_true")
    sr = ssub.add_parser("render", help="write the rule book (index.html and rulebook.md)")
    sr.add_argument("--out", metavar="DIR",
                    help="directory for index.html and rulebook.md (default: Markdown on stdout)")
    sf = ssub.add_parser("diff", help="which rules differ between two variants")
    sf.add_argument("a")
    sf.add_argument("b")
    sf.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_spec)

    f = sub.add_parser("fuzz", help="lockstep fuzzing against the spec")
    f.add_argument("area", help="alloc, or another registered area")
    g = f.add_mutually_exclusive_group()
    g.add_argument("--seconds", type=float)
    g.add_argument("--examples", type=int)
    f.add_argument("--seed", type=int, default=0)
    f.add_argument("--shrink-seconds", type=float, default=30.0,
                   help="time allowed for shrinking a failure once found")
    f.add_argument("--workers", type=int,
                   help="worker processes sharing one example database (needs --seconds)")
    f.add_argument("--database",
                   help="example database: a directory (default .hypothesis/examples) or "
                        "redis://HOST:PORT shared by workers on many machines")
    f.add_argument("--impl", default="reference",
                   help="reference (default), spec, mutant:NAME, or package.module:Class")
    f.add_argument("--json", action="store_true")
    f.set_defaults(func=cmd_fuzz)

    c = sub.add_parser("check", help="check /proc snapshots of a real kernel")
    c.add_argument("files", nargs="*")
    c.add_argument("--live", action="store_true")
    c.add_argument("--drift", type=int, default=None,
                   help="claim at most N pages per zone changed between the files' reads; "
                        "enables the cross-file counting rules (ALLOC-INV-114..119)")
    c.add_argument("--json", action="store_true")
    c.set_defaults(func=cmd_check)

    b = sub.add_parser("bench", help="performance harness (prints figures)")
    b.add_argument("area", help="alloc")
    b.add_argument("--ops", type=int, default=1_000_000)
    b.add_argument("--spec-ops", type=int, default=300)
    b.add_argument("--pages-log2", type=int, default=20)
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--repeats", type=int, default=3)
    b.add_argument("--json", action="store_true")
    b.set_defaults(func=cmd_bench)

    e = sub.add_parser("explore", help="exhaustive exploration of small configurations")
    esub = e.add_subparsers(dest="explore_cmd", parser_class=_Parser)
    m = sub.add_parser("simulate", help="studies on the reference implementation")
    msub = m.add_subparsers(dest="simulate_cmd", parser_class=_Parser)
    for parser in (e, m):  # the subcommand's own func replaces this; main() reports its absence
        parser.set_defaults(func=lambda args: EXIT_USAGE)
    this = sys.modules[__name__]
    for plugin in _plugins():
        if hasattr(plugin, "register"):
            plugin.register(sub, this)
        if hasattr(plugin, "register_explore"):
            plugin.register_explore(esub, this)
        if hasattr(plugin, "register_simulate"):
            plugin.register_simulate(msub, this)
    return p


def _plugins() -> list[Any]:
    from checker.commands import discover
    return discover()


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if not getattr(args, "func", None):
            raise UsageError("mmspec: choose a command; see mmspec --help")
        if args.cmd == "spec" and not args.spec_cmd:
            raise UsageError("mmspec spec: choose list, show, dump, render or diff")
        for cmd, attr in (("explore", "explore_cmd"), ("simulate", "simulate_cmd")):
            if args.cmd == cmd and not getattr(args, attr, None):
                raise UsageError(f"mmspec {cmd}: choose what to {cmd}; see mmspec {cmd} --help")
        return int(args.func(args))
    except UsageError as e:
        print(str(e), file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("mmspec: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
