"""The pytest plugin: options, markers, fixtures and report hooks. Thin: it wires the modules.

State lives on config.stash (per process) and in fixtures; under pytest-xdist the controller
hands its run id to the workers, and claim outcomes reach the controller through reports.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Callable, Generator, Iterator
from pathlib import Path

import pytest

from clusterproof import diagnostics, facts, node_access, verdicts
from clusterproof.claims import (
    CLAIM_PROPERTY,
    LEGEND,
    Claim,
    ClaimLedger,
    check_claim_markers,
    claim_ids,
    load_claims,
)
from clusterproof.cluster import Cluster
from clusterproof.errors import ClaimsError, ImageMapError
from clusterproof.images import ImageCatalogue
from clusterproof.manifests import Manifests
from clusterproof.namespaces import create_namespace
from clusterproof.options import Settings, add_options, build_settings, check_cluster_access
from clusterproof.probe import ClientPod
from clusterproof.providers import Provider, make_provider
from clusterproof.report import write_run_page
from clusterproof.run import TEST_LABEL as TEST_LABEL_KEY
from clusterproof.run import RunContext, namespace_name, test_label
from clusterproof.sweep import SweepAtStart
from clusterproof.timings import Stopwatch, TimingReporter
from clusterproof.tracker import OWNER_LABEL, ResourceTracker, install_signal_cleanup
from clusterproof.upgrade import plugin as upgrade_plugin

log = logging.getLogger("clusterproof")

MARKERS = (
    "claim(*ids): ties a test to claim IDs of CLAIMS.md (unknown ID = collection error)",
    "needs_node_exec: needs a shell on the nodes (--node-access); skipped, saying why, where there is none",
    "disruptive: changes node state; skipped on an existing cluster unless --allow-disruptive",
    upgrade_plugin.MARKER,
)
WORKER_RUN_ID = "clusterproof_run_id"

SETTINGS = pytest.StashKey[Settings]()
RUN = pytest.StashKey[RunContext]()
CATALOGUE = pytest.StashKey[ImageCatalogue]()
CLAIMS = pytest.StashKey[dict[str, Claim]]()
ACCESS_CHECKED = pytest.StashKey[bool]()
ITEM_CLUSTER = pytest.StashKey[Cluster]()
ITEM_NAMESPACES = pytest.StashKey[list[str]]()
ITEM_DIAGNOSED = pytest.StashKey[list[str]]()  # namespaces the test did not make, diagnosed too
ITEM_STARTED = pytest.StashKey[float]()
STOPWATCH = pytest.StashKey[Stopwatch]()
MODULE_ORDER = pytest.StashKey[list[str]]()


# --- configuration ---------------------------------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    for line in MARKERS:
        config.addinivalue_line("markers", line)
    inherited = getattr(config, "workerinput", {}).get(WORKER_RUN_ID)
    settings = build_settings(config.getoption, Path(config.rootpath), inherited_run_id=inherited)
    try:
        catalogue = ImageCatalogue.load(image_map=settings.image_map)
        claims = {**load_claims(settings.claims_file), **load_claims(upgrade_plugin.UPGRADE_CLAIMS)}
    except (ImageMapError, ClaimsError) as e:
        raise pytest.UsageError(str(e)) from None
    run = RunContext(settings.run_id, settings.run_dir, settings.artifacts_dir)
    config.stash[SETTINGS] = settings
    config.stash[RUN] = run
    config.stash[CATALOGUE] = catalogue
    config.stash[CLAIMS] = claims
    config.stash[STOPWATCH] = Stopwatch()
    timing = TimingReporter(config.stash[STOPWATCH])
    # UPG rows belong to the table only when an upgrade phase runs
    ledger_claims = upgrade_plugin.claims_for_phase(claims, settings.phase)
    config.pluginmanager.register(ClaimsReporter(ClaimLedger(ledger_claims), run, timing), "clusterproof-claims")
    config.pluginmanager.register(upgrade_plugin.UpgradePhase(settings.phase), "clusterproof-upgrade-phase")
    config.pluginmanager.register(upgrade_plugin, "clusterproof-upgrade")
    config.pluginmanager.register(timing, "clusterproof-timings")
    # records this run and sweeps what dead runs left: this host's (with the provider), each cluster's (when acquired)
    sweep = SweepAtStart(lambda: config.stash[SETTINGS], run, _note(config))
    config.pluginmanager.register(sweep, "clusterproof-sweep")
    config.pluginmanager.register(node_access.UnreachableNodeSkips(), "clusterproof-node-access")


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node) -> None:  # pytest-xdist: one run id for all workers
    node.workerinput[WORKER_RUN_ID] = node.config.stash[RUN].run_id


@pytest.hookimpl(trylast=True)  # after -k/-m deselection: check what will run
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    try:
        check_claim_markers(items, config.stash[CLAIMS], config.stash[SETTINGS].claims_file)
        if not config.option.collectonly and any("cluster" in getattr(i, "fixturenames", ()) for i in items):
            _check_cluster_access_once(config)
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


def _check_cluster_access_once(config: pytest.Config) -> None:
    """Fail fast, before any test, and only when a selected test needs a cluster."""
    if not config.stash.get(ACCESS_CHECKED, False):
        config.stash[SETTINGS] = check_cluster_access(config.stash[SETTINGS])
        config.stash[ACCESS_CHECKED] = True


# --- reports -----------------------------------------------------------------------------------


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


@pytest.hookimpl(tryfirst=True)
def pytest_report_teststatus(report: pytest.TestReport) -> tuple[str, str, str] | None:
    """A set-up step that failed in a test body shows as ERROR; a broken observable a fixture
    found as FAILED (verdicts.classify)."""
    return verdicts.teststatus(report)


class ClaimsReporter:
    """Collects claim outcomes from reports (on the xdist controller too) and prints the table."""

    def __init__(self, ledger: ClaimLedger, run: RunContext, timing: TimingReporter) -> None:
        self.ledger = ledger
        self.run = run
        self.timing = timing

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


# --- fixtures ----------------------------------------------------------------------------------


def _note(config: pytest.Config) -> Callable[[str], None]:
    """Progress lines for slow steps (cluster creation, image builds), shown despite capture."""

    def note(message: str) -> None:
        log.info(message)
        tr = config.pluginmanager.get_plugin("terminalreporter")
        capman = config.pluginmanager.get_plugin("capturemanager")
        if tr is None or capman is None:
            return
        with capman.global_and_fixture_disabled():
            tr.write_line(f"[clusterproof] {message}")

    return note


@pytest.fixture(scope="session")
def run(pytestconfig: pytest.Config) -> RunContext:
    return pytestconfig.stash[RUN]


@pytest.fixture(scope="session")
def images(pytestconfig: pytest.Config) -> ImageCatalogue:
    return pytestconfig.stash[CATALOGUE]


@pytest.fixture(scope="session")
def settings(pytestconfig: pytest.Config) -> Settings:
    """The run's options (e.g. --ingress-class), checked."""
    return pytestconfig.stash[SETTINGS]


@pytest.fixture(scope="session")
def stopwatch(pytestconfig: pytest.Config) -> Stopwatch:
    """Rows of "where the time went" (`stopwatch.measure(what)`), e.g. a controller's install."""
    return pytestconfig.stash[STOPWATCH]


@pytest.fixture(scope="session")
def tracker(run: RunContext) -> Iterator[ResourceTracker]:
    tracker = ResourceTracker(run.run_id)
    restore_signals = install_signal_cleanup(tracker.cleanup, hangup_log=run.run_dir / "hangup.log")
    try:
        yield tracker
    finally:
        restore_signals()
        tracker.cleanup()


@pytest.fixture(scope="session")
def cluster_provider(pytestconfig: pytest.Config, run: RunContext, tracker: ResourceTracker) -> Iterator[Provider]:
    _check_cluster_access_once(pytestconfig)  # no-op unless `cluster` was reached dynamically
    provider = make_provider(
        pytestconfig.stash[SETTINGS], run, tracker, _note(pytestconfig), pytestconfig.stash[STOPWATCH]
    )
    if hasattr(provider, "plan") and pytestconfig.stash[SETTINGS].cluster_scope == "module":
        provider.plan(pytestconfig.stash.get(MODULE_ORDER, []))
    try:
        yield provider
    finally:
        provider.close()


def _cluster_scope(fixture_name: str, config: pytest.Config) -> str:
    return config.stash[SETTINGS].cluster_scope


@pytest.fixture(scope=_cluster_scope)
def cluster(
    request: pytest.FixtureRequest,
    cluster_provider: Provider,
    tracker: ResourceTracker,
    run: RunContext,
    images: ImageCatalogue,
) -> Iterator[Cluster]:
    """The cluster under test: one per suite module (default) or per session (--cluster-scope),
    with its node access (--node-access) for that time."""
    key = request.module.__name__ if request.scope == "module" else "session"
    cluster = cluster_provider.acquire(key)
    config = request.config
    try:
        facts.record(cluster, run.artifacts_root() / "cluster.json", key)
        with node_access.installed(
            cluster,
            config.stash[SETTINGS],
            tracker=tracker,
            run=run,
            images=images,
            note=_note(config),
            stopwatch=config.stash[STOPWATCH],
        ):
            yield cluster
    finally:
        cluster_provider.release(cluster)


@pytest.fixture(autouse=True)
def _clusterproof_test(request: pytest.FixtureRequest, pytestconfig: pytest.Config) -> Iterator[None]:
    """Remember the test's cluster (for diagnostics), apply the requirement markers, and hold the
    test's cleanup scope: what the test registers with the tracker (its namespaces first) is undone
    when it ends, latest first. Set up before the test's other fixtures (autouse), so the scope
    closes after their teardown; a failure's diagnostics are taken before (when its report is made)."""
    if "cluster" not in request.fixturenames:
        yield
        return
    cluster: Cluster = request.getfixturevalue("cluster")
    request.node.stash[ITEM_CLUSTER] = cluster
    if request.node.get_closest_marker("needs_node_exec"):
        cluster.require_node_exec()
    disruptive = request.node.get_closest_marker("disruptive")
    if disruptive and cluster.provider == "existing" and not pytestconfig.stash[SETTINGS].allow_disruptive:
        pytest.skip("disruptive test: not run on an existing cluster without --allow-disruptive")
    tracker: ResourceTracker = request.getfixturevalue("tracker")
    with tracker.test_scope(cluster, request.node.nodeid):
        yield


@pytest.fixture
def make_namespace(
    request: pytest.FixtureRequest, cluster: Cluster, run: RunContext, tracker: ResourceTracker
) -> Callable[[], str]:
    """Factory of fresh namespaces for this test (for claims that need several). Each is
    registered with the tracker before it is made: deleted when the test ends, after everything
    registered later (what the test made in it or elsewhere)."""
    item = request.node
    made = item.stash.setdefault(ITEM_NAMESPACES, [])
    labels = {**run.labels, TEST_LABEL_KEY: test_label(item.nodeid), OWNER_LABEL: tracker.owner}

    def make() -> str:
        name = namespace_name(run.run_id, item.name, item.nodeid, len(made) + 1)
        tracker.register_namespace(cluster, name)
        made.append(name)
        return create_namespace(cluster, name, labels)

    return make


@pytest.fixture
def diagnose_namespace(request: pytest.FixtureRequest) -> Callable[[str], None]:
    """diagnose_namespace(name): a namespace the test did not make (a shared controller's) goes
    into its failure diagnostics too. Nothing else changes: it is not deleted with the test."""
    names = request.node.stash.setdefault(ITEM_DIAGNOSED, [])
    return lambda name: None if name in names else names.append(name)


@pytest.fixture
def namespace(make_namespace: Callable[[], str]) -> str:
    """A fresh namespace for this test, deleted after it (diagnostics first on failure)."""
    return make_namespace()


@pytest.fixture
def manifests(
    pytestconfig: pytest.Config,
    cluster: Cluster,
    namespace: str,
    images: ImageCatalogue,
    run: RunContext,
    tracker: ResourceTracker,
) -> Manifests:
    return Manifests(
        cluster,
        namespace,
        catalogue=images,
        labels=run.labels,
        tracker=tracker,
        fixtures_dir=pytestconfig.stash[SETTINGS].fixtures_dir,
        values={"RUN_ID": run.run_id},
    )


@pytest.fixture
def client_pod(cluster: Cluster, namespace: str, images: ImageCatalogue, run: RunContext) -> Callable[..., ClientPod]:
    """client_pod(name="client", node_name=None, namespace=None) -> a started ClientPod."""

    def start(
        name: str = "client",
        node_name: str | None = None,
        namespace_name: str | None = None,
        timeout: float = 120,
    ) -> ClientPod:
        pod = ClientPod(
            cluster,
            namespace_name or namespace,
            images.ref("agnhost", offline=cluster.offline),
            name=name,
            node_name=node_name,
            labels=run.labels,
        )
        with verdicts.setup_step(f"start client pod {name}" + (f" on node {node_name}" if node_name else "")):
            return pod.start(timeout)

    return start
