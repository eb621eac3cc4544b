"""A monitor's output read back, and judged against this upgrade (UPG-09). No cluster here: the
upgrade window is given (see UpgradeJig.upgrade_window).

The file is trusted only as far as it proves it belongs to this upgrade:
- its sessions (one per monitor start: a restart appends) must name this state's ID, and have
  started after the state was recorded (or, in a multi-hop upgrade, after the last hop was
  checked); sessions of another state or an older cycle are not used;
- together they must cover the upgrade window (what the cluster shows of the upgrade: control-plane
  and kube-proxy containers started, kubelets started, each node's upgrade in the steps file),
  within CLOCK_TOLERANCE;
- every target of the state must be judged: a target missing from a session is not observed for
  that session's whole span; a target in no session at all fails;
- a stretch without samples (a gap longer than the monitor's GAP_TOLERANCE, a session that ended
  without its summary, the time between two sessions) is "not observed" and counts against the
  budget like downtime: nobody can say the target answered then. So do the spells the monitor's own
  listener (`control`) was down: the probing side was blind to every target.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clusterproof.upgrade.monitor import GAP_TOLERANCE

CLOCK_TOLERANCE = 5.0  # seconds: the monitor's host and the API server may disagree this much


@dataclass
class Session:
    header: dict[str, Any]  # the monitor's own line ({} in a file of an older monitor)
    outages: list[dict[str, Any]] = field(default_factory=list)
    gaps: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] | None = None
    last_seen: float | None = None  # the latest time a line of this session shows the monitor alive

    @property
    def state_id(self) -> str | None:
        return self.header.get("state_id")

    @property
    def started(self) -> float | None:
        value = self.header.get("started", (self.summary or {}).get("started"))
        return float(value) if isinstance(value, int | float) else None

    @property
    def stopped(self) -> float | None:
        value = (self.summary or {}).get("stopped")
        return float(value) if isinstance(value, int | float) else self.last_seen

    @property
    def targets(self) -> set[str]:
        return set(self.header.get("targets") or []) | set((self.summary or {}).get("summary") or {})


@dataclass
class MonitorFile:
    path: Path
    sessions: list[Session]
    torn: int = 0  # lines that are not JSON records (a monitor killed while writing)


def read_monitor_file(path: Path) -> MonitorFile:
    """The sessions of a monitor's output; lines that cannot be read are counted, not fatal."""
    sessions: list[Session] = []
    torn = 0
    for line in path.read_text(errors="replace").splitlines():
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            torn += 1
            continue
        if not isinstance(record, dict):
            torn += 1
            continue
        if isinstance(record.get("monitor"), dict):
            sessions.append(Session(record["monitor"], last_seen=_time(record["monitor"].get("started"))))
            continue
        if not sessions or sessions[-1].summary is not None:
            sessions.append(Session({}))  # lines of an older monitor (no header), or after a summary
        session = sessions[-1]
        if "summary" in record:
            session.summary = record
            seen = _time(record.get("stopped"))
        elif "alive" in record:
            seen = _time(record.get("alive"))
        elif (
            isinstance(record.get("target"), str)
            and _time(record.get("start")) is not None
            and _time(record.get("end")) is not None
        ):
            (session.gaps if record.get("not_observed") else session.outages).append(record)
            seen = _time(record.get("end"))
        else:
            torn += 1
            continue
        if seen is not None:
            session.last_seen = max(session.last_seen or seen, seen)
    return MonitorFile(path, sessions, torn)


def _time(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


@dataclass(frozen=True)
class TargetVerdict:
    target: str
    down: float
    unobserved: float  # not observed and not already counted as down
    allowed: float
    verdict: str  # held | tolerated | failed
    detail: str  # the longest interval, in words

    @property
    def counted(self) -> float:
        return self.down + self.unobserved


@dataclass
class Judgement:
    problems: list[str]  # the file cannot stand for this upgrade
    targets: list[TargetVerdict]
    span: tuple[float, float] | None = None  # what the used sessions watched
    notes: list[str] = field(default_factory=list)

    @property
    def over(self) -> list[TargetVerdict]:
        return [t for t in self.targets if t.verdict == "failed"]


def judge(
    found: MonitorFile,
    *,
    state_id: str,
    since: float,
    since_what: str,
    window: tuple[float, float, str] | None,
    targets: list[str],
    budget: float,
    api_budget: float,
) -> Judgement:
    """The file's verdict on each of `targets`. `since`: when this upgrade could start at the
    earliest (the state recorded, or the last hop checked; `since_what` says which); `window`:
    (start, end, what shows it) of the upgrade as the cluster shows it, None when nothing does."""
    path = found.path
    notes = (
        [f"{found.torn} line(s) of {path} could not be read (a monitor killed while writing?)"] if found.torn else []
    )
    ours = [s for s in found.sessions if s.state_id == state_id]
    if not ours:
        others = sorted({s.state_id or "none (an older monitor's file)" for s in found.sessions})
        return Judgement(
            [
                f"{path} was not written for this upgrade's state {state_id}: its monitor watched state "
                f"{', '.join(others) or 'none (empty file)'}"
            ],
            [],
            notes=notes,
        )
    fresh = [s for s in ours if s.started is not None and s.started >= since - CLOCK_TOLERANCE]
    if not fresh:
        newest = max((s.started or 0.0) for s in ours)
        return Judgement(
            [
                f"{path} is older than this upgrade: its newest session of state {state_id} started at "
                f"{_clock(newest)}, before {since_what} ({_clock(since)})"
            ],
            [],
            notes=notes,
        )
    fresh.sort(key=lambda s: s.started or 0.0)
    for s in fresh:
        if s.summary is None:
            notes.append(
                f"the monitor session started at {_clock(s.started or 0)} ended without its summary (killed?): "
                f"not observed after its last line ({_clock(s.stopped or s.started or 0)})"
            )
    spans = [(s.started or 0.0, max(s.stopped or 0.0, s.started or 0.0)) for s in fresh]
    span = (spans[0][0], max(end for _, end in spans))
    problems = []
    if window is not None:
        start, end, what = window
        if start < span[0] - CLOCK_TOLERANCE or end > span[1] + CLOCK_TOLERANCE:
            problems.append(
                f"the monitor did not watch the whole upgrade: it watched {_clock(span[0])}-{_clock(span[1])}, "
                f"the upgrade ran {_clock(start)}-{_clock(end)} ({what})"
            )
    between = [
        (a_end, b_start)
        for (_, a_end), (b_start, _) in zip(spans, spans[1:], strict=False)
        if b_start - a_end > GAP_TOLERANCE
    ]
    # The probing side's own blind spells: nobody can say any target answered then.
    control = [(o["start"], o["end"]) for s in fresh for o in s.outages if o["target"] == "control"]
    if control:
        notes.append(
            f"the monitor's own listener was down {_length(control):.1f}s (the probing side, e.g. a loaded "
            "host): counted as not observed for every target"
        )
    judged = []
    for target in targets:
        allowed = api_budget if target == "apiserver" else budget
        down = [(o["start"], o["end"]) for s in fresh for o in s.outages if o["target"] == target]
        blind = list(between) + control
        blind += [(g["start"], g["end"]) for s in fresh for g in s.gaps if g["target"] == target]
        blind += [span_ for s, span_ in zip(fresh, spans, strict=True) if target not in s.targets]
        if all(target not in s.targets for s in fresh):
            judged.append(TargetVerdict(target, 0.0, span[1] - span[0], allowed, "failed", "never observed"))
            continue
        down_s = _length(down)
        counted = _length(down + blind)
        verdict = "held" if counted == 0 else ("tolerated" if counted <= allowed else "failed")
        judged.append(TargetVerdict(target, down_s, counted - down_s, allowed, verdict, _longest(down, blind)))
    return Judgement(problems, judged, span, notes)


def _length(intervals: list[tuple[float, float]]) -> float:
    """Seconds covered by the union of the intervals."""
    total, end = 0.0, None
    for a, b in sorted(intervals):
        if end is None or a > end:
            total += b - a
            end = b
        elif b > end:
            total += b - end
            end = b
    return total


def _longest(down: list[tuple[float, float]], blind: list[tuple[float, float]]) -> str:
    worst = max([(b - a, "down", a) for a, b in down] + [(b - a, "not observed", a) for a, b in blind], default=None)
    return f"longest: {worst[1]} {worst[0]:.1f}s from {_clock(worst[2])}" if worst else ""


def _clock(when: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(when))
