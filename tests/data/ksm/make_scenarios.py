"""Write the KSM corpus scenarios (hand-made cases, selftest translations, random seeds).

Run from the checkout: ``python tests/data/ksm/make_scenarios.py``; then
``python tests/data/ksm/record.py`` records the live kernel's output for each.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from checker.ksm_scenario import random_scenario

HERE = Path(__file__).resolve().parent / "scenarios"
#: random seeds (all agree with the live kernel since the spec models the stable tree's
#: rbtree shape; before that, seeds 1 and 13 differed in stable_node_chains).
RANDOM_SEEDS = list(range(30))


def mad(p: str, start: int, count: int, advice: str = "mergeable") -> dict[str, Any]:
    return {"op": "madvise", "process": p, "start": start, "count": count, "advice": advice}


def w(p: str, page: int, content: str) -> dict[str, Any]:
    return {"op": "write", "process": p, "page": page, "content": content}


SCAN = {"op": "scan"}


def sc(source: str, procs: dict[str, Any], steps: list[Any], **knobs: int) -> dict[str, Any]:
    return {"source": source, "knobs": knobs, "processes": procs, "steps": steps}


CASES: dict[str, dict[str, Any]] = {
    "selftest_ksm_tests_merge": sc("ksm_tests.c -M -p 10", {"a": [["S", 10]]},
                                   [mad("a", 0, 10), SCAN]),
    "selftest_ksm_tests_unmerge": sc("ksm_tests.c -U", {"a": [["S", 2]]},
                                     [mad("a", 0, 2), SCAN, w("a", 0, "T1"), w("a", 1, "T2"),
                                      SCAN]),
    "selftest_ksm_tests_zero_z0": sc("ksm_tests.c -Z -p 10 -z 0", {"a": [["0", 10]]},
                                     [mad("a", 0, 10), SCAN], use_zero_pages=0),
    "selftest_ksm_tests_zero_z1": sc("ksm_tests.c -Z -p 10 -z 1", {"a": [["0", 10]]},
                                     [mad("a", 0, 10), SCAN], use_zero_pages=1),
    "selftest_functional_unmerge": sc("ksm_functional_tests.c test_unmerge (64 pages)",
                                      {"a": [["cf", 64]]},
                                      [mad("a", 0, 64), SCAN, mad("a", 0, 64, "unmergeable"),
                                       SCAN]),
    "selftest_functional_unmerge_zero_pages": sc(
        "ksm_functional_tests.c test_unmerge_zero_pages (64 pages)", {"a": [["0", 64]]},
        [mad("a", 0, 64), SCAN, mad("a", 0, 32, "unmergeable"), SCAN]
        + [w("a", i, "Q") for i in range(32, 64)] + [SCAN], use_zero_pages=1),
    "selftest_functional_unmerge_discarded": sc(
        "ksm_functional_tests.c test_unmerge_discarded (munmap for MADV_DONTNEED)",
        {"a": [["cf", 64]]},
        [mad("a", 0, 64), SCAN, {"op": "munmap", "process": "a", "start": 0, "count": 32},
         mad("a", 32, 32, "unmergeable"), SCAN]),
    "selftest_functional_fork_merging_page_count": sc(
        "ksm_functional_tests.c test_fork_ksm_merging_page_count", {"a": [["cf", 32]]},
        [mad("a", 0, 32), SCAN, {"op": "fork", "process": "a", "child": "c"}, SCAN]),
    "selftest_ksm_tests_chain_600": sc("reference digest exp N=600 M=256", {"a": [["D", 600]]},
                                       [mad("a", 0, 600), SCAN]),
    "selftest_ksm_tests_chain_513": sc("reference digest exp N=513 M=256", {"a": [["D", 513]]},
                                       [mad("a", 0, 513), SCAN]),
    "chain_513_collapse": sc("digest 2.3: rewrite the sharers of dup #1",
                             {"a": [["D", 513]]},
                             [mad("a", 0, 513), SCAN]
                             + [w("a", i, "u") for i in range(256)] + [SCAN]),
    "chain_600_second_chain": sc("digest 2.3: 300 pages get one new content",
                                 {"a": [["D", 600]]},
                                 [mad("a", 0, 600), SCAN]
                                 + [w("a", i, "E") for i in range(300)] + [SCAN]),
    "chain_at_limit": sc("N = max_page_sharing", {"a": [["D", 8]]}, [mad("a", 0, 8), SCAN],
                         max_page_sharing=8),
    "chain_limit_plus_one": sc("N = max_page_sharing + 1", {"a": [["D", 9]]},
                               [mad("a", 0, 9), SCAN], max_page_sharing=8),
    "chain_limit_plus_two": sc("N = max_page_sharing + 2", {"a": [["D", 10]]},
                               [mad("a", 0, 10), SCAN], max_page_sharing=8),
    "chain_mps2": sc("max_page_sharing 2: pairs", {"a": [["D", 7]]}, [mad("a", 0, 7), SCAN],
                     max_page_sharing=2),
    "chain_mps3_two_procs": sc("chains across two processes",
                               {"a": [["D", 5]], "b": [["D", 6]]},
                               [mad("a", 0, 5), mad("b", 0, 6), SCAN], max_page_sharing=3),
    "zero_on_with_merged": sc("digest 5: 10 zero + 4 identical", {"a": [["0", 10], ["Z", 4]]},
                              [mad("a", 0, 14), SCAN, w("a", 0, "0"), SCAN],
                              use_zero_pages=1),
    "zero_off_mixed": sc("zero pages merge like any content", {"a": [["0", 6], ["Z", 3]],
                                                                "b": [["0", 4]]},
                         [mad("a", 0, 9), mad("b", 0, 4), SCAN], use_zero_pages=0),
    "zero_fork_inherits": sc("fork inherits KSM zero pages (4d6fc29f3634)",
                             {"a": [["0", 9], ["u", 2]]},
                             [mad("a", 0, 11), SCAN, {"op": "fork", "process": "a",
                                                      "child": "c"}, SCAN,
                              {"op": "exit", "process": "c"}, SCAN], use_zero_pages=1),
    "zero_munmap": sc("munmap of KSM zero PTEs", {"a": [["0", 8], ["X", 2]]},
                      [mad("a", 0, 10), SCAN,
                       {"op": "munmap", "process": "a", "start": 0, "count": 3}, SCAN],
                      use_zero_pages=1),
    "unmerge_part": sc("unmerge part of a range", {"a": [["X", 12], ["Y", 4]]},
                       [mad("a", 0, 16), SCAN, mad("a", 4, 6, "unmergeable"), SCAN]),
    "unmerge_then_remerge": sc("unmergeable then mergeable again (slot re-registered)",
                               {"a": [["X", 6]], "b": [["X", 3]]},
                               [mad("a", 0, 6), mad("b", 0, 3), SCAN,
                                mad("a", 0, 6, "unmergeable"), SCAN, mad("a", 0, 6), SCAN]),
    "write_makes_equal": sc("writes that make a unique page equal to another",
                            {"a": [["u", 6], ["X", 2]]},
                            [mad("a", 0, 8), SCAN, w("a", 0, "X"), w("a", 1, "X"),
                             w("a", 2, "Y"), SCAN, w("a", 3, "Y"), SCAN]),
    "write_same_content": sc("rewrite a merged page with the same content",
                             {"a": [["X", 10]]}, [mad("a", 0, 10), SCAN, w("a", 1, "X"), SCAN]),
    "write_last_sharer": sc("the KSM page loses every mapping (stale stable node)",
                            {"a": [["X", 3], ["u", 2]]},
                            [mad("a", 0, 5), SCAN, w("a", 0, "u"), w("a", 1, "u"),
                             w("a", 2, "u"), SCAN]),
    "late_joiners": sc("digest exp: 3 pages later equal to a KSM page",
                       {"a": [["cf", 10], ["u", 3]]},
                       [mad("a", 0, 13), SCAN, w("a", 10, "cf"), w("a", 11, "cf"),
                        w("a", 12, "cf"), SCAN]),
    "fork_then_child_writes": sc("fork; the child rewrites half", {"a": [["X", 8], ["u", 4]]},
                                 [mad("a", 0, 12), SCAN, {"op": "fork", "process": "a",
                                                          "child": "c"}, SCAN]
                                 + [w("c", i, "Y") for i in range(4)] + [SCAN]),
    "fork_exit_child": sc("child exit: its items are freed at the next pass",
                          {"a": [["X", 9]]},
                          [mad("a", 0, 9), SCAN, {"op": "fork", "process": "a", "child": "c"},
                           SCAN, {"op": "exit", "process": "c"}, SCAN]),
    "fork_before_merge": sc("fork-shared pages are never merged with themselves",
                            {"a": [["u", 4], ["X", 2]]},
                            [mad("a", 0, 6), {"op": "fork", "process": "a", "child": "c"},
                             SCAN]),
    "fork_shared_third_process": sc("a fork-shared page pairs with a third process",
                                    {"a": [["W", 2]], "b": [["W", 1]]},
                                    [mad("a", 0, 2), {"op": "fork", "process": "a",
                                                      "child": "c"}, mad("b", 0, 1), SCAN]),
    "registration_order": sc("the later-registered mm's page becomes the KSM page",
                             {"a": [["X", 1], ["u", 1]], "b": [["X", 1]]},
                             [mad("b", 0, 1), mad("a", 0, 2), SCAN, w("b", 0, "Y"), SCAN]),
    "exit_holder": sc("a process holding merged pages exits",
                      {"a": [["X", 4]], "b": [["X", 4], ["Y", 2]]},
                      [mad("a", 0, 4), mad("b", 0, 6), SCAN, {"op": "exit", "process": "a"},
                       SCAN]),
    "not_mergeable_half": sc("only the madvised half is scanned", {"a": [["X", 8]]},
                             [mad("a", 4, 4), SCAN]),
    "munmap_merged": sc("munmap of merged pages", {"a": [["X", 6]], "b": [["X", 2]]},
                        [mad("a", 0, 6), mad("b", 0, 2), SCAN,
                         {"op": "munmap", "process": "b", "start": 0, "count": 2}, SCAN]),
    "smart_scan_unique": sc("digest 2.4: smart scan skip schedule on unique pages",
                            {"a": [["u", 25]]}, [mad("a", 0, 25), SCAN, SCAN, SCAN],
                            smart_scan=1),
    "smart_scan_merged": sc("smart scan never skips KSM pages", {"a": [["X", 6], ["u", 4]]},
                            [mad("a", 0, 10), SCAN, SCAN, w("a", 0, "Y"), SCAN],
                            smart_scan=1),
    "three_processes": sc("three processes, three contents",
                          {"a": [["X", 3], ["Y", 3]], "b": [["Y", 2], ["Z", 2]],
                           "c": [["Z", 1], ["X", 1], ["u", 2]]},
                          [mad("a", 0, 6), mad("b", 0, 4), mad("c", 0, 4), SCAN]),
}


def main() -> None:
    HERE.mkdir(parents=True, exist_ok=True)
    for name, obj in CASES.items():
        (HERE / f"{name}.json").write_text(json.dumps(obj, indent=1) + "\n")
    for seed in RANDOM_SEEDS:
        (HERE / f"random_{seed:03d}.json").write_text(
            json.dumps(random_scenario(seed), indent=1) + "\n")


if __name__ == "__main__":
    main()
