"""The liveness rule, what a sweep selects and removes, the run records, the CLI. All against
FAKES (declared below): a fake API server (namespaces, PVs, StorageClasses, nodes, Leases,
ConfigMaps) that ignores label selectors (so the sweep's own filtering is what is tested), a fake
shell on the nodes (records the commands), a fake process table, a fake kind. No cluster, no docker."""

from __future__ import annotations

import json
import os
import subprocess
import time
from datetime import UTC, datetime
from email.utils import formatdate
from types import SimpleNamespace

import pytest
from kubernetes.client import ApiException

from clusterproof import journal, liveness, node_labels, sweep
from clusterproof.kind_clusters import Claim, Claims
from clusterproof.liveness import Machine, RunRecord
from clusterproof.node_files import EMPTY_DIR, TREE, Entry, NodeFileRecord, removal_argv
from clusterproof.run import RUN_LABEL, STATE_LABEL
from clusterproof.run_records import (
    RECORDS_NAMESPACE,
    ClusterRecords,
    HostRegistry,
    RunRecorder,
    lease_name,
)

HERE = Machine("host-a", "boot-1", "pid:[4026531836]")
NOW = 1_800_000_000.0
STATE = STATE_LABEL


def record(run_id, pid=100, start=5000, machine=HERE, heartbeat=NOW, owner="main", **fields):
    return RunRecord(run_id, owner, pid, start, machine, started=NOW - 600, heartbeat=heartbeat, **fields)


def processes(**running):
    """FAKE process table: pid -> start time (clock ticks)."""
    table = {int(pid.lstrip("p")): start for pid, start in running.items()}
    return table.get


# --- the liveness rule ----------------------------------------------------------------------------


def test_a_run_on_this_machine_is_alive_exactly_while_its_process_runs():
    r = record("r1", pid=100, start=5000)
    assert liveness.judge(r, HERE, start_of=processes(p100=5000), now=NOW).alive
    gone = liveness.judge(r, HERE, start_of=processes(), now=NOW)
    assert not gone.alive and gone.why == "pid 100 on host-a is gone"


def test_a_reused_pid_is_not_the_run():
    verdict = liveness.judge(record("r1", pid=100, start=5000), HERE, start_of=processes(p100=7777), now=NOW)
    assert not verdict.alive and "another process" in verdict.why


def test_on_this_machine_the_heartbeat_does_not_matter():
    old = record("r1", heartbeat=NOW - 86400)
    assert liveness.judge(old, HERE, start_of=processes(p100=5000), now=NOW).alive


def test_a_run_elsewhere_is_alive_while_its_heartbeat_is_fresh():
    elsewhere = Machine("host-b", "boot-9", "pid:[4026531836]")
    running_here = processes(p100=5000)  # the same PID runs here: irrelevant for another host
    fresh = record("r1", machine=elsewhere, heartbeat=NOW - 60)
    stale = record("r1", machine=elsewhere, heartbeat=NOW - liveness.STALE_AFTER - 1)
    assert liveness.judge(fresh, HERE, start_of=running_here, now=NOW).alive
    verdict = liveness.judge(stale, HERE, start_of=running_here, now=NOW)
    assert not verdict.alive and "no heartbeat for 301s" in verdict.why


def test_this_host_before_a_reboot_or_in_another_pid_namespace_goes_by_the_heartbeat():
    for other in (Machine("host-a", "boot-0", HERE.pid_ns), Machine("host-a", "boot-1", "pid:[4026532000]")):
        stale = record("r1", machine=other, heartbeat=NOW - 3600)
        verdict = liveness.judge(stale, HERE, start_of=processes(p100=5000), now=NOW)
        assert not verdict.alive and "another boot or PID namespace" in verdict.why
        assert liveness.judge(record("r1", machine=other, heartbeat=NOW), HERE, now=NOW).alive


def test_an_ended_run_is_dead_even_if_its_process_still_runs():
    ended = record("r1", ended=NOW - 5)
    assert not liveness.judge(ended, HERE, start_of=processes(p100=5000), now=NOW).alive


def test_a_run_is_alive_while_any_of_its_processes_is():
    workers = [record("r1", pid=100, owner="gw0"), record("r1", pid=101, start=6000, owner="gw1")]
    assert liveness.judge_run(workers, HERE, start_of=processes(p101=6000), now=NOW).alive
    assert not liveness.judge_run(workers, HERE, start_of=processes(), now=NOW).alive


def test_process_start_of_this_process_and_of_an_exited_one():
    assert liveness.process_start(os.getpid()) == liveness.process_start(os.getpid()) is not None
    child = subprocess.Popen(["true"])
    deadline = time.monotonic() + 10
    while liveness.process_start(child.pid) is not None and time.monotonic() < deadline:
        time.sleep(0.01)  # exited but not reaped: a zombie counts as gone
    assert liveness.process_start(child.pid) is None
    child.wait()


def test_records_survive_json_and_junk_is_not_a_record():
    r = record("r1", provider="kind", keep_clusters=True, run_dir="/x")
    assert RunRecord.from_json(r.to_json()) == r
    newer = json.loads(r.to_json()) | {"from_a_newer_schema": 1}
    assert RunRecord.from_json(json.dumps(newer)).extra == {"from_a_newer_schema": 1}
    for junk in ("", "{", "[]", '{"run_id": 1}', json.dumps({"run_id": "x", "pid": "1"})):
        assert RunRecord.from_json(junk) is None


# --- a FAKE API server ----------------------------------------------------------------------------


def meta(name, labels=None, created=NOW - 3600, deleting=False, annotations=None):
    return SimpleNamespace(
        name=name,
        labels=labels,
        annotations=annotations,
        creation_timestamp=datetime.fromtimestamp(created, UTC),
        deletion_timestamp=datetime.fromtimestamp(NOW, UTC) if deleting else None,
    )


class FakeApi:
    """FAKE API server. Lists ignore label selectors (whatever the server does with a selector,
    the sweep must pick only its own objects). Every change is recorded in `calls`."""

    def __init__(self):
        self.calls = []
        self.namespaces = {}
        self.pvs = {}
        self.pods = {}  # "ns/name" -> True (pods outside run namespaces: the PV controller's recycler pods)
        self.storage_classes = {}
        self.nodes = {}  # name -> {"labels": {}, "annotations": {}, "version": int}
        self.leases = {}
        self.config_maps = {}  # in the records' namespace: name -> SimpleNamespace(metadata, data)
        self.services = {}  # "ns/name" -> spec dict
        self.stored = {}  # lease name -> when the server stored its last change (its own clock)
        self.server_clock = time.time
        self.node_commands = []  # (node, argv) run through the fake node access
        self.node_exit = 0  # what every node command exits with
        self.fail = set()  # names whose delete answers 500
        api = self

        class Core:
            def list_namespace(self, label_selector=None, _request_timeout=None):
                return SimpleNamespace(items=list(api.namespaces.values()))

            def delete_collection_namespaced_pod(self, namespace, **kw):
                api.calls.append(("delete pods", namespace))

            def delete_namespace(self, name, body=None, _request_timeout=None):
                api._delete(api.namespaces, "namespace", name)

            def create_namespace(self, body, _request_timeout=None):
                name = body["metadata"]["name"]
                if name in api.namespaces:
                    raise ApiException(status=409)
                api.calls.append(("create namespace", name))
                api.namespaces[name] = SimpleNamespace(
                    metadata=meta(name, body["metadata"].get("labels")), status=SimpleNamespace(phase="Active")
                )

            def list_persistent_volume(self, label_selector=None, _request_timeout=None):
                return SimpleNamespace(items=list(api.pvs.values()))

            def read_namespaced_config_map(self, name, namespace, _request_timeout=None):
                if name not in api.config_maps:
                    raise ApiException(status=404)
                return api.config_maps[name]

            def patch_namespaced_service(self, name, namespace, body, _content_type=None, _request_timeout=None):
                api.calls.append(("patch Service", f"{namespace}/{name}", _content_type))
                spec = api.services[f"{namespace}/{name}"]
                for key, value in body["spec"].items():
                    if value is None:
                        spec.pop(key, None)
                    else:
                        spec[key] = value

            def delete_persistent_volume(self, name, _request_timeout=None):
                api._delete(api.pvs, "PersistentVolume", name)

            def delete_namespaced_pod(self, name, namespace, grace_period_seconds=None, _request_timeout=None):
                api._delete(api.pods, "pod", f"{namespace}/{name}")

            def list_node(self, _request_timeout=None):
                return SimpleNamespace(items=[self.read_node(n) for n in api.nodes])

            def read_node(self, name, _request_timeout=None):
                node = api.nodes[name]
                return SimpleNamespace(
                    metadata=SimpleNamespace(
                        name=name,
                        labels=dict(node["labels"]),
                        annotations=dict(node["annotations"]),
                        resource_version=str(node["version"]),
                    )
                )

            def create_namespaced_config_map(self, namespace, body, _request_timeout=None):
                assert namespace == RECORDS_NAMESPACE
                name = body["metadata"]["name"]
                if name in api.config_maps:
                    raise ApiException(status=409)
                api.calls.append(("create ConfigMap", name))
                api.config_maps[name] = SimpleNamespace(
                    metadata=meta(name, body["metadata"]["labels"]), data=dict(body["data"])
                )

            def replace_namespaced_config_map(self, name, namespace, body, _request_timeout=None):
                if name not in api.config_maps:
                    raise ApiException(status=404)
                api.calls.append(("replace ConfigMap", name))
                api.config_maps[name].data = dict(body["data"])

            def list_namespaced_config_map(self, namespace, label_selector=None, _request_timeout=None):
                return SimpleNamespace(items=list(api.config_maps.values()))

            def patch_namespaced_config_map(self, name, namespace, body, _request_timeout=None):
                if name not in api.config_maps:
                    raise ApiException(status=404)
                api.calls.append(("patch ConfigMap", name))
                found = api.config_maps[name]
                for key, value in body["data"].items():
                    if value is None:
                        found.data.pop(key, None)
                    else:
                        found.data[key] = value
                return SimpleNamespace(metadata=found.metadata, data=dict(found.data) or None)

            def delete_namespaced_config_map(self, name, namespace, _request_timeout=None):
                api._delete(api.config_maps, "ConfigMap", name)

            def patch_node(self, name, body, _request_timeout=None):
                node = api.nodes[name]
                api.calls.append(("patch node", name))
                node["version"] += 1
                for where in ("labels", "annotations"):
                    for key, value in body["metadata"].get(where, {}).items():
                        if value is None:
                            node[where].pop(key, None)
                        else:
                            node[where][key] = value

        class Storage:
            def list_storage_class(self, label_selector=None, _request_timeout=None):
                return SimpleNamespace(items=list(api.storage_classes.values()))

            def delete_storage_class(self, name, _request_timeout=None):
                api._delete(api.storage_classes, "StorageClass", name)

        class Coordination:
            def patch_namespaced_lease(self, name, namespace, body, _request_timeout=None):
                if name not in api.leases:
                    raise ApiException(status=404)
                api.calls.append(("renew lease", name))
                api.leases[name] = body
                api.stored[name] = api.server_clock()  # a field's value changed: managedFields time

            def create_namespaced_lease(self, namespace, body, _request_timeout=None):
                if RECORDS_NAMESPACE not in api.namespaces:
                    raise ApiException(status=404)
                api.calls.append(("create lease", body["metadata"]["name"]))
                api.leases[body["metadata"]["name"]] = body
                api.stored[body["metadata"]["name"]] = api.server_clock()

            def list_namespaced_lease_with_http_info(self, namespace, label_selector=None, _request_timeout=None):
                items = [
                    SimpleNamespace(
                        metadata=SimpleNamespace(
                            annotations=b["metadata"]["annotations"],
                            managed_fields=[SimpleNamespace(time=datetime.fromtimestamp(api.stored[name], UTC))],
                        ),
                        spec=SimpleNamespace(
                            renew_time=datetime.strptime(b["spec"]["renewTime"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(
                                tzinfo=UTC
                            )
                        ),
                    )
                    for name, b in api.leases.items()
                ]
                return SimpleNamespace(items=items), 200, {"Date": formatdate(api.server_clock(), usegmt=True)}

            def delete_namespaced_lease(self, name, namespace, _request_timeout=None):
                api._delete(api.leases, "lease", name)

        self.core, self.storage, self.coordination = Core(), Storage(), Coordination()

    def _delete(self, store, kind, name):
        if name in self.fail:
            raise ApiException(status=500, reason="Internal Server Error")
        if name not in store:
            raise ApiException(status=404)
        self.calls.append((f"delete {kind}", name))
        del store[name]

    def namespace(self, name, labels=None, **kw):
        phase = "Terminating" if kw.get("deleting") else "Active"
        self.namespaces[name] = SimpleNamespace(metadata=meta(name, labels, **kw), status=SimpleNamespace(phase=phase))

    def pv(self, name, labels=None, reclaim="Delete", **kw):
        spec = SimpleNamespace(persistent_volume_reclaim_policy=reclaim)
        self.pvs[name] = SimpleNamespace(metadata=meta(name, labels, **kw), spec=spec)

    def storage_class(self, name, labels=None, **kw):
        self.storage_classes[name] = SimpleNamespace(metadata=meta(name, labels, **kw))

    def node(self, name, labels, leases):
        annotations = {node_labels.LEASES_ANNOTATION: json.dumps(leases)} if leases else {}
        self.nodes[name] = {"labels": dict(labels), "annotations": annotations, "version": 1}

    def changes(self):
        return [c for c in self.calls if not c[0].startswith(("renew", "create"))]

    def node_files(self, run_id, owner="main", **nodes):
        """A run's record of its node files: node -> [(path, how)]."""
        record = NodeFileRecord(self.core, run_id, owner)
        for node, entries in nodes.items():
            for path, how in entries:
                record.add([node], Entry(path, how))
        return record.name

    def node_exec(self, node, *argv, input=None, check=True, timeout=60):
        """FAKE node access: records the command, answers `node_exit`."""
        self.node_commands.append((node, list(argv)))
        return subprocess.CompletedProcess(list(argv), self.node_exit, "", "rm: cannot remove: Read-only file system")

    def side(self, node_access="yes"):
        """node_access: "yes" (the fake one), or the reason there is none."""
        return sweep.ClusterSide(
            "fake",
            self.core,
            self.storage,
            ClusterRecords("fake", self.core, self.coordination),
            node_exec=self.node_exec,
            why_no_node_exec=lambda: None if node_access == "yes" else node_access,
        )


def a_shared_cluster():
    """Dead run `dead` (its PID 100 is gone) and live run `live` (PID 200 runs) on one cluster,
    beside things that are not the suite's and an upgrade's durable state."""
    api = FakeApi()
    api.namespace("cp-dead-a", {RUN_LABEL: "dead"})
    api.namespace("cp-dead-going", {RUN_LABEL: "dead"}, deleting=True)
    api.namespace("cp-live-a", {RUN_LABEL: "live"})
    api.namespace("kube-system")
    api.namespace("team-x", {"app": "x"})
    api.namespace("cp-upgrade-durable", {RUN_LABEL: "dead", STATE: "dead"})
    api.namespace("cp-upgrade-only-state", {STATE: "up1"})
    api.pv("pv-dead", {RUN_LABEL: "dead"})
    api.pv("pv-live", {RUN_LABEL: "live"})
    api.pv("pv-theirs")
    api.pv("pv-upgrade", {RUN_LABEL: "dead", STATE: "dead"})
    api.storage_class("sc-dead", {RUN_LABEL: "dead"})
    api.storage_class("standard")
    shared = {"value": "node1", "before": None, "holders": ["dead/main", "live/gw0"]}
    api.node("w1", {"node": "node1"}, {"node": shared})
    api.node("w2", {"disk": "ssd"}, {"disk": {"value": "ssd", "before": "hdd", "holders": ["dead/main"]}})
    api.node("w3", {"zone": "a"}, {})
    records = ClusterRecords("fake", api.core, api.coordination)
    records.write(record("dead", pid=100))
    records.write(record("live", pid=200, owner="gw0"))
    records.write(record("finished", pid=300, ended=NOW - 100))
    api.calls.clear()
    return api


def test_a_sweep_removes_what_a_dead_run_left_and_nothing_else():
    api = a_shared_cluster()
    report = sweep.sweep_cluster(api.side(), [], this_run="me", machine=HERE, start_of=processes(p200=5000), now=NOW)
    assert api.changes() == [
        ("delete pods", "cp-dead-a"),
        ("delete namespace", "cp-dead-a"),
        ("delete PersistentVolume", "pv-dead"),
        ("delete StorageClass", "sc-dead"),
        ("patch node", "w1"),
        ("patch node", "w2"),
        ("delete lease", lease_name(record("dead"))),
        ("delete lease", lease_name(record("finished", pid=300))),
    ]
    # node1 is still held by the live run; disk is back to what it was before the dead run
    assert api.nodes["w1"]["labels"] == {"node": "node1"}
    assert json.loads(api.nodes["w1"]["annotations"][node_labels.LEASES_ANNOTATION])["node"]["holders"] == ["live/gw0"]
    assert api.nodes["w2"] == {"labels": {"disk": "hdd"}, "annotations": {}, "version": 2}
    assert set(api.namespaces) >= {"cp-live-a", "kube-system", "team-x", "cp-upgrade-durable", "cp-upgrade-only-state"}
    assert set(api.pvs) == {"pv-live", "pv-theirs", "pv-upgrade"} and set(api.storage_classes) == {"standard"}
    assert list(api.leases) == [lease_name(record("live", pid=200, owner="gw0"))]
    assert report.lines() == [
        "deleted namespace cp-dead-a (run dead: pid 100 on host-a is gone)",
        "deleted PersistentVolume pv-dead (run dead: pid 100 on host-a is gone)",
        "deleted StorageClass sc-dead (run dead: pid 100 on host-a is gone)",
        "released label node on node w1 (lease of dead/main) (run dead: pid 100 on host-a is gone)",
        "released label disk on node w2 (lease of dead/main) (run dead: pid 100 on host-a is gone)",
        "left alone: 3 thing(s) of run live, alive: pid 200 on host-a is running",
    ]


def test_a_dead_runs_recycle_pv_goes_with_its_recycler_pod_and_no_other_pod_is_touched():
    """A run killed while the PV controller recycled its PV (PV-07) left the controller's recycler
    pod in `default`: the sweep deletes it with the PV (seen in the harm matrix, #20). A Recycle PV
    whose recycler pod is already gone is deleted all the same; a live run's recycler pod stays."""
    api = a_shared_cluster()
    api.pv("pv-dead-recycle", {RUN_LABEL: "dead"}, reclaim="Recycle")
    api.pv("pv-dead-recycled", {RUN_LABEL: "dead"}, reclaim="Recycle")
    api.pv("pv-live-recycle", {RUN_LABEL: "live"}, reclaim="Recycle")
    api.pods = {"default/recycler-for-pv-dead-recycle": True, "default/recycler-for-pv-live-recycle": True}
    report = sweep.sweep_cluster(api.side(), [], this_run="me", machine=HERE, start_of=processes(p200=5000), now=NOW)
    deleted = [c for c in api.changes() if c[0] in ("delete PersistentVolume", "delete pod")]
    assert deleted == [
        ("delete PersistentVolume", "pv-dead"),
        ("delete PersistentVolume", "pv-dead-recycle"),
        ("delete pod", "default/recycler-for-pv-dead-recycle"),
        ("delete PersistentVolume", "pv-dead-recycled"),
    ]
    assert api.pods == {"default/recycler-for-pv-live-recycle": True}
    assert not report.failed


def test_a_service_a_dead_run_was_changing_is_put_back_from_its_journal_and_a_live_runs_is_not():
    """ING-02's change of the ingress controller's Service, journaled before it was made (clusterproof.
    journal): the dead run's Service gets its spec back, the entry goes; the live run's stays. A
    second run cannot journal (and so change) a Service another run holds."""
    api = a_shared_cluster()
    api.services["ingress/ctl"] = {"externalIPs": ["10.0.0.9"], "externalTrafficPolicy": "Cluster"}
    api.services["ingress/other"] = {"externalIPs": ["10.0.0.1"]}
    restore = {"externalIPs": None, "externalTrafficPolicy": "Local"}
    journal.hold(api.core, journal.Entry("dead", "ingress", "ctl", restore))
    journal.hold(api.core, journal.Entry("live", "ingress", "other", {"externalIPs": ["10.0.0.2"]}))
    with pytest.raises(journal.Held, match=r"^Service ingress/other is being changed by run live: its original"):
        journal.hold(api.core, journal.Entry("me", "ingress", "other", {"externalIPs": None}))
    api.calls.clear()
    report = sweep.sweep_cluster(api.side(), [], this_run="me", machine=HERE, start_of=processes(p200=5000), now=NOW)
    assert api.changes()[:2] == [
        ("patch Service", "ingress/ctl", journal.MERGE_PATCH),
        ("delete ConfigMap", journal.config_map_name("ingress", "ctl")),
    ]
    assert api.services["ingress/ctl"] == {"externalTrafficPolicy": "Local"}
    assert api.services["ingress/other"] == {"externalIPs": ["10.0.0.1"]}
    assert list(api.config_maps) == [journal.config_map_name("ingress", "other")]
    assert report.lines()[0] == (
        "restored the spec of Service ingress/ctl (externalIPs, externalTrafficPolicy) "
        "(run dead: pid 100 on host-a is gone)"
    )


def test_a_dry_run_says_what_it_would_remove_and_changes_nothing():
    api = a_shared_cluster()
    report = sweep.sweep_cluster(api.side(), [], dry_run=True, machine=HERE, start_of=processes(p200=5000), now=NOW)
    assert api.calls == []
    assert report.lines()[0] == "would delete namespace cp-dead-a (run dead: pid 100 on host-a is gone)"
    assert "would release label disk on node w2 (lease of dead/main) (run dead: pid 100 on host-a is gone)" in (
        report.lines()
    )


def test_a_live_run_recorded_only_on_this_host_is_not_swept():
    """The cluster holds no record of `live` (its Lease could not be written): the host's counts."""
    api = FakeApi()
    api.namespace("cp-live-a", {RUN_LABEL: "live"})
    host = [record("live", pid=200)]
    sweep.sweep_cluster(api.side(), host, machine=HERE, start_of=processes(p200=5000), now=NOW)
    assert api.changes() == []


def test_this_run_is_never_swept_whatever_its_record_says():
    api = FakeApi()
    api.namespace("cp-me-a", {RUN_LABEL: "me"})
    sweep.sweep_cluster(api.side(), [], this_run="me", machine=HERE, now=NOW)
    assert api.changes() == []


def test_a_run_that_left_no_record_is_dead_only_once_its_newest_object_is_a_day_old():
    api = FakeApi()
    api.namespace("cp-young", {RUN_LABEL: "young"}, created=NOW - 3600)
    api.namespace("cp-old", {RUN_LABEL: "old"}, created=NOW - 25 * 3600)
    api.node("w1", {"node": "node1"}, {"node": {"value": "node1", "before": None, "holders": ["undated/main"]}})
    report = sweep.sweep_cluster(api.side(), [], machine=HERE, now=NOW)
    assert api.changes() == [("delete pods", "cp-old"), ("delete namespace", "cp-old")]
    lines = report.lines()
    assert "deleted namespace cp-old (run old: left no record; its newest object is 25h old)" in lines
    assert any(
        line.startswith("left alone: namespace cp-young (run young left no record and its newest object is 1.0h old")
        and "python -m clusterproof.sweep --dead young" in line
        for line in lines
    )
    assert any(line.startswith("left alone: label node on node w1") and "nothing dates it" in line for line in lines)


def test_dead_names_a_run_without_record_but_never_overrules_a_live_record():
    api = FakeApi()
    api.namespace("cp-young", {RUN_LABEL: "young"}, created=NOW - 60)
    api.namespace("cp-live", {RUN_LABEL: "live"}, created=NOW - 60)
    host = [record("live", pid=200)]
    sweep.sweep_cluster(api.side(), host, dead=["young", "live"], machine=HERE, start_of=processes(p200=5000), now=NOW)
    assert api.changes() == [("delete pods", "cp-young"), ("delete namespace", "cp-young")]


def test_a_removal_that_fails_is_reported_and_keeps_the_runs_record():
    api = a_shared_cluster()
    api.fail.add("pv-dead")
    report = sweep.sweep_cluster(api.side(), [], machine=HERE, start_of=processes(p200=5000), now=NOW)
    assert report.errors == ["delete PersistentVolume pv-dead: HTTP 500 Internal Server Error"]
    assert lease_name(record("dead")) in api.leases  # a later sweep still knows whose it is
    assert "pv-dead" in api.pvs and "cp-dead-a" not in api.namespaces


# --- files on the nodes ---------------------------------------------------------------------------


def nodes_with_files():
    """Dead run `dead` left files on w1 and w2; live run `live` has files on w1."""
    api = FakeApi()
    for name in ("w1", "w2", "w3"):
        api.node(name, {}, {})
    records = ClusterRecords("fake", api.core, api.coordination)
    records.write(record("dead", pid=100))
    records.write(record("live", pid=200))
    dead = api.node_files(
        "dead",
        w1=[("/tmp/clusterproof-dead", EMPTY_DIR), ("/tmp/clusterproof-dead/hostpath/cp-x", TREE)],
        w2=[("/node-v", EMPTY_DIR), ("/node-v/clusterproof-dead-a1b2c3", TREE)],
    )
    live = api.node_files("live", w1=[("/tmp/clusterproof-live/pv-1", TREE)])
    api.calls.clear()
    return api, dead, live


def test_a_dead_runs_node_files_are_removed_through_node_access_and_said_so():
    api, dead, live = nodes_with_files()
    report = sweep.sweep_cluster(api.side(), [], machine=HERE, start_of=processes(p200=5000), now=NOW)

    run_dir = "/tmp/clusterproof-dead"
    assert api.node_commands == [
        ("w1", removal_argv([Entry(run_dir, EMPTY_DIR), Entry(f"{run_dir}/hostpath/cp-x")])),
        ("w2", removal_argv([Entry("/node-v", EMPTY_DIR), Entry("/node-v/clusterproof-dead-a1b2c3")])),
    ]
    assert dead not in api.config_maps and set(api.config_maps) == {live}  # its record went with the last node
    assert lease_name(record("dead")) not in api.leases  # nothing of it is left: its run record goes too
    assert report.lines()[:2] == [
        "removed files on node w1: /tmp/clusterproof-dead, /tmp/clusterproof-dead/hostpath/cp-x "
        "(run dead: pid 100 on host-a is gone)",
        "removed files on node w2: /node-v, /node-v/clusterproof-dead-a1b2c3 (run dead: pid 100 on host-a is gone)",
    ]


def test_removal_runs_latest_first_trees_whole_and_directories_only_when_empty(tmp_path):
    """The removal command itself, run by a real shell on a directory here."""
    run_dir, shared, kept = tmp_path / "clusterproof-r1", tmp_path / "node-v", tmp_path / "used-by-others"
    (run_dir / "hostpath" / "cp-ns").mkdir(parents=True)
    (run_dir / "hostpath" / "cp-ns" / "file").write_text("x")
    (shared / "clusterproof-r1-abc").mkdir(parents=True)
    (kept / "theirs").mkdir(parents=True)
    entries = [
        Entry(str(run_dir), EMPTY_DIR),
        Entry(str(run_dir / "hostpath"), EMPTY_DIR),
        Entry(str(run_dir / "hostpath" / "cp-ns")),
        Entry(str(shared), EMPTY_DIR),
        Entry(str(shared / "clusterproof-r1-abc")),
        Entry(str(kept), EMPTY_DIR),
    ]
    done = subprocess.run(removal_argv(entries), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["used-by-others"]
    assert (kept / "theirs").is_dir()


def test_without_node_access_node_files_are_left_saying_why_and_their_records_kept():
    api, dead, _ = nodes_with_files()
    report = sweep.sweep_cluster(
        api.side("no shell on the nodes: --node-access none"), [], machine=HERE, start_of=processes(p200=5000), now=NOW
    )
    assert api.node_commands == [] and dead in api.config_maps and lease_name(record("dead")) in api.leases
    assert (
        "left alone: files on node w1: /tmp/clusterproof-dead, /tmp/clusterproof-dead/hostpath/cp-x "
        "(pid 100 on host-a is gone; not removed from here: no shell on the nodes: --node-access none)"
    ) in report.lines()


def test_a_live_runs_node_files_are_not_touched():
    api, _, live = nodes_with_files()
    sweep.sweep_cluster(api.side(), [], machine=HERE, start_of=processes(p200=5000), now=NOW)
    assert all(node != "w1" or "clusterproof-live" not in " ".join(argv) for node, argv in api.node_commands)
    assert live in api.config_maps


def test_a_record_cannot_make_a_sweep_remove_what_is_not_named_after_its_run():
    api = FakeApi()
    api.node("w1", {}, {})
    api.node_files(
        "dead",
        w1=[
            ("/var/lib/kubelet", TREE),
            ("/tmp/clusterproof-dead/../../etc", TREE),
            ("/tmp/clusterproof-deadbeef", TREE),  # another run's name
            ("/var/log/clusterproof-dead-a1b2c3.marker", TREE),
            ("/node-v", EMPTY_DIR),  # rmdir: nothing but an empty directory goes
        ],
    )
    report = sweep.sweep_cluster(api.side(), [], dead=["dead"], machine=HERE, now=NOW)
    ((node, argv),) = api.node_commands
    assert argv == removal_argv([Entry("/var/log/clusterproof-dead-a1b2c3.marker"), Entry("/node-v", EMPTY_DIR)])
    line = report.lines()[0]
    assert line.startswith("removed files on node w1: /var/log/clusterproof-dead-a1b2c3.marker, /node-v (left: ")
    assert "/var/lib/kubelet is not named after run dead" in line and "not a plain absolute path" in line


def test_a_failed_removal_is_an_error_and_keeps_the_record():
    api, dead, _ = nodes_with_files()
    api.node_exit = 1
    report = sweep.sweep_cluster(api.side(), [], machine=HERE, start_of=processes(p200=5000), now=NOW)
    assert report.errors[0].startswith("remove files on node w1: /tmp/clusterproof-dead")
    assert "exit 1: rm: cannot remove: Read-only file system" in report.errors[0]
    assert dead in api.config_maps and lease_name(record("dead")) in api.leases


def test_files_on_a_node_that_is_gone_are_gone_with_it():
    api, dead, _ = nodes_with_files()
    del api.nodes["w2"]
    report = sweep.sweep_cluster(api.side(), [], machine=HERE, start_of=processes(p200=5000), now=NOW)
    assert [node for node, _ in api.node_commands] == ["w1"] and dead not in api.config_maps
    assert "deleted record of files on node w2 (the node is gone) (run dead: pid 100 on host-a is gone)" in (
        report.lines()
    )


# --- kind clusters on this host ---------------------------------------------------------------------


class FakeKind(sweep.KindHost):
    """FAKE kind and docker: `clusters` listed with their node containers (ID -> created), deletes
    recorded (with the kubeconfig given)."""

    def __init__(self, clusters):
        self.nodes = {name: dict(containers) for name, containers in dict(clusters).items()}
        self.deleted = []

        def run(argv, **kw):
            if argv[1:3] == ["get", "clusters"]:
                return subprocess.CompletedProcess(argv, 0, "\n".join(self.nodes) + "\n", "")
            name, kubeconfig = argv[argv.index("--name") + 1], argv[argv.index("--kubeconfig") + 1]
            self.deleted.append((name, kubeconfig))
            del self.nodes[name]
            return subprocess.CompletedProcess(argv, 0, "", "")

        super().__init__("kind", run=run)

    @property
    def names(self):
        return list(self.nodes)

    def containers(self, name):
        return self.nodes.get(name, {})


def made(name, *ids, at=NOW - 500):
    """A cluster with node containers `ids`, created at `at`."""
    return name, {cid: at for cid in ids}


def kind_run(registry, tmp_path, run_id, pid, *clusters, kept=False, creating=NOW - 550, recorded=True, **fields):
    """A kind run of this host (its record) and the claims it wrote for `clusters` ((name, ids))."""
    registry.write(record(run_id, pid=pid, provider="kind", run_dir=str(tmp_path / "runs" / run_id), **fields))
    for name, ids in clusters:
        kubeconfig = tmp_path / "runs" / run_id / "clusters" / name / "kubeconfig"
        Claims(registry.path).write(
            Claim(name, run_id, "", creating, tuple(ids) if recorded else (), kept=kept, kubeconfig=str(kubeconfig))
        )


def test_kind_clusters_of_dead_runs_are_deleted_and_only_those(tmp_path):
    registry = HostRegistry(tmp_path / "registry")
    kind = FakeKind(
        [
            made("cp-aaaaaaaaaa-quota", "a1", "a2"),
            made("cp-aaaaaaaaaa-services", "a3"),
            made("cp-bbbbbbbbbb-quota", "b1"),
            made("cp-cccccccccc", "c1"),
            made("cp-9999999999-volumes", "n1"),  # a run of this suite that claimed nothing
            made("dev", "u1"),  # the user's own
        ]
    )
    kind_run(
        registry,
        tmp_path,
        "dead-1a2b3c",
        100,
        ("cp-aaaaaaaaaa-quota", ["a1", "a2"]),
        ("cp-aaaaaaaaaa-services", ["a3"]),
    )
    kind_run(registry, tmp_path, "live-4d5e6f", 200, ("cp-bbbbbbbbbb-quota", ["b1"]))
    kind_run(registry, tmp_path, "kept-7a8b9c", 300, ("cp-cccccccccc", ["c1"]), kept=True)
    kubeconfig = tmp_path / "runs" / "dead-1a2b3c" / "clusters" / "cp-aaaaaaaaaa-quota" / "kubeconfig"
    kubeconfig.parent.mkdir(parents=True)
    kubeconfig.write_text("the run's own kubeconfig")
    report = sweep.sweep_host(kind, registry, machine=HERE, docker="", start_of=processes(p200=5000), now=NOW)
    assert [name for name, _ in kind.deleted] == ["cp-aaaaaaaaaa-quota", "cp-aaaaaaaaaa-services"]
    assert kind.deleted[0][1] == str(kubeconfig)  # kind removes its entry from the run's kubeconfig
    assert not os.path.exists(kind.deleted[1][1])  # none for that one: kind is given no kubeconfig of anyone's
    mine = "its node containers are the ones its run recorded"
    assert report.lines() == [
        f"deleted kind cluster cp-aaaaaaaaaa-quota (run dead-1a2b3c: pid 100 on host-a is gone; {mine})",
        f"deleted kind cluster cp-aaaaaaaaaa-services (run dead-1a2b3c: pid 100 on host-a is gone; {mine})",
        "left alone: kind cluster cp-cccccccccc (run kept-7a8b9c kept it (--keep-clusters))",
        "left alone: kind cluster cp-9999999999-volumes (no run of this host recorded making it)",
        "left alone: 1 thing(s) of run live-4d5e6f, alive: pid 200 on host-a is running",
    ]
    assert {r.run_id for r in registry.records()} == {"live-4d5e6f"}  # dead runs forgotten
    assert set(Claims(registry.path).read("")) == {"cp-bbbbbbbbbb-quota", "cp-cccccccccc"}


def test_a_cluster_made_again_under_a_dead_runs_name_is_not_taken_for_it(tmp_path):
    """`--cluster-name dev` made `dev` and its run died; the user made their own `dev` since (other
    node containers): left alone, and the stale claim forgotten."""
    registry = HostRegistry(tmp_path / "registry")
    kind_run(registry, tmp_path, "dead-1a2b3c", 100, ("dev", ["old1", "old2"]))
    kind = FakeKind([made("dev", "new1", "new2", at=NOW - 10)])
    report = sweep.sweep_host(kind, registry, machine=HERE, docker="", start_of=processes(), now=NOW)
    assert kind.deleted == []
    assert report.lines() == [
        "left alone: kind cluster dev (pid 100 on host-a is gone; its node containers are not the ones its run "
        "made (made again since))"
    ]
    assert Claims(registry.path).read("") == {}


def test_a_run_killed_during_kind_create_owns_only_containers_made_then(tmp_path):
    """Killed before the node containers' IDs were recorded: the claim (written before `kind
    create`) and the containers' creation times decide."""
    registry = HostRegistry(tmp_path / "registry")
    kind_run(
        registry,
        tmp_path,
        "dead-1a2b3c",
        100,
        ("cp-aaaaaaaaaa-quota", []),
        ("cp-aaaaaaaaaa-pv", []),
        creating=NOW - 600,
        recorded=False,
        heartbeat=NOW - 590,
    )
    kind = FakeKind([made("cp-aaaaaaaaaa-quota", "a1", at=NOW - 595), made("cp-aaaaaaaaaa-pv", "x1", at=NOW - 5)])
    report = sweep.sweep_host(kind, registry, machine=HERE, docker="", start_of=processes(), now=NOW)
    assert [name for name, _ in kind.deleted] == ["cp-aaaaaaaaaa-quota"]
    assert report.lines() == [
        "deleted kind cluster cp-aaaaaaaaaa-quota (run dead-1a2b3c: pid 100 on host-a is gone; its run was stopped "
        "during kind create, and made these containers then)",
        "left alone: kind cluster cp-aaaaaaaaaa-pv (pid 100 on host-a is gone; its node containers are not the "
        "ones its run made (made again since))",
    ]


def test_kind_dry_run_deletes_nothing_and_forgets_nothing(tmp_path):
    registry = HostRegistry(tmp_path / "registry")
    kind_run(registry, tmp_path, "dead-1a2b3c", 100, ("cp-aaaaaaaaaa-quota", ["a1"]))
    kind = FakeKind([made("cp-aaaaaaaaaa-quota", "a1")])
    report = sweep.sweep_host(kind, registry, dry_run=True, machine=HERE, docker="", start_of=processes(), now=NOW)
    assert kind.deleted == [] and len(registry.records()) == 1 and len(Claims(registry.path).read("")) == 1
    assert report.lines() == [
        "would delete kind cluster cp-aaaaaaaaaa-quota (run dead-1a2b3c: pid 100 on host-a is gone; its node "
        "containers are the ones its run recorded)"
    ]


def test_a_claim_of_another_docker_daemon_is_not_this_ones(tmp_path):
    registry = HostRegistry(tmp_path / "registry")
    registry.write(record("dead-1a2b3c", pid=100, provider="kind", docker="tcp://10.0.0.9:2376"))
    Claims(registry.path).write(Claim("cp-aaaaaaaaaa-quota", "dead-1a2b3c", "tcp://10.0.0.9:2376", NOW - 600, ("a1",)))
    kind = FakeKind([made("cp-aaaaaaaaaa-quota", "a1")])
    report = sweep.sweep_host(kind, registry, machine=HERE, docker="", start_of=processes(), now=NOW)
    assert kind.deleted == []
    assert report.lines() == ["left alone: kind cluster cp-aaaaaaaaaa-quota (no run of this host recorded making it)"]


# --- the records ----------------------------------------------------------------------------------


def test_a_lease_records_the_run_on_the_cluster():
    api = FakeApi()
    records = ClusterRecords("fake", api.core, api.coordination)
    r = record("r1", heartbeat=NOW)
    records.write(r)
    assert api.calls == [("create namespace", RECORDS_NAMESPACE), ("create lease", lease_name(r))]
    assert api.namespaces[RECORDS_NAMESPACE].metadata.labels == {"clusterproof.io/registry": "runs"}
    lease = api.leases[lease_name(r)]
    assert lease["spec"]["leaseDurationSeconds"] == liveness.STALE_AFTER
    assert lease["spec"]["holderIdentity"] == "host-a/100"
    api.server_clock = lambda: NOW + 30
    records.write(liveness.heartbeat(r, now=NOW + 30))
    assert api.calls[-1] == ("renew lease", lease_name(r))
    records.clock = lambda: NOW + 30
    [back] = records.records()
    assert back.run_id == "r1" and back.heartbeat == pytest.approx(NOW + 30)
    records.remove(r)
    records.remove(r)  # gone already: fine
    assert records.records() == []


def test_the_recorder_beats_and_marks_its_end(tmp_path):
    api = FakeApi()
    registry = HostRegistry(tmp_path)
    recorder = RunRecorder(record("r1", heartbeat=1.0), registry, every=0.02)
    recorder.start()
    recorder.on_cluster(ClusterRecords("c1", api.core, api.coordination))
    deadline = time.monotonic() + 10
    renewed = ("renew lease", lease_name(record("r1")))
    # a beat writes the host record, then renews the lease: wait for both (a loaded host is slow)
    while (registry.records()[0].heartbeat == 1.0 or renewed not in api.calls) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert registry.records()[0].heartbeat > 1.0
    assert renewed in api.calls
    recorder.let_go("c1")
    recorder.close()
    [host] = registry.records()
    [there] = ClusterRecords("c1", api.core, api.coordination).records()
    assert host.ended is not None and there.ended is not None  # let go, yet marked ended at the end


def test_the_host_registry_skips_what_is_not_a_record(tmp_path):
    registry = HostRegistry(tmp_path)
    registry.write(record("r1"))
    (tmp_path / "junk.json").write_text("{not json")
    (tmp_path / "other.json").write_text('{"hello": 1}')
    assert [r.run_id for r in registry.records()] == ["r1"]


# --- at the start of a run, and on demand ---------------------------------------------------------


def test_at_start_nothing_that_fails_fails_the_run(tmp_path, monkeypatch):
    notes = []
    settings = SimpleNamespace(provider="kind", kind_cluster_name=None, keep_clusters=False, kind_bin=None)
    run = SimpleNamespace(run_id="20260101-120000-3f2a", run_dir=tmp_path / "run")
    at_start = sweep.SweepAtStart(lambda: settings, run, notes.append, registry=HostRegistry(tmp_path / "reg"))

    def no_docker(self):
        raise RuntimeError("`kind get clusters` failed: Cannot connect to the Docker daemon")

    monkeypatch.setattr(sweep.KindHost, "clusters", no_docker)
    at_start._started()
    unreachable = SimpleNamespace(name="cp-x", kubeconfig=tmp_path / "missing", context="kind-cp-x")
    at_start._acquired(unreachable)
    at_start.pytest_unconfigure()
    assert (
        notes[0] == "sweep: kind clusters of this host not swept: RuntimeError: `kind get clusters` failed: "
        "Cannot connect to the Docker daemon"
    )
    assert notes[1].startswith("sweep: cluster cp-x not swept: ")
    [mine] = HostRegistry(tmp_path / "reg").records()  # recorded all the same, and ended
    assert mine.run_id == run.run_id and mine.ended is not None


def test_the_cli_refuses_a_context_it_was_not_allowed(tmp_path, capsys):
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text("kind: Config\ncurrent-context: prod\ncontexts:\n- name: prod\n  context: {}\n")
    assert sweep.main(["--no-kind", "--kubeconfig", str(kubeconfig)]) == 2
    assert capsys.readouterr().err.strip() == (
        "sweep: refusing to sweep context 'prod': pass --allow-context prod to let clusterproof delete there"
    )


def test_the_cli_dry_run_prints_what_it_would_remove(tmp_path, capsys, monkeypatch):
    api = FakeApi()
    api.namespace("cp-old", {RUN_LABEL: "old"}, created=time.time() - 48 * 3600)
    monkeypatch.setenv("CLUSTERPROOF_RUNS_REGISTRY", str(tmp_path / "reg"))
    monkeypatch.setattr(sweep.cli, "_cluster_side", lambda kubeconfig, context, allowed: api.side())
    assert sweep.main(["--dry-run", "--no-kind", "--context", "c", "--allow-context", "c"]) == 0
    assert capsys.readouterr().out == (
        "sweep: would delete namespace cp-old (run old: left no record; its newest object is 48h old)\n"
    )
    assert api.calls == []


def test_the_plugin_records_the_run_and_sweeps_each_cluster_it_acquires(pytester, monkeypatch, tmp_path):
    """In-process pytest run with FAKE cluster fixtures (a conftest overrides `cluster_provider`
    and `cluster`) and the FAKE API behind the cluster's records and objects."""
    from clusterproof.plugin import configure, fixtures

    api = FakeApi()
    api.namespace("cp-dead-a", {RUN_LABEL: "dead"})
    registry = HostRegistry(tmp_path / "registry")
    # a run of this machine whose PID is now another process
    registry.write(record("dead", pid=os.getpid(), start=-5, machine=liveness.this_machine()))
    monkeypatch.setenv("CLUSTERPROOF_RUNS_REGISTRY", str(registry.path))
    monkeypatch.setattr(configure, "check_cluster_access_once", lambda config: None)
    monkeypatch.setattr(fixtures, "check_cluster_access_once", lambda config: None)
    fake_records = classmethod(lambda cls, c: cls(c.name, api.core, api.coordination))
    fake_side = classmethod(lambda cls, c, records: cls(c.name, api.core, api.storage, records))
    monkeypatch.setattr(ClusterRecords, "for_cluster", fake_records)
    monkeypatch.setattr(sweep.ClusterSide, "of", fake_side)
    pytester.makeconftest(
        """
        import pytest
        from types import SimpleNamespace

        pytest_plugins = ["clusterproof.plugin"]

        @pytest.fixture(scope="session")
        def cluster_provider():
            return "FAKE provider"

        @pytest.fixture(scope="module")
        def cluster(cluster_provider):
            return SimpleNamespace(name="fake", kubeconfig="none", context="fake")
        """
    )
    pytester.makepyfile("def test_uses_the_cluster(cluster):\n    pass\n")
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "--context", "fake", "--run-id", "me")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["[[]clusterproof[]] sweep: deleted namespace cp-dead-a (run dead: pid * is gone *)"])
    assert "cp-dead-a" not in api.namespaces
    [mine] = [r for r in registry.records() if r.run_id.startswith("me-")]  # --run-id me: me-<random>
    assert mine.provider == "existing" and mine.ended is not None and mine.pid == os.getpid()
    [there] = [r for r in ClusterRecords("fake", api.core, api.coordination).records() if r.run_id == mine.run_id]
    assert there.ended is not None


def test_a_kind_delete_racing_the_dead_runs_own_is_done_when_the_cluster_is_gone(tmp_path):
    """Measured: a run SIGKILLed during its `kind delete` leaves that child running; the sweep's
    own delete then fails on containers already removed. FAKE kind: the first delete fails while
    the other finishes; the cluster is then gone, which is all the sweep wanted."""
    registry = HostRegistry(tmp_path / "registry")
    kind_run(registry, tmp_path, "dead-1a2b3c", 100, ("cp-aaaaaaaaaa-quota", ["a1", "a2"]))
    kind = FakeKind([made("cp-aaaaaaaaaa-quota", "a1")])  # a2 already removed by the dead run's delete
    real_run = kind.run

    def racing(argv, **kw):
        if argv[1] == "delete":
            del kind.nodes["cp-aaaaaaaaaa-quota"]  # the dead run's own kind delete finished first
            return subprocess.CompletedProcess(argv, 1, "", 'ERROR: failed to delete cluster: "docker rm" failed')
        return real_run(argv, **kw)

    kind.run = racing
    report = sweep.sweep_host(kind, registry, machine=HERE, docker="", start_of=processes(), now=NOW)
    assert report.lines() == [
        "deleted kind cluster cp-aaaaaaaaaa-quota (run dead-1a2b3c: pid 100 on host-a is gone; its node containers "
        "are the ones its run recorded)"
    ]


def test_credential_copies_of_dead_runs_are_removed_and_only_those(tmp_path):
    """A run's flattened kubeconfig lives in `<temp>/clusterproof-<uid>/<run id>.<owner>/` (0700);
    the sweep removes the directories of dead runs (tempfile's directory is the test's own: conftest)."""
    from clusterproof.run import RunContext, credentials_root

    registry = HostRegistry(tmp_path / "registry")
    registry.write(record("dead-1a2b3c", pid=100))
    registry.write(record("live-4d5e6f", pid=200))
    dirs = {}
    for run_id in ("dead-1a2b3c", "live-4d5e6f", "me-7a8b9c"):
        dirs[run_id] = RunContext(run_id, tmp_path / run_id, tmp_path / run_id / "a").credentials_dir()
        (dirs[run_id] / "quota.yaml").write_text("token: x")
    assert credentials_root().stat().st_mode & 0o777 == dirs["me-7a8b9c"].stat().st_mode & 0o777 == 0o700
    running = processes(p200=5000)
    report = sweep.sweep_credentials(registry, this_run="me-7a8b9c", machine=HERE, start_of=running, now=NOW)
    assert not dirs["dead-1a2b3c"].exists() and dirs["live-4d5e6f"].exists() and dirs["me-7a8b9c"].exists()
    gone = f"deleted credential copies {dirs['dead-1a2b3c']} (run dead-1a2b3c: pid 100 on host-a is gone)"
    assert report.lines()[0] == gone
    RunContext("me-7a8b9c", tmp_path, tmp_path).remove_credentials()  # the run's own end
    assert not dirs["me-7a8b9c"].exists()
    # a run that left no record: left alone while young, unless the user names it dead (as the sweep says)
    unrecorded = RunContext("gone-0a0b0c", tmp_path, tmp_path).credentials_dir()
    left = sweep.sweep_credentials(registry, machine=HERE, start_of=running, now=unrecorded.stat().st_mtime + 60)
    assert unrecorded.exists() and "--dead gone-0a0b0c` removes it" in left.lines()[0]
    sweep.sweep_credentials(registry, dead=["gone-0a0b0c"], machine=HERE, start_of=running, now=NOW)
    assert not unrecorded.exists()


def test_a_credentials_root_that_is_not_private_is_refused(tmp_path):
    from clusterproof.run import credentials_root

    root = credentials_root()
    root.chmod(0o755)
    with pytest.raises(PermissionError, match="not a private directory of this user"):
        credentials_root()


def test_liveness_on_a_shared_cluster_goes_by_the_api_servers_clock():
    """A run elsewhere renewed its Lease a minute ago by the API server's clock, from a machine
    whose clock is 10 minutes behind; the sweeper's clock is 5 minutes ahead. Judged by either
    machine's clock the run looks dead (no renewal for 16 minutes); by the server's it is alive,
    and nothing of it is swept. A Lease the server last stored 7 minutes ago is dead."""
    server_now = NOW
    api = FakeApi()
    elsewhere = Machine("ci-runner-7", "boot-x", "pid:[1]")
    writer = ClusterRecords("shared", api.core, api.coordination)
    live = record("live-0a1b2c", machine=elsewhere, heartbeat=server_now - 660)  # the writer's clock
    dead = record("dead-3d4e5f", machine=elsewhere, heartbeat=server_now - 1000)
    api.server_clock = lambda: server_now - 60
    writer.write(live)
    api.server_clock = lambda: server_now - 420
    writer.write(dead)
    api.server_clock = lambda: server_now
    api.namespace("cp-live", {RUN_LABEL: "live-0a1b2c"})
    api.namespace("cp-dead", {RUN_LABEL: "dead-3d4e5f"})

    ahead = server_now + 300
    side = sweep.ClusterSide(
        "shared", api.core, api.storage, ClusterRecords("shared", api.core, api.coordination, clock=lambda: ahead)
    )
    report = sweep.sweep_cluster(side, [], machine=HERE, start_of=processes(), now=ahead)
    assert "cp-live" in api.namespaces and "cp-dead" not in api.namespaces
    assert report.lines() == [
        "deleted namespace cp-dead (run dead-3d4e5f: pid 100 on ci-runner-7: no heartbeat for 420s (more than 300s))",
        "left alone: 1 thing(s) of run live-0a1b2c, alive: pid 100 on ci-runner-7: heartbeat 60s ago",
    ]
