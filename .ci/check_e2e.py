"""Fail CI unless the e2e suites ran on a real cluster: enough tests executed (not skipped),
and a claims table was written. Prints pytest's closing-line shape for CI's reader."""

import json
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from e2e_run import e2e_run

MIN_EXECUTED = 20


def main(junit: str) -> int:
    if not Path(junit).exists():
        print(f"ci: no e2e JUnit report at {junit}: the suites did not run")
        return 1
    root = ET.parse(junit).getroot()
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    total = sum(int(s.get("tests", 0)) for s in suites)
    skipped = sum(int(s.get("skipped", 0)) for s in suites)
    failed = sum(int(s.get("failures", 0)) + int(s.get("errors", 0)) for s in suites)
    executed = total - skipped
    print(f"ci: e2e tests: {total} collected, {executed} executed, {failed} failed, {skipped} skipped")
    if executed < MIN_EXECUTED:
        print(f"ci: only {executed} e2e tests executed (< {MIN_EXECUTED}): the suites did not really run on a cluster")
        return 1
    run = e2e_run(junit)
    if run is None:
        print(f"ci: no claims table of the e2e run of {junit} in .clusterproof/runs/")
        return 1
    claims = run / "artifacts" / "claims.json"
    verdicts = [c["verdict"] for c in json.loads(Path(claims).read_text())["claims"]]
    summary = {v: verdicts.count(v) for v in sorted(set(verdicts))}
    print(f"ci: claims of run {run.name}: {summary}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
