"""Verbs for the PersistentVolume claims: create the notes' PVs, claims and StorageClasses under
this test's names (clusterproof.jigs.pv_names), wait for the PV controller's binding decisions,
read phases, events and the API's answers.

Everything goes through the test's Manifests (so the tracker deletes it when the test ends);
host paths are removed from the nodes then too (NodeFiles). The node that plays the notes' node1
is labelled through the tracker's shared label lease.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client

from clusterproof import causes, wait
from clusterproof.api_answers import ApiAnswer, answer_to, raw_request, unless_missing
from clusterproof.cluster import Cluster, Node, recycler_pod
from clusterproof.errors import WaitGaveUp, WaitTimeout
from clusterproof.jigs import Jig, pods
from clusterproof.jigs.pv_names import PVNames, host_paths
from clusterproof.jigs.volume import NodeFiles
from clusterproof.manifests import Doc

DEFAULT_CLASS_ANNOTATIONS = (
    "storageclass.kubernetes.io/is-default-class",
    "storageclass.beta.kubernetes.io/is-default-class",
)
PROVISIONED_BY = "pv.kubernetes.io/provisioned-by"
HOSTPATH_PROVISIONER = "kubernetes.io/host-path"
NODE1_LABEL = ("node", "node1")  # [003] pv-01's nodeAffinity
# the PV controller's answers when it finds no PV for a claim (and cannot provision one)
NO_MATCH_REASONS = frozenset({"FailedBinding", "ProvisioningFailed"})
# the PV controller acts on every change at once (and resyncs every 15 s)
BIND_TIMEOUT = 90.0  # a claim made before its PV is seen waits for the binder's 15 s resync
DECISION_TIMEOUT = 45.0
PROVISION_TIMEOUT = 60.0
# when the class's provisioner is known not to run (causes.provisioner_cause), the claim still gets
# this long, then the wait gives up naming why
PROVISIONER_DOWN_GRACE = 15.0
PV_CONTROLLER_HINT = "is kube-controller-manager's persistentvolume-binder controller running?"


# the API server warns on a PV with reclaim policy Recycle since 1.30 (kubernetes#122339):
# "spec.persistentVolumeReclaimPolicy: The Recycle reclaim policy is deprecated. ..."
RECYCLE_WARNED_SINCE = (1, 30)


def recycle_deprecation(warnings: Iterable[str], events: Iterable[client.CoreV1Event]) -> list[str]:
    """Where the cluster states that Recycle is deprecated: the API server's warnings naming it,
    and events (the PV controller's) calling it deprecated."""
    said = [w for w in warnings if "Recycle" in w and "deprecated" in w.lower()]
    said += [f"{e.reason}: {e.message}" for e in events if "deprecat" in (e.message or "").lower()]
    return said


# --- StorageClasses and nodes ----------------------------------------------------------------


def default_storage_class(cluster: Cluster) -> client.V1StorageClass | None:
    classes = cluster.storage.list_storage_class().items
    defaults = [
        c for c in classes if any((c.metadata.annotations or {}).get(a) == "true" for a in DEFAULT_CLASS_ANNOTATIONS)
    ]
    return sorted(defaults, key=lambda c: c.metadata.name)[0] if defaults else None


def require_default_class(cluster: Cluster) -> client.V1StorageClass:
    """The default StorageClass; skips, naming the classes there are, when there is none."""
    default = default_storage_class(cluster)
    classes = ", ".join(f"{c.metadata.name} ({c.provisioner})" for c in cluster.storage.list_storage_class().items)
    cluster.require(
        default is not None,
        f"no default StorageClass: none of the StorageClasses [{classes or 'none'}] is annotated "
        "storageclass.kubernetes.io/is-default-class=true",
    )
    return default


def node1_nodes(cluster: Cluster) -> list[str]:
    key, value = NODE1_LABEL
    return sorted(n.name for n in cluster.nodes if n.labels.get(key) == value)


def pick_node1(cluster: Cluster) -> Node:
    """The node that plays the notes' node1: one already labelled node=node1, else the first
    node that runs ordinary pods (an untainted worker first)."""
    labelled = node1_nodes(cluster)
    nodes = {n.name: n for n in cluster.nodes}
    if labelled:
        return nodes[labelled[0]]
    return cluster.require_workers(1)[0]


# --- the jig ---------------------------------------------------------------------------------


@dataclass
class PVJig(Jig):
    names: PVNames = field(init=False)
    node_files: NodeFiles = field(init=False)
    _paths_registered: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        run_id = self.manifests.values["RUN_ID"]
        self.names = PVNames.for_test(run_id, self.manifests.namespace)
        self.node_files = NodeFiles(self.cluster, self.tracker, run_id)

    @property
    def suffix(self) -> str:
        return self.names.suffix

    def name(self, notes_name: str) -> str:
        """This test's name of the notes' PV or StorageClass `notes_name`."""
        return self.names.name(notes_name)

    # --- creating --------------------------------------------------------------------------

    def load(self, path: str, *, values: dict[str, str] | None = None, dynamic: bool = False) -> list[Doc]:
        """The fixture under this test's names (dynamic: claims without selector, to be provisioned)."""
        return self.names.isolate(self.manifests.load(path, values=values), dynamic=dynamic)

    def create(self, docs: list[Doc]) -> list[Doc]:
        """Create loaded documents. Their host paths are removed from the nodes when the test
        ends; a PV with reclaim policy Recycle gets its recycler pods removed after the PV's deletion."""
        self._clean_host_paths(docs)
        for doc in docs:
            if doc["kind"] == "PersistentVolume" and doc["spec"].get("persistentVolumeReclaimPolicy") == "Recycle":
                self._remove_recycler_pods_after(doc["metadata"]["name"])
        return self.manifests.create(docs)

    def apply(self, path: str, *, values: dict[str, str] | None = None, dynamic: bool = False) -> list[Doc]:
        return self.create(self.load(path, values=values, dynamic=dynamic))

    def create_raw(self, doc: Doc) -> ApiAnswer:
        """Create a loaded PV through a raw POST, to see the API's warnings too."""
        self._clean_host_paths([doc])
        if doc["spec"].get("persistentVolumeReclaimPolicy") == "Recycle":
            self._remove_recycler_pods_after(doc["metadata"]["name"])
        answer = raw_request(self.cluster, "POST", "/api/v1/persistentvolumes", doc)
        if answer.accepted:
            self.tracker.register(self.cluster, answer.body, namespaced=False)
        return answer

    def track_provisioned(self, name: str) -> None:
        """A PV the provisioner made: its claim's deletion reclaims it; deleted when the test ends
        should it still be there."""
        pv = {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": name}}
        self.tracker.register(self.cluster, pv, namespaced=False)

    def _clean_host_paths(self, docs: list[Doc]) -> None:
        """A PV's host path is written only by a pod that mounts it, and the tests that mount one
        need node access (`needs_node_exec`): without it there is nothing to declare."""
        paths = host_paths(docs)
        if not paths or not self.cluster.can_node_exec:
            return
        nodes = [n.name for n in self.cluster.nodes]
        if not self._paths_registered:  # the run's directory after the paths in it (LIFO), if empty
            self.node_files.keep_clean(nodes, self.names.run_dir, rmdir_only=True)
            self._paths_registered = True
        for path in paths:
            self.node_files.keep_clean(nodes, path)

    def _remove_recycler_pods_after(self, pv_name: str) -> None:
        """Registered before the PV is created, so it runs after the PV's deletion: the PV
        controller retries a failed recycle (a new recycler pod in `default`) until the PV is gone."""

        def remove() -> None:
            with contextlib.suppress(WaitTimeout):
                wait.gone(lambda: self.core.read_persistent_volume(pv_name), f"PV {pv_name}", 30)
            self.cluster.delete_pod_now(*recycler_pod(pv_name), wait_gone=False)

        self.tracker.on_cleanup(self.cluster, f"remove the recycler pods of PV {pv_name}", remove)

    # --- nodes -----------------------------------------------------------------------------

    def label_node1(self) -> str:
        """Label a node node=node1 (what [003]'s pv-01 asks for in its nodeAffinity) and return
        its name. Other tests and processes may hold the same label at once: it is a lease of the
        tracker's, given back when the cluster is let go."""
        node = pick_node1(self.cluster).name
        self.tracker.label_node(self.cluster, node, *NODE1_LABEL)
        return node

    def where_pods_of_pv_01_land(self, names: list[str], node1: str) -> dict[str, str]:
        """pod -> node, once each is Ready. A pod the scheduler cannot place fails the claim, naming
        the nodes pv-01's nodeAffinity (node=node1) matches now: none when node1 is gone."""
        placed = {}
        for name in names:
            try:
                pod = pods.started(self.cluster, self.namespace, name, observes={pods.UNSCHEDULED})
            except AssertionError as e:
                matching = node1_nodes(self.cluster)
                there = node1 in {n.name for n in self.cluster.nodes}
                gone = "" if there else f"; node {node1}, node1 when pv-01 bound, is gone"
                raise AssertionError(
                    f"{e}. Nodes pv-01's nodeAffinity (node=node1) matches now: {', '.join(matching) or 'none'}{gone}"
                ) from e
            placed[name] = pod.spec.node_name
        return placed

    def make_local_path(self, node: str, notes_name: str) -> str:
        """A local PV needs its path to exist on the node."""
        path = self.names.host_path(self.name(notes_name))
        self.cluster.node_exec(node, "mkdir", "-p", path)
        return path

    def start_pod(self, source: str, **how: Any) -> client.V1Pod:
        """A fixture's pod (clusterproof.jigs.pods.create_pod's options), once Ready."""
        return pods.start_pod(self.manifests, source, **how)

    # --- reading ---------------------------------------------------------------------------

    def pv(self, notes_name: str) -> client.V1PersistentVolume:
        return self.core.read_persistent_volume(self.name(notes_name))

    def pvc(self, name: str) -> client.V1PersistentVolumeClaim:
        return self.core.read_namespaced_persistent_volume_claim(name, self.namespace)

    def claim_events(self, name: str) -> str:
        events = self.core.list_namespaced_event(
            self.namespace, field_selector=f"involvedObject.kind=PersistentVolumeClaim,involvedObject.name={name}"
        ).items
        return "; ".join(f"{e.reason}: {e.message}" for e in events) or "none"

    def pv_events(self, name: str) -> list[client.CoreV1Event]:
        """Events about a PV (cluster-scoped objects' events land in namespace default)."""
        return self.core.list_event_for_all_namespaces(
            field_selector=f"involvedObject.kind=PersistentVolume,involvedObject.name={name}"
        ).items

    # --- binding ---------------------------------------------------------------------------

    def wait_pv_phase(
        self, notes_name: str, phases: str | tuple[str, ...], timeout: float = BIND_TIMEOUT
    ) -> client.V1PersistentVolume:
        """The PV in one of `phases` (a Failed PV ends the wait at once unless Failed is wanted)."""
        return wait.pv_phase(
            self.core,
            self.name(notes_name),
            phases,
            timeout,
            # a new PV is Pending until the PV controller has seen it
            hint=lambda last: PV_CONTROLLER_HINT if last == "phase Pending" else None,
        )

    def wait_claim_bound(self, name: str, timeout: float = BIND_TIMEOUT) -> client.V1PersistentVolumeClaim:
        """The claim Bound; a timeout names the claim's events (none: is the controller running?)."""

        def hint(_: str) -> str:
            events = self.claim_events(name)
            return f"claim events: {events}" + (f"; {PV_CONTROLLER_HINT}" if events == "none" else "")

        return wait.pvc_phase(self.core, self.namespace, name, "Bound", timeout, hint=hint)

    def volumes_bound_to(self, claims: list[str], timeout: float = BIND_TIMEOUT) -> dict[str, str | None]:
        """Claim -> the notes' name of the PV it is bound to (None while Pending), once every
        claim is Bound or at the deadline."""

        def mapping() -> dict[str, str | None]:
            return {n: self.names.notes_name(self.pvc(n).spec.volume_name) for n in claims}

        return wait.last_seen(mapping, lambda bound: all(bound.values()), f"claims {claims} bound", timeout)

    def wait_no_match_decision(self, name: str, timeout: float = DECISION_TIMEOUT) -> client.CoreV1Event:
        """The PV controller's decision that no PV fits claim `name` (FailedBinding, or
        ProvisioningFailed for a class without provisioner): proof that the claim was looked at."""
        uid = self.pvc(name).metadata.uid
        return wait.watch_until(
            self.core.list_namespaced_event,
            lambda events: next((e for e in events.values() if e.reason in NO_MATCH_REASONS), None),
            f"the PV controller's decision about claim {self.namespace}/{name} "
            f"(event {'/'.join(sorted(NO_MATCH_REASONS))})",
            lambda events: ", ".join(sorted({e.reason for e in events.values()})) or "no events",
            timeout,
            hint=PV_CONTROLLER_HINT,
            namespace=self.namespace,
            field_selector=f"involvedObject.uid={uid}",
        )

    def delete_claim(self, name: str, timeout: float = 60) -> None:
        self.core.delete_namespaced_persistent_volume_claim(name, self.namespace)
        wait.gone(lambda: self.pvc(name), f"claim {self.namespace}/{name}", timeout)

    def try_grow_claim(self, name: str, storage: str) -> ApiAnswer:
        """Ask for a bigger claim (a merge patch of its storage request); the API server's answer."""
        grow = {"spec": {"resources": {"requests": {"storage": storage}}}}
        return answer_to(
            lambda: self.core.patch_namespaced_persistent_volume_claim(name, self.namespace, grow), status=200
        )

    # --- dynamic provisioning ----------------------------------------------------------------

    def provision(
        self, source: str, claim: str, storage_class: client.V1StorageClass, *, consumer: str
    ) -> client.V1PersistentVolume:
        """The fixture's claim `claim`, naming `storage_class`, Bound to a PV the class's
        provisioner made (a `consumer` pod is started when the class waits for one); the PV."""
        (doc,) = self.load(source, dynamic=True)
        doc["spec"]["storageClassName"] = storage_class.metadata.name
        self.create([doc])
        if storage_class.volume_binding_mode == "WaitForFirstConsumer":
            pods.create_pod(self.manifests, consumer, values={"CLAIM_NAME": claim})

        def hint(_: str) -> str:
            text = (
                f"StorageClass {storage_class.metadata.name} (provisioner {storage_class.provisioner}) gave no PV; "
                f"claim events: {self.claim_events(claim)}"
            )
            if storage_class.provisioner == HOSTPATH_PROVISIONER:
                text += "; kubernetes.io/host-path provisions only when kube-controller-manager runs with "
                text += "--enable-hostpath-provisioner"
            return text

        down = causes.provisioner_cause(self.cluster, storage_class.provisioner)
        timeout = PROVISIONER_DOWN_GRACE if down else PROVISION_TIMEOUT
        try:
            bound = wait.pvc_phase(self.core, self.namespace, claim, "Bound", timeout, hint=hint)
        except WaitTimeout as e:
            if down is None or isinstance(e, WaitGaveUp):
                raise
            raise WaitGaveUp(e.expected, down, timeout, last_seen=e.last_seen, hint=e.hint) from None
        self.track_provisioned(bound.spec.volume_name)
        return self.core.read_persistent_volume(bound.spec.volume_name)

    def wait_pv_deleted(self, name: str, timeout: float = 60, *, hint: str | None = None) -> None:
        """Until PV `name` is gone; a timeout names its phase, message and events."""

        def state() -> client.V1PersistentVolume | None:
            return unless_missing(lambda: self.core.read_persistent_volume(name))

        def describe(pv: client.V1PersistentVolume | None) -> str:
            if pv is None:
                return "gone"
            events = "; ".join(f"{e.reason}: {e.message}" for e in self.pv_events(name)) or "no events"
            return f"phase {pv.status.phase} ({pv.status.message or ''}); events: {events}"

        wait.until_seen(state, lambda pv: pv is None, f"PV {name} to be gone", timeout, describe=describe, hint=hint)
