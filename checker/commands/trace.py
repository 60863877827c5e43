"""``mmspec trace check`` and ``mmspec trace record``: allocator traces from real kernels.

``mmspec trace check FILE|- [--json]`` judges tracefs text (plain, gzip or xz) against the
ALLOC trace rules (checker/trace.py); exit 0 clean, 1 violations, 2 unreadable input.
``mmspec trace record [--events E,...] [-o FILE] -- COMMAND ...`` records a trace of COMMAND in
a private tracing instance (checker/trace_record.py).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from typing import Any

from checker import trace as tracecheck
from checker import trace_record


def register(sub: Any, cli: Any) -> None:
    t = sub.add_parser("trace", help="check or record allocator traces (tracefs)")
    tsub = t.add_subparsers(dest="trace_cmd", parser_class=type(t))
    c = tsub.add_parser("check", help="judge a tracefs trace against the spec")
    c.add_argument("file", help="trace text, gzip or xz; - for stdin")
    c.add_argument("--json", action="store_true")
    c.add_argument("--strict", action="store_true",
                   help="a page handed out again, drained or taken with no mm_page_free in "
                   "between is a violation (for kernels whose every free is traced; 6.18's "
                   "are not, so by default it is an inferred untraced free)")
    c.add_argument("--examples", action="store_true",
                   help="also print examples of inferred untraced frees and allocations")
    c.set_defaults(func=lambda a: _check(a, cli))
    r = tsub.add_parser("record", help="record a trace of COMMAND (root, tracefs)")
    r.add_argument("--events", help="comma-separated SYSTEM:NAME events "
                   f"(default: {','.join(trace_record.DEFAULT_EVENTS)})")
    r.add_argument("-o", "--output", help="trace file (.gz/.xz compress; default stdout)")
    r.add_argument("--buffer-kb", type=int, default=65536, help="per-CPU buffer (KiB)")
    r.add_argument("--timeout", type=float, default=60.0,
                   help="kill COMMAND after this many seconds (the trace is kept)")
    r.add_argument("--json", action="store_true", help="print the recording summary as JSON")
    r.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND [ARGS...]")
    r.set_defaults(func=lambda a: _record(a, cli))
    t.set_defaults(func=lambda a: _no_cmd(cli))


def _no_cmd(cli: Any) -> int:
    raise cli.UsageError("mmspec trace: choose check or record")


def _check(args: argparse.Namespace, cli: Any) -> int:
    if args.file != "-" and not os.path.exists(args.file):
        raise cli.UsageError(f"mmspec trace check: no such file: {args.file}")
    try:
        report = tracecheck.check_file(args.file, strict=args.strict)
    except tracecheck.TraceError as e:
        raise cli.UsageError(f"mmspec trace check: {e}") from None
    obj = report.to_json()

    def text() -> None:
        con = cli.console()
        from rich.table import Table
        t = Table("event", "count")
        for name, n in sorted(obj["by_event"].items(), key=lambda kv: -kv[1]):
            t.add_row(name, str(n))
        con.print(t)
        con.print(f"{obj['events']} events on {len(obj['cpus'])} CPUs, {obj['lines']} lines, "
                  f"{obj['events_per_cpu_s'] or 0:,} events per CPU second")
        for label, key in (("inferred untraced frees", "inferred_untraced_frees"),
                           ("inferred untraced allocations", "inferred_untraced_allocations"),
                           ("other gaps explained by lost, unordered or unrecorded events",
                            "other_inferred_gaps")):
            con.print(f"{label}: {obj[key]['count']}")
            if args.examples:
                for ex in obj[key]["examples"]:
                    con.print(f"  line {ex['line']}: pfn {ex['pfn']} {ex['event']} while "
                              f"{ex['was']} (line {ex['earlier_line']})"
                              + (f": {ex['explained_by']}" if "explained_by" in ex else ""))
        sw = obj["silent_windows"]
        if sw["count"]:
            ms = tracecheck.SILENCE * 1000
            con.print(f"silent windows (a CPU recorded nothing for > {ms:.0f} ms while the "
                      f"others recorded >= {tracecheck.SILENCE_OTHERS} events): {sw['count']}")
            for w in sw["examples"] if args.examples else ():
                con.print(f"  CPU {w['cpu']}: lines {w['from_line']}-{w['to_line']}, {w['ms']} ms, "
                          f"{w['other_events']} events of other CPUs")
        lost = obj["lost"]
        if lost["header_entries"] is not None and lost["header_entries"] < lost["header_written"]:
            con.print(f"header: {lost['header_written'] - lost['header_entries']} events lost")
        if lost["cpu_buffer_started"] or lost["lost_markers"]:
            con.print(f"buffer markers: {lost['cpu_buffer_started']} CPU starts, "
                      f"{lost['lost_markers']} LOST markers ({lost['lost_events']} events)")
        for v in obj["violations"]:
            print(f"VIOLATION {v['rule']} line {v['line']}: {v['message']}")
        if obj["violation_count"] > len(obj["violations"]):
            print(f"... {obj['violation_count'] - len(obj['violations'])} more violations")
        con.print("consistent" if not obj["violation_count"] else
                  f"{obj['violation_count']} violations")
    cli.emit(args, obj, text)
    return cli.EXIT_VIOLATION if obj["violation_count"] else cli.EXIT_OK


def _record(args: argparse.Namespace, cli: Any) -> int:
    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        raise cli.UsageError("mmspec trace record: give a command after --")
    events = (tuple(e.strip() for e in args.events.split(",") if e.strip())
              if args.events else trace_record.DEFAULT_EVENTS)
    if not events:
        raise cli.UsageError("mmspec trace record: --events is empty")
    if args.buffer_kb <= 0 or args.timeout <= 0:
        raise cli.UsageError("mmspec trace record: --buffer-kb and --timeout must be positive")
    output: Any = args.output if args.output else sys.stdout
    try:
        summary = trace_record.record(command, output, events=events,
                                      buffer_kb=args.buffer_kb, timeout=args.timeout)
    except trace_record.RecordError as e:
        raise cli.UsageError(f"mmspec trace record: {e}") from None
    if args.output:
        cli.emit(args, summary, lambda: print(
            f"recorded {args.output}: {summary['bytes']} bytes in {summary['seconds']} s, "
            f"command exit {summary['returncode']}"
            + (" (killed at the timeout)" if summary["timed_out"] else ""),
            file=sys.stderr))
    return cli.EXIT_OK


def verify_checks() -> list[tuple[str, Any]]:
    """A short live recording checked against the trace rules, where tracefs allows it."""

    def live() -> dict[str, Any]:
        if os.geteuid() != 0:
            return {"ok": True, "skipped": "recording a trace needs root", "detail": "",
                    "violations": []}
        if not os.path.isdir("/sys/kernel/tracing"):
            return {"ok": True, "skipped": "no /sys/kernel/tracing on this system",
                    "detail": "", "violations": []}
        workload = [sys.executable, "-c", _SHORT_WORKLOAD]
        with tempfile.TemporaryDirectory(prefix="mmspec-trace-") as tmp:
            path = os.path.join(tmp, "trace.txt")
            try:
                summary = trace_record.record(workload, path, buffer_kb=65536, timeout=10)
            except trace_record.RecordError as e:
                return {"ok": True, "skipped": f"cannot record: {e}", "detail": "",
                        "violations": []}
            report = tracecheck.check_file(path).to_json()
        lost = report["lost"]
        lost_note = ("" if lost["header_entries"] == lost["header_written"] else
                     f" ({lost['header_written'] - lost['header_entries']} lost)")
        return {"ok": report["violation_count"] == 0,
                "detail": f"{report['events']} events{lost_note} in {summary['seconds']} s, "
                          f"{report['violation_count']} violations, "
                          f"{report['inferred_untraced_frees']['count']} inferred untraced "
                          f"frees, {report['inferred_untraced_allocations']['count']} "
                          "inferred untraced allocations, "
                          f"{report['silent_windows']['count']} silent windows",
                "violations": [{"rule": v["rule"], "message": f"line {v['line']}: "
                                f"{v['message']}"} for v in report["violations"][:20]]}

    return [("recorded trace of a short workload (tracefs)", live)]


#: Under a second of page allocator traffic: anonymous memory churn, a pipe, a file.
_SHORT_WORKLOAD = """
import os, tempfile
for _ in range(8):
    blocks = [bytearray(1 << 20) for _ in range(32)]
    del blocks
    r, w = os.pipe()
    os.write(w, b"x" * 60000)
    os.read(r, 60000)
    os.close(r); os.close(w)
    with tempfile.TemporaryFile() as f:
        f.write(os.urandom(1 << 20)); f.flush(); f.seek(0); f.read()
"""
