"""Record the live kernel's output for every corpus scenario (needs root and KSM).

``python tests/data/ksm/record.py [NAME...]`` writes expected/<name>.json with the kernel's
``{"scans": [...]}`` and the kernel release it came from.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from checker import ksm_oracle
from checker.ksm_scenario import load

HERE = Path(__file__).resolve().parent


def main(names: list[str]) -> None:
    paths = sorted((HERE / "scenarios").glob("*.json"))
    for p in paths:
        if names and p.stem not in names:
            continue
        live = ksm_oracle.run(load(p))
        out = {"kernel": os.uname().release, "scans": live["scans"]}
        (HERE / "expected" / p.name).write_text(json.dumps(out, indent=1) + "\n")
        print(p.stem, live["passes"], "passes")


if __name__ == "__main__":
    main(sys.argv[1:])
