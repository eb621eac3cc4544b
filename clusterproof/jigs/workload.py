"""Verbs for the workload claims: where a DaemonSet's pods land (and where its tolerations say
they may), StatefulSet pods and their claims, and the container runtime seen from a node."""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from kubernetes import client

from clusterproof import causes, pod_states, wait
from clusterproof.api_answers import unless_missing
from clusterproof.cluster import BLOCKING_EFFECTS, Cluster, Node
from clusterproof.errors import WaitTimeout
from clusterproof.jigs import kubelet
from clusterproof.jigs import pods as pods_jig
from clusterproof.manifests import Manifests

# Added by the DaemonSet controller to every daemon pod (1.20: pkg/controller/daemon/util).
DAEMONSET_TOLERATIONS: tuple[Mapping[str, str], ...] = (
    {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/disk-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/memory-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/pid-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"},
)
MASTER_TAINT = "node-role.kubernetes.io/master"
CONTROL_PLANE_TAINT = "node-role.kubernetes.io/control-plane"


# --- tolerations and placement --------------------------------------------------------------


def tolerates(toleration: Mapping[str, Any], taint: Mapping[str, Any]) -> bool:
    """The API's rule (k8s.io/api/core/v1 Toleration.ToleratesTaint)."""
    effect = toleration.get("effect") or ""
    if effect and effect != taint["effect"]:
        return False
    key = toleration.get("key") or ""
    if key and key != taint["key"]:
        return False
    operator = toleration.get("operator") or "Equal"
    if operator == "Exists":
        return True
    return (toleration.get("value") or "") == (taint.get("value") or "")


def blocking_taints(node: Node, tolerations: Sequence[Mapping[str, Any]]) -> list[Mapping[str, str]]:
    """Taints of `node` that keep a pod with `tolerations` (plus the DaemonSet's own) off it."""
    allowed = [*tolerations, *DAEMONSET_TOLERATIONS]
    return [t for t in node.taints if t["effect"] in BLOCKING_EFFECTS and not any(tolerates(tol, t) for tol in allowed)]


def taint_text(taints: Iterable[Mapping[str, str]]) -> str:
    return ", ".join(f"{t['key']}{'=' + t['value'] if t.get('value') else ''}:{t['effect']}" for t in taints) or "none"


def template_tolerations(daemonset: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return daemonset["spec"]["template"]["spec"].get("tolerations") or []


def pick_workers(cluster: Cluster, count: int) -> list[str]:
    """`count` names of nodes that run ordinary pods to pin pods to, untainted workers first
    (Cluster.require_workers: skips when there are fewer)."""
    return [n.name for n in cluster.require_workers(count)[:count]]


def tolerated_nodes(nodes: Sequence[Node], tolerations: Sequence[Mapping[str, Any]]) -> set[str]:
    return {n.name for n in nodes if not blocking_taints(n, tolerations)}


@dataclass(frozen=True)
class Placement:
    """A DaemonSet the controller has caught up with: its pods by node, all Ready."""

    pods: tuple[client.V1Pod, ...]
    desired: int

    @property
    def per_node(self) -> Counter[str]:
        return Counter(p.spec.node_name for p in self.pods)

    @property
    def nodes(self) -> set[str]:
        return set(self.per_node)

    def pod_on(self, node: str) -> client.V1Pod:
        return next(p for p in self.pods if p.spec.node_name == node)

    def __str__(self) -> str:
        return ", ".join(f"{n}: {c} pod(s)" for n, c in sorted(self.per_node.items())) or "no pods"


def daemonset_settled(cluster: Cluster, namespace: str, name: str, selector: str, timeout: float = 240) -> Placement:
    """Until the DaemonSet controller has seen the current spec and every pod it wants is Ready
    (status and pods agree). A missing controller shows up as a status never observed: the wait
    gives up after causes.CONTROLLER_GRACE when kube-system's DaemonSets were never processed
    either (or the controller's flags turn it off), after causes.UNPROCESSED_LIMIT in any case."""
    started = time.monotonic()

    def look() -> tuple[client.V1DaemonSet, list[client.V1Pod]]:
        ds = cluster.apps.read_namespaced_daemon_set(name, namespace)
        pods = cluster.core.list_namespaced_pod(namespace, label_selector=selector).items
        return ds, [p for p in pods if p.metadata.deletion_timestamp is None]

    def settled(seen: tuple[client.V1DaemonSet, list[client.V1Pod]]) -> Placement | None:
        ds, pods = seen
        desired = (ds.status.desired_number_scheduled or 0) if ds.status else 0
        ready = [p for p in pods if pod_states.pod_is_ready(p)]
        if pod_states.daemonset_rolled_out(ds) and desired > 0 and len(pods) == desired == len(ready):
            return Placement(tuple(pods), desired)
        return None

    def final(seen: tuple[client.V1DaemonSet, list[client.V1Pod]]) -> str | None:
        ds, pods = seen
        if ds.status is not None and ds.status.observed_generation:
            return stuck(pods)
        waited = time.monotonic() - started
        known = partial(causes.daemonset_controller_cause, cluster)
        return causes.not_processed(cluster, f"DaemonSet {namespace}/{name}", "DaemonSet controller", waited, known)

    def describe(seen: tuple[client.V1DaemonSet, list[client.V1Pod]]) -> str:
        ds, pods = seen
        s = ds.status
        if s is None or not s.observed_generation:
            return "the DaemonSet controller has not processed it (no status.observedGeneration): no pods"
        placed = ", ".join(f"{p.metadata.name} on {p.spec.node_name}" for p in pods) or "no pods"
        return (
            f"desired {s.desired_number_scheduled}, scheduled {s.current_number_scheduled}, ready {s.number_ready}; "
            f"pods: {placed} ({pod_states.describe_pods(pods)})"
        )

    return wait.until_seen(
        look,
        settled,
        f"DaemonSet {namespace}/{name} to run its pods, all Ready",
        timeout,
        describe=describe,
        final=final,
        # its controller refusing to create the pods (Pod Security, a quota): a final answer, named
        never=wait.failed_create(cluster.core, namespace, "DaemonSet", name),
    )


def replacement_on(
    cluster: Cluster, namespace: str, selector: str, node: str, old_uid: str, timeout: float = 90
) -> client.V1Pod:
    """A Ready pod of the selector on `node` that is not the deleted one."""

    def on_node() -> list[client.V1Pod]:
        pods = cluster.core.list_namespaced_pod(namespace, label_selector=selector).items
        return [p for p in pods if p.spec.node_name == node]

    def found(pods: list[client.V1Pod]) -> client.V1Pod | None:
        return next((p for p in pods if p.metadata.uid != old_uid and pod_states.pod_is_ready(p)), None)

    def describe(pods: list[client.V1Pod]) -> str:
        return pod_states.describe_pods(pods) if pods else f"no pod on {node}"

    return wait.until_seen(
        on_node,
        found,
        f"a new Ready pod of {selector} on node {node}",
        timeout,
        describe=describe,
        final=lambda pods: stuck(p for p in pods if p.metadata.uid != old_uid),
    )


def stuck(pods: Iterable[client.V1Pod]) -> str | None:
    """Why some of `pods` can never become Ready (pod_states.never_ready), or None: ends a wait at once."""
    reasons = [reason for p in pods if (reason := pod_states.never_ready(p))]
    return "; ".join(reasons) or None


# --- StatefulSet -----------------------------------------------------------------------------


def delete_first_when_the_test_ends(manifests: Manifests, kind: str, name: str) -> None:
    """The test's controller `kind`/`name` deleted when the test ends, before whatever was registered
    earlier (its PVs' directories on a node): else, while the namespace goes, it makes its pods
    again, and the kubelet their hostPath directories (DirectoryOrCreate), after those were removed."""
    resource = manifests.cluster.dynamic.resources.get(api_version="apps/v1", kind=kind)
    assert manifests.tracker is not None

    def delete() -> None:
        unless_missing(lambda: resource.delete(name=name, namespace=manifests.namespace))

    manifests.tracker.on_cleanup(manifests.cluster, f"delete {kind} {manifests.namespace}/{name}", delete)


def statefulset_pods_ready(
    cluster: Cluster,
    namespace: str,
    statefulset: str,
    names: Sequence[str],
    *,
    not_uids: Iterable[str] = (),
    timeout: float = 180,
    observes: Collection[str] = (),
) -> dict[str, client.V1Pod]:
    """Pods of StatefulSet `statefulset` with exactly these names, Ready, none of them one of
    `not_uids`. Gives up when the StatefulSet controller refuses to create them (FailedCreate) or
    is known not to run: it has not processed the StatefulSet after causes.CONTROLLER_GRACE while
    kube-controller-manager's flags turn it off, or after causes.UNPROCESSED_LIMIT in any case. A pod
    that did not start for a reason of pods.StartFailure is a set-up failure, unless the claim
    `observes` it."""
    old = set(not_uids)
    started = time.monotonic()
    refused = wait.failed_create(cluster.core, namespace, "StatefulSet", statefulset)

    def not_acting() -> str | None:
        found = unless_missing(lambda: cluster.apps.read_namespaced_stateful_set(statefulset, namespace))
        if found is None or (found.status is not None and found.status.observed_generation):
            return refused()
        waited = time.monotonic() - started
        known = partial(causes.controller_cause, cluster, "statefulset-controller")
        what = f"StatefulSet {namespace}/{statefulset}"
        return causes.not_processed(cluster, what, "StatefulSet controller", waited, known)

    def ready(pods: list[client.V1Pod]) -> dict[str, client.V1Pod] | None:
        by_name = {p.metadata.name: p for p in pods}
        wanted = {n: by_name.get(n) for n in names}
        if all(p is not None and p.metadata.uid not in old and pod_states.pod_is_ready(p) for p in wanted.values()):
            return wanted  # type: ignore[return-value]
        return None

    def describe(pods: list[client.V1Pod]) -> str:
        return (
            ", ".join(("old " if p.metadata.uid in old else "") + pod_states.describe_pods([p]) for p in pods)
            or "no pods"
        )

    what = ", ".join(names)
    try:
        return wait.until_seen(
            lambda: cluster.core.list_namespaced_pod(namespace).items,
            ready,
            f"pods {what} Ready" + (" (new ones)" if old else ""),
            timeout,
            describe=describe,
            final=lambda pods: stuck(p for p in pods if p.metadata.name in names and p.metadata.uid not in old),
            never=not_acting,
        )
    except WaitTimeout as e:  # never scheduled, no image (see pods.started)
        for name in names:
            judged = pods_jig.not_started(cluster, namespace, name, e, observes)
            if judged is not None:
                raise judged from e
        raise


def claim_of(pod: client.V1Pod, volume: str) -> str | None:
    for v in pod.spec.volumes or []:
        if v.name == volume and v.persistent_volume_claim is not None:
            return v.persistent_volume_claim.claim_name
    return None


# --- container runtime on a node -------------------------------------------------------------

SHIM = "containerd-shim-runc-v2"


@dataclass(frozen=True)
class Process:
    pid: int
    ppid: int
    args: str

    def flag(self, name: str) -> str | None:
        found = re.search(rf"(?:^|\s){re.escape(name)}\s+(\S+)", self.args)
        return found.group(1) if found else None


def processes(cluster: Cluster, node: str) -> list[Process]:
    out = cluster.node_exec(node, "ps", "-eo", "pid=,ppid=,args=").stdout
    found = []
    for line in out.splitlines():
        parts = line.split(None, 2)
        if len(parts) >= 2 and parts[0].isdigit():
            found.append(Process(int(parts[0]), int(parts[1]), parts[2] if len(parts) > 2 else ""))
    return found


def shims(cluster: Cluster, node: str) -> dict[str, Process]:
    """The node's runc v2 shims by their -id (the sandbox they were started for)."""
    found = {}
    for p in processes(cluster, node):
        if SHIM in p.args.split(" ", 1)[0]:
            sandbox = p.flag("-id")
            if sandbox:
                found[sandbox] = p
    return found


def sandbox_ids(cluster: Cluster, node: str, pod_uid: str) -> list[str]:
    """containerd's sandbox containers for the pod (CRI labels on the k8s.io namespace), asked
    at the runtime endpoint the node's kubelet uses (k3s and RKE2: not containerd's default)."""
    selector = f'labels."io.cri-containerd.kind"==sandbox,labels."io.kubernetes.pod.uid"=={pod_uid}'
    out = cluster.node_exec(node, *kubelet.setup_of(cluster, node).ctr("containers", "ls", "-q", selector)).stdout
    return out.split()


def task_pids(cluster: Cluster, node: str) -> dict[str, int]:
    """Running containerd tasks on the node: container id -> pid."""
    out = cluster.node_exec(node, *kubelet.setup_of(cluster, node).ctr("tasks", "ls")).stdout
    pids = {}
    for line in out.splitlines()[1:]:
        parts = line.split()
        if len(parts) >= 3 and parts[1].isdigit() and parts[2] == "RUNNING":
            pids[parts[0]] = int(parts[1])
    return pids


def container_ids(pod: client.V1Pod) -> dict[str, str]:
    """Container name -> runtime id, from `containerd://<id>`."""
    return {s.name: (s.container_id or "").split("://", 1)[-1] for s in pod.status.container_statuses or []}
