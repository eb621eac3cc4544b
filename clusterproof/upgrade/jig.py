"""The upgrade jig: the durable state `--phase before` creates and records, and the facts
`--phase after` compares with it.

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

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes import client

from clusterproof import pod_states, probe, urls, wait
from clusterproof.api_answers import ApiAnswer, answer_to, unless_missing
from clusterproof.cluster import Cluster
from clusterproof.images import ImageCatalogue
from clusterproof.manifests import Doc, load
from clusterproof.manifests import apply as create_objects
from clusterproof.namespaces import DEFAULT_POD_SECURITY, pod_security_labels
from clusterproof.probe import ClientPod, exec_in_pod
from clusterproof.run import RUN_LABEL, STATE_LABEL, short_id
from clusterproof.tracker import ResourceTracker
from clusterproof.upgrade import monitor_file, specs, versions
from clusterproof.upgrade.monitor import targets_of
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
class Check:
    """One before/after comparison, as the report's upgrade section shows it."""

    claim: str
    check: str
    expected: str
    observed: str
    verdict: str  # held | tolerated | failed | skipped

    def to_json(self) -> dict[str, str]:
        return {
            "claim": self.claim,
            "check": self.check,
            "expected": self.expected,
            "observed": self.observed,
            "verdict": self.verdict,
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
class UpgradeJig:
    cluster: Cluster
    catalogue: ImageCatalogue
    fixtures_dir: Path
    run_id: str
    tracker: ResourceTracker
    checks: list[Check] = field(default_factory=list)
    after_started: float = field(default_factory=time.time)  # (re)set when --phase after takes the state

    # --- plumbing ----------------------------------------------------------------------------

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

    def record(self, claim: str, check: str, expected: object, observed: object, verdict: str | None = None) -> Check:
        verdict = verdict or ("held" if str(expected) == str(observed) else "failed")
        found = Check(claim, check, str(expected), str(observed), verdict)
        self.checks.append(found)
        return found

    def expect_same(
        self, claim: str, facts: dict[str, tuple[object, object]], *, wording: str = "{} before, {} after"
    ) -> None:
        """Record each fact; fail naming every one that differs (by default: before vs after)."""
        checks = [self.record(claim, name, before, after) for name, (before, after) in facts.items()]
        changed = [c for c in checks if c.verdict != "held"]
        assert not changed, "; ".join(f"{c.check}: " + wording.format(c.expected, c.observed) for c in changed)

    def read(self, api_version: str, kind: str, name: str, namespace: str | None) -> dict[str, Any] | None:
        """The object as the API server serves it (a dict, camelCase), or None when it is gone."""
        resource = self.cluster.dynamic.resources.get(api_version=api_version, kind=kind)
        found = unless_missing(lambda: resource.get(name=name, namespace=namespace))
        return found.to_dict() if found is not None else None

    def read_recorded(self, entry: dict[str, Any]) -> dict[str, Any] | None:
        return self.read(entry["api_version"], entry["kind"], entry["name"], entry.get("namespace"))

    # --- before --------------------------------------------------------------------------------

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

    def assert_cluster_matches(self, state_file: Path) -> None:
        """UPG-01: the state read again from the cluster — objects, specs, bindings, versions, the data
        hashed again — is what the state file says."""
        recorded = UpgradeState.load(state_file)
        durable = [{k: v[k] for k in ("kind", "api_version", "name", "namespace")} for v in recorded.objects.values()]
        durable = [d for d in durable if d["kind"] not in ("PersistentVolume",)]
        checksums = {
            what: {**where, "sha256": self.hash_again(recorded, where)} for what, where in recorded.checksums.items()
        }
        now = self.read_state(recorded.namespace, recorded.quota_namespace, durable, recorded.context, checksums)
        differences = []
        for field_name in ("cluster_uid", "server_version", "node_versions", "kube_proxy", "volumes", "checksums"):
            in_file, on_cluster = getattr(recorded, field_name), getattr(now, field_name)
            if on_cluster != in_file:
                differences.append(f"{field_name}: {in_file} in the file, {on_cluster} on the cluster")
        for key in sorted(set(recorded.objects) | set(now.objects)):
            was, found = recorded.objects.get(key), now.objects.get(key)
            if was is None or found is None:
                differences.append(f"{key}: {'not in the file' if was is None else 'not on the cluster'}")
                continue
            if was["uid"] != found["uid"]:
                differences.append(f"{key}: uid {was['uid']} in the file, {found['uid']} on the cluster")
            differences += [f"{key} {c}" for c in specs.changes(was["spec"], found["spec"])]
        self.record(
            "UPG-01",
            f"{state_file} against the cluster, read again",
            f"{len(recorded.objects)} objects, {len(recorded.volumes)} volumes, {len(recorded.checksums)} checksums",
            "the same" if not differences else "; ".join(differences),
            "held" if not differences else "failed",
        )
        assert not differences, f"{state_file} differs from the cluster read again: " + "; ".join(differences)

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

    # --- after: what is left -------------------------------------------------------------------

    def gone(self, state: UpgradeState) -> dict[str, str]:
        """Durable objects that are not there any more (or whose namespace is being deleted): key -> why."""
        namespaces = {}
        for ns in (state.namespace, state.quota_namespace):
            found = unless_missing(lambda ns=ns: self.cluster.core.read_namespace(ns))
            if found is None:
                namespaces[ns] = f"namespace {ns} is gone"
            elif found.status and found.status.phase == "Terminating":
                namespaces[ns] = f"namespace {ns} is being deleted"
        missing = {}
        for key, entry in state.objects.items():
            if entry.get("namespace") in namespaces:
                missing[key] = namespaces[entry["namespace"]]
            elif self.read_recorded(entry) is None:
                missing[key] = "gone"
        return missing

    def require(self, claim: str, state: UpgradeState, *keys: str) -> None:
        """Fail `claim` naming what it needs of the durable state that is lost."""
        lost = {k: why for k, why in self.gone(state).items() if k in keys}
        for key, why in lost.items():
            self.record(claim, f"{key} (durable state)", "there", why)
        assert not lost, "lost durable state: " + "; ".join(f"{k}: {why}" for k, why in sorted(lost.items()))

    # --- after: identity and spec (UPG-02, UPG-03, UPG-06, UPG-07) -----------------------------

    def compare_objects(self, claim: str, state: UpgradeState) -> list[str]:
        """Each durable object of `claim`: there, the same UID, every recorded spec field the same
        (clusterproof.upgrade.specs). Returns what differs, one entry per object."""
        problems = []
        lost = self.gone(state)
        for key, entry in sorted(state.objects.items()):
            if entry["claim"] != claim:
                continue
            found = None if key in lost else self.read_recorded(entry)
            if found is None:
                observed = lost.get(key, "gone")
            elif found["metadata"]["uid"] != entry["uid"]:
                observed = f"replaced: uid {entry['uid']} -> {found['metadata']['uid']}"
            else:
                observed = "; ".join(specs.changes(entry["spec"], specs.normalise(found))) or "the same"
            check = self.record(
                claim,
                key,
                f"uid {entry['uid']}, spec as recorded ({len(entry['spec'])} fields)",
                observed,
                "held" if observed == "the same" else "failed",
            )
            if check.verdict != "held":
                problems.append(f"{key}: {observed}")
        return problems

    def assert_same_objects(self, state: UpgradeState) -> None:
        problems = self.compare_objects("UPG-02", state)
        assert not problems, "; ".join(problems)

    def assert_volumes_still_bound(self, state: UpgradeState) -> None:
        problems = []
        for pv, before in state.volumes.items():
            found = unless_missing(lambda pv=pv: self.cluster.core.read_persistent_volume(pv))
            ref = found.spec.claim_ref if found else None
            if found is None:
                after = "PV gone"
            else:
                after = f"{ref.name} ({ref.uid}), {found.status.phase}" if ref else f"no claim, {found.status.phase}"
            check = self.record("UPG-03", f"PV {pv}", f"{before['claim']} ({before['claim_uid']}), Bound", after)
            if check.verdict != "held":
                problems.append(f"PV {pv}: {before['claim']} ({before['claim_uid']}), Bound before, {after} after")
        problems += self.compare_objects("UPG-03", state)
        assert not problems, "; ".join(problems)

    # --- after: data (UPG-04) ------------------------------------------------------------------

    def assert_data_unchanged(self, state: UpgradeState) -> None:
        lost = self.gone(state)
        holders = {"pod": "StatefulSet store", "app": "Deployment retained-user"}
        namespace_gone = next((why for why in lost.values() if why.startswith(f"namespace {state.namespace} ")), None)
        facts: dict[str, tuple[object, object]] = {}
        for what, where in state.checksums.items():
            holder = next((holders[k] for k in holders if k in where), None)
            if holder in lost:
                after = f"not readable: {holder} {lost[holder]}"
            elif namespace_gone:
                after = f"not readable: {namespace_gone}"
            elif "pod" in where:
                wait.pod_ready(self.cluster.core, state.namespace, where["pod"], READY_TIMEOUT)
                after = self.hash_again(state, where)
            else:
                after = self.hash_again(state, where)
            facts[f"sha256 of {what} ({where['path']})"] = (where["sha256"], after)
        self.expect_same("UPG-04", facts)

    def sha256_or_absent(self, namespace: str, pod: str, path: str) -> str:
        return self.run_in(
            namespace, pod, f"test -e {path} || {{ echo absent; exit 0; }}; {CHECKSUM.format(path=path)}"
        ).split()[0]

    # --- after: controllers and traffic (UPG-05) -----------------------------------------------

    def scale_web(self, state: UpgradeState, replicas: int) -> list[str]:
        """Scale the Deployment (back to WEB_REPLICAS when the test ends, also on a stop): the
        names of its Ready pods once it is available."""
        apps = self.cluster.apps
        self.tracker.on_cleanup(
            self.cluster,
            f"scale Deployment {state.namespace}/web back to {WEB_REPLICAS}",
            lambda: unless_missing(
                lambda: apps.patch_namespaced_deployment_scale(
                    "web", state.namespace, {"spec": {"replicas": WEB_REPLICAS}}
                )
            ),
        )
        apps.patch_namespaced_deployment_scale("web", state.namespace, {"spec": {"replicas": replicas}})
        wait.deployment_available(apps, state.namespace, "web", READY_TIMEOUT)
        ready = wait.pods_ready(self.cluster.core, state.namespace, "app=upgrade-web", replicas, READY_TIMEOUT)
        self.expect_same(
            "UPG-05", {"Deployment web scaled": (replicas, len(ready))}, wording="expected {} ready pods, found {}"
        )
        return sorted(p.metadata.name for p in ready)

    def current_pods(self, state: UpgradeState) -> list[str]:
        """The Ready pods of the Deployment web, by the selector recorded before (not the Service's)."""
        prefix = "spec.selector.matchLabels."
        spec = state.objects["Deployment web"]["spec"]
        labels = ",".join(f"{path[len(prefix) :]}={v}" for path, v in spec.items() if path.startswith(prefix))
        pods = self.cluster.core.list_namespaced_pod(state.namespace, label_selector=labels).items
        return sorted(p.metadata.name for p in pods if pod_states.pod_is_ready(p) and not p.metadata.deletion_timestamp)

    def assert_services_answer(self, state: UpgradeState, client_pod: ClientPod) -> None:
        """Through each Service that serves (web, web-np): its ClusterIP from a pod, and web-np's
        NodePort on every node from this host; answered by the Deployment's current pods, and by
        no other."""
        expected = self.current_pods(state)
        facts: dict[str, tuple[object, object]] = {}
        core = self.cluster.core
        for name in SERVED:
            svc = core.read_namespaced_service(name, state.namespace)
            port = svc.spec.ports[0]
            url = urls.url(svc.spec.cluster_ip, port.port, "/hostname")
            seen = client_pod.sample_backends(url, expected)
            facts[f"Service {name} ClusterIP {url} from pod {client_pod.name}"] = (expected, _answered(seen))
            if port.node_port:
                for node, ip in sorted(state.node_ips.items()):
                    url = urls.url(ip, port.node_port, "/hostname")
                    seen = probe.sample_backends(url, expected)
                    facts[f"Service {name} NodePort {url} ({node}) from this host"] = (expected, _answered(seen))
        self.expect_same("UPG-05", facts, wording="expected answers from {}, got {}")

    def assert_statefulset_writes(self, state: UpgradeState) -> None:
        pod = sorted(w["pod"] for w in state.checksums.values() if "pod" in w)[0]
        wait.pod_ready(self.cluster.core, state.namespace, pod, READY_TIMEOUT)
        out = self.run_in(state.namespace, pod, "echo after-the-upgrade > /data/after && cat /data/after").strip()
        self.expect_same("UPG-05", {f"StatefulSet pod {pod} writes to its claim": ("after-the-upgrade", out)})

    def assert_daemonset_on_every_node(self, state: UpgradeState) -> None:
        wait.daemonsets_ready(self.cluster.apps, state.namespace, READY_TIMEOUT)
        pods = self.cluster.core.list_namespaced_pod(state.namespace, label_selector="app=upgrade-prober").items
        on = sorted({p.spec.node_name for p in pods if pod_states.pod_is_ready(p)})
        self.expect_same("UPG-05", {"DaemonSet prober ready on": (sorted(n.name for n in self.cluster.nodes), on)})

    # --- after: quota (UPG-06), ConfigMap (UPG-07) ---------------------------------------------

    def quota_answer(self, state: UpgradeState) -> ApiAnswer:
        body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "one-too-many"}}
        return answer_to(lambda: self.cluster.core.create_namespaced_config_map(state.quota_namespace, body))

    def assert_quota_refuses(self, state: UpgradeState) -> None:
        problems = self.compare_objects("UPG-06", state)
        answer = self.quota_answer(state)
        if answer.accepted:
            self.cluster.core.delete_namespaced_config_map("one-too-many", state.quota_namespace)
        refused = answer.status == 403 and "exceeded quota" in answer.message
        check = self.record(
            "UPG-06",
            "a third ConfigMap under ResourceQuota at-limit (count/configmaps: 2)",
            "refused: 403 exceeded quota",
            "refused: 403 exceeded quota" if refused else str(answer),
        )
        if check.verdict != "held":
            problems.append(
                f"a third ConfigMap in {state.quota_namespace}: expected 403 exceeded quota; "
                f"the API server answered {answer}"
            )
        assert not problems, "; ".join(problems)

    def assert_configmap_reaches_a_new_pod(self, state: UpgradeState) -> None:
        problems = self.compare_objects("UPG-07", state)
        assert not problems, "; ".join(problems)
        old = self.pod_of(state.namespace, "upgrade-consumer")
        self.cluster.core.delete_namespaced_pod(old.metadata.name, state.namespace, grace_period_seconds=0)
        new = wait.until(
            lambda: next(
                (
                    p
                    for p in self.cluster.core.list_namespaced_pod(
                        state.namespace, label_selector="app=upgrade-consumer"
                    ).items
                    if p.metadata.name != old.metadata.name and pod_states.pod_is_ready(p)
                ),
                None,
            ),
            "a new consumer pod Ready",
            READY_TIMEOUT,
        )
        env = self.run_in(state.namespace, new.metadata.name, "echo $GREETING").strip()
        file = self.run_in(state.namespace, new.metadata.name, "cat /etc/settings/greeting").strip()
        expected = state.objects["ConfigMap settings"]["spec"]["data.greeting"]
        self.expect_same(
            "UPG-07",
            {
                "env GREETING of a new pod": (expected, env),
                "file /etc/settings/greeting of a new pod": (expected, file),
            },
        )

    # --- after: versions (UPG-08) --------------------------------------------------------------

    def assert_versions(self, state: UpgradeState, rule: versions.VersionRule) -> None:
        """Every component at the version the rule asks (clusterproof.upgrade.versions)."""
        rows = versions.component_rows(
            rule,
            state.last,
            client.VersionApi(self.cluster.api).get_code().git_version,
            node_versions(self.cluster),
            kube_proxy_tag(self.cluster),
        )
        for row in rows:
            self.record("UPG-08", row.check, row.expected, row.observed, row.verdict)
        failed = [f"{row.check}: {row.why}" for row in rows if row.verdict == "failed"]
        assert not failed, "; ".join(failed)

    # --- after: disruption (UPG-09) ------------------------------------------------------------

    def upgrade_window(self, since: float, until: float, steps_file: Path | None) -> tuple[float, float, str] | None:
        """When the upgrade ran, as far as the cluster (and the in-place upgrade's steps file)
        shows: kube-system containers started and kubelets started ("Starting" events on Nodes)
        between `since` (the state recorded, or the last hop checked) and `until` (this after
        phase began). None when nothing shows an upgrade."""
        seen: list[tuple[float, str]] = []
        for pod in self.cluster.core.list_namespaced_pod("kube-system").items:
            for status in pod.status.container_statuses or []:
                running = status.state.running if status.state else None
                if running and running.started_at and running.started_at.timestamp() > since:
                    seen.append((running.started_at.timestamp(), f"{pod.metadata.name} started"))
        for event in self.cluster.core.list_namespaced_event(
            "default", field_selector="involvedObject.kind=Node"
        ).items:
            when = event.last_timestamp or event.event_time or event.first_timestamp
            if event.reason == "Starting" and when and when.timestamp() > since:
                seen.append((when.timestamp(), f"kubelet on {event.involved_object.name} started"))
        if steps_file is not None and steps_file.is_file():
            steps = json.loads(steps_file.read_text())
            for item in steps.get("phases", []) + steps.get("nodes", []):
                if isinstance(item.get("start"), int | float) and item["start"] > since:
                    what = item.get("name") or f"node {item.get('node')} upgraded"
                    seen += [(item["start"], what), (item.get("end") or item["start"], what)]
        seen = [(when, what) for when, what in seen if when < until]
        if not seen:
            return None
        first, last = min(seen), max(seen)
        return first[0], last[0], f"first: {first[1]}; last: {last[1]}"

    def assert_disruption_within(
        self, state: UpgradeState, monitor_path: Path, budget: float, api_budget: float, steps_file: Path | None
    ) -> dict[str, float]:
        """Seconds down and not observed per monitored target against its budget (`api_budget` for
        the API server), from a monitor output that belongs to this upgrade (monitor_file.judge).
        Returns seconds counted per target."""
        if not monitor_path.is_file():
            self.record("UPG-09", "the monitor's output", str(monitor_path), "no such file", "failed")
            raise AssertionError(
                f"no monitor output at {monitor_path}: the disruption during the upgrade was not observed (run "
                "`python -m clusterproof.upgrade.monitor --state-file <state file>` while the cluster is upgraded)"
            )
        since = state.last["checked"]
        since_what = "the last hop was checked" if state.hops else "the state was recorded"
        judged = monitor_file.judge(
            monitor_file.read_monitor_file(monitor_path),
            state_id=state.run_id,
            since=since,
            since_what=since_what,
            window=self.upgrade_window(since, self.after_started, steps_file),
            targets=targets_of(state),
            budget=budget,
            api_budget=api_budget,
        )
        for problem in judged.problems:
            self.record("UPG-09", "the monitor's output", "belongs to this upgrade and covers it", problem, "failed")
        for t in judged.targets:
            observed = f"{t.down:.1f}s down" + (f" + {t.unobserved:.1f}s not observed" if t.unobserved else "")
            self.record("UPG-09", f"down during the upgrade: {t.target}", f"<= {t.allowed:g}s", observed, t.verdict)
        over = [
            f"{t.target}: {t.down:.1f}s down"
            + (f" + {t.unobserved:.1f}s not observed" if t.unobserved else "")
            + f" of {t.allowed:g}s allowed ({t.detail})"
            for t in judged.over
        ]
        assert not judged.problems and not over, "; ".join(
            judged.problems + (["disruption over budget: " + "; ".join(over)] if over else [])
        )
        return {t.target: round(t.counted, 1) for t in judged.targets}

    def restarts_since(self, state: UpgradeState) -> dict[str, int]:
        """Containers that restarted since `before` (kubeadm restarts the static pods), by how often."""
        now = restarts(self.cluster, state.namespace)
        return {
            name: count - state.restarts.get(name, 0)
            for name, count in sorted(now.items())
            if count > state.restarts.get(name, 0)
        }

    # --- leaving -------------------------------------------------------------------------------

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


def _answered(result: probe.SampleResult) -> list[str]:
    """The pods that answered (and the errors, when some requests got none)."""
    answered = sorted(result.seen)
    return answered + ([f"{len(result.errors)} requests unanswered: {result.errors[0]}"] if result.errors else [])


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
