"""One self-contained HTML page per run (report.html beside claims.json): verdicts at a glance,
where the time went, the upgrade (when upgrade.json is there), and history.

    python -m clusterproof.report RUN_DIR... [--history DIR] [-o FILE]
"""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger("clusterproof")

PAGE = "report.html"


def write_run_page(artifacts: Path) -> str:
    """Called at the end of a run: the page's path, or why there is none (never raises)."""
    try:
        from clusterproof.report.page import write

        return str(write([artifacts]))
    except Exception as e:  # the page must never turn a finished run into an internal error
        log.warning("report.html not written: %s", e, exc_info=True)
        return f"not written ({type(e).__name__}: {e})"
