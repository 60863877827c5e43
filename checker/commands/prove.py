"""``mmspec prove``: run the proof obligations of ``proofs/`` and compare them with the manifest.

One line per obligation (verdict, expected verdict, time, states for bounded ones); exit 0 when
every verdict and every state count is the one ``proofs/manifest.json`` records, 1 otherwise,
2 for an unknown obligation name or bad arguments.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

#: The nightly profile: every obligation, slow ones included.
PROFILES = ("default", "nightly")


def register(sub: Any, cli: Any) -> None:
    p = sub.add_parser("prove", help="run the Z3 and bounded proof obligations (proofs/)")
    p.add_argument("names", nargs="*", metavar="NAME",
                   help="obligations by name or prefix (alloc.buddy, alloc.matrix.free_pages); "
                        "default: every obligation not tagged slow")
    p.add_argument("--json", action="store_true")
    p.add_argument("--jobs", type=int, default=None,
                   help="worker processes (default: up to 2, the cores the suite is sized for)")
    p.add_argument("--all", action="store_true", help="include the obligations tagged slow")
    p.add_argument("--profile", choices=PROFILES, default="default",
                   help="nightly: the same as --all")
    p.add_argument("--list", action="store_true", help="list the obligations, run nothing")
    p.add_argument("--write-manifest", action="store_true",
                   help="record the verdicts and state counts of this run in proofs/manifest.json")
    p.set_defaults(func=lambda args: cmd_prove(args, cli))


def _select(args: argparse.Namespace, cli: Any) -> list[Any]:
    from proofs.runner import select

    include_slow = args.all or args.profile == "nightly"
    try:
        return select(args.names, include_slow=include_slow or bool(args.names))
    except KeyError as e:
        raise cli.UsageError(f"mmspec prove: no obligation {e.args[0]!r} "
                             "(see 'mmspec prove --list')") from None


def cmd_prove(args: argparse.Namespace, cli: Any) -> int:
    from proofs.runner import default_jobs, run, write_manifest

    if args.jobs is not None and args.jobs < 1:
        raise cli.UsageError("mmspec prove: --jobs must be at least 1")
    obligations = _select(args, cli)
    if args.list:
        listed = {"obligations": [{"name": o.name, "rules": list(o.rules), "expected": o.expected,
                                "tags": sorted(o.tags), "doc": o.doc} for o in obligations]}

        def listing() -> None:
            for o in obligations:
                print(f"{o.name:48s} {o.expected:15s} {','.join(sorted(o.tags)):22s} "
                      f"{' '.join(o.rules)}")
        cli.emit(args, listed, listing)
        return cli.EXIT_OK
    jobs = args.jobs or default_jobs()
    t = time.monotonic()
    with cli.progress(len(obligations), "obligations") as tick:
        results = run(obligations, jobs=jobs, tick=tick)
    seconds = time.monotonic() - t
    if args.write_manifest:
        write_manifest(results)
    summary = summarize(results, seconds, jobs)
    obj: dict[str, Any] = {"obligations": [r.to_json() for r in results], "summary": summary}

    def text() -> None:
        for r in results:
            states = f" states={r.states}" if r.states is not None else ""
            mark = "" if r.ok else (f"   UNEXPECTED (expected {r.expected}"
                                    + (f", {r.expected_states} states" if r.expected_states
                                       is not None and r.states != r.expected_states else "")
                                    + ")")
            print(f"{r.verdict:15s} {r.seconds:7.2f}s  {r.name}{states}{mark}")
            if r.counterexample and (not r.ok or "edge" in r.tags):
                print("    " + r.counterexample.replace("\n", "\n    "))
        print(format_summary(summary))
    cli.emit(args, obj, text)
    return cli.EXIT_OK if summary["unexpected"] == 0 else cli.EXIT_VIOLATION


def summarize(results: list[Any], seconds: float, jobs: int) -> dict[str, Any]:
    by: dict[str, int] = {}
    for r in results:
        by[r.verdict] = by.get(r.verdict, 0) + 1
    return {"obligations": len(results), "verdicts": by,
            "unexpected": sum(1 for r in results if not r.ok),
            "seconds": round(seconds, 2), "jobs": jobs}


def format_summary(s: dict[str, Any]) -> str:
    verdicts = ", ".join(f"{n} {v}" for v, n in sorted(s["verdicts"].items()))
    noun = "obligation" if s["obligations"] == 1 else "obligations"
    return (f"{s['obligations']} {noun} ({verdicts}), {s['unexpected']} unexpected, "
            f"{s['seconds']:.1f}s with {s['jobs']} jobs")


def verify_checks() -> list[tuple[str, Any]]:
    def run_suite() -> dict[str, Any]:
        from proofs.runner import default_jobs, run, select

        t = time.monotonic()
        results = run(select(), jobs=default_jobs())
        s = summarize(results, time.monotonic() - t, default_jobs())
        return {"ok": s["unexpected"] == 0, "detail": format_summary(s),
                "violations": [{"rule": ",".join(r.rules),
                                "message": f"{r.name}: {r.verdict}, expected {r.expected}"
                                + (f" ({r.states} states, manifest {r.expected_states})"
                                   if r.states != r.expected_states else ""),
                                **({"program": r.counterexample} if r.counterexample else {})}
                               for r in results if not r.ok]}
    return [("proof obligations (proofs/, default profile, against proofs/manifest.json)",
             run_suite)]
