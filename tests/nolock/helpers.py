"""Driving the NOLOCK spec along a chosen schedule, for hand-derived scenarios."""

from __future__ import annotations

from spec.nolock import NolockModel, NolockState, successors


def run_schedule(m: NolockModel, s: NolockState, moves: list[tuple[int, int | str]]
                 ) -> NolockState:
    """Apply moves: (cpu, "step") runs one step of cpu's innermost context, (cpu, LEVEL)
    makes an interrupt of that level arrive on cpu. Fails if the move is not possible."""
    for cpu, what in moves:
        for (c, level, opi, _), t in successors(m, s):
            if c != cpu:
                continue
            if what == "step" and opi >= 0 or what != "step" and opi < 0 and level == what:
                s = t
                break
        else:
            raise AssertionError(f"move {(cpu, what)} not possible")
    return s


def steps(cpu: int, n: int) -> list[tuple[int, int | str]]:
    return [(cpu, "step")] * n


def top_pc(s: NolockState, cpu: int) -> str:
    return s.stacks[cpu][-1][2] if s.stacks[cpu] else ""
