"""A run as the page sees it, read from what the run wrote: claims.json, timings.json,
cluster.json, upgrade.json and the tests' diagnostics.txt; earlier runs' claims.json for history.

Nothing here draws or formats HTML: page.py turns this into the page, svg.py draws.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clusterproof.errors import ClusterproofError
from clusterproof.run import artifacts_dir_name

CLAIMS, TIMINGS, CLUSTERS, UPGRADE = "claims.json", "timings.json", "cluster.json", "upgrade.json"
# the claim areas in the order of CLAIMS.md; UPG: the upgrade's own rows; any other prefix after them
AREAS = ("SVC", "ING", "GW", "VOL", "PV", "WRK", "NS", "ERR", "UPG")
# what a reader must see first: failures, then what did not finish, then what is only partly known
SEVERITY = {"failed": 0, "error": 1, "partial": 2, "skipped": 3, "not run": 4, "no test": 5, "held": 6}
DIAGNOSTICS_EXCERPT = 24_000  # characters of a diagnostics.txt shown inline (the link has all)


class ReportError(ClusterproofError):
    """A run directory without the run's JSON, or JSON that is not what a run writes."""


@dataclass
class TestRow:
    nodeid: str
    outcome: str
    reason: str
    message: str
    start: float | None
    setup: float
    call: float
    teardown: float
    diagnostics: Path | None  # the file beside the run's artifacts, when it is there

    @property
    def name(self) -> str:
        return self.nodeid.rsplit("::", 1)[-1]

    @property
    def module(self) -> str:
        return self.nodeid.split("::", 1)[0]

    @property
    def total(self) -> float:
        return self.setup + self.call + self.teardown


@dataclass
class ClaimRow:
    id: str
    section: str
    text: str
    verdict: str
    reason: str
    tests: list[TestRow]

    @property
    def area(self) -> str:
        return self.id.split("-", 1)[0]


@dataclass
class Run:
    artifacts: Path
    run_id: str
    claims: list[ClaimRow]
    counts: dict[str, int]
    started: float | None
    finished: float | None
    timings: list[dict[str, Any]] = field(default_factory=list)
    clusters: list[dict[str, Any]] = field(default_factory=list)
    upgrade: dict[str, Any] | None = None

    @property
    def whole_run(self) -> dict[str, Any] | None:
        return next((t for t in self.timings if t.get("what") == "whole run"), None)

    @property
    def when(self) -> float:
        """When the run happened, for ordering runs (its start, else its end, else 0)."""
        whole = self.whole_run
        return (whole or {}).get("start") or self.started or self.finished or 0.0

    @property
    def tests(self) -> list[TestRow]:
        seen: dict[str, TestRow] = {}
        for claim in self.claims:
            for test in claim.tests:
                seen.setdefault(test.nodeid, test)
        return list(seen.values())


@dataclass
class PastRun:
    """An earlier run, for history: its id, when, and each claim's verdict."""

    run_id: str
    when: float
    verdicts: dict[str, str]


def artifacts_of(path: Path) -> Path:
    """A run dir (.clusterproof/runs/<id>), its artifacts dir, or a claims.json in one."""
    for candidate in (path, path / "artifacts", path.parent if path.name == CLAIMS else None):
        if candidate is not None and (candidate / CLAIMS).is_file():
            return candidate
    raise ReportError(f"{path}: no {CLAIMS} there or in {path / 'artifacts'} (is it a run's directory?)")


def load_run(path: Path) -> Run:
    artifacts = artifacts_of(path)
    data = _read_json(artifacts / CLAIMS)
    if not isinstance(data, dict) or not isinstance(data.get("claims"), list):
        raise ReportError(f"{artifacts / CLAIMS}: not a claims.json (no list of claims)")
    claims = [_claim_row(c, artifacts) for c in data["claims"]]
    timings = _read_json(artifacts / TIMINGS) if (artifacts / TIMINGS).is_file() else []
    clusters = _read_json(artifacts / CLUSTERS).get("clusters", []) if (artifacts / CLUSTERS).is_file() else []
    upgrade = upgrade_of(_read_json(artifacts / UPGRADE)) if (artifacts / UPGRADE).is_file() else None
    counts = data.get("counts") or {}
    if not counts:
        for claim in claims:
            counts[claim.verdict] = counts.get(claim.verdict, 0) + 1
    return Run(
        artifacts=artifacts,
        run_id=str(data.get("run_id") or artifacts.parent.name),
        claims=claims,
        counts=counts,
        started=data.get("started"),
        finished=data.get("finished"),
        timings=timings if isinstance(timings, list) else [],
        clusters=clusters if isinstance(clusters, list) else [],
        upgrade=upgrade,
    )


def upgrade_of(data: Any) -> dict[str, Any]:
    """upgrade.json (docs/DESIGN.md) as the page may trust it: another program writes it, so
    entries of the wrong shape are dropped (the page says how many), times must be numbers."""
    if not isinstance(data, dict):
        return {"dropped": 1}
    dropped = 0

    def entries(key: str, needs: tuple[str, ...], times: tuple[str, ...]) -> list[dict[str, Any]]:
        nonlocal dropped
        raw = data.get(key) or []
        good = [
            e
            for e in (raw if isinstance(raw, list) else [])
            if isinstance(e, dict)
            and all(e.get(k) not in (None, "") for k in needs)
            and all(isinstance(e.get(t), int | float) for t in times)
            and all(e.get(t) is None or isinstance(e.get(t), int | float) for t in ("start", "end"))
        ]
        dropped += (len(raw) if isinstance(raw, list) else 1) - len(good)
        return [{k: _scalar(v) for k, v in e.items()} for e in good]

    targets = data.get("targets") or []
    return {
        "cluster": str(data.get("cluster") or ""),
        "from": str(data.get("from") or ""),
        "to": str(data.get("to") or ""),
        "version_rule": str(data.get("version_rule") or ""),
        "phases": entries("phases", ("name",), ("start", "end")),
        "targets": [str(t) for t in targets] if isinstance(targets, list) else [],
        "disruptions": entries("disruptions", ("target",), ("start", "end")),
        "nodes": entries("nodes", ("node",), ("start",)),
        "checks": entries("checks", ("check",), ()),
        "dropped": dropped,
    }


def _scalar(value: Any) -> Any:
    return value if value is None or isinstance(value, int | float | bool) else str(value)


def load_past(path: Path) -> PastRun:
    """Only what history needs from a claims.json (the rest of that run may be gone)."""
    data = _read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("claims"), list):
        raise ReportError(f"{path}: not a claims.json")
    run_id = str(data.get("run_id") or path.parent.name)
    when = data.get("started") or data.get("finished") or path.stat().st_mtime
    return PastRun(run_id, float(when), {str(c.get("id")): str(c.get("verdict")) for c in data["claims"]})


def find_claims_files(directory: Path) -> list[Path]:
    if not directory.is_dir():
        raise ReportError(f"history: {directory} is not a directory")
    return sorted(directory.rglob(CLAIMS))


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise ReportError(f"{path}: {e.strerror}") from None
    except json.JSONDecodeError as e:
        raise ReportError(f"{path}: not JSON ({e})") from None


def _claim_row(data: dict[str, Any], artifacts: Path) -> ClaimRow:
    return ClaimRow(
        id=str(data.get("id", "?")),
        section=str(data.get("section", "")),
        text=str(data.get("claim", "")),
        verdict=str(data.get("verdict", "?")),
        reason=str(data.get("reason", "")),
        tests=[_test_row(t, artifacts) for t in data.get("tests", [])],
    )


def _test_row(data: dict[str, Any], artifacts: Path) -> TestRow:
    nodeid = str(data.get("nodeid", "?"))
    return TestRow(
        nodeid=nodeid,
        outcome=str(data.get("outcome", "?")),
        reason=str(data.get("reason", "")),
        message=str(data.get("message", "")),
        start=data.get("start"),
        setup=float(data.get("setup", 0)),
        call=float(data.get("call", 0)),
        teardown=float(data.get("teardown", 0)),
        diagnostics=_diagnostics_file(nodeid, data.get("diagnostics"), artifacts),
    )


def _diagnostics_file(nodeid: str, recorded: str | None, artifacts: Path) -> Path | None:
    """The test's diagnostics.txt beside these artifacts: where the run puts it, or the
    directory the run recorded (absolute on the machine that ran it, so only its name counts)."""
    candidates = [artifacts / artifacts_dir_name(nodeid) / "diagnostics.txt"]
    if recorded:
        candidates.append(artifacts / Path(recorded).parent.name / Path(recorded).name)
    return next((c for c in candidates if c.is_file()), None)


def diagnostics_excerpt(path: Path) -> tuple[str, bool]:
    """The start of a diagnostics.txt and whether it was cut."""
    with open(path, encoding="utf-8", errors="replace") as f:
        text = f.read(DIAGNOSTICS_EXCERPT + 1)
    return text[:DIAGNOSTICS_EXCERPT], len(text) > DIAGNOSTICS_EXCERPT


def relative_link(target: Path, page: Path) -> str:
    """A link from the page to a file, relative so the artifacts directory can move as one."""
    return Path(os.path.relpath(target.resolve(), page.resolve().parent)).as_posix()


def area_order(area: str) -> tuple[int, str]:
    return (AREAS.index(area) if area in AREAS else len(AREAS), area)


def severity(verdict: str) -> int:
    return SEVERITY.get(verdict, 0)  # an unknown verdict is shown with the failures
