"""Benchmark: how long the offline images, each cluster and each suite module take.

    python -m clusterproof.bench [pytest options...]      (tox -e bench)

Runs the suites (or the modules named) with the given options and prints the run's own
timings: the offline image build or cache check, each cluster's create / pod network /
nodes ready / delete, each module, the whole run. Writes bench.json beside claims.json.
Timing lives here, never in a test: a slow cluster is a finding, not a failure.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path


def main(argv: list[str]) -> int:
    rows: list[dict] = []
    started = time.monotonic()
    # testpaths apply when no path is given: the suites, unless the arguments name modules
    rc = subprocess.call([sys.executable, "-m", "pytest", "-o", "testpaths=suites", "-p", "no:cacheprovider", *argv])
    total = time.monotonic() - started
    timings = Path(".clusterproof/latest/artifacts/timings.json")
    if timings.exists():
        rows += json.loads(timings.read_text())
    rows.append({"what": "pytest process (incl. start-up)", "seconds": round(total, 2)})
    width = max(len(r["what"]) for r in rows)
    print("\nbench: where the time went")
    for r in rows:
        print(f"  {r['what']:<{width}}  {r['seconds']:8.1f}s")
    out = timings.with_name("bench.json") if timings.exists() else Path("bench.json")
    out.write_text(json.dumps(rows, indent=2) + "\n")
    print(f"bench: {out}")
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
