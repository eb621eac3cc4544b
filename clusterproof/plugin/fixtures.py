"""The plugin's fixtures: the run, its settings and images, the tracker, the cluster under test,
the test's namespaces and manifests, client pods."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from clusterproof import facts, verdicts
from clusterproof.cluster import Cluster
from clusterproof.images import ImageCatalogue
from clusterproof.manifests import Manifests
from clusterproof.namespaces import DEFAULT_POD_SECURITY, create_namespace
from clusterproof.plugin import node_access
from clusterproof.plugin.configure import check_cluster_access_once, note_for
from clusterproof.plugin.stash import (
    CATALOGUE,
    ITEM_CLUSTER,
    ITEM_DIAGNOSED,
    ITEM_NAMESPACES,
    MODULE_ORDER,
    RUN,
    SETTINGS,
    STOPWATCH,
)
from clusterproof.probe import ClientPod
from clusterproof.providers import Provider, make_provider
from clusterproof.run import TEST_LABEL as TEST_LABEL_KEY
from clusterproof.run import RunContext, namespace_name, test_label
from clusterproof.settings import Settings
from clusterproof.timings import Stopwatch
from clusterproof.tracker import OWNER_LABEL, ResourceTracker, install_signal_cleanup


@pytest.fixture(scope="session")
def run(pytestconfig: pytest.Config) -> Iterator[RunContext]:
    """The run; at its end (a stop too) the credential copies it made are removed."""
    run = pytestconfig.stash[RUN]
    try:
        yield run
    finally:
        run.remove_credentials()


@pytest.fixture(scope="session")
def images(pytestconfig: pytest.Config) -> ImageCatalogue:
    return pytestconfig.stash[CATALOGUE]


@pytest.fixture(scope="session")
def settings(pytestconfig: pytest.Config) -> Settings:
    """The run's settings, checked (a topic's own come from its own fixture)."""
    return pytestconfig.stash[SETTINGS]


@pytest.fixture(scope="session")
def note(pytestconfig: pytest.Config) -> Callable[[str], None]:
    """note(message): a progress line shown despite capture (and logged)."""
    return note_for(pytestconfig)


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
    check_cluster_access_once(pytestconfig)  # no-op unless `cluster` was reached dynamically
    provider = make_provider(
        pytestconfig.stash[SETTINGS], run, tracker, note_for(pytestconfig), pytestconfig.stash[STOPWATCH]
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
        facts.record(cluster, run.artifacts_root() / facts.FILE, key)
        with node_access.installed(
            cluster,
            config.stash[SETTINGS],
            tracker=tracker,
            run=run,
            images=images,
            note=note_for(config),
            stopwatch=config.stash[STOPWATCH],
        ):
            yield cluster
    finally:
        cluster_provider.release(cluster)


@pytest.fixture(scope="session")
def cluster_fact(run: RunContext) -> Callable[[Cluster, str, Any], None]:
    """cluster_fact(cluster, key, value): what a module learnt of its cluster (the ingress controller
    it installed or found) into cluster.json, where the report reads each cluster's facts."""
    return lambda cluster, key, value: facts.add(run.artifacts_root() / facts.FILE, cluster.name, key, value)


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
    registered with the tracker as soon as it is made (a name already taken is an error, never
    registered): deleted when the test ends, after everything registered later (what the test made
    in it or elsewhere). A stop between the create and the registration is covered by the tracker's
    last sweep of this run's labelled namespaces. Each enforces the Pod Security level the test
    needs (marker `pod_security`, default baseline)."""
    item = request.node
    made = item.stash.setdefault(ITEM_NAMESPACES, [])
    labels = {**run.labels, TEST_LABEL_KEY: test_label(item.nodeid), OWNER_LABEL: tracker.owner}
    marker = item.get_closest_marker("pod_security")
    level = marker.args[0] if marker else DEFAULT_POD_SECURITY

    def make() -> str:
        name = namespace_name(run.run_id, item.name, item.nodeid, len(made) + 1)

        def created(name: str) -> None:
            tracker.register_namespace(cluster, name)
            made.append(name)

        return create_namespace(cluster, name, labels, created=created, pod_security=level)

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
