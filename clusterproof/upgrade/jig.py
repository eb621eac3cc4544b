"""The upgrade jig: the facts `--phase after` compares with the durable state `--phase before`
recorded (clusterproof.upgrade.durable: its life), each comparison recorded as a Check for the
report's upgrade section."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from kubernetes import client

from clusterproof import pod_states, probe, urls, wait
from clusterproof.api_answers import ApiAnswer, answer_to, unless_missing
from clusterproof.probe import ClientPod
from clusterproof.upgrade import monitor_file, specs, versions
from clusterproof.upgrade.durable import (
    READY_TIMEOUT,
    SERVED,
    WEB_REPLICAS,
    DurableStateKeeper,
    kube_proxy_tag,
    node_versions,
    restarts,
)
from clusterproof.upgrade.monitor import targets_of
from clusterproof.upgrade.state import UpgradeState


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
class UpgradeJig(DurableStateKeeper):
    checks: list[Check] = field(default_factory=list)
    after_started: float = field(default_factory=time.time)  # (re)set when --phase after takes the state

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


def _answered(result: probe.SampleResult) -> list[str]:
    """The pods that answered (and the errors, when some requests got none)."""
    answered = sorted(result.seen)
    return answered + ([f"{len(result.errors)} requests unanswered: {result.errors[0]}"] if result.errors else [])
