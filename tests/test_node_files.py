"""Files a run writes on the nodes (clusterproof.node_files, ResourceTracker.node_path,
jigs.volume.NodeFiles): declared and recorded on the cluster before the write, removed by the
test's cleanup, left recorded for the sweep when that fails or the run is killed; skipped where
the nodes cannot be reached. The API server is a FAKE holding ConfigMaps in a dict; the shell on
the nodes is a FAKE mechanism recording each command and answering a programmed exit code."""

from __future__ import annotations

import json
import subprocess

import pytest
from kubernetes import client
from kubernetes.client import ApiException

from clusterproof.cluster import Cluster
from clusterproof.jigs.volume import NodeFiles
from clusterproof.node_exec import NoNodeExec
from clusterproof.node_files import (
    EMPTY_DIR,
    TREE,
    Entry,
    entries_of,
    node_dir,
    node_name,
    record_name,
    removal_argv,
    sweepable,
)
from clusterproof.run import RUN_LABEL
from clusterproof.run_records import RECORDS_NAMESPACE, REGISTRY_LABEL
from clusterproof.tracker import ResourceTracker


class FakeCore:
    """FAKE CoreV1Api: ConfigMaps of the records' namespace in a dict, namespaces made recorded."""

    def __init__(self):
        self.config_maps = {}
        self.calls = []

    def create_namespace(self, body, _request_timeout=None):
        self.calls.append(("create namespace", body["metadata"]["name"]))

    def create_namespaced_config_map(self, namespace, body, _request_timeout=None):
        assert namespace == RECORDS_NAMESPACE
        if body["metadata"]["name"] in self.config_maps:
            raise ApiException(status=409)
        self.calls.append(("create ConfigMap",))
        self.config_maps[body["metadata"]["name"]] = body

    def replace_namespaced_config_map(self, name, namespace, body, _request_timeout=None):
        if name not in self.config_maps:
            raise ApiException(status=404)
        self.calls.append(("replace ConfigMap",))
        self.config_maps[name] = body
        return body

    def delete_namespaced_config_map(self, name, namespace, _request_timeout=None):
        self.calls.append(("delete ConfigMap",))
        self.config_maps.pop(name)


class FakeNodeShell:
    """FAKE node access: records (node, argv); `exit(node, argv)` is the exit code each answers."""

    mechanism = "docker"

    def __init__(self, exit=lambda node, argv: 0):
        self.exit = exit
        self.commands = []

    def unavailable(self):
        return None

    def __call__(self, node, argv, *, input, check, timeout):
        self.commands.append((node, list(argv)))
        return subprocess.CompletedProcess(list(argv), self.exit(node, list(argv)), "", "Read-only file system")


def a_cluster(shell):
    cluster = Cluster(name="c1", kubeconfig=None, context="c1", provider="existing", api=client.ApiClient(),
                      node_exec=shell)  # fmt: skip
    cluster.core = FakeCore()
    return cluster


def recorded(cluster, run_id="r1", owner="main"):
    found = cluster.core.config_maps.get(record_name(run_id, owner))
    return None if found is None else {n: [(e.path, e.how) for e in es] for n, es in entries_of(found["data"]).items()}


def test_a_node_path_is_recorded_on_the_cluster_before_the_write_and_its_record_goes_with_its_removal():
    shell = FakeNodeShell()
    cluster = a_cluster(shell)
    tracker = ResourceTracker("r1", owner="main")
    tracker.node_path(cluster, ["w1", "w2"], "/tmp/clusterproof-r1", tree=False)
    tracker.node_path(cluster, ["w1"], "/tmp/clusterproof-r1/hostpath")

    assert shell.commands == []  # recorded first: the write is the caller's, after this
    body = cluster.core.config_maps[record_name("r1", "main")]
    assert body["metadata"]["labels"] == {REGISTRY_LABEL: "node-files", RUN_LABEL: "r1"}
    assert recorded(cluster) == {
        "w1": [("/tmp/clusterproof-r1", EMPTY_DIR), ("/tmp/clusterproof-r1/hostpath", TREE)],
        "w2": [("/tmp/clusterproof-r1", EMPTY_DIR)],
    }

    assert tracker.cleanup(cluster) == []
    assert shell.commands == [  # latest first
        ("w1", removal_argv([Entry("/tmp/clusterproof-r1/hostpath")])),
        ("w2", removal_argv([Entry("/tmp/clusterproof-r1", EMPTY_DIR)])),
        ("w1", removal_argv([Entry("/tmp/clusterproof-r1", EMPTY_DIR)])),
    ]
    assert recorded(cluster) is None and cluster.core.calls[-1] == ("delete ConfigMap",)


def test_a_removal_that_fails_is_reported_and_stays_recorded_for_the_sweep():
    cluster = a_cluster(FakeNodeShell(exit=lambda node, argv: 1 if node == "w2" else 0))
    tracker = ResourceTracker("r1", owner="main")
    tracker.node_path(cluster, ["w1", "w2"], "/tmp/clusterproof-r1/types-abc")
    errors = tracker.cleanup(cluster)
    assert errors == ["remove /tmp/clusterproof-r1/types-abc on node w2: RuntimeError: exit 1: Read-only file system"]
    assert recorded(cluster) == {"w2": [("/tmp/clusterproof-r1/types-abc", TREE)]}


def test_a_killed_run_leaves_its_record():
    """Nothing runs the cleanup of a SIGKILLed process: what it declared is on the cluster."""
    cluster = a_cluster(FakeNodeShell())
    ResourceTracker("r1", owner="gw1").node_path(cluster, ["w1"], "/var/log/clusterproof-r1-abc.marker")
    assert recorded(cluster, owner="gw1") == {"w1": [("/var/log/clusterproof-r1-abc.marker", TREE)]}


def test_node_files_are_never_declared_where_the_nodes_cannot_be_reached_the_test_skips():
    cluster = a_cluster(NoNodeExec("no shell on the nodes: --node-access none"))
    files = NodeFiles(cluster, ResourceTracker("r1"), "r1")
    with pytest.raises(pytest.skip.Exception, match="--node-access none"):
        files.keep_clean(["w1"], f"{files.run_dir}/hostpath")
    assert cluster.core.config_maps == {}


def test_make_dir_declares_and_makes_only_what_is_missing():
    shell = FakeNodeShell(exit=lambda node, argv: 1 if argv[:2] == ["test", "-d"] and node == "w2" else 0)
    cluster = a_cluster(shell)
    files = NodeFiles(cluster, ResourceTracker("r1", owner="main"), "r1")
    files.make_dir(["w1", "w2"], "/node-v")
    assert recorded(cluster) == {"w2": [("/node-v", EMPTY_DIR)]}
    assert shell.commands[-1] == ("w2", ["sh", "-c", 'mkdir -p "$1"', "sh", "/node-v"])
    assert not any("mkdir" in " ".join(argv) for node, argv in shell.commands if node == "w1")


def test_names_of_the_runs_own():
    assert node_dir("20261201-101500-ab12") == "/tmp/clusterproof-20261201-101500-ab12"
    name = node_name("20261201-101500-ab12", "cp-1015ab12-hostpath-x")
    assert name.startswith("clusterproof-20261201-101500-ab12-") and len(name) == len("clusterproof-") + 20 + 7
    assert sweepable(Entry(f"/node-v/{name}"), "20261201-101500-ab12") is None
    assert sweepable(Entry(f"/var/log/{name}.marker"), "20261201-101500-ab12") is None


def test_a_record_written_by_hand_reads_as_only_its_entries():
    data = {"w1": json.dumps([["/a", "tree"], "junk", [1, 2]]), "w2": "not json", "w3": json.dumps({"x": 1})}
    assert entries_of(data) == {"w1": [Entry("/a", "tree")]}
