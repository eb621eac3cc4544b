"""The durable state of an upgrade: what `--phase before` creates and records, and how it is
committed, undone, read again and removed.

`before` is all or nothing. What it makes is journaled as it is made, and while it is unfinished
it is the before run's like anything a run makes (namespaces and volumes carry the run label: a
killed `before` is swept like any dead run's leftovers; its volumes are still `Delete`, so their
data goes with their claims). A failed or stopped `before` removes what it made (a cleanup step of
the tracker that does nothing once committed), and says so. The commit: the state file written
(never over an existing one unless told), then the labels moved to the durable state's
(`clusterproof.io/upgrade-state`: no sweep touches it), the Retain volume already Retain.
`remove_state` takes the state away after a successful `after`: the volumes set back to Delete
first, so their provisioner removes them and their data with the namespaces."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes import client

from clusterproof import wait
from clusterproof.api_answers import unless_missing
from clusterproof.cluster import Cluster
from clusterproof.images import ImageCatalogue
from clusterproof.manifests import Doc, load
from clusterproof.manifests import apply as create_objects
from clusterproof.namespaces import DEFAULT_POD_SECURITY, pod_security_labels
from clusterproof.probe import exec_in_pod
from clusterproof.run import RUN_LABEL, STATE_LABEL, short_id
from clusterproof.tracker import ResourceTracker
from clusterproof.upgrade import specs
from clusterproof.upgrade.state import UpgradeState

FIXTURES = "upgrade"
DURABLE = ("web", "store", "settings", "prober", "retain")  # fixtures/upgrade/*.yaml in the durable namespace
QUOTA = "quota"  # ... and in the quota namespace
READY_TIMEOUT = 180.0
PAYLOAD = "head -c 65536 /dev/urandom > {path} && sha256sum {path}"
CHECKSUM = "sha256sum {path}"
DEPLOYMENTS = ("web", "retained-user", "consumer")
RETAINED_CLAIM = "retained"
SERVED = ("web", "web-np")  # the Services UPG-05 sends traffic through (store is headless and serves nothing)
WEB_REPLICAS = 2
# which claim compares an object's identity and spec
CLAIM_OF_KIND = {
    "Deployment": "UPG-02",
    "StatefulSet": "UPG-02",
    "DaemonSet": "UPG-02",
    "Service": "UPG-02",
    "PodDisruptionBudget": "UPG-02",
    "PersistentVolume": "UPG-03",
    "PersistentVolumeClaim": "UPG-03",
    "ResourceQuota": "UPG-06",
    "ConfigMap": "UPG-07",
}


@dataclass
class Journal:
    """What an unfinished `--phase before` made, recorded as it goes."""

    namespaces: list[str] = field(default_factory=list)
    volumes: list[str] = field(default_factory=list)  # PV names
    host_file: tuple[str, str] | None = None  # (node, path)
    state_file: Path | None = None  # written by this run
    committed: bool = False


@dataclass
class DurableStateKeeper:
    """The durable state's life: made and recorded (before), committed or undone, read again, removed."""

    cluster: Cluster
    catalogue: ImageCatalogue
    fixtures_dir: Path
    run_id: str
    tracker: ResourceTracker

    def docs(self, name: str, namespace: str | None, values: dict[str, str] | None = None) -> list[Doc]:
        return load(
            f"{FIXTURES}/{name}.yaml",
            namespace,
            catalogue=self.catalogue,
            labels={STATE_LABEL: self.run_id},
            offline=self.cluster.offline,
            values=values or {},
            fixtures_dir=self.fixtures_dir,
        )

    def create(self, name: str, namespace: str | None, values: dict[str, str] | None = None) -> list[Doc]:
        return create_objects(self.cluster, self.docs(name, namespace, values))  # no tracker: the journal's

    def run_in(self, namespace: str, pod: str, script: str) -> str:
        result = exec_in_pod(self.cluster.core, namespace, pod, ["sh", "-c", script])
        if result.rc != 0:
            raise AssertionError(f"in pod {namespace}/{pod}: `{script}` exited {result.rc}: {result.stderr.strip()}")
        return result.stdout

    def pod_of(self, namespace: str, app: str, timeout: float = READY_TIMEOUT) -> client.V1Pod:
        return wait.pods_ready(self.cluster.core, namespace, f"app={app}", 1, timeout)[0]

    def read(self, api_version: str, kind: str, name: str, namespace: str | None) -> dict[str, Any] | None:
        """The object as the API server serves it (a dict, camelCase), or None when it is gone."""
        resource = self.cluster.dynamic.resources.get(api_version=api_version, kind=kind)
        found = unless_missing(lambda: resource.get(name=name, namespace=namespace))
        return found.to_dict() if found is not None else None

    def read_recorded(self, entry: dict[str, Any]) -> dict[str, Any] | None:
        return self.read(entry["api_version"], entry["kind"], entry["name"], entry.get("namespace"))

    def create_durable_state(self, context: str, note: Callable[[str], None]) -> tuple[UpgradeState, Journal]:
        """Create the durable state, write its data, and read the record of it from the cluster.
        Until `commit`, everything made is the before run's, undone if the test does not finish."""
        default_storage_class(self.cluster)  # the claims need one
        journal = Journal()
        self.tracker.on_cleanup(
            self.cluster,
            "remove what an unfinished --phase before made",
            lambda: None if journal.committed else self.undo(journal, note),
        )
        namespace = f"cp-upgrade-{short_id(self.run_id)}"
        quota_namespace = f"{namespace}-quota"
        # the hostPath pod needs Pod Security privileged (a cluster may enforce baseline by default)
        for ns, level in ((namespace, "privileged"), (quota_namespace, DEFAULT_POD_SECURITY)):
            journal.namespaces.append(ns)
            labels = {RUN_LABEL: self.run_id, **pod_security_labels(level)}
            self.cluster.core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns, labels=labels)))
            wait.until(
                lambda ns=ns: _default_service_account(self.cluster, ns), f"namespace {ns}'s default ServiceAccount", 60
            )
        created = [doc for name in DURABLE for doc in self.create(name, namespace)]
        created += self.create(QUOTA, quota_namespace)

        for name in DEPLOYMENTS:
            wait.deployment_available(self.cluster.apps, namespace, name, READY_TIMEOUT)
        wait.daemonsets_ready(self.cluster.apps, namespace, READY_TIMEOUT)
        store_pods = wait.pods_ready(self.cluster.core, namespace, "app=upgrade-store", 2, READY_TIMEOUT)
        self.journal_volumes(namespace, journal)

        checksums: dict[str, dict[str, str]] = {}
        for pod in store_pods:
            digest = self.run_in(namespace, pod.metadata.name, PAYLOAD.format(path="/data/payload")).split()[0]
            checksums[f"statefulset {pod.metadata.name}"] = {
                "pod": pod.metadata.name,
                "path": "/data/payload",
                "sha256": digest,
            }
        retained = self.pod_of(namespace, "upgrade-retained")
        digest = self.run_in(namespace, retained.metadata.name, PAYLOAD.format(path="/data/payload")).split()[0]
        checksums["retained volume"] = {"app": "upgrade-retained", "path": "/data/payload", "sha256": digest}
        node = sorted(n.name for n in self.cluster.workers or self.cluster.nodes)[0]
        path = f"/host/{self.run_id}.data"
        journal.host_file = (node, path)
        checksums["hostPath file"] = {
            "node": node,
            "path": path,
            "sha256": self.host_file(namespace, node, path, write=True),
        }
        wait.until(
            lambda: _quota_full(self.cluster, quota_namespace), "ResourceQuota at-limit counted at its limit", 60
        )
        self.retain(namespace)
        durable = [
            {
                "kind": d["kind"],
                "api_version": d["apiVersion"],
                "name": d["metadata"]["name"],
                "namespace": d["metadata"].get("namespace"),
            }
            for d in created
            if d["kind"] in CLAIM_OF_KIND
        ]
        state = self.read_state(namespace, quota_namespace, durable, context, checksums)
        return state, journal

    def journal_volumes(self, namespace: str, journal: Journal) -> None:
        """The volumes provisioned for the durable claims: labelled with the run (a killed `before`
        is swept) and journaled."""
        for claim in self.cluster.core.list_namespaced_persistent_volume_claim(namespace).items:
            pv = claim.spec.volume_name
            if pv and pv not in journal.volumes:
                journal.volumes.append(pv)
                self.cluster.core.patch_persistent_volume(pv, {"metadata": {"labels": {RUN_LABEL: self.run_id}}})

    def retain(self, namespace: str) -> None:
        """The volume of the Retain claim gets reclaimPolicy Retain (as `kubectl patch pv` does):
        from here on its data outlives its claim."""
        claim = self.cluster.core.read_namespaced_persistent_volume_claim(RETAINED_CLAIM, namespace)
        self.cluster.core.patch_persistent_volume(
            claim.spec.volume_name, {"spec": {"persistentVolumeReclaimPolicy": "Retain"}}
        )

    def read_state(
        self,
        namespace: str,
        quota_namespace: str,
        durable: list[dict[str, Any]],
        context: str,
        checksums: dict[str, dict[str, str]],
    ) -> UpgradeState:
        """The record, read from the cluster: every durable object's identity and normalised
        spec (with the claims of the StatefulSet and the volumes behind every claim)."""
        entries = list(durable)
        volumes: dict[str, dict[str, Any]] = {}
        for claim in self.cluster.core.list_namespaced_persistent_volume_claim(namespace).items:
            if not any(e["kind"] == "PersistentVolumeClaim" and e["name"] == claim.metadata.name for e in entries):
                entries.append(_entry("PersistentVolumeClaim", "v1", claim.metadata.name, namespace))
            if claim.spec.volume_name:
                pv = self.cluster.core.read_persistent_volume(claim.spec.volume_name)
                entries.append(_entry("PersistentVolume", "v1", pv.metadata.name, None))
                volumes[pv.metadata.name] = {
                    "claim": claim.metadata.name,
                    "namespace": namespace,
                    "claim_uid": claim.metadata.uid,
                    "phase": pv.status.phase,
                    "reclaim": pv.spec.persistent_volume_reclaim_policy,
                }
        objects = {}
        for entry in entries:
            found = self.read_recorded(entry)
            assert found is not None, f"{entry['kind']} {entry['name']} is gone right after it was made"
            objects[f"{entry['kind']} {entry['name']}"] = {
                **entry,
                "uid": found["metadata"]["uid"],
                "claim": "UPG-06" if entry.get("namespace") == quota_namespace else CLAIM_OF_KIND[entry["kind"]],
                "spec": specs.normalise(found),
            }
        return UpgradeState(
            run_id=self.run_id,
            cluster_uid=self.cluster.core.read_namespace("kube-system").metadata.uid,
            context=context,
            server_version=self.cluster.git_version,
            node_versions=node_versions(self.cluster),
            node_ips={n.name: n.internal_ip or "" for n in self.cluster.nodes},
            namespace=namespace,
            quota_namespace=quota_namespace,
            kube_proxy=kube_proxy_tag(self.cluster) or "",
            objects=objects,
            volumes=volumes,
            checksums=checksums,
            restarts=restarts(self.cluster, namespace),
        )

    def host_file(self, namespace: str, node: str, path: str, *, write: bool) -> str:
        """Write (or read) the hostPath file on `node` through a pod there; its sha256."""
        name = f"hostpath-{'writer' if write else 'reader'}-{int(time.time())}"
        self.create("hostpath", namespace, {"NAME": name, "NODE": node})
        try:
            wait.pod_ready(self.cluster.core, namespace, name, READY_TIMEOUT)
            if write:
                return self.run_in(namespace, name, PAYLOAD.format(path=path)).split()[0]
            return self.sha256_or_absent(namespace, name, path)
        finally:
            unless_missing(lambda: self.cluster.core.delete_namespaced_pod(name, namespace, grace_period_seconds=0))

    def write_state_file(self, state: UpgradeState, journal: Journal, path: Path, *, overwrite: bool) -> None:
        """The state file, atomically; never over an existing one unless `overwrite`."""
        if overwrite:
            state.replace(path)
        else:
            try:
                state.write_new(path)
            except FileExistsError:
                raise AssertionError(
                    f"{path} appeared while this --phase before ran (another --phase before on the same "
                    "state file?): this one's state is removed, that file is left as it is"
                ) from None
        journal.state_file = path

    def hash_again(self, state: UpgradeState, where: dict[str, str]) -> str:
        if "pod" in where:
            return self.sha256_or_absent(state.namespace, where["pod"], where["path"])
        if "app" in where:
            return self.sha256_or_absent(
                state.namespace, self.pod_of(state.namespace, where["app"]).metadata.name, where["path"]
            )
        return self.host_file(state.namespace, where["node"], where["path"], write=False)

    def commit(self, state: UpgradeState, journal: Journal) -> None:
        """From the before run's to the durable state's: the labels move (no sweep touches it now)."""
        moved = {"metadata": {"labels": {STATE_LABEL: state.run_id, RUN_LABEL: None}}}
        for ns in journal.namespaces:
            self.cluster.core.patch_namespace(ns, moved)
        for pv in journal.volumes:
            self.cluster.core.patch_persistent_volume(pv, moved)
        journal.committed = True

    def undo(self, journal: Journal, note: Callable[[str], None]) -> None:
        """A `before` that did not finish: everything it made, removed (the tracker's step)."""
        removed = self.remove(journal.namespaces, journal.volumes, journal.host_file)
        if journal.state_file is not None:
            journal.state_file.unlink(missing_ok=True)
            removed.append(f"the state file {journal.state_file}")
        note("--phase before did not finish: removed what it made: " + (", ".join(removed) or "nothing yet"))

    def sha256_or_absent(self, namespace: str, pod: str, path: str) -> str:
        return self.run_in(
            namespace, pod, f"test -e {path} || {{ echo absent; exit 0; }}; {CHECKSUM.format(path=path)}"
        ).split()[0]

    def remove_state(self, state: UpgradeState, note: Callable[[str], None]) -> None:
        """Everything `before` kept: the hostPath file, the namespaces, the volumes (as they are
        now on the cluster, not as recorded)."""
        where = state.checksums.get("hostPath file")
        host = (where["node"], where["path"]) if where else None
        volumes = [
            pv.metadata.name
            for pv in self.cluster.core.list_persistent_volume(label_selector=f"{STATE_LABEL}={state.run_id}").items
        ]
        removed = self.remove([state.namespace, state.quota_namespace], [*state.volumes, *volumes], host)
        note(f"upgrade state of {state.run_id} removed: {', '.join(removed)}")

    def remove(self, namespaces: list[str], volumes: list[str], host: tuple[str, str] | None) -> list[str]:
        """The hostPath file, the volumes set to Delete (their provisioner removes them and their
        data once their claims go), the namespaces; what was removed, in words."""
        removed = []
        live = [ns for ns in namespaces if unless_missing(lambda ns=ns: self.cluster.core.read_namespace(ns))]
        if host and namespaces and namespaces[0] in live:
            self.run_host_cleanup(namespaces[0], *host)
            removed.append(f"the hostPath file {host[1]} on {host[0]}")
        for ns in live:
            for claim in self.cluster.core.list_namespaced_persistent_volume_claim(ns).items:
                if claim.spec.volume_name and claim.spec.volume_name not in volumes:
                    volumes = [*volumes, claim.spec.volume_name]
        for pv in dict.fromkeys(volumes):
            if unless_missing(
                lambda pv=pv: self.cluster.core.patch_persistent_volume(
                    pv, {"spec": {"persistentVolumeReclaimPolicy": "Delete"}}
                )
            ):
                removed.append(f"PV {pv} (set to Delete)")
        for ns in live:
            unless_missing(lambda ns=ns: self.cluster.core.delete_namespace(ns))
            removed.append(f"namespace {ns}")
        return removed

    def run_host_cleanup(self, namespace: str, node: str, path: str) -> None:
        name = f"hostpath-cleanup-{int(time.time())}"
        self.create("hostpath", namespace, {"NAME": name, "NODE": node})
        try:
            wait.pod_ready(self.cluster.core, namespace, name, READY_TIMEOUT)
            self.run_in(namespace, name, f"rm -f {path}")
        finally:
            unless_missing(lambda: self.cluster.core.delete_namespaced_pod(name, namespace, grace_period_seconds=0))


def default_storage_class(cluster: Cluster) -> client.V1StorageClass:
    classes = cluster.storage.list_storage_class().items
    for sc in classes:
        if (sc.metadata.annotations or {}).get("storageclass.kubernetes.io/is-default-class") == "true":
            return sc
    names = ", ".join(sc.metadata.name for sc in classes) or "none"
    raise AssertionError(f"no default StorageClass (classes: {names}): the upgrade state needs dynamic claims")


def _entry(kind: str, api_version: str, name: str, namespace: str | None) -> dict[str, Any]:
    return {"kind": kind, "api_version": api_version, "name": name, "namespace": namespace}


def node_versions(cluster: Cluster) -> dict[str, str]:
    return {n.metadata.name: n.status.node_info.kubelet_version for n in cluster.core.list_node().items}


def kube_proxy_tag(cluster: Cluster) -> str | None:
    """kube-proxy's image tag (its DaemonSet in kube-system), or None when there is none."""
    proxy = unless_missing(lambda: cluster.apps.read_namespaced_daemon_set("kube-proxy", "kube-system"))
    if proxy is None:
        return None
    image = proxy.spec.template.spec.containers[0].image
    return image.rsplit(":", 1)[-1] if ":" in image.rsplit("/", 1)[-1] else ""


def restarts(cluster: Cluster, namespace: str) -> dict[str, int]:
    counts = {}
    for ns in (namespace, "kube-system"):
        for pod in cluster.core.list_namespaced_pod(ns).items:
            for status in pod.status.container_statuses or []:
                counts[f"{ns}/{pod.metadata.name}/{status.name}"] = status.restart_count
    return counts


def _default_service_account(cluster: Cluster, namespace: str) -> bool:
    return unless_missing(lambda: cluster.core.read_namespaced_service_account("default", namespace)) is not None


def _quota_full(cluster: Cluster, namespace: str) -> bool:
    quota = cluster.core.read_namespaced_resource_quota("at-limit", namespace)
    used = (quota.status.used or {}) if quota.status else {}
    return used.get("count/configmaps") == "2"
