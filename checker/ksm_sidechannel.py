"""``mmspec ksm sidechannel``: the KSM deduplication side channel, across and within domains.

An attacker process fills probe pages with guessed contents; a victim process in another
security domain holds secret pages; both are mergeable; ksmd runs until the counters
settle; the attacker then writes each probe page and observes which writes fault
(``spec.ksm.write_faults``, KSM-PROP-001). The analysis enumerates every small
configuration exhaustively: every victim secret (one of ``secrets`` values per victim page),
every set of attacker guesses, both registration orders, use_zero_pages 0/1 and
max_page_sharing 2/256.

* Kernel KSM (one stable tree for everyone): some configuration yields different
  observations for two secrets; the first one found is printed as a concrete trace.
* Per-domain merging (KSM-PROP-002): for every configuration, the attacker's observations are
  identical for all secrets (noninterference), checked exhaustively.
* Also reported: whether the world-readable global counters (pages_sharing etc.) still
  depend on the victim's secret under per-domain merging (they do: the victim's own pages
  merge with each other).
"""

from __future__ import annotations

import itertools
from typing import Any

from spec import ksm


def _run(secret: tuple[str, ...], guesses: tuple[str, ...], attacker_first: bool,
         knobs: dict[str, int], per_domain: bool) -> tuple[tuple[bool, ...], dict[str, int]]:
    s = ksm.new_state(knobs, per_domain=per_domain)
    s, _ = ksm.create_process(s, "victim", secret, domain="victim")
    s, _ = ksm.create_process(s, "attacker", guesses, domain="attacker")
    order = ("attacker", "victim") if attacker_first else ("victim", "attacker")
    for name in order:
        n = len(secret) if name == "victim" else len(guesses)
        s, _ = ksm.madvise(s, name, 0, n, "mergeable")
    s, rec = ksm.scan(s)
    return ksm.write_faults(s, "attacker"), {k: rec[k] for k in ksm.COUNTERS}


def _trace(secret: tuple[str, ...], guesses: tuple[str, ...], attacker_first: bool,
           knobs: dict[str, int]) -> list[str]:
    first, second = ("attacker", "victim") if attacker_first else ("victim", "attacker")
    return [f"knobs {knobs}",
            f"victim (domain victim) maps pages {list(secret)}",
            f"attacker (domain attacker) maps probe pages {list(guesses)}",
            f"madvise(MADV_MERGEABLE) by {first}, then by {second}",
            "ksmd runs until the counters settle",
            "attacker writes each probe page and times it (COW fault or not)"]


def analyse(secrets: int = 3, pages: int = 2) -> dict[str, Any]:
    values = [f"secret{i}" for i in range(secrets)]
    victims = list(itertools.product(values, repeat=pages))
    probe_sets = [g for r in range(1, len(values) + 1)
                  for g in itertools.combinations(values, r)]
    knob_sets = [{"use_zero_pages": z, "max_page_sharing": m} for z in (0, 1)
                 for m in (2, 256)]
    configs = 0
    runs = 0
    distinguishing: dict[str, Any] | None = None
    interference: dict[str, Any] | None = None
    counter_leak: dict[str, Any] | None = None
    for knobs in knob_sets:
        for guesses in probe_sets:
            for attacker_first in (True, False):
                configs += 1
                seen_cross: dict[tuple[bool, ...], tuple[str, ...]] = {}
                seen_dom: dict[tuple[bool, ...], tuple[str, ...]] = {}
                counters_dom: dict[tuple[int, ...], tuple[str, ...]] = {}
                for secret in victims:
                    obs, _ = _run(secret, guesses, attacker_first, knobs, per_domain=False)
                    obs_d, cnt_d = _run(secret, guesses, attacker_first, knobs,
                                        per_domain=True)
                    runs += 2
                    seen_cross.setdefault(obs, secret)
                    seen_dom.setdefault(obs_d, secret)
                    counters_dom.setdefault(tuple(cnt_d.values()), secret)
                    if distinguishing is None and len(seen_cross) > 1:
                        (o1, s1), (o2, s2) = list(seen_cross.items())[:2]
                        distinguishing = {
                            "trace": _trace(s1, guesses, attacker_first, knobs),
                            "secrets": [list(s1), list(s2)],
                            "write_faults": [list(o1), list(o2)]}
                    if interference is None and len(seen_dom) > 1:
                        (o1, s1), (o2, s2) = list(seen_dom.items())[:2]
                        interference = {
                            "trace": _trace(s1, guesses, attacker_first, knobs),
                            "secrets": [list(s1), list(s2)],
                            "write_faults": [list(o1), list(o2)]}
                    if counter_leak is None and len(counters_dom) > 1:
                        (c1, s1), (c2, s2) = list(counters_dom.items())[:2]
                        counter_leak = {"secrets": [list(s1), list(s2)],
                                        "counters": [dict(zip(ksm.COUNTERS, c1, strict=True)),
                                                     dict(zip(ksm.COUNTERS, c2, strict=True))]}
    ok = distinguishing is not None and interference is None
    return {"ok": ok, "configurations": configs, "victim_secrets": len(victims),
            "model_runs": runs,
            "across_domains": {"distinguished": distinguishing is not None,
                               "example": distinguishing, "rule": "KSM-PROP-001"},
            "per_domain": {"noninterference": interference is None,
                           "counterexample": interference, "rule": "KSM-PROP-002"},
            "global_counters_per_domain": {"depend_on_secret": counter_leak is not None,
                                           "example": counter_leak}}


def print_text(r: dict[str, Any]) -> None:
    print(f"{r['configurations']} attacker configurations x {r['victim_secrets']} victim "
          f"secrets ({r['model_runs']} model runs), exhaustive")
    d = r["across_domains"]
    if d["distinguished"]:
        ex = d["example"]
        print("KSM as in the kernel (one stable tree): the attacker DISTINGUISHES "
              f"{ex['secrets'][0]} from {ex['secrets'][1]} (KSM-PROP-001):")
        for line in ex["trace"]:
            print(f"  - {line}")
        print(f"  write faults: {ex['write_faults'][0]} vs {ex['write_faults'][1]}")
    else:
        print("KSM as in the kernel: no distinguishing configuration found (unexpected)")
    p = r["per_domain"]
    if p["noninterference"]:
        print("per-domain merging: the attacker's write faults are the same for every "
              "secret in every configuration: noninterference holds (KSM-PROP-002)")
    else:
        ex = p["counterexample"]
        print(f"per-domain merging: INTERFERENCE: {ex['secrets']} give {ex['write_faults']}")
    g = r["global_counters_per_domain"]
    if g["depend_on_secret"]:
        ex = g["example"]
        print("note: under per-domain merging the world-readable /sys/kernel/mm/ksm counters "
              f"still depend on the secret: {ex['secrets'][0]} -> pages_sharing "
              f"{ex['counters'][0]['pages_sharing']}, {ex['secrets'][1]} -> "
              f"{ex['counters'][1]['pages_sharing']}")
