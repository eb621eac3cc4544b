"""ResourceTracker cleanup and the signal handlers. The cluster is a FAKE recording the delete
and patch calls it receives (no API server)."""

import os
import signal
from types import SimpleNamespace

import pytest
from kubernetes.client import ApiException

from clusterproof.tracker import ResourceTracker, install_signal_cleanup


class FakeCluster:
    """Fake Cluster: core/dynamic record calls; names in `missing` answer 404."""

    def __init__(self, name="c1", labelled=(), missing=()):
        self.name = name
        self.calls = []
        self.node_labels = {"node-1": {"zone": "a"}}
        missing = set(missing)
        calls = self.calls
        labels = self.node_labels

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

            def read_node(self, name):
                return SimpleNamespace(metadata=SimpleNamespace(labels=dict(labels[name])))

            def patch_node(self, name, body, _request_timeout=None):
                for key, value in body["metadata"]["labels"].items():
                    if value is None:
                        labels[name].pop(key, None)
                    else:
                        labels[name][key] = value

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


def test_release_namespace_forgets_what_was_inside():
    cluster = FakeCluster()
    tracker = ResourceTracker("r1")
    tracker.register_namespace(cluster, "cp-ns")
    tracker.register(cluster, obj("Pod", "p", "cp-ns"), namespaced=True)
    tracker.release_namespace(cluster, "cp-ns")
    cluster.calls.clear()
    tracker.cleanup()
    assert cluster.calls == []


def test_sigint_runs_cleanup_then_raises_keyboard_interrupt():
    cleaned = []
    before = signal.getsignal(signal.SIGINT)
    restore = install_signal_cleanup(lambda: cleaned.append(True))
    try:
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
        assert cleaned == [True]
        assert signal.getsignal(signal.SIGINT) is before  # a second Ctrl-C acts normally
    finally:
        restore()


def test_sigterm_runs_cleanup_then_exits_pytest():
    cleaned = []
    restore = install_signal_cleanup(lambda: cleaned.append(True))
    try:
        with pytest.raises(pytest.exit.Exception) as info:
            os.kill(os.getpid(), signal.SIGTERM)
        assert info.value.returncode == 143
        assert cleaned == [True]
    finally:
        restore()
