"""Where the time went: cluster phases (image build, create, pod network, nodes ready,
delete), each suite module's wall time and the whole run, printed at the end of every run
and written to timings.json beside claims.json. `tox -e bench` is a run that keeps them."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest


@dataclass
class Stopwatch:
    """Phases in the order they ended: (what, seconds)."""

    phases: list[tuple[str, float]] = field(default_factory=list)

    @contextlib.contextmanager
    def measure(self, what: str) -> Iterator[None]:
        started = time.monotonic()
        try:
            yield
        finally:
            self.phases.append((what, time.monotonic() - started))


class TimingReporter:
    """Module wall time from the first test's start to the last test's end (on the xdist
    controller too: it sees every logstart/logfinish)."""

    def __init__(self, stopwatch: Stopwatch) -> None:
        self.stopwatch = stopwatch
        self.started = time.monotonic()
        self.modules: dict[str, list[float]] = {}

    def pytest_runtest_logstart(self, nodeid: str, location: tuple[str, int | None, str]) -> None:
        span = self.modules.setdefault(location[0], [time.monotonic(), time.monotonic()])
        span[1] = time.monotonic()

    def pytest_runtest_logfinish(self, nodeid: str, location: tuple[str, int | None, str]) -> None:
        if location[0] in self.modules:
            self.modules[location[0]][1] = time.monotonic()

    def rows(self) -> list[tuple[str, float]]:
        rows = list(self.stopwatch.phases)
        rows += [(f"module {module}", end - start) for module, (start, end) in self.modules.items()]
        rows.append(("whole run", time.monotonic() - self.started))
        return rows

    def summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        """Printed after the claims table (so only by runs of claim-marked tests)."""
        rows = self.rows()
        terminalreporter.write_sep("=", "where the time went")
        width = max(len(what) for what, _ in rows)
        for what, seconds in rows:
            terminalreporter.write_line(f"{what:<{width}}  {seconds:8.1f}s")

    def write(self, path: Path) -> None:
        path.write_text(json.dumps([{"what": w, "seconds": round(s, 2)} for w, s in self.rows()], indent=2) + "\n")
