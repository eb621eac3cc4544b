"""Where the time went: cluster phases (image build, create, pod network, nodes ready,
delete), each suite module's wall time and the whole run, printed at the end of every run
and written to timings.json beside claims.json. `tox -e bench` is a run that keeps them.
A phase measured is also a step of the run's live progress (clusterproof.progress), when the
Stopwatch has one: its start, its end and its heartbeats are shown as it runs.

timings.json: `[{"what": str, "seconds": float, "start": float}]`, `start` in seconds since the
epoch (the report draws its timeline from it; rows of older runs may lack it)."""

from __future__ import annotations

import contextlib
import json
import resource
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from clusterproof.progress import Progress, Step


@dataclass
class Stopwatch:
    """Phases in the order they ended: (what, seconds, start in seconds since the epoch)."""

    phases: list[tuple[str, float, float]] = field(default_factory=list)
    progress: Progress | None = None

    def record(self, what: str, seconds: float) -> None:
        self.phases.append((what, seconds, time.time() - seconds))

    @contextlib.contextmanager
    def measure(self, what: str, waiting_for: str = "", *, heartbeat: bool = True) -> Iterator[Step]:
        """A phase, timed; shown live as a progress step (`waiting_for`: what its heartbeat names)."""
        wall, started = time.time(), time.monotonic()
        try:
            if self.progress is None:
                yield Step(what, waiting_for, started, live=False, last_activity=started)
            else:
                with self.progress.step(what, waiting_for, heartbeat=heartbeat) as step:
                    yield step
        finally:
            self.phases.append((what, time.monotonic() - started, wall))

    def table(self) -> str:
        """The phases and their total, one per line (for a command's last words)."""
        width = max((len(what) for what, _, _ in self.phases), default=5)
        total = sum(seconds for _, seconds, _ in self.phases)
        rows = [f"  {w:<{width}} {s:7.1f}s" for w, s, _ in self.phases]
        return "\n".join([*rows, f"  {'total':<{width}} {total:7.1f}s"])


def own_cpu() -> float:
    """CPU seconds of this process (Python, exec streams, polling threads): the framework's own
    cost. What it waits on (kind, docker, the cluster) runs elsewhere and is not counted."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def framework_share(wall: float) -> float:
    return own_cpu() / wall if wall > 0 else 0.0


class TimingReporter:
    """Module wall time from the first test's start to the last test's end (on the xdist
    controller too: it sees every logstart/logfinish)."""

    def __init__(self, stopwatch: Stopwatch) -> None:
        self.stopwatch = stopwatch
        self.started = time.monotonic()
        self.started_wall = time.time()
        self.modules: dict[str, list[float]] = {}

    def pytest_runtest_logstart(self, nodeid: str, location: tuple[str, int | None, str]) -> None:
        span = self.modules.setdefault(location[0], [time.monotonic(), time.monotonic()])
        span[1] = time.monotonic()

    def pytest_runtest_logfinish(self, nodeid: str, location: tuple[str, int | None, str]) -> None:
        if location[0] in self.modules:
            self.modules[location[0]][1] = time.monotonic()

    def _wall(self, monotonic: float) -> float:
        return self.started_wall + (monotonic - self.started)

    def rows(self) -> list[tuple[str, float, float]]:
        """(what, seconds, start in seconds since the epoch)."""
        rows = list(self.stopwatch.phases)
        rows += [(f"module {module}", end - start, self._wall(start)) for module, (start, end) in self.modules.items()]
        whole = time.monotonic() - self.started
        rows.append(("whole run", whole, self.started_wall))
        rows.append((f"framework CPU, this process ({framework_share(whole):.1%} of the run)", own_cpu(),
                     self.started_wall))
        return rows

    def summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        """Printed after the claims table (so only by runs of claim-marked tests)."""
        rows = self.rows()
        terminalreporter.write_sep("=", "where the time went")
        width = max(len(what) for what, _, _ in rows)
        for what, seconds, _ in rows:
            terminalreporter.write_line(f"{what:<{width}}  {seconds:8.1f}s")

    def write(self, path: Path) -> None:
        rows = [{"what": w, "seconds": round(s, 2), "start": round(t, 3)} for w, s, t in self.rows()]
        path.write_text(json.dumps(rows, indent=2) + "\n")
