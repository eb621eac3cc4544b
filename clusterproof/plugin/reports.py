"""The plugin's reports: each test's verdict (failed or error), its diagnostics, the claims table."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Generator, Iterable
from pathlib import Path
from typing import Any

import pytest

from clusterproof import diagnostics, facts, verdicts
from clusterproof.claims import LEGEND, ClaimLedger, claim_ids, claims_in_test_files, files_beside
from clusterproof.plugin.stash import ITEM_CLUSTER, ITEM_DIAGNOSED, ITEM_NAMESPACES, ITEM_STARTED, RUN
from clusterproof.redact import redact_xml
from clusterproof.report import write_run_page
from clusterproof.run import RunContext
from clusterproof.timings import TimingReporter


def pytest_runtest_setup(item: pytest.Item) -> None:
    item.stash[ITEM_STARTED] = time.time()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    # failed (the cluster broke the claim) or error (a set-up step failed: could not evaluate)
    verdicts.classify(report, call.excinfo.value if call.excinfo else None)
    if report.failed and report.when in ("setup", "call"):
        cluster = item.stash.get(ITEM_CLUSTER, None)
        if cluster is not None:
            # the cluster's components' errors from this test's time only (plus clock slack)
            since = int(time.time() - item.stash.get(ITEM_STARTED, time.time())) + 5
            namespaces = [*item.stash.get(ITEM_NAMESPACES, []), *item.stash.get(ITEM_DIAGNOSED, [])]
            text = diagnostics.collect(cluster, namespaces, since_seconds=since)
            path = diagnostics.write(text, item.config.stash[RUN].artifacts_for(item.nodeid))
            # a "Captured stderr" section is what junit_logging puts into the JUnit XML
            report.sections.append(("Captured stderr clusterproof diagnostics", text))
            report.user_properties.append(("diagnostics", str(path)))
    return report


@pytest.hookimpl(trylast=True)  # after pytest's junitxml wrote the file
def pytest_sessionfinish(session: pytest.Session) -> None:
    """The JUnit XML holds captured logs, stdout and tracebacks: redacted like everything else."""
    given = getattr(session.config.option, "xmlpath", None)
    if not given or hasattr(session.config, "workerinput"):
        return
    path = session.config.invocation_params.dir / given
    if path.is_file():
        redact_xml(path)


@pytest.hookimpl(tryfirst=True)
def pytest_report_teststatus(report: pytest.TestReport) -> tuple[str, str, str] | None:
    """A set-up step that failed in a test body shows as ERROR; a broken observable a fixture
    found as FAILED (verdicts.classify)."""
    return verdicts.teststatus(report)


COLLECTED_OUTPUT = "clusterproof_collected"  # an xdist worker's output: what it collected, for the ledger


class ClaimsReporter:
    """Collects claim outcomes from reports (on the xdist controller too) and prints the table.
    What was collected, deselected, and which claims the test files beside them name reach the
    ledger at the end of collection (from an xdist worker: through its output, when it is done)."""

    def __init__(self, ledger: ClaimLedger, run: RunContext, timing: TimingReporter) -> None:
        self.ledger = ledger
        self.run = run
        self.timing = timing
        self._deselected: list[pytest.Item] = []

    def pytest_deselected(self, items: Iterable[pytest.Item]) -> None:
        self._deselected.extend(items)

    @pytest.hookimpl(trylast=True)
    def pytest_collection_finish(self, session: pytest.Session) -> None:
        items = [*session.items, *self._deselected]
        collected = [[i.nodeid, list(claim_ids(i)), i in session.items] for i in items]
        files = files_beside((Path(i.path) for i in items), session.config.getini("python_files"))
        found = {"collected": collected, "elsewhere": claims_in_test_files(files)}
        workeroutput = getattr(session.config, "workeroutput", None)
        if workeroutput is not None:
            workeroutput[COLLECTED_OUTPUT] = found
        else:
            self._take(found)

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: object) -> None:  # pytest-xdist, on the controller
        found = getattr(node, "workeroutput", {}).get(COLLECTED_OUTPUT)
        if found:
            self._take(found)

    def _take(self, found: dict[str, Any]) -> None:
        for nodeid, claims, selected in found["collected"]:
            self.ledger.expect(nodeid, claims, selected=selected)
        self.ledger.tests_elsewhere(found["elsewhere"])

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.ledger.record(report)

    def pytest_terminal_summary(
        self, terminalreporter: pytest.TerminalReporter, exitstatus: int, config: pytest.Config
    ) -> None:
        if hasattr(config, "workerinput") or not self.ledger.has_tests:
            return
        tr = terminalreporter
        clusters = self.run.artifacts_root() / "cluster.json"
        health = facts.health_of(clusters)
        if clusters.is_file():  # first: what was wrong with the cluster explains the failures below
            tr.write_sep("=", "cluster health")
            tr.write_line("\n".join(facts.health_lines(clusters)) or "nothing found wrong with the system components")
        tr.write_sep("=", "claims")
        tr.write_line(self.ledger.table(width=max(100, shutil.get_terminal_size().columns)))
        counts = self.ledger.counts()
        tr.write_line(", ".join(f"{n} {verdict}" for verdict, n in counts.items()))
        if counts.get("failed") or counts.get("error"):
            tr.write_line(LEGEND)
        path = self.run.artifacts_root() / "claims.json"
        data = {"run_id": self.run.run_id, "health": health, **self.ledger.to_json()}
        path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        tr.write_line(f"claims.json: {path}")
        self.timing.summary(tr)
        self.timing.write(self.run.artifacts_root() / "timings.json")
        tr.write_line(f"report.html: {write_run_page(self.run.artifacts_root())}")
