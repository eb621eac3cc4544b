"""The plugin's configuration: options, the run's settings, markers, what runs, and the preflight.

State lives on config.stash (per process); under pytest-xdist the controller hands its run id to
the workers, and claim outcomes reach the controller through reports.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from pathlib import Path

import pytest

from clusterproof import stopping
from clusterproof.claims import CLAIM_PROPERTY, ClaimLedger, check_claim_markers, claim_ids, load_claims
from clusterproof.errors import ClaimsError, ImageMapError
from clusterproof.images import ImageCatalogue
from clusterproof.options import add_options, build_settings
from clusterproof.plugin import hookspecs
from clusterproof.plugin.reports import ClaimsReporter
from clusterproof.plugin.stash import ACCESS_CHECKED, CATALOGUE, CLAIMS, MODULE_ORDER, RUN, SETTINGS, STOPWATCH
from clusterproof.preflight import check_cluster_access
from clusterproof.progress import Progress
from clusterproof.run import RunContext
from clusterproof.sweep import SweepAtStart
from clusterproof.timings import Stopwatch, TimingReporter

log = logging.getLogger("clusterproof")

MARKERS = (
    "claim(*ids): ties a test to claim IDs of CLAIMS.md (unknown ID = collection error)",
    "needs_node_exec: needs a shell on the nodes (--node-access); skipped, saying why, where there is none",
    "disruptive: changes what the run did not create (node state, a controller's Service); skipped on an existing "
    "cluster unless --allow-disruptive",
    "pod_security(level): the Pod Security level the test's namespaces need (privileged, baseline, restricted; "
    "default baseline): their pod-security.kubernetes.io/enforce label",
)
WORKER_RUN_ID = "clusterproof_run_id"
PROGRESS_LOG = "progress.log"  # in the artifacts: every progress line with its time


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(hookspecs)


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    for line in MARKERS:
        config.addinivalue_line("markers", line)
    inherited = getattr(config, "workerinput", {}).get(WORKER_RUN_ID)
    settings = build_settings(
        config.getoption,
        Path(config.rootpath),
        fixtures_dir=config.hook.pytest_clusterproof_fixtures_dir(config=config),
        inherited_run_id=inherited,
    )
    config.hook.pytest_clusterproof_configure(config=config, settings=settings)
    try:
        catalogue = ImageCatalogue.load(image_map=settings.image_map)
        claims = load_claims(settings.claims_file)
        hidden = {cid for ids in config.hook.pytest_clusterproof_claims(config=config, known=claims) for cid in ids}
    except (ImageMapError, ClaimsError) as e:
        raise pytest.UsageError(str(e)) from None
    run = RunContext(settings.run_id, settings.run_dir, settings.artifacts_dir)
    config.stash[SETTINGS] = settings
    config.stash[RUN] = run
    config.stash[CATALOGUE] = catalogue
    config.stash[CLAIMS] = claims
    progress = Progress(
        show=terminal_line(config),
        log_file=lambda: run.artifacts_root() / PROGRESS_LOG,
        show_other_threads=False,
    )
    config.add_cleanup(progress.close)
    config.stash[STOPWATCH] = Stopwatch(progress=progress)
    timing = TimingReporter(config.stash[STOPWATCH])
    ledger = ClaimLedger({k: v for k, v in claims.items() if k not in hidden})
    config.pluginmanager.register(ClaimsReporter(ledger, run, timing), "clusterproof-claims")
    config.pluginmanager.register(timing, "clusterproof-timings")
    # records this run and sweeps what dead runs left: this host's (with the provider), each cluster's (when acquired)
    sweep = SweepAtStart(lambda: config.stash[SETTINGS], run, note_for(config))
    config.pluginmanager.register(sweep, "clusterproof-sweep")
    config.pluginmanager.register(StopStatus(), "clusterproof-stop-status")


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node) -> None:  # pytest-xdist: one run id for all workers
    node.workerinput[WORKER_RUN_ID] = node.config.stash[RUN].run_id


@pytest.hookimpl(trylast=True)  # after -k/-m deselection: check what will run
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    try:
        check_claim_markers(items, config.stash[CLAIMS], config.stash[SETTINGS].claims_file)
        if not config.option.collectonly and any("cluster" in getattr(i, "fixturenames", ()) for i in items):
            check_cluster_access_once(config)
    except pytest.UsageError as e:
        if not hasattr(config, "workerinput"):
            raise
        # an xdist worker cannot end the run with a usage error: report one collection error
        report = pytest.CollectReport(nodeid="", outcome="failed", longrepr=str(e), result=[])
        config.hook.pytest_collectreport(report=report)
        items.clear()
        return
    for item in items:
        # user_properties travel with every report (to the xdist controller, into JUnit)
        item.user_properties.extend((CLAIM_PROPERTY, cid) for cid in claim_ids(item))
    # the order modules will need their clusters in (an xdist worker runs only some of them: none)
    if not hasattr(config, "workerinput"):
        config.stash[MODULE_ORDER] = [i.module.__name__ for i in items
                                      if "cluster" in getattr(i, "fixturenames", ()) and getattr(i, "module", None)]


class StopStatus:
    """A run stopped by SIGTERM/SIGHUP (stopping.Stopped, which pytest ends as an interrupt, exit
    status 2) exits with 128 + the signal, as a process killed by it would be seen by its caller."""

    status: int | None = None

    def pytest_keyboard_interrupt(self, excinfo: pytest.ExceptionInfo[BaseException]) -> None:
        if isinstance(excinfo.value, stopping.Stopped):
            self.status = excinfo.value.returncode

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.status is not None:
            session.exitstatus = self.status


def check_cluster_access_once(config: pytest.Config) -> None:
    """Fail fast, before any test, and only when a selected test needs a cluster."""
    if not config.stash.get(ACCESS_CHECKED, False):
        settings = check_cluster_access(config.stash[SETTINGS])
        config.hook.pytest_clusterproof_access_checked(config=config, settings=settings)
        config.stash[SETTINGS] = settings
        config.stash[ACCESS_CHECKED] = True


def note_for(config: pytest.Config) -> Callable[[str], None]:
    """A line of the run's progress (shown at once despite capture, in progress.log too)."""
    return progress_of(config).say


def progress_of(config: pytest.Config) -> Progress:
    progress = config.stash[STOPWATCH].progress
    assert progress is not None
    return progress


def terminal_line(config: pytest.Config) -> Callable[[str], None]:
    """A line on pytest's terminal now, whether or not it is a terminal: written past the capture
    of a running fixture or test, and flushed (a pipe's buffer would hold it until the next test's
    result: a long build in a module's setup showed nothing until then). Logged too."""

    def show(line: str) -> None:
        log.info(line)
        tr = config.pluginmanager.get_plugin("terminalreporter")
        if tr is None:
            return
        capman = config.pluginmanager.get_plugin("capturemanager")
        with capman.global_and_fixture_disabled() if capman else contextlib.nullcontext():
            tr.write_line(f"[clusterproof] {line}")
            tr.flush()

    return show
