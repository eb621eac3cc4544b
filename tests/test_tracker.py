"""ResourceTracker cleanup and the signal handlers. The cluster is a FAKE recording the delete
and patch calls it receives (no API server)."""

import os
import signal
from types import SimpleNamespace

import pytest
from kubernetes.client import ApiException

from clusterproof import node_labels, stopping
from clusterproof.node_labels import LabelConflict
from clusterproof.tracker import ECHO_SECONDS, ResourceTracker, install_signal_cleanup


class FakeCluster:
    """Fake Cluster: core/dynamic record calls; names in `missing` answer 404. Nodes keep labels,
    annotations and a resourceVersion that changes with every patch (a patch computed from an
    older one answers 409, as the API server does)."""

    def __init__(self, name="c1", labelled=(), missing=()):
        self.name = name
        self.calls = []
        self.node_labels = {"node-1": {"zone": "a"}}
        self.node_annotations = {"node-1": {}}
        self.versions = {"node-1": 1}
        missing = set(missing)
        calls = self.calls
        labels, annotations, versions = self.node_labels, self.node_annotations, self.versions

        class Core:
            def delete_collection_namespaced_pod(self, namespace, **kwargs):
                calls.append(("delete pods", namespace))
                if namespace in missing:
                    raise ApiException(status=404)

            def delete_namespace(self, name, body=None, _request_timeout=None):
                calls.append(("delete namespace", name))
                if name in missing:
                    raise ApiException(status=404)

            def list_namespace(self, label_selector=None, _request_timeout=None):
                items = [
                    SimpleNamespace(metadata=SimpleNamespace(name=n), status=SimpleNamespace(phase="Active"))
                    for n in labelled
                ]
                return SimpleNamespace(items=items)

            def read_node(self, name, _request_timeout=None):
                meta = SimpleNamespace(
                    labels=dict(labels[name]), annotations=dict(annotations[name]), resource_version=str(versions[name])
                )
                return SimpleNamespace(metadata=meta)

            def patch_node(self, name, body, _request_timeout=None):
                meta = body["metadata"]
                if meta.get("resourceVersion", str(versions[name])) != str(versions[name]):
                    raise ApiException(status=409, reason="Conflict")
                versions[name] += 1
                for target, changes in (
                    (labels[name], meta.get("labels", {})),
                    (annotations[name], meta.get("annotations", {})),
                ):
                    for key, value in changes.items():
                        if value is None:
                            target.pop(key, None)
                        else:
                            target[key] = value

        class Resource:
            def __init__(self, kind):
                self.kind = kind

            def delete(self, name, namespace=None, body=None, _request_timeout=None):
                calls.append((f"delete {self.kind}", name))
                if name in missing:
                    raise ApiException(status=404)

        self.core = Core()
        self.dynamic = SimpleNamespace(resources=SimpleNamespace(get=lambda api_version, kind: Resource(kind)))


def obj(kind, name, namespace=None, api_version="v1"):
    meta = {"name": name, **({"namespace": namespace} if namespace else {})}
    return {"apiVersion": api_version, "kind": kind, "metadata": meta}


def test_cleanup_deletes_cluster_scoped_objects_and_namespaces_including_labelled_ones():
    cluster = FakeCluster(labelled=["cp-left-over"], missing=["pv-gone"])
    tracker = ResourceTracker("r1")
    tracker.register_namespace(cluster, "cp-ns-1")
    tracker.register(cluster, obj("ConfigMap", "inside", "cp-ns-1"), namespaced=True)
    tracker.register(cluster, obj("ConfigMap", "elsewhere", "default"), namespaced=True)
    tracker.register(cluster, obj("PersistentVolume", "pv-1"), namespaced=False)
    tracker.register(cluster, obj("PersistentVolume", "pv-gone"), namespaced=False)
    tracker.register(cluster, obj("StorageClass", "slow", api_version="storage.k8s.io/v1"), namespaced=False)
    assert tracker.cleanup() == []
    assert cluster.calls == [
        ("delete StorageClass", "slow"),
        ("delete PersistentVolume", "pv-gone"),
        ("delete PersistentVolume", "pv-1"),
        ("delete ConfigMap", "elsewhere"),
        ("delete pods", "cp-ns-1"),
        ("delete namespace", "cp-ns-1"),
        ("delete pods", "cp-left-over"),
        ("delete namespace", "cp-left-over"),
    ]


def test_cleanup_is_idempotent():
    cluster = FakeCluster()
    tracker = ResourceTracker("r1")
    tracker.register(cluster, obj("PersistentVolume", "pv-1"), namespaced=False)
    tracker.cleanup()
    cluster.calls.clear()
    assert tracker.cleanup() == [] and cluster.calls == []


def test_node_labels_come_back():
    cluster = FakeCluster()
    tracker = ResourceTracker("r1")
    tracker.label_node(cluster, "node-1", "zone", "b")
    tracker.label_node(cluster, "node-1", "zone", "c")
    tracker.label_node(cluster, "node-1", "disk", "ssd")
    assert cluster.node_labels["node-1"] == {"zone": "c", "disk": "ssd"}
    tracker.cleanup()
    assert cluster.node_labels["node-1"] == {"zone": "a"}


def test_a_step_recorded_once_runs_once_per_cleanup_and_can_be_recorded_again_after():
    cluster = FakeCluster()
    tracker = ResourceTracker("r1")
    ran = []
    tracker.on_cleanup(cluster, "release node1", lambda: ran.append(1), once="node1 n")
    tracker.on_cleanup(cluster, "release node1", lambda: ran.append(2), once="node1 n")
    tracker.cleanup()
    assert ran == [1]
    # a later module on the same (session) cluster takes the label again: its release is recorded
    tracker.on_cleanup(cluster, "release node1", lambda: ran.append(3), once="node1 n")
    tracker.cleanup()
    assert ran == [1, 3]


def test_errors_other_than_404_are_reported_and_cleanup_goes_on():
    cluster = FakeCluster()

    def broken():
        raise ApiException(status=500, reason="Internal Server Error")

    tracker = ResourceTracker("r1")
    tracker.on_cleanup(cluster, "undo something", broken)
    tracker.register_namespace(cluster, "cp-ns")
    assert tracker.cleanup() == ["undo something: HTTP 500 Internal Server Error"]
    assert ("delete namespace", "cp-ns") in cluster.calls


def test_a_test_scope_undoes_what_the_test_registered_latest_first_and_its_namespace_last():
    cluster = FakeCluster()
    tracker = ResourceTracker("r1")
    tracker.on_cleanup(cluster, "module-wide", lambda: cluster.calls.append(("module-wide",)), scope="cluster")
    with tracker.test_scope(cluster, "test_a"):
        tracker.register_namespace(cluster, "cp-ns")
        tracker.register(cluster, obj("Pod", "p", "cp-ns"), namespaced=True)  # goes with its namespace
        tracker.register(cluster, obj("PersistentVolume", "pv-1"), namespaced=False)
        tracker.on_cleanup(cluster, "free node port", lambda: cluster.calls.append(("free node port",)))
        tracker.on_cleanup(cluster, "release label", lambda: cluster.calls.append(("label",)), scope="cluster")
    assert cluster.calls == [
        ("free node port",),
        ("delete PersistentVolume", "pv-1"),
        ("delete pods", "cp-ns"),
        ("delete namespace", "cp-ns"),
    ]
    cluster.calls.clear()
    tracker.cleanup(cluster)  # the cluster's own steps, latest first; cp-ns is not deleted again
    assert cluster.calls == [("label",), ("module-wide",)]


def test_cleanup_during_an_open_test_scope_runs_it_and_the_scope_then_closes_quietly():
    cluster = FakeCluster()
    tracker = ResourceTracker("r1")
    with tracker.test_scope(cluster, "test_a"):
        tracker.register_namespace(cluster, "cp-ns")
        tracker.cleanup()  # SIGINT during the test
        assert ("delete namespace", "cp-ns") in cluster.calls
        cluster.calls.clear()
    assert cluster.calls == []


def test_a_node_label_held_by_two_processes_comes_back_when_the_last_lets_go():
    cluster = FakeCluster()
    first, second = ResourceTracker("r1", owner="gw0"), ResourceTracker("r1", owner="gw1")
    first.label_node(cluster, "node-1", "node", "node1")
    second.label_node(cluster, "node-1", "node", "node1")
    first.label_node(cluster, "node-1", "node", "node1")  # again: one release step only
    assert cluster.node_labels["node-1"] == {"zone": "a", "node": "node1"}

    first.cleanup()
    assert cluster.node_labels["node-1"]["node"] == "node1", "gw1 still holds it"
    second.cleanup()
    assert cluster.node_labels["node-1"] == {"zone": "a"}
    assert cluster.node_annotations["node-1"] == {}


def test_a_node_label_held_at_another_value_by_someone_else_is_refused():
    cluster = FakeCluster()
    ResourceTracker("r1", owner="gw0").label_node(cluster, "node-1", "zone", "b")
    with pytest.raises(LabelConflict, match=r"label zone is held at 'b' by \['r1/gw0'\]; cannot set it to 'c'"):
        ResourceTracker("r1", owner="gw1").label_node(cluster, "node-1", "zone", "c")


def test_a_lease_change_computed_from_a_stale_node_is_computed_again():
    cluster = FakeCluster()
    real_read = cluster.core.read_node
    reads = []

    def read_then_someone_else_patches(name, _request_timeout=None):
        node = real_read(name)
        reads.append(1)
        if len(reads) == 1:
            cluster.versions[name] += 1  # another process changed the node meanwhile
        return node

    cluster.core.read_node = read_then_someone_else_patches
    node_labels.take(cluster.core, "node-1", "node", "node1", "r1/main")
    assert len(reads) == 2 and cluster.node_labels["node-1"]["node"] == "node1"


def test_sigint_runs_cleanup_then_raises_keyboard_interrupt():
    # a process started in the background by a non-interactive shell (a CI script) has SIGINT
    # ignored; the later Ctrl-C acts as the handler found, so give it Python's own
    outer = signal.signal(signal.SIGINT, signal.default_int_handler)
    cleaned = []
    before = signal.getsignal(signal.SIGINT)
    now = [100.0]
    restore = install_signal_cleanup(lambda: cleaned.append(True), clock=lambda: now[0])
    try:
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
        assert cleaned == [True]
        # tox hands a terminal's Ctrl-C on at once (measured: twice): the same stop, ignored
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGINT)
        assert cleaned == [True]
        now[0] += ECHO_SECONDS
        with pytest.raises(KeyboardInterrupt):  # a second Ctrl-C later acts normally
            os.kill(os.getpid(), signal.SIGINT)
        assert cleaned == [True]
        assert signal.getsignal(signal.SIGINT) is before
    finally:
        restore()
        signal.signal(signal.SIGINT, outer)


def test_sighup_diverts_the_output_then_cleans_up_and_later_ones_only_divert(monkeypatch, tmp_path):
    """SIGHUP: the terminal closed or the parent (tox) died; what pytest writes goes to a file.
    stopping.divert_output is replaced by a recorder here (the real one would move this test
    run's own output: see test_stopping)."""
    diverted = []
    monkeypatch.setattr(stopping, "divert_output", lambda path: diverted.append(path))
    cleaned = []
    now = [100.0]
    log = tmp_path / "hangup.log"
    restore = install_signal_cleanup(lambda: cleaned.append(True), hangup_log=log, clock=lambda: now[0])
    try:
        with pytest.raises(stopping.Stopped) as info:
            os.kill(os.getpid(), signal.SIGHUP)
        assert info.value.returncode == 129 and cleaned == [True] and diverted == [log]
        now[0] += 60
        os.kill(os.getpid(), signal.SIGHUP)  # never a reason to stop harder: diverts again, nothing more
        assert cleaned == [True] and diverted == [log, log]
    finally:
        restore()


def test_sigterm_with_sighup_just_after_is_one_stop(monkeypatch):
    """`timeout` signals tox and pytest together; tox dies at once and its death adds SIGHUP."""
    monkeypatch.setattr(stopping, "divert_output", lambda path: None)
    cleaned = []
    restore = install_signal_cleanup(lambda: cleaned.append(True), clock=lambda: 100.0)
    try:
        with pytest.raises(stopping.Stopped):
            os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGHUP)
        os.kill(os.getpid(), signal.SIGTERM)
        assert cleaned == [True]
    finally:
        restore()


def test_sigterm_runs_cleanup_then_exits_pytest():
    cleaned = []
    restore = install_signal_cleanup(lambda: cleaned.append(True))
    try:
        with pytest.raises(stopping.Stopped) as info:
            os.kill(os.getpid(), signal.SIGTERM)
        assert info.value.returncode == 143
        assert cleaned == [True]
    finally:
        restore()
