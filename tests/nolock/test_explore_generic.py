"""checker.explore on toy models: shortest traces, deadlocks, bounds."""

from __future__ import annotations

from checker.explore import explore


def test_shortest_counterexample() -> None:
    # A counter that can add 1 or 3; reaching 7 is "bad". Shortest: 3+3+1 (three steps).
    def succ(n: int) -> list[tuple[str, int]]:
        return [("+1", n + 1), ("+3", n + 3)] if n < 10 else []

    r = explore([0], succ, check=lambda n: "seven" if n == 7 else None)
    assert [v.property for v in r.violations] == ["seven"]
    assert len(r.violations[0].trace) == 3 and sum(int(x) for x in r.violations[0].trace) == 7
    assert r.complete and r.states == 13  # 0..12: the largest is 9 + 3; 7 is not expanded


def test_counts_depth_and_deadlock() -> None:
    # 0 -> 1 -> 2 (stuck, not final); 0 -> 3 (final).
    graph = {0: [1, 3], 1: [2], 2: [], 3: []}
    r = explore([0], lambda n: [(f"{n}->{m}", m) for m in graph[n]],
                is_final=lambda n: n == 3, deadlock="stuck")
    assert r.states == 4 and r.depth == 2 and r.finals == 1
    assert [(v.property, v.trace) for v in r.violations] == [("stuck", ["0->1", "1->2"])]


def test_bounds_make_it_partial() -> None:
    r = explore([0], lambda n: [("+1", n + 1)], max_states=50)
    assert not r.complete and r.states == 50
    r = explore([0], lambda n: [("+1", n + 1)], max_depth=5)
    assert not r.complete and r.depth == 5
