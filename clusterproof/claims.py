"""CLAIMS.md ids, the claim marker, and the ledger that turns test outcomes into verdicts.

The ledger is fed from test reports (`pytest_runtest_logreport`), which under pytest-xdist
arrive on the controller: the claim ids travel in report.user_properties, never in
worker-only state. What was collected (selected or deselected) and which claims the test files
beside them name reach it as `expect` and `tests_elsewhere` (from an xdist worker: its output).

A claim is held only when every one of its tests ran and passed; some passed and others skipped,
deselected or passing against an xfail mark: partial, "n of m ran"; none selected in this run
while test files name it: not run; no test file names it: no test.
"""

from __future__ import annotations

import ast
import fnmatch
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from clusterproof import verdicts as outcomes
from clusterproof.errors import ClaimsError
from clusterproof.redact import redact

CLAIM_PROPERTY = "claim"
DIAGNOSTICS_PROPERTY = "diagnostics"  # user property: path of the test's diagnostics.txt
# user property: what the verdict was observed on (e.g. an ingress controller and its version), named in
# the claim's reason
OBSERVED_ON_PROPERTY = "observed on"
MESSAGE_MAX = 4000  # a failure's full message in claims.json (the reason is its first line)
_ROW = re.compile(r"^\|\s*([A-Z]+-\d+)\s*\|(.*)\|(.*)\|\s*$")
_SECTION = re.compile(r"^##\s+(.*)$")
_ERR_SECTION = re.compile(r"^ERR\b")
_BULLET = re.compile(r"^-\s+(.*)$")

HELD, PARTIAL, FAILED, ERROR, SKIPPED, NOT_RUN, NO_TEST = (
    "held",
    "partial",
    "failed",
    "error",
    "skipped",
    "not run",
    "no test",
)
XPASSED = "xpassed"  # a test's outcome: passed against a non-strict xfail mark (not a pass of the claim)
COULD_NOT_EVALUATE = "could not evaluate"
LEGEND = (
    "failed: the cluster broke the claim (its observable was reached and was not as claimed); "
    "error: could not evaluate, because a set-up step or fixture failed first (the reason names it)"
)


@dataclass(frozen=True)
class Claim:
    id: str
    text: str
    observable: str
    section: str


def parse_claims(text: str) -> dict[str, Claim]:
    """`| SVC-01 | claim | observable |` rows, in file order. The ERR section lists the notes'
    broken examples as bullets without ids: they are numbered ERR-01, ERR-02, ... in order."""
    claims: dict[str, Claim] = {}
    section = ""
    err_count = 0
    for line in text.splitlines():
        heading = _SECTION.match(line)
        if heading:
            section = heading.group(1).strip()
            continue
        bullet = _BULLET.match(line.strip())
        if bullet and _ERR_SECTION.match(section):
            err_count += 1
            claim_id = f"ERR-{err_count:02d}"
            claims[claim_id] = Claim(claim_id, bullet.group(1).strip(), "what a real API server does with it", section)
            continue
        row = _ROW.match(line.strip())
        if row:
            claim_id, claim_text, observable = (part.strip() for part in row.groups())
            if claim_id in claims:
                raise ClaimsError(f"claim {claim_id} is listed twice")
            claims[claim_id] = Claim(claim_id, claim_text, observable, section)
    return claims


def load_claims(path: Path) -> dict[str, Claim]:
    try:
        claims = parse_claims(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ClaimsError(f"claims file {path}: not UTF-8 text") from None
    except OSError as e:
        raise ClaimsError(f"claims file {path}: {e.strerror}") from None
    if not claims:
        raise ClaimsError(f"claims file {path}: no claims in it (table rows `| ID | claim | observable |`)")
    return claims


def claim_ids(item: pytest.Item) -> tuple[str, ...]:
    ids: list[str] = []
    for mark in item.iter_markers("claim"):
        ids.extend(str(a) for a in mark.args)
    return tuple(dict.fromkeys(ids))


def check_claim_markers(items: Iterable[pytest.Item], claims: dict[str, Claim], source: Path) -> None:
    """Unknown or missing ids are a usage error naming the test and the id."""
    problems = []
    for item in items:
        for mark in item.iter_markers("claim"):
            if not mark.args:
                problems.append(f"{item.nodeid}: @pytest.mark.claim() needs at least one id")
            problems.extend(
                f"{item.nodeid}: unknown claim id {a!r} (not in {source})" for a in mark.args if a not in claims
            )
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise pytest.UsageError(problems[0] + more)


def files_beside(modules: Iterable[Path], patterns: Iterable[str]) -> list[Path]:
    """The test files (names matching `patterns`, pytest's python_files) in the directories of
    `modules`: where the tests of a claim no selected test names would be."""
    patterns = tuple(patterns)
    found: set[Path] = set()
    for directory in {Path(m).parent for m in modules}:
        try:
            found |= {p for p in directory.iterdir() if p.is_file() and _matches(p.name, patterns)}
        except OSError:
            continue
    return sorted(found)


def _matches(name: str, patterns: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatch(name, pattern) for pattern in patterns)


def claims_in_test_files(files: Iterable[Path]) -> dict[str, list[str]]:
    """Claim id -> the names of the files whose `pytest.mark.claim("ID", ...)` marks name it, read
    (not imported) from their source."""
    found: dict[str, list[str]] = {}
    for path in files:
        try:
            tree = ast.parse(Path(path).read_text(encoding="utf-8"), str(path))
        except (OSError, SyntaxError, ValueError):
            continue
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and _is_claim_mark(node.func)):
                continue
            for arg in node.args:
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    names = found.setdefault(arg.value, [])
                    if Path(path).name not in names:
                        names.append(Path(path).name)
    return found


def _is_claim_mark(func: ast.expr) -> bool:
    """`<...>.mark.claim`"""
    return (
        isinstance(func, ast.Attribute)
        and func.attr == "claim"
        and isinstance(func.value, ast.Attribute)
        and func.value.attr == "mark"
    )


# --- outcomes -> verdicts --------------------------------------------------------------------


@dataclass
class RecordedTest:
    nodeid: str
    claims: tuple[str, ...]
    outcome: str = "unfinished"  # unfinished | passed | xpassed | failed | error | skipped | not run
    reason: str = "did not finish (interrupted)"
    message: str = ""  # the whole failure message (failed, error)
    diagnostics: str = ""  # path of diagnostics.txt, when one was written
    observed_on: str = ""  # what the outcome was observed on (OBSERVED_ON_PROPERTY)
    start: float | None = None  # setup's start, seconds since the epoch
    durations: dict[str, float] = field(default_factory=dict)  # setup / call / teardown, seconds

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"nodeid": self.nodeid, "outcome": self.outcome, "reason": redact(self.reason)}
        if self.message and self.message != self.reason:
            data["message"] = redact(self.message)
        if self.diagnostics:
            data["diagnostics"] = self.diagnostics
        if self.observed_on:
            data["observed_on"] = self.observed_on
        if self.start is not None:
            data["start"] = round(self.start, 3)
            data.update({phase: round(seconds, 3) for phase, seconds in self.durations.items()})
        return data


def report_reason(report: pytest.TestReport) -> str:
    if report.skipped:
        if hasattr(report, "wasxfail"):
            return f"xfail: {report.wasxfail}".rstrip(": ")
        longrepr = report.longrepr
        if isinstance(longrepr, tuple) and len(longrepr) == 3:
            return str(longrepr[2]).removeprefix("Skipped: ")
        return str(longrepr or "")
    crash = getattr(report.longrepr, "reprcrash", None)
    if crash is not None:
        return crash.message.strip().splitlines()[0] if crash.message.strip() else ""
    text = str(report.longrepr or "").strip()
    return text.splitlines()[-1] if text else ""


def report_message(report: pytest.TestReport) -> str:
    """A failure's whole message (a WaitTimeout's last state seen, several lines), capped."""
    crash = getattr(report.longrepr, "reprcrash", None)
    text = crash.message.strip() if crash is not None else str(report.longrepr or "").strip()
    return text if len(text) <= MESSAGE_MAX else text[: MESSAGE_MAX - 1] + "…"


@dataclass
class ClaimVerdict:
    claim: Claim
    verdict: str
    tests: list[RecordedTest] = field(default_factory=list)
    elsewhere: tuple[str, ...] = ()  # test files naming the claim, none of whose tests was collected

    @property
    def reason(self) -> str:
        """Why not held: a failure's reason as the check words it; an error's as "could not
        evaluate ..." (the set-up step and its cause), never mistakable for a failure; a partial
        verdict's "n of m ran" and why the others did not count."""
        if self.verdict == NOT_RUN and not self.tests:
            return f"none of its tests was selected in this run (tests in {', '.join(self.elsewhere)})"
        wanted = {FAILED: ("failed",), ERROR: ("error", "unfinished")}
        shown = wanted.get(self.verdict, ("skipped", XPASSED, NOT_RUN))
        if self.verdict == HELD:
            shown = ()
        reasons = [_worded(t) for t in self.tests if t.outcome in shown and t.reason]
        if self.verdict == PARTIAL:
            ran = sum(t.outcome == "passed" for t in self.tests)
            reasons.insert(0, f"{ran} of {len(self.tests)} ran")
        reason = "; ".join(dict.fromkeys(reasons))
        # what a held, failed or errored verdict was observed on (a skip's reason says it already)
        seen = [t.observed_on for t in self.tests if t.observed_on and t.outcome not in ("skipped", NOT_RUN)]
        if not seen:
            return reason
        observed = "observed on " + "; ".join(dict.fromkeys(seen))
        return f"{reason} ({observed})" if reason else observed


class ClaimLedger:
    def __init__(self, claims: dict[str, Claim]) -> None:
        self.claims = claims
        self._tests: dict[str, RecordedTest] = {}
        self._reported: set[str] = set()
        self._elsewhere: dict[str, list[str]] = {}

    @property
    def has_tests(self) -> bool:
        """Whether any test of a claim reported (collected ones alone do not count)."""
        return bool(self._reported)

    def expect(self, nodeid: str, claims: Iterable[str], *, selected: bool = True) -> None:
        """A collected test of `claims`: "not run" until it reports (deselected, or selected but
        the run ended before it). Claims outside this run's table are left out."""
        ids = tuple(c for c in claims if c in self.claims)
        if ids and nodeid not in self._tests:
            reason = "the run ended before it" if selected else "deselected"
            name = nodeid.rsplit("::", 1)[-1]
            self._tests[nodeid] = RecordedTest(nodeid, ids, outcome=NOT_RUN, reason=f"{name}: not run ({reason})")

    def tests_elsewhere(self, files_by_claim: dict[str, Iterable[str]]) -> None:
        """Claim id -> test files naming it (claims_in_test_files): a claim none of whose tests
        was collected is "not run" rather than "no test"."""
        for cid, files in files_by_claim.items():
            known = self._elsewhere.setdefault(cid, [])
            known.extend(f for f in files if f not in known)

    def record(self, report: pytest.TestReport) -> None:
        ids = tuple(v for k, v in report.user_properties if k == CLAIM_PROPERTY)
        if not ids:
            return
        self._reported.add(report.nodeid)
        test = self._tests.get(report.nodeid)
        if test is None or test.outcome == NOT_RUN:
            test = self._tests[report.nodeid] = RecordedTest(report.nodeid, ids)
        if report.start:
            test.start = report.start if test.start is None else min(test.start, report.start)
            test.durations[report.when] = report.duration
        for key, value in report.user_properties:
            if key == DIAGNOSTICS_PROPERTY:
                test.diagnostics = str(value)
            if key == OBSERVED_ON_PROPERTY:
                test.observed_on = str(value)
        # the plugin's verdict (verdicts.classify): a set-up step that failed in the test body is
        # an error, a broken observable found by a fixture a failure
        outcome = outcomes.outcome_of(report) or _phase_outcome(report)
        if outcome is None or _RANK[outcome] < _RANK[test.outcome]:
            return
        test.outcome = outcome
        if outcome == XPASSED:
            test.reason = f"xpass ({report.wasxfail or 'xfail'}): passed against its xfail mark, not counted as a pass"
        else:
            test.reason = (outcomes.reason_of(report) or report_reason(report)) if outcome != "passed" else ""
        test.message = report_message(report) if outcome in ("failed", "error") else ""

    def verdicts(self) -> list[ClaimVerdict]:
        by_claim: dict[str, list[RecordedTest]] = {cid: [] for cid in self.claims}
        for test in self._tests.values():
            for cid in test.claims:
                by_claim.setdefault(cid, []).append(test)
        result = []
        for cid, tests in by_claim.items():
            claim = self.claims.get(cid) or Claim(cid, "(not in the claims file)", "", "")
            elsewhere = tuple(self._elsewhere.get(cid, ()))
            verdict = verdict_of(tests) if tests else (NOT_RUN if elsewhere else NO_TEST)
            result.append(ClaimVerdict(claim, verdict, tests, elsewhere))
        return result

    def table(self, width: int = 120) -> str:
        rows = [("claim", "verdict", "test(s)", "reason")]
        for v in self.verdicts():
            names = ", ".join(t.nodeid.rsplit("::", 1)[-1] for t in v.tests) or "-"
            rows.append((v.claim.id, v.verdict, names, v.reason or ""))
        w0 = max(len(r[0]) for r in rows)
        w1 = max(len(r[1]) for r in rows)
        w2 = min(max(len(r[2]) for r in rows), 48)
        w3 = max(width - w0 - w1 - w2 - 6, 20)
        return "\n".join(f"{r[0]:<{w0}}  {r[1]:<{w1}}  {_cut(r[2], w2):<{w2}}  {_cut(r[3], w3)}".rstrip() for r in rows)

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for v in self.verdicts():
            counts[v.verdict] = counts.get(v.verdict, 0) + 1
        return counts

    def to_json(self) -> dict[str, Any]:
        """Tests carry `start` (seconds since the epoch) and their setup/call/teardown seconds;
        `started`/`finished`: the first test's start and the last one's end."""
        starts = [t.start for t in self._tests.values() if t.start is not None]
        ends = [t.start + sum(t.durations.values()) for t in self._tests.values() if t.start is not None]
        span = {"started": round(min(starts), 3), "finished": round(max(ends), 3)} if starts else {}
        return {
            **span,
            "counts": self.counts(),
            "claims": [
                {
                    "id": v.claim.id,
                    "section": v.claim.section,
                    "claim": v.claim.text,
                    "verdict": v.verdict,
                    "reason": redact(v.reason),
                    "tests": [t.to_json() for t in v.tests],
                }
                for v in self.verdicts()
            ],
        }


def _worded(test: RecordedTest) -> str:
    """An errored test's reason says that the claim could not be evaluated (set-up failed)."""
    if test.outcome == "error" and not test.reason.startswith(COULD_NOT_EVALUATE):
        return f"{COULD_NOT_EVALUATE}: {test.reason}"
    return test.reason


# a later phase may only make a test's outcome worse (teardown error after a pass, ...);
# a test whose call never reported (Ctrl-C) stays unfinished, which counts as an error
_RANK = {NOT_RUN: -2, "unfinished": -1, "passed": 0, XPASSED: 1, "skipped": 2, "error": 3, "failed": 4}


def _phase_outcome(report: pytest.TestReport) -> str | None:
    if report.when == "call":
        if report.passed and hasattr(report, "wasxfail"):  # a non-strict xpass
            return XPASSED
        return report.outcome
    if report.failed:
        return "error"
    if report.skipped:  # skipped in setup (skip marks, pytest.skip in a fixture)
        return "skipped"
    return None


def verdict_of(tests: list[RecordedTest]) -> str:
    """held only when every test ran and passed; a failure or an error decides at once; some
    passed: partial; none ran: skipped, or not run when none was even selected."""
    outcomes = {t.outcome for t in tests}
    if not tests:
        return NO_TEST
    if "failed" in outcomes:
        return FAILED
    if "error" in outcomes or "unfinished" in outcomes:
        return ERROR
    if outcomes == {"passed"}:
        return HELD
    if outcomes & {"passed", XPASSED}:
        return PARTIAL
    if outcomes == {NOT_RUN}:
        return NOT_RUN
    return SKIPPED


def _cut(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"
