"""The run directory of the e2e run: the one whose claims table started when the e2e JUnit report
did (the test line runs upgrade and rbac after e2e, so the newest run is not the e2e one).
Prints the directory, or one line to stderr and exit 1."""

import json
import sys
import xml.etree.ElementTree as ET
from datetime import datetime
from pathlib import Path

SLACK = 120  # seconds between pytest's session start (JUnit timestamp) and the run's own start


def e2e_run(junit: str, runs: str = ".clusterproof/runs") -> Path | None:
    root = ET.parse(junit).getroot()
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    stamp = suite.get("timestamp") if suite is not None else None
    if not stamp:
        return None
    started = datetime.fromisoformat(stamp).timestamp()  # naive: local time, as pytest wrote it
    best = None
    for claims in Path(runs).glob("*/artifacts/claims.json"):
        try:
            begun = float(json.loads(claims.read_text()).get("started") or 0)
        except (OSError, ValueError):
            continue
        distance = abs(begun - started)
        if distance <= SLACK and (best is None or distance < best[0]):
            best = (distance, claims.parent.parent)
    return best[1] if best else None


if __name__ == "__main__":
    junit = sys.argv[1] if len(sys.argv) > 1 else ".clusterproof/junit-e2e.xml"
    found = e2e_run(junit) if Path(junit).exists() else None
    if found is None:
        print(f"ci: no run in .clusterproof/runs/ started with the e2e run of {junit}", file=sys.stderr)
        sys.exit(1)
    print(found)
