"""Workloads and configuration as the notes describe them ([002]): DaemonSet placement and its
node files, ConfigMap as env and files, StatefulSet identity and claims, the CRI runtime."""

from __future__ import annotations

from typing import Any

import pytest

from clusterproof.cluster import Cluster
from clusterproof.jigs import pods, workload
from clusterproof.jigs.pods import PodFiles
from clusterproof.jigs.volume import NodeFiles
from clusterproof.manifests import Manifests
from clusterproof.verdicts import setup_step

FLUENTD = "notes/workloads/fluentd-elasticsearch.yaml"
FLUENTD_CP = "claims/workloads/fluentd-control-plane-toleration.yaml"


def run_daemonset(
    cluster: Cluster, namespace: str, manifests: Manifests, source: str
) -> tuple[dict[str, Any], workload.Placement]:
    """Apply the fixture's DaemonSet; returns it and its pods once the controller has settled."""
    (ds,) = manifests.apply(source)
    return ds, workload.daemonset_settled(cluster, namespace, ds["metadata"]["name"], selector_of(ds))


def selector_of(ds: dict[str, Any]) -> str:
    return ",".join(f"{k}={v}" for k, v in ds["spec"]["selector"]["matchLabels"].items())


# --- DaemonSet -------------------------------------------------------------------------------


@pytest.mark.claim("WRK-01")
@pytest.mark.pod_security("privileged")  # hostPath volumes
def test_daemonset_runs_one_pod_on_every_node_it_tolerates_and_replaces_a_deleted_one(
    cluster: Cluster, namespace: str, manifests: Manifests
) -> None:
    """A DaemonSet MUST run exactly one pod on every node it tolerates, and bring back a deleted
    one [002].

    Observed: the notes' fluentd-elasticsearch pods per node (one on each node whose taints its
    tolerations cover, none elsewhere); after one is deleted, a new pod on its node and again
    one per node."""
    ds, placement = run_daemonset(cluster, namespace, manifests, FLUENTD)
    nodes = cluster.nodes
    tolerations = workload.template_tolerations(ds)
    expected = workload.tolerated_nodes(nodes, tolerations)
    kept_off = {n.name: workload.taint_text(workload.blocking_taints(n, tolerations)) for n in nodes}
    kept_off = {name: taints for name, taints in kept_off.items() if name not in expected}
    assert placement.nodes == expected and set(placement.per_node.values()) == {1}, (
        f"DaemonSet pods: {placement}; expected one on each of {sorted(expected)}"
        + (f" and none on {kept_off} (untolerated taints)" if kept_off else "")
    )

    node = sorted(expected - {n.name for n in nodes if n.is_control_plane} or expected)[0]
    old = placement.pod_on(node)
    with setup_step(f"delete DaemonSet pod {old.metadata.name} on {node}"):
        cluster.core.delete_namespaced_pod(old.metadata.name, namespace, grace_period_seconds=0)
    new = workload.replacement_on(cluster, namespace, selector_of(ds), node, old.metadata.uid)
    assert new.metadata.name != old.metadata.name, f"the replacement on {node} reuses the name {new.metadata.name}"
    after = workload.daemonset_settled(cluster, namespace, ds["metadata"]["name"], selector_of(ds))
    assert after.nodes == expected and set(after.per_node.values()) == {1}, (
        f"after deleting {old.metadata.name} on {node}: {after}; expected one on each of {sorted(expected)}"
    )


@pytest.mark.claim("WRK-02")
@pytest.mark.pod_security("privileged")  # hostPath volumes
def test_notes_master_toleration_reaches_control_plane_nodes_only_where_the_master_taint_is_used(
    cluster: Cluster, namespace: str, manifests: Manifests, record_property
) -> None:
    """The notes' toleration `node-role.kubernetes.io/master` reaches control-plane nodes only
    where that taint key is used (before 1.24); newer clusters taint
    `node-role.kubernetes.io/control-plane` [002].

    Observed: on each tainted control-plane node, whether the notes' DaemonSet and one that also
    tolerates the control-plane taint have a pod there, against what their tolerations allow;
    the cluster's version and taints are recorded. Skipped without a tainted control plane."""
    control_planes = [n for n in cluster.nodes if n.is_control_plane]
    cluster.require(control_planes, "no control-plane node is registered as a Node (managed control plane)")
    tainted = [n for n in control_planes if any(t["effect"] in workload.BLOCKING_EFFECTS for t in n.taints)]
    cluster.require(
        tainted,
        f"control-plane node(s) {[n.name for n in control_planes]} have no NoSchedule/NoExecute taint: "
        "the toleration makes no difference there",
    )
    notes_ds, notes = run_daemonset(cluster, namespace, manifests, FLUENTD)
    both_ds, both = run_daemonset(cluster, namespace, manifests, FLUENTD_CP)
    version = cluster.git_version
    era = "before 1.24" if cluster.server_version < (1, 24) else "1.24 or later"

    for node in tainted:
        keys = sorted({t["key"] for t in node.taints if t["effect"] in workload.BLOCKING_EFFECTS})
        taints = workload.taint_text(node.taints)
        story = f"cluster {version} ({era}) taints control-plane node {node.name} with {taints}"
        for ds, placement in ((notes_ds, notes), (both_ds, both)):
            tolerations = [t.get("key") for t in workload.template_tolerations(ds)]
            reaches = not workload.blocking_taints(node, workload.template_tolerations(ds))
            landed = node.name in placement.nodes
            verb = "tolerates" if reaches else "does not tolerate"
            assert landed == reaches, (
                f"{story}; DaemonSet {ds['metadata']['name']} (tolerations {tolerations}) {verb} {keys}, "
                f"yet it {'has' if landed else 'has no'} pod there ({placement})"
            )
        reach = "reaches" if node.name in notes.nodes else "does not reach"
        record_property("observed", f"{story}: the notes' toleration {workload.MASTER_TAINT} {reach} it")


@pytest.mark.claim("WRK-03")
@pytest.mark.pod_security("privileged")  # hostPath volumes
@pytest.mark.needs_node_exec
def test_daemonset_pods_read_their_own_nodes_files_through_hostpath_var_log(
    cluster: Cluster, namespace: str, manifests: Manifests, pod_files: PodFiles, node_files: NodeFiles
) -> None:
    """A DaemonSet pod MUST read its own node's files through hostPath /var/log [002].

    Observed: a marker file written on each node under /var/log, read by the DaemonSet pod on
    that node as that node's marker. (The DaemonSet running is WRK-01's observable: here it is
    set-up.)"""
    with setup_step("run the notes' DaemonSet fluentd-elasticsearch"):
        _, placement = run_daemonset(cluster, namespace, manifests, FLUENTD)
    marker = f"/var/log/{node_files.own_name(namespace)}.marker"
    node_files.keep_clean(placement.nodes, marker)
    with setup_step(f"write {marker} on every node"):
        for node in placement.nodes:
            node_files.write(node, marker, f"node {node} for {namespace}")

    wrong = {}
    for node in sorted(placement.nodes):
        pod = placement.pod_on(node).metadata.name
        seen = pod_files.read(pod, marker)
        if seen != f"node {node} for {namespace}":
            wrong[f"{pod} on {node}"] = seen
    assert not wrong, f"DaemonSet pods read {marker} through hostPath /var/log as {wrong}"


# --- ConfigMap -------------------------------------------------------------------------------


@pytest.mark.claim("WRK-04")
def test_configmap_values_reach_the_pod_as_env_vars_and_as_files(manifests: Manifests, pod_files: PodFiles) -> None:
    """A ConfigMap's key-values MUST reach a pod as environment variables and as files [002].

    Observed: the environment configmap-pod's main process started with, and the files under
    /etc/config, against the ConfigMap's data."""
    config_map, _ = manifests.apply("claims/workloads/configmap-env-files.yaml")
    data: dict[str, str] = config_map["data"]
    pods.started(manifests.cluster, manifests.namespace, "configmap-pod")

    environ = container_env(pod_files, "configmap-pod")
    env = {key: environ.get(key) for key in ("APP_MODE", "APP_GREETING")}
    files = {key: pod_files.read("configmap-pod", f"/etc/config/{key}") for key in data}
    assert env == {k: data[k] for k in env}, f"env in configmap-pod: {env}; ConfigMap sample-config: {data}"
    assert files == data, f"files under /etc/config: {files}; ConfigMap sample-config: {data}"


def container_env(pod_files: PodFiles, pod: str) -> dict[str, str]:
    """The environment the container's main process (pid 1) was started with."""
    result = pod_files.exec(pod, ["cat", "/proc/1/environ"])
    assert result.rc == 0, f"cannot read /proc/1/environ in {pod}: {result.stderr}"
    pairs = (item.partition("=") for item in result.stdout.split("\0") if item)
    return {key: value for key, _, value in pairs}


# --- StatefulSet -----------------------------------------------------------------------------


def web_pvs_and_statefulset(manifests: Manifests, node_files: NodeFiles, node: str) -> None:
    """The StatefulSet `web` (web-0, web-1, a claim each from its template) and two hostPath PVs
    on `node` for its claims, in a StorageClass of this test's own (no other run's PV can bind)."""
    storage_class = f"web-data-{manifests.namespace}"
    pvs = manifests.render("claims/workloads/statefulset-web-pvs.yaml", {"NODE_NAME": node})
    for pv in pvs:
        pv["metadata"]["name"] = f"{pv['metadata']['name']}-{manifests.namespace}"
        pv["spec"]["storageClassName"] = storage_class
        pv["spec"]["hostPath"]["path"] += f"-{manifests.namespace}"
        node_files.keep_clean([node], pv["spec"]["hostPath"]["path"])
    manifests.apply(pvs)
    docs = manifests.render("claims/workloads/statefulset-web.yaml")
    for doc in docs:
        if doc["kind"] == "StatefulSet":
            doc["spec"]["volumeClaimTemplates"][0]["spec"]["storageClassName"] = storage_class
    manifests.apply(docs)
    workload.delete_first_when_the_test_ends(manifests, "StatefulSet", "web")


@pytest.mark.claim("WRK-05")
@pytest.mark.needs_node_exec  # its PVs are hostPath directories, written on the node
def test_statefulset_pods_keep_their_names_and_their_own_claims_across_deletion(
    cluster: Cluster,
    namespace: str,
    manifests: Manifests,
    pod_files: PodFiles,
    node_files: NodeFiles,
) -> None:
    """StatefulSet pods MUST keep their stable names (web-0, web-1) and their own claims across
    deletion [002].

    Observed: web-0 and web-1 scheduled and Ready (a pod the scheduler cannot place, e.g. its
    claim's PV on a node that is gone, fails it); after both pods are deleted, the new web-0 and
    web-1 (new uids) mounting the same claims, bound to the same PVs, and reading the file their
    predecessor of that name wrote."""
    (node,) = workload.pick_workers(cluster, 1)
    web_pvs_and_statefulset(manifests, node_files, node)
    names = ["web-0", "web-1"]
    first = workload.statefulset_pods_ready(cluster, namespace, "web", names, observes={pods.UNSCHEDULED})
    with setup_step("write /data/owner in web-0 and web-1"):
        for name, pod in first.items():
            pod_files.write(name, "/data/owner", f"{name} uid {pod.metadata.uid}")
    claims = {name: workload.claim_of(pod, "data") for name, pod in first.items()}
    bound = {c: bound_volume(cluster, namespace, c) for c in claims.values()}

    # graceful (1 s): the API keeps each pod until its kubelet has stopped it, so the new web-N
    # cannot overlap the old one (an exec by name could otherwise reach the old container)
    with setup_step("delete web-0 and web-1"):
        for name in names:
            pods.delete_pod(cluster, namespace, name, grace_seconds=1)
    old_uids = [p.metadata.uid for p in first.values()]
    second = workload.statefulset_pods_ready(
        cluster, namespace, "web", names, not_uids=old_uids, observes={pods.UNSCHEDULED}
    )

    for name, pod in second.items():
        claim = workload.claim_of(pod, "data")
        assert claim == claims[name] == f"data-{name}", f"re-created {name} mounts claim {claim}, before {claims[name]}"
        volume_name = bound_volume(cluster, namespace, claim)
        assert volume_name == bound[claim], f"claim {claim} is bound to {volume_name}, was {bound[claim]}"
        owner = pod_files.read(name, "/data/owner")
        assert owner == f"{name} uid {first[name].metadata.uid}", (
            f"re-created {name} (on {pod.spec.node_name}) reads /data/owner = {owner!r}; "
            f"its predecessor wrote '{name} uid {first[name].metadata.uid}'"
        )


def bound_volume(cluster: Cluster, namespace: str, claim: str) -> str:
    return cluster.core.read_namespaced_persistent_volume_claim(claim, namespace).spec.volume_name


# --- container runtime -----------------------------------------------------------------------


@pytest.mark.claim("WRK-06")
def test_every_kubelet_reports_containerd_as_its_cri_runtime(cluster: Cluster) -> None:
    """The kubelet MUST run containers through a CRI runtime, containerd [002].

    Observed: each node's status.nodeInfo.containerRuntimeVersion."""
    runtimes = {n.metadata.name: n.status.node_info.container_runtime_version for n in cluster.core.list_node().items}
    others = {n: r for n, r in runtimes.items() if not r.startswith("containerd://")}
    assert not others, f"nodes not running containerd through CRI: {others} (all: {runtimes})"


@pytest.mark.claim("WRK-06")
@pytest.mark.needs_node_exec
def test_containerd_starts_one_shim_per_pod_holding_all_its_containers(
    cluster: Cluster, namespace: str, manifests: Manifests
) -> None:
    """containerd MUST start one shim per pod, parent of all the pod's processes [002].

    Observed: on the pod's node (ps, ctr), the one sandbox containerd made for a two-container
    pod, a new containerd-shim-runc-v2 for it, and that shim as the parent of the sandbox's and
    both containers' processes."""
    (node,) = workload.pick_workers(cluster, 1)
    before = workload.shims(cluster, node)
    pod = two_container_pod(manifests, node)
    ready = pods.started(cluster, namespace, pod["metadata"]["name"])

    sandboxes = workload.sandbox_ids(cluster, node, ready.metadata.uid)
    assert len(sandboxes) == 1, f"containerd on {node} has sandboxes {sandboxes} for pod {ready.metadata.name}"
    (sandbox,) = sandboxes
    after = workload.shims(cluster, node)
    shim = after.get(sandbox)
    assert shim is not None, f"no {workload.SHIM} -id {sandbox[:12]} on {node}; shims: {sorted(s[:12] for s in after)}"
    assert sandbox not in before, f"shim for {sandbox[:12]} was already running before the pod was created"

    pids = workload.task_pids(cluster, node)
    ppid = {p.pid: p.ppid for p in workload.processes(cluster, node)}
    members = {"sandbox (pause)": sandbox, **workload.container_ids(ready)}
    parents = {name: ppid.get(pids.get(cid, -1)) for name, cid in members.items()}
    assert set(parents.values()) == {shim.pid}, (
        f"pod {ready.metadata.name} on {node}: parent pids of its processes {parents}; "
        f"the shim of its sandbox is pid {shim.pid}"
    )


def two_container_pod(manifests: Manifests, node: str) -> dict[str, Any]:
    pause = {"image": "agnhost", "args": ["pause"]}
    return manifests.apply_one(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "shim-probe"},
            "spec": {
                "nodeName": node,
                "containers": [{"name": "one", **pause}, {"name": "two", **pause}],
                "terminationGracePeriodSeconds": 0,
            },
        }
    )
