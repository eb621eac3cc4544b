"""Verbs for the PersistentVolume claims: create the notes' PVs, claims and StorageClasses under
run-unique names, wait for binding decisions, read phases, events and API answers.

PersistentVolumes and StorageClasses are cluster-wide, so one test's objects must not meet
another's (other tests, other runs, other xdist workers): `isolate` gives every PV and
StorageClass a per-test suffix (the notes' name stays in front: `pv-01-<suffix>`), labels the
PVs with `clusterproof.io/pv-set=<suffix>` and makes every static claim select that label, and
moves host paths under /tmp/clusterproof-<run id>/. What `isolate` renamed is deleted when the
test ends (`close`), and again by the tracker if the run is interrupted.
"""

from __future__ import annotations

import contextlib
import copy
import json
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client

from clusterproof import wait
from clusterproof.api_answers import ApiAnswer, raw_request
from clusterproof.cluster import Cluster, Node
from clusterproof.errors import WaitTimeout
from clusterproof.manifests import Doc, Manifests
from clusterproof.manifests import apply as apply_docs
from clusterproof.tracker import ResourceTracker

PV_SET_LABEL = "clusterproof.io/pv-set"
DEFAULT_CLASS_ANNOTATIONS = (
    "storageclass.kubernetes.io/is-default-class",
    "storageclass.beta.kubernetes.io/is-default-class",
)
PROVISIONED_BY = "pv.kubernetes.io/provisioned-by"
NODE1_LABEL = ("node", "node1")  # [003] pv-01's nodeAffinity
NODE1_USERS = "clusterproof.io/node1-users"  # annotation: who needs node=node1 now
NODE1_BEFORE = "clusterproof.io/node1-before"  # annotation: the label's value before them (JSON)
# the PV controller's answers when it finds no PV for a claim (and cannot provision one)
NO_MATCH_REASONS = frozenset({"FailedBinding", "ProvisioningFailed"})
# the PV controller acts on every change at once (and resyncs every 15 s)
BIND_TIMEOUT = 90.0  # a claim made before its PV is seen waits for the binder's 15 s resync
DECISION_TIMEOUT = 45.0
PV_CONTROLLER_HINT = "is kube-controller-manager's persistentvolume-binder controller running?"


# --- StorageClasses and nodes ----------------------------------------------------------------


def default_storage_class(cluster: Cluster) -> client.V1StorageClass | None:
    classes = cluster.storage.list_storage_class().items
    defaults = [
        c for c in classes if any((c.metadata.annotations or {}).get(a) == "true" for a in DEFAULT_CLASS_ANNOTATIONS)
    ]
    return sorted(defaults, key=lambda c: c.metadata.name)[0] if defaults else None


def describe_storage_classes(cluster: Cluster) -> str:
    classes = cluster.storage.list_storage_class().items
    return ", ".join(f"{c.metadata.name} ({c.provisioner})" for c in classes) or "none"


def node1_nodes(cluster: Cluster) -> list[str]:
    key, value = NODE1_LABEL
    return sorted(n.name for n in cluster.nodes if n.labels.get(key) == value)


def pick_node1(cluster: Cluster) -> Node:
    """The node that plays the notes' node1: one already labelled node=node1, else the first
    untainted worker."""
    labelled = node1_nodes(cluster)
    nodes = {n.name: n for n in cluster.nodes}
    if labelled:
        return nodes[labelled[0]]
    workers = sorted(cluster.require_workers(1), key=lambda n: (bool(n.taints), n.name))
    return workers[0]


def _node1_taken(labels: dict, annotations: dict, me: str) -> tuple[dict, dict]:
    key, value = NODE1_LABEL
    users = set(annotations.get(NODE1_USERS, "").split())
    notes = {} if users else {NODE1_BEFORE: json.dumps(labels.get(key))}
    notes[NODE1_USERS] = " ".join(sorted(users | {me}))
    return {key: value}, notes


def _node1_released(annotations: dict, me: str) -> tuple[dict, dict]:
    key, _ = NODE1_LABEL
    users = set(annotations.get(NODE1_USERS, "").split()) - {me}
    if users:
        return {}, {NODE1_USERS: " ".join(sorted(users))}
    before = json.loads(annotations.get(NODE1_BEFORE, "null"))
    return {key: before}, {NODE1_USERS: None, NODE1_BEFORE: None}


# --- the jig ---------------------------------------------------------------------------------


@dataclass
class PVJig:
    cluster: Cluster
    manifests: Manifests
    tracker: ResourceTracker
    run_id: str
    suffix: str
    namespace: str
    cluster_objects: list[tuple[str, str]] = field(default_factory=list)  # (kind, name) to delete
    host_paths: list[str] = field(default_factory=list)
    renamed: dict[str, str] = field(default_factory=dict)  # notes' name -> this test's name
    recycled: list[str] = field(default_factory=list)  # PVs with reclaim policy Recycle

    @property
    def core(self) -> client.CoreV1Api:
        return self.cluster.core

    def name(self, notes_name: str) -> str:
        """This test's name of the notes' PV or StorageClass `notes_name`."""
        return self.renamed.get(notes_name, notes_name)

    def notes_name(self, name: str | None) -> str | None:
        back = {v: k for k, v in self.renamed.items()}
        return back.get(name, name) if name else name

    # --- manifests -----------------------------------------------------------------------

    def load(self, path: str, *, values: dict[str, str] | None = None, dynamic: bool = False) -> list[Doc]:
        return self.isolate(self.manifests.load(path, values=values), dynamic=dynamic)

    def isolate(self, docs: list[Doc], *, dynamic: bool = False) -> list[Doc]:
        """See the module docstring. dynamic=True: leave claims without a selector (a claim
        with a selector is never provisioned)."""
        docs = copy.deepcopy(docs)
        for doc in docs:
            if doc["kind"] in ("PersistentVolume", "StorageClass"):
                old = doc["metadata"]["name"]
                self.renamed[old] = f"{old}-{self.suffix}"
        for doc in docs:
            kind, spec = doc["kind"], doc.get("spec") or {}
            if kind == "StorageClass":
                doc["metadata"]["name"] = self.name(doc["metadata"]["name"])
            elif kind == "PersistentVolume":
                doc["metadata"]["name"] = self.name(doc["metadata"]["name"])
                doc["metadata"].setdefault("labels", {})[PV_SET_LABEL] = self.suffix
                self._map_class(spec)
                self._move_path(doc["metadata"]["name"], spec)
            elif kind == "PersistentVolumeClaim":
                self._map_class(spec)
                if not dynamic:
                    labels = spec.setdefault("selector", {}).setdefault("matchLabels", {})
                    labels[PV_SET_LABEL] = self.suffix
        return docs

    def _map_class(self, spec: dict[str, Any]) -> None:
        name = spec.get("storageClassName")
        if name:
            spec["storageClassName"] = self.name(name)

    def _move_path(self, pv_name: str, spec: dict[str, Any]) -> None:
        for plugin in ("hostPath", "local"):
            if plugin in spec:
                path = f"/tmp/clusterproof-{self.run_id}/{pv_name}"
                spec[plugin]["path"] = path
                if not self.host_paths:  # again at the end of the run, should close() not run
                    self.tracker.on_cleanup(
                        self.cluster, f"remove host paths of PV set {self.suffix}", self._remove_paths
                    )
                self.host_paths.append(path)

    def create(self, docs: list[Doc]) -> list[Doc]:
        created = apply_docs(self.cluster, docs, tracker=self.tracker)
        for obj in created:
            self._track(obj)
        return created

    def _track(self, obj: Doc) -> None:
        if obj["kind"] in ("PersistentVolume", "StorageClass"):
            self.cluster_objects.append((obj["kind"], obj["metadata"]["name"]))
        if obj["kind"] == "PersistentVolume" and obj["spec"].get("persistentVolumeReclaimPolicy") == "Recycle":
            self.recycled.append(obj["metadata"]["name"])

    def create_raw(self, doc: Doc) -> ApiAnswer:
        """Create a PV through a raw POST, to see the API's warnings too."""
        answer = raw_request(self.cluster, "POST", "/api/v1/persistentvolumes", doc)
        if answer.status == 201:
            self.tracker.register(self.cluster, answer.body, namespaced=False)
            self._track(answer.body)
        return answer

    def apply(self, path: str, *, values: dict[str, str] | None = None, dynamic: bool = False) -> list[Doc]:
        return self.create(self.load(path, values=values, dynamic=dynamic))

    def track_provisioned(self, name: str) -> None:
        """A PV the provisioner made: its claim's deletion reclaims it; the tracker deletes
        it at the end of the run should it still be there."""
        self.tracker.register(
            self.cluster, {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": name}}, namespaced=False
        )

    # --- nodes ---------------------------------------------------------------------------

    def play_node1(self) -> str:
        """Label a node node=node1 and return its name. The label is shared by every process
        of every run that needs it (xdist workers have one tracker each): the node's annotations
        list who uses it and keep the value from before the first; the last user to clean up
        (the tracker, at the end of its session) restores that value."""
        node = pick_node1(self.cluster).name
        me = f"{self.run_id}/{getattr(self.tracker, 'owner', 'main')}"
        self.tracker.on_cleanup(
            self.cluster,
            f"release label node=node1 on node {node}",
            lambda: self._release_node1(node, me),
            once=f"node1 {node}",
        )
        self._update_node(node, lambda labels, notes: _node1_taken(labels, notes, me))
        return node

    def _release_node1(self, node: str, me: str) -> None:
        self._update_node(node, lambda labels, notes: _node1_released(notes, me))

    def _update_node(self, node: str, change: Callable[[dict, dict], tuple[dict, dict]]) -> None:
        """Patch labels and annotations computed from the node's current ones, retried on
        conflict (the patch carries the resourceVersion it was computed from)."""
        for _ in range(10):
            meta = self.core.read_node(node, _request_timeout=15).metadata
            labels, annotations = change(meta.labels or {}, meta.annotations or {})
            body = {
                "metadata": {"resourceVersion": meta.resource_version, "labels": labels, "annotations": annotations}
            }
            try:
                self.core.patch_node(node, body, _request_timeout=15)
                return
            except client.ApiException as e:
                if e.status != 409:
                    raise
        raise AssertionError(f"node {node}: labels kept changing under us (10 conflicts)")

    def make_local_path(self, node: str, pv_name: str) -> str:
        """A local PV needs its path to exist on the node."""
        path = next(p for p in self.host_paths if p.endswith(f"/{pv_name}"))
        self.cluster.node_exec(node, "mkdir", "-p", path)
        return path

    def node_file(self, node: str, path: str) -> str | None:
        done = self.cluster.node_exec(node, "cat", path, check=False)
        return done.stdout if done.returncode == 0 else None

    # --- phases, binding -----------------------------------------------------------------

    def pv(self, notes_name: str) -> client.V1PersistentVolume:
        return self.core.read_persistent_volume(self.name(notes_name))

    def pvc(self, name: str) -> client.V1PersistentVolumeClaim:
        return self.core.read_namespaced_persistent_volume_claim(name, self.namespace)

    def pv_phase(self, notes_name: str, phase: str, timeout: float = BIND_TIMEOUT) -> client.V1PersistentVolume:
        try:
            return wait.pv_phase(self.core, self.name(notes_name), phase, timeout)
        except WaitTimeout as e:
            # a new PV is Pending until the PV controller has seen it
            hint = f": {PV_CONTROLLER_HINT}" if e.last_seen == "phase Pending" else ""
            raise AssertionError(f"{e}{hint}") from None

    def phase_in(self, notes_name: str, phases: tuple[str, ...], timeout: float) -> client.V1PersistentVolume:
        name = self.name(notes_name)
        return wait.watch_until(
            self.core.list_persistent_volume,
            lambda objs: (v := objs.get(name)) is not None and v.status.phase in phases and v,
            f"PV {name} {' or '.join(phases)}",
            lambda objs: f"phase {objs[name].status.phase}" if name in objs else "not found",
            timeout,
            field_selector=f"metadata.name={name}",
        )

    def pvc_bound(self, name: str, timeout: float = BIND_TIMEOUT) -> client.V1PersistentVolumeClaim:
        try:
            return wait.pvc_phase(self.core, self.namespace, name, "Bound", timeout)
        except WaitTimeout as e:
            events = self.claim_events(name)
            hint = f"; {PV_CONTROLLER_HINT}" if events == "none" else ""
            raise AssertionError(f"{e}; claim events: {events}{hint}") from None

    def claims_bound(self, names: Iterable[str], timeout: float = BIND_TIMEOUT) -> dict[str, str | None]:
        """Wait until every claim is Bound (or the deadline); returns claim -> this test's
        notes' PV name (None while Pending)."""
        names = list(names)

        def mapping() -> dict[str, str | None]:
            return {n: self.notes_name(self.pvc(n).spec.volume_name) for n in names}

        return wait.last_seen(mapping, lambda bound: all(bound.values()), f"claims {names} bound", timeout)

    def no_match_decision(self, name: str, timeout: float = DECISION_TIMEOUT) -> client.CoreV1Event:
        """The PV controller's decision that no PV fits claim `name` (FailedBinding, or
        ProvisioningFailed for a class without provisioner): proof that the claim was looked at."""
        uid = self.pvc(name).metadata.uid

        def done(events: dict[str, client.CoreV1Event]) -> client.CoreV1Event | None:
            return next((e for e in events.values() if e.reason in NO_MATCH_REASONS), None)

        def describe(events: dict[str, client.CoreV1Event]) -> str:
            return ", ".join(sorted({e.reason for e in events.values()})) or "no events"

        try:
            return wait.watch_until(
                self.core.list_namespaced_event,
                done,
                f"a binding decision (event {'/'.join(sorted(NO_MATCH_REASONS))}) about claim {name}",
                describe,
                timeout,
                namespace=self.namespace,
                field_selector=f"involvedObject.uid={uid}",
            )
        except WaitTimeout as e:
            raise AssertionError(
                f"the PV controller never decided about claim {self.namespace}/{name} ({e}): {PV_CONTROLLER_HINT}"
            ) from None

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

    def delete_claim(self, name: str, timeout: float = 60) -> None:
        self.core.delete_namespaced_persistent_volume_claim(name, self.namespace)
        wait.gone(lambda: self.pvc(name), f"claim {self.namespace}/{name}", timeout)

    # --- pods ----------------------------------------------------------------------------

    def start_pod(
        self,
        source: str,
        *,
        name: str | None = None,
        values: dict[str, str] | None = None,
        affinity: dict[str, Any] | None = None,
    ) -> str:
        (doc,) = self.manifests.load(source, values=values)
        if name:
            doc["metadata"]["name"] = name
        doc["spec"]["terminationGracePeriodSeconds"] = 0
        if affinity:
            doc["spec"]["affinity"] = affinity
        apply_docs(self.cluster, [doc], tracker=self.tracker)
        return doc["metadata"]["name"]

    # --- the end ---------------------------------------------------------------------------

    def close(self) -> None:
        """Delete this test's PVs and StorageClasses (not waiting), recycler pods left in the
        default namespace, and its host paths on every node."""
        for kind, name in reversed(self.cluster_objects):
            with contextlib.suppress(client.ApiException):
                if kind == "PersistentVolume":
                    self.core.delete_persistent_volume(name)
                else:
                    self.cluster.storage.delete_storage_class(name)
        self._remove_recycler_pods()
        self._remove_paths()

    def _remove_recycler_pods(self) -> None:
        """The PV controller retries a failed recycle (a new recycler pod) until the PV is gone."""
        for name in self.recycled:
            with contextlib.suppress(WaitTimeout):
                wait.gone(lambda n=name: self.core.read_persistent_volume(n), f"PV {name}", 30)
            with contextlib.suppress(client.ApiException):
                self.core.delete_namespaced_pod(f"recycler-for-{name}", "default", grace_period_seconds=0)

    def _remove_paths(self) -> None:
        if self.cluster.can_node_exec and self.host_paths:
            run_dir = f"/tmp/clusterproof-{self.run_id}"
            # the run dir goes only when empty: other tests of the run may still have files there
            script = 'rm -rf -- "$@"; rmdir "$0" 2>/dev/null || true'
            for node in (n.name for n in self.cluster.nodes):
                self.cluster.node_exec(node, "sh", "-c", script, run_dir, *self.host_paths, check=False, timeout=30)


# --- watching a PV's phases ------------------------------------------------------------------


class PhaseLog:
    """Records the phases a PV goes through, from before it exists until `final`, in a thread
    (a watch with a deadline), so a test can act meanwhile."""

    def __init__(self, core: client.CoreV1Api, name: str, final: str, timeout: float) -> None:
        self.core = core
        self.name = name
        self.final = final
        self.timeout = timeout
        self.phases: list[str] = []
        self.error: Exception | None = None
        self._thread = threading.Thread(target=self._run, name=f"phases-{name}", daemon=True)

    def __enter__(self) -> PhaseLog:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._thread.join(self.timeout)

    def _run(self) -> None:
        try:
            wait.watch_until(
                self.core.list_persistent_volume,
                self._seen,
                f"PV {self.name} {self.final}",
                lambda objs: " -> ".join(self.phases) or "nothing",
                self.timeout,
                field_selector=f"metadata.name={self.name}",
            )
        except Exception as e:  # reported by result()
            self.error = e

    def _seen(self, objs: dict[str, Any]) -> bool:
        pv = objs.get(self.name)
        phase = pv.status.phase if pv is not None and pv.status else None
        if phase and (not self.phases or self.phases[-1] != phase):
            self.phases.append(phase)
        return phase == self.final

    def result(self) -> list[str]:
        self._thread.join(self.timeout)
        if self.error is not None:
            raise AssertionError(f"watching PV {self.name}: {self.error}")
        return list(self.phases)
