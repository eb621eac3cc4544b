"""Live progress of the long steps (an image build step, `kind create`, a readiness gate, a
controller's install, an upgrade's stages): a line when a step starts, a line when it ends with
its duration, and, while a step has said nothing for `heartbeat` seconds, a line naming what it
is waiting for. Each line is shown at once (`show`: pytest's terminal, stderr) and written with
its time to a log file (the run's progress.log).

    progress = Progress(show=print, log_file=path)
    with progress.step("cluster cp-1-quota: kind create", waiting_for="kind create cluster"):
        ...
    progress.say("a line of its own")  # inside a step: that step's activity (no heartbeat then)

Steps nest; the heartbeat names the innermost step open in each thread. `show_other_threads=False`
keeps the lines of other threads' steps (a cluster booting ahead while tests run) out of `show`:
pytest's terminal may only be written while the main thread holds still, as it does inside a step.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO

from clusterproof.errors import one_line
from clusterproof.redact import redact

HEARTBEAT = 30.0
Show = Callable[[str], None]


def duration(seconds: float) -> str:
    """12.3s under a minute, 4m05s above."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, rest = divmod(int(round(seconds)), 60)
    return f"{minutes}m{rest:02d}s"


@dataclass
class Step:
    what: str
    waiting_for: str
    started: float
    live: bool
    last_activity: float
    heartbeat: bool = True
    last_line: str = ""
    outcome: str = ""  # how it ended when not simply done (its end line says it)
    detail: str = ""

    def waiting(self, what: str) -> None:
        """What the step waits for now (named by its next heartbeat)."""
        self.waiting_for = what

    def end_as(self, outcome: str, detail: str = "") -> None:
        """The step ends, without an error, otherwise than done: `what: OUTCOME after 12.3s (DETAIL)`."""
        self.outcome, self.detail = outcome, detail


class Progress:
    def __init__(
        self,
        show: Show | None = None,
        *,
        log_file: Path | Callable[[], Path] | None = None,
        heartbeat: float = HEARTBEAT,
        show_other_threads: bool = True,
        clock: Callable[[], float] = time.monotonic,
        ticker: bool = True,
    ) -> None:
        self.show = show
        self.heartbeat = heartbeat
        self._log_file = log_file
        self._log: IO[str] | None = None
        self._show_other_threads = show_other_threads
        self._clock = clock
        self._lock = threading.RLock()
        self._open: dict[int, list[Step]] = {}
        self._ticks = ticker  # False: no heartbeat thread (unit tests call beat() themselves)
        self._ticker: threading.Thread | None = None
        self._closed = threading.Event()

    # --- what callers use ------------------------------------------------------------------

    def say(self, message: str) -> None:
        """A line on its own; inside a step, that step's (and the steps around it) activity."""
        with self._lock:
            stack = self._open.get(threading.get_ident(), [])
            now = self._clock()
            for step in stack:
                step.last_activity = now
            if stack:
                stack[-1].last_line = message
            self._emit(message, self._live())

    @contextlib.contextmanager
    def step(self, what: str, waiting_for: str = "", *, heartbeat: bool = True) -> Iterator[Step]:
        """`what: started`, then `what: done in 12.3s` (or `failed after 12.3s (why)`).
        `heartbeat=False`: a step whose own lines come from elsewhere (a child pytest) gets none."""
        now = self._clock()
        step = Step(what, waiting_for, now, self._live(), now, heartbeat=heartbeat)
        with self._lock:
            self._open.setdefault(threading.get_ident(), []).append(step)
            self._emit(f"{what}: started", step.live)
        self._start_ticker()
        try:
            yield step
        except BaseException as e:
            ended = "interrupted" if isinstance(e, KeyboardInterrupt | SystemExit) else "failed"
            self._close_step(step, f"{what}: {ended} after {duration(self._clock() - step.started)}"
                             + (f" ({type(e).__name__}: {one_line(e, 200)})" if str(e) else f" ({type(e).__name__})"))
            raise
        took = duration(self._clock() - step.started)
        if step.outcome:
            detail = f" ({step.detail})" if step.detail else ""
            self._close_step(step, f"{what}: {step.outcome} after {took}{detail}")
        else:
            self._close_step(step, f"{what}: done in {took}")

    def beat(self) -> None:
        """One heartbeat round: each thread's innermost step quiet for `heartbeat` seconds says
        how long it has run and what it waits for (the ticker thread calls this every second)."""
        with self._lock:
            now = self._clock()
            for stack in self._open.values():
                step = stack[-1]
                if not step.heartbeat or now - step.last_activity < self.heartbeat:
                    continue
                step.last_activity = now
                waiting = step.waiting_for or "it to end"
                last = f"; last: {step.last_line}" if step.last_line else ""
                self._emit(f"{step.what}: still running after {duration(now - step.started)}, "
                           f"waiting for {waiting}{last}", step.live)

    def close(self) -> None:
        self._closed.set()
        with self._lock:
            if self._log is not None:
                self._log.close()
                self._log = None

    # --- plumbing --------------------------------------------------------------------------

    def _live(self) -> bool:
        return self._show_other_threads or threading.current_thread() is threading.main_thread()

    def _close_step(self, step: Step, line: str) -> None:
        with self._lock:
            stack = self._open.get(threading.get_ident(), [])
            if step in stack:
                stack.remove(step)
            if not stack:
                self._open.pop(threading.get_ident(), None)
            for outer in stack:
                outer.last_activity = self._clock()
            self._emit(line, step.live)

    def _emit(self, line: str, live: bool) -> None:
        """Called with the lock held: a line shown and logged never interleaves with another."""
        if live and self.show is not None:
            with contextlib.suppress(OSError):  # nobody reads any more (EPIPE): the log still has it
                self.show(line)
        log = self._open_log()
        if log is not None:
            with contextlib.suppress(OSError):
                stamp = datetime.now().astimezone().strftime("%Y-%m-%d %H:%M:%S%z")
                log.write(f"{stamp} {redact(line)}\n")

    def _open_log(self) -> IO[str] | None:
        if self._log is None and self._log_file is not None and not self._closed.is_set():
            try:
                path = self._log_file() if callable(self._log_file) else self._log_file
                self._log = open(path, "a", buffering=1, encoding="utf-8")  # noqa: SIM115 (kept open: closed by close())
            except OSError:
                self._log_file = None
        return self._log

    def _start_ticker(self) -> None:
        with self._lock:
            if self._ticker is not None or not self._ticks:
                return
            self._ticker = threading.Thread(target=self._tick, name="progress-heartbeat", daemon=True)
        self._ticker.start()

    def _tick(self) -> None:
        while not self._closed.wait(min(1.0, self.heartbeat / 10)):
            self.beat()
