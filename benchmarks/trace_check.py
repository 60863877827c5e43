"""How fast ``mmspec trace check`` judges real traces: events per second, never a timed test.

The committed real traces (tests/data/traces/*.trace.xz) are decompressed into memory first,
so the figure is the checker's own (parsing, field rules, page ownership), not xz's. Each
trace is checked ``repeats`` times with the garbage collector off; the best round counts.
Both wall-clock and CPU-time rates are printed: on a shared machine the wall-clock rate also
measures the other processes.

Run: ``python -m benchmarks.trace_check [--repeats N] [--json] [FILE ...]``
"""

from __future__ import annotations

import argparse
import gc
import json
import lzma
import time
from pathlib import Path
from typing import Any

from checker.trace import check_lines

DATA = Path(__file__).resolve().parent.parent / "tests" / "data" / "traces"


def _lines(path: Path) -> list[str]:
    raw = path.read_bytes()
    if raw.startswith(b"\xfd7zXZ\x00"):
        raw = lzma.decompress(raw)
    return raw.decode().splitlines(True)


def run(paths: list[Path], repeats: int = 3) -> dict[str, Any]:
    rows = []
    total_events = 0
    total_wall = total_cpu = 0.0
    for path in paths:
        lines = _lines(path)
        best_wall = best_cpu = float("inf")
        events = violations = 0
        for _ in range(repeats):
            gc.disable()
            try:
                w, c = time.perf_counter(), time.process_time()
                report = check_lines(lines)
                w, c = time.perf_counter() - w, time.process_time() - c
            finally:
                gc.enable()
            best_wall, best_cpu = min(best_wall, w), min(best_cpu, c)
            events, violations = report.events, report.violation_count
        rows.append({"trace": path.name, "events": events, "violations": violations,
                     "wall_s": round(best_wall, 3), "cpu_s": round(best_cpu, 3),
                     "events_per_s": round(events / best_wall),
                     "events_per_cpu_s": round(events / best_cpu) if best_cpu else None})
        total_events += events
        total_wall += best_wall
        total_cpu += best_cpu
    return {"traces": rows, "events": total_events,
            "events_per_s": round(total_events / total_wall) if total_wall else None,
            "events_per_cpu_s": round(total_events / total_cpu) if total_cpu else None,
            "repeats": repeats}


def format_report(r: dict[str, Any]) -> str:
    out = [f"{'trace':32} {'events':>9} {'viol':>5} {'wall s':>7} {'cpu s':>7} "
           f"{'events/s':>10} {'events/cpu-s':>13}"]
    for row in r["traces"]:
        out.append(f"{row['trace']:32} {row['events']:9d} {row['violations']:5d} "
                   f"{row['wall_s']:7.3f} {row['cpu_s']:7.3f} {row['events_per_s']:10,d} "
                   f"{row['events_per_cpu_s'] or 0:13,d}")
    out.append(f"{'all':32} {r['events']:9d} {'':5} {'':7} {'':7} "
               f"{r['events_per_s'] or 0:10,d} {r['events_per_cpu_s'] or 0:13,d}"
               f"   (best of {r['repeats']})")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("files", nargs="*", type=Path)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    paths = args.files or sorted(DATA.glob("*.trace.xz"))
    r = run(paths, max(1, args.repeats))
    print(json.dumps(r) if args.json else format_report(r))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
