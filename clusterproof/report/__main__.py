"""python -m clusterproof.report RUN_DIR... [--history DIR] [-o FILE] [--last N]

Writes the page of the newest RUN_DIR (a run dir such as .clusterproof/latest, or its
artifacts dir) to FILE or <artifacts>/report.html; the other RUN_DIRs and every claims.json
under each --history DIR are its history. Prints the page's path.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from clusterproof.errors import ClusterproofError
from clusterproof.report.page import HISTORY_RUNS, write


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m clusterproof.report", description=__doc__.split("\n\n")[1])
    parser.add_argument("run_dirs", nargs="+", type=Path, metavar="RUN_DIR")
    parser.add_argument("--history", action="append", default=[], type=Path, metavar="DIR",
                        help="a directory of earlier runs' claims.json files (searched recursively; repeatable)")
    parser.add_argument("-o", "--output", type=Path, metavar="FILE", help="default: <artifacts>/report.html")
    parser.add_argument("--last", type=int, default=HISTORY_RUNS, metavar="N",
                        help=f"runs shown in the history, this one included (default {HISTORY_RUNS})")
    args = parser.parse_args(argv)
    try:
        page = write(args.run_dirs, args.history, args.output, args.last)
    except ClusterproofError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(page)
    return 0


if __name__ == "__main__":
    sys.exit(main())
