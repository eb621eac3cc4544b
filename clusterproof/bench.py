"""Benchmark: how long the offline images, each cluster and each suite module take.

    python -m clusterproof.bench [pytest options...]      (tox -e bench)

Times the image build (a cache check when nothing changed), then runs the suites with the
given options and prints the run's own timings (cluster create / pod network / nodes ready /
delete, each module, the whole run). Writes bench.json beside the run's claims.json.
Timing lives here, never in a test: a slow cluster is a finding, not a failure.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from clusterproof.errors import ClusterproofError
from clusterproof.offline.build import Builder


def _option_is(argv: list[str], option: str, value: str) -> bool:
    return f"{option}={value}" in argv or any(a == option and b == value for a, b in zip(argv, argv[1:], strict=False))


def main(argv: list[str]) -> int:
    rows: list[dict] = []
    if not _option_is(argv, "--offline", "no") and not _option_is(argv, "--cluster-provider", "existing"):
        builder = Builder(log=lambda m: print(f"bench: {m}", file=sys.stderr))
        started = time.monotonic()
        try:
            builder.build()
        except ClusterproofError as e:
            print(f"bench: {e}", file=sys.stderr)
            return 1
        rows.append({"what": "offline images (build or cache check)", "seconds": round(time.monotonic() - started, 2)})
    started = time.monotonic()
    rc = subprocess.call([sys.executable, "-m", "pytest", "suites", "-p", "no:cacheprovider", *argv])
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
