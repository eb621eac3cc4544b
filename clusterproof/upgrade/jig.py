"""The upgrade jig: the durable state `--phase before` creates and records, and the facts
`--phase after` compares with it. Nothing here is tracked for deletion: the state outlives
the run on purpose; `remove_state` takes it away after a successful `after`."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from clusterproof import pod_states, wait
from clusterproof.api_answers import ApiAnswer, answer_to, unless_missing
from clusterproof.cluster import Cluster
from clusterproof.images import ImageCatalogue
from clusterproof.manifests import Doc, load
from clusterproof.manifests import apply as create_objects
from clusterproof.namespaces import DEFAULT_POD_SECURITY, pod_security_labels
from clusterproof.probe import exec_in_pod
from clusterproof.run import STATE_LABEL, short_id
from clusterproof.upgrade.monitor import read_monitor_file
from clusterproof.upgrade.state import CONFIGMAP, UpgradeState

FIXTURES = "upgrade"
HOST_DIR = "/var/lib/clusterproof-upgrade"
READY_TIMEOUT = 180.0
PAYLOAD = "head -c 65536 /dev/urandom > {path} && sha256sum {path}"
CHECKSUM = "sha256sum {path}"
DEPLOYMENTS = ("web", "retained-user", "consumer")


@dataclass
class Check:
    """One before/after comparison, as the report's upgrade section shows it."""

    claim: str
    check: str
    expected: str
    observed: str
    verdict: str  # held | tolerated | failed

    def to_json(self) -> dict[str, str]:
        return {
            "claim": self.claim,
            "check": self.check,
            "expected": self.expected,
            "observed": self.observed,
            "verdict": self.verdict,
        }


@dataclass
class UpgradeJig:
    cluster: Cluster
    catalogue: ImageCatalogue
    fixtures_dir: Path
    run_id: str
    checks: list[Check] = field(default_factory=list)

    # --- plumbing ----------------------------------------------------------------------------

    def labels(self, state_id: str) -> dict[str, str]:
        return {STATE_LABEL: state_id}

    def docs(self, name: str, namespace: str | None, state_id: str, values: dict[str, str] | None = None) -> list[Doc]:
        return load(
            f"{FIXTURES}/{name}.yaml",
            namespace,
            catalogue=self.catalogue,
            labels=self.labels(state_id),
            offline=self.cluster.offline,
            values=values or {},
            fixtures_dir=self.fixtures_dir,
        )

    def create(self, name: str, namespace: str | None, state_id: str, values: dict[str, str] | None = None) -> None:
        create_objects(self.cluster, self.docs(name, namespace, state_id, values))  # no tracker: kept

    def run_in(self, namespace: str, pod: str, script: str) -> str:
        result = exec_in_pod(self.cluster.core, namespace, pod, ["sh", "-c", script])
        if result.rc != 0:
            raise AssertionError(f"in pod {namespace}/{pod}: `{script}` exited {result.rc}: {result.stderr.strip()}")
        return result.stdout

    def pod_of(self, namespace: str, app: str, timeout: float = READY_TIMEOUT) -> client.V1Pod:
        return wait.pods_ready(self.cluster.core, namespace, f"app={app}", 1, timeout)[0]

    def sha256(self, namespace: str, pod: str, path: str) -> str:
        return self.run_in(namespace, pod, CHECKSUM.format(path=path)).split()[0]

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

    # --- before --------------------------------------------------------------------------------

    def create_durable_state(self, state_file: Path, context: str) -> UpgradeState:
        state_id = self.run_id
        namespace = f"cp-upgrade-{short_id(state_id)}"
        quota_namespace = f"{namespace}-quota"
        # the hostPath pod needs Pod Security privileged (a cluster may enforce baseline by default)
        for ns, level in ((namespace, "privileged"), (quota_namespace, DEFAULT_POD_SECURITY)):
            labels = {**self.labels(state_id), **pod_security_labels(level)}
            self.cluster.core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns, labels=labels)))
            wait.until(
                lambda ns=ns: _default_service_account(self.cluster, ns), f"namespace {ns}'s default ServiceAccount", 60
            )
        default_class = default_storage_class(self.cluster)
        retain_class = f"cp-upgrade-retain-{short_id(state_id)}"
        for name in ("web", "store", "settings", "prober"):
            self.create(name, namespace, state_id)
        self.create(
            "retain", namespace, state_id, {"STORAGE_CLASS": retain_class, "PROVISIONER": default_class.provisioner}
        )
        self.create("quota", quota_namespace, state_id)

        for name in DEPLOYMENTS:
            wait.deployment_available(self.cluster.apps, namespace, name, READY_TIMEOUT)
        wait.daemonsets_ready(self.cluster.apps, namespace, READY_TIMEOUT)
        store_pods = wait.pods_ready(self.cluster.core, namespace, "app=upgrade-store", 2, READY_TIMEOUT)

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
        path = f"/host/{state_id}.data"
        checksums["hostPath file"] = {
            "node": node,
            "path": path,
            "sha256": self.host_file(namespace, node, path, write=True),
        }
        wait.until(
            lambda: _quota_full(self.cluster, quota_namespace), "ResourceQuota at-limit counted at its limit", 60
        )

        state = UpgradeState(
            run_id=state_id,
            cluster_uid=self.cluster.core.read_namespace("kube-system").metadata.uid,
            context=context,
            server_version=self.cluster.git_version,
            node_versions=node_versions(self.cluster),
            node_ips={n.name: n.internal_ip or "" for n in self.cluster.nodes},
            namespace=namespace,
            quota_namespace=quota_namespace,
            objects=self.identities(namespace),
            volumes=self.bound_volumes(namespace),
            checksums=checksums,
            restarts=restarts(self.cluster, namespace),
        )
        state.save(state_file)
        self.cluster.core.create_namespaced_config_map(
            namespace,
            client.V1ConfigMap(
                metadata=client.V1ObjectMeta(name=CONFIGMAP, labels=self.labels(state_id)),
                data={"state.json": state.to_json()},
            ),
        )
        return state

    def host_file(self, namespace: str, node: str, path: str, *, write: bool) -> str:
        """Write (or read) the hostPath file on `node` through a pod there; its sha256."""
        name = f"hostpath-{'writer' if write else 'reader'}-{int(time.time())}"
        self.create("hostpath", namespace, self.run_id, {"NAME": name, "NODE": node})
        try:
            wait.pod_ready(self.cluster.core, namespace, name, READY_TIMEOUT)
            if write:
                return self.run_in(namespace, name, PAYLOAD.format(path=path)).split()[0]
            return self.sha256_or_absent(namespace, name, path)
        finally:
            self.cluster.core.delete_namespaced_pod(name, namespace, grace_period_seconds=0)

    def identities(self, namespace: str) -> dict[str, dict[str, Any]]:
        apps, core = self.cluster.apps, self.cluster.core
        found: dict[str, dict[str, Any]] = {}
        for name in DEPLOYMENTS:
            found[f"Deployment {name}"] = {"uid": apps.read_namespaced_deployment(name, namespace).metadata.uid}
        found["StatefulSet store"] = {"uid": apps.read_namespaced_stateful_set("store", namespace).metadata.uid}
        found["DaemonSet prober"] = {"uid": apps.read_namespaced_daemon_set("prober", namespace).metadata.uid}
        pdb = client.PolicyV1Api(self.cluster.api).read_namespaced_pod_disruption_budget("web", namespace)
        found["PodDisruptionBudget web"] = {"uid": pdb.metadata.uid}
        found["ConfigMap settings"] = {"uid": core.read_namespaced_config_map("settings", namespace).metadata.uid}
        for name in ("web", "web-np"):
            svc = core.read_namespaced_service(name, namespace)
            found[f"Service {name}"] = {
                "uid": svc.metadata.uid,
                "clusterIP": svc.spec.cluster_ip,
                **({"nodePort": svc.spec.ports[0].node_port} if name == "web-np" else {}),
            }
        return found

    def bound_volumes(self, namespace: str) -> dict[str, dict[str, Any]]:
        volumes = {}
        for claim in self.cluster.core.list_namespaced_persistent_volume_claim(namespace).items:
            if claim.spec.volume_name:
                pv = self.cluster.core.read_persistent_volume(claim.spec.volume_name)
                volumes[pv.metadata.name] = {
                    "claim": claim.metadata.name,
                    "claim_uid": claim.metadata.uid,
                    "phase": pv.status.phase,
                    "reclaim": pv.spec.persistent_volume_reclaim_policy,
                }
        return volumes

    # --- after ---------------------------------------------------------------------------------

    def assert_same_identity(self, state: UpgradeState) -> None:
        now = self.identities(state.namespace)
        facts = {}
        for obj, before in state.objects.items():
            after = now.get(obj, {})
            for key, value in before.items():
                facts[f"{obj} {key}"] = (value, after.get(key, "gone"))
        self.expect_same("UPG-02", facts)

    def assert_volumes_still_bound(self, state: UpgradeState) -> None:
        facts = {}
        for pv, before in state.volumes.items():
            found = unless_missing(lambda pv=pv: self.cluster.core.read_persistent_volume(pv))
            ref = found.spec.claim_ref if found else None
            if found is None:
                after = "PV gone"
            else:
                after = f"{ref.name} ({ref.uid}), {found.status.phase}" if ref else f"no claim, {found.status.phase}"
            facts[f"PV {pv}"] = (f"{before['claim']} ({before['claim_uid']}), Bound", after)
        self.expect_same("UPG-03", facts)

    def assert_data_unchanged(self, state: UpgradeState) -> None:
        facts: dict[str, tuple[object, object]] = {}
        for what, where in state.checksums.items():
            if "pod" in where:
                wait.pod_ready(self.cluster.core, state.namespace, where["pod"], READY_TIMEOUT)
                after = self.sha256_or_absent(state.namespace, where["pod"], where["path"])
            elif "app" in where:
                after = self.sha256_or_absent(
                    state.namespace, self.pod_of(state.namespace, where["app"]).metadata.name, where["path"]
                )
            else:
                after = self.host_file(state.namespace, where["node"], where["path"], write=False)
            facts[f"sha256 of {what} ({where['path']})"] = (where["sha256"], after)
        self.expect_same("UPG-04", facts)

    def sha256_or_absent(self, namespace: str, pod: str, path: str) -> str:
        return self.run_in(
            namespace, pod, f"test -e {path} || {{ echo absent; exit 0; }}; {CHECKSUM.format(path=path)}"
        ).split()[0]

    def assert_deployment_scales(self, state: UpgradeState, replicas: int = 3) -> None:
        apps = self.cluster.apps
        apps.patch_namespaced_deployment_scale("web", state.namespace, {"spec": {"replicas": replicas}})
        try:
            wait.deployment_available(apps, state.namespace, "web", READY_TIMEOUT)
            ready = len(wait.pods_ready(self.cluster.core, state.namespace, "app=upgrade-web", replicas, READY_TIMEOUT))
        finally:
            apps.patch_namespaced_deployment_scale("web", state.namespace, {"spec": {"replicas": 2}})
        self.expect_same(
            "UPG-05", {"Deployment web scaled": (replicas, ready)}, wording="expected {} ready pods, found {}"
        )

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

    def quota_answer(self, state: UpgradeState) -> ApiAnswer:
        body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "one-too-many"}}
        return answer_to(lambda: self.cluster.core.create_namespaced_config_map(state.quota_namespace, body))

    def assert_quota_refuses(self, state: UpgradeState) -> None:
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
        assert check.verdict == "held", (
            f"a third ConfigMap in {state.quota_namespace}: expected 403 exceeded quota; "
            f"the API server answered {answer}"
        )

    def assert_configmap_reaches_a_new_pod(self, state: UpgradeState) -> None:
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
        expected = "hello-from-before-the-upgrade"
        self.expect_same(
            "UPG-07",
            {
                "env GREETING of a new pod": (expected, env),
                "file /etc/settings/greeting of a new pod": (expected, file),
            },
        )

    def assert_versions(self, target: str | None) -> None:
        server = client.VersionApi(self.cluster.api).get_code().git_version
        nodes = node_versions(self.cluster)
        target = target or server
        facts: dict[str, tuple[object, object]] = {f"kubelet on {n}": (target, v) for n, v in nodes.items()}
        from clusterproof.upgrade.state import version_tuple

        newer = sorted(n for n, v in nodes.items() if version_tuple(v) > version_tuple(server))
        facts["kubelets newer than the API server"] = ("none", ", ".join(newer) or "none")
        proxy = self.cluster.apps.read_namespaced_daemon_set("kube-proxy", "kube-system")
        image = proxy.spec.template.spec.containers[0].image
        facts["kube-proxy image tag"] = (target, image.rsplit(":", 1)[-1])
        self.expect_same("UPG-08", facts, wording="expected {}, found {}")

    def assert_disruption_within(self, monitor_file: Path, budget: float, api_budget: float) -> dict[str, float]:
        """Seconds down per monitored target against its budget (`api_budget` for the API server):
        over it fails, between nothing and the budget is reported as tolerated. Returns seconds down
        per target."""
        if not monitor_file.is_file():
            pytest.skip(
                f"no monitor output at {monitor_file}: run `python -m clusterproof.upgrade.monitor --state-file "
                "<state file>` while the cluster is upgraded"
            )
        outages, summary = read_monitor_file(monitor_file)
        if summary is None:
            raise AssertionError(
                f"{monitor_file} has no summary line: the monitor did not finish (stop it with "
                "SIGTERM, Ctrl-C or its stop file, not SIGKILL)"
            )
        down = {name: float(v["down_seconds"]) for name, v in summary["summary"].items()}
        if down.get("control", 0.0) > 0:
            raise AssertionError(
                f"the monitor's own listener was down {down['control']:.1f}s: the probing side "
                "was at fault, the cluster's disruption cannot be judged from this file"
            )
        over = {}
        for name, seconds in sorted(down.items()):
            if name == "control":
                continue
            allowed = api_budget if name == "apiserver" else budget
            verdict = "held" if seconds == 0 else ("tolerated" if seconds <= allowed else "failed")
            self.record("UPG-09", f"down during the upgrade: {name}", f"<= {allowed:g}s", f"{seconds:.1f}s", verdict)
            if verdict == "failed":
                worst = max(
                    (o for o in outages if o.get("target") == name), default={}, key=lambda o: o["end"] - o["start"]
                )
                over[name] = f"{seconds:.1f}s of {allowed:g}s allowed" + (
                    f" (longest {worst['end'] - worst['start']:.1f}s, last error {worst.get('detail') or '?'})"
                    if worst
                    else ""
                )
        assert not over, "disruption over budget: " + "; ".join(f"{k}: {v}" for k, v in over.items())
        return down

    def restarts_since(self, state: UpgradeState) -> dict[str, int]:
        """Containers that restarted since `before` (kubeadm restarts the static pods), by how often."""
        now = restarts(self.cluster, state.namespace)
        return {
            name: count - state.restarts.get(name, 0)
            for name, count in sorted(now.items())
            if count > state.restarts.get(name, 0)
        }

    def assert_recorded(self, state: UpgradeState, state_file: Path) -> None:
        """The state file and its ConfigMap copy say the same, and every checksum is there."""
        copy = self.cluster.core.read_namespaced_config_map(CONFIGMAP, state.namespace).data["state.json"]
        assert copy == state_file.read_text(), f"ConfigMap {state.namespace}/{CONFIGMAP} differs from {state_file}"
        missing = [w for w, c in state.checksums.items() if len(c.get("sha256", "")) != 64]
        assert not missing, f"no sha256 recorded for {', '.join(missing)}"

    # --- leaving -------------------------------------------------------------------------------

    def remove_state(self, state: UpgradeState, note: Callable[[str], None]) -> None:
        """Everything `before` kept: the hostPath file, the namespaces, the Retain PVs and their class."""
        where = state.checksums.get("hostPath file")
        if where:
            self.run_host_cleanup(state.namespace, where["node"], where["path"])
        for ns in (state.namespace, state.quota_namespace):
            unless_missing(lambda ns=ns: self.cluster.core.delete_namespace(ns))
        for pv, info in state.volumes.items():
            if info.get("reclaim") == "Retain":
                unless_missing(lambda pv=pv: self.cluster.core.delete_persistent_volume(pv))
        for sc in self.cluster.storage.list_storage_class(label_selector=f"{STATE_LABEL}={state.run_id}").items:
            unless_missing(lambda sc=sc: self.cluster.storage.delete_storage_class(sc.metadata.name))
        note(
            f"upgrade state of {state.run_id} removed (namespaces {state.namespace}, {state.quota_namespace}, "
            f"{len(state.volumes)} PVs' Retain leftovers, the hostPath file)"
        )

    def run_host_cleanup(self, namespace: str, node: str, path: str) -> None:
        name = f"hostpath-cleanup-{int(time.time())}"
        self.create("hostpath", namespace, self.run_id, {"NAME": name, "NODE": node})
        try:
            wait.pod_ready(self.cluster.core, namespace, name, READY_TIMEOUT)
            self.run_in(namespace, name, f"rm -f {path}")
        finally:
            unless_missing(
                lambda: self.cluster.core.delete_namespaced_pod(name, namespace, grace_period_seconds=0)
            )


def default_storage_class(cluster: Cluster) -> client.V1StorageClass:
    classes = cluster.storage.list_storage_class().items
    for sc in classes:
        if (sc.metadata.annotations or {}).get("storageclass.kubernetes.io/is-default-class") == "true":
            return sc
    names = ", ".join(sc.metadata.name for sc in classes) or "none"
    raise AssertionError(f"no default StorageClass (classes: {names}): the upgrade state needs dynamic claims")


def node_versions(cluster: Cluster) -> dict[str, str]:
    return {n.metadata.name: n.status.node_info.kubelet_version for n in cluster.core.list_node().items}


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
