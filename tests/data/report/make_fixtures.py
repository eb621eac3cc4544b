"""Regenerates the report's JSON fixtures (python tests/data/report/make_fixtures.py).

No cluster was run for them: the project's real ClaimLedger and timings format are fed test
reports shaped like a real `tox -e e2e` run (the suites' own test names and claims; times like
the README's measured ones), so the files are exactly what a run writes. upgrade.json is the
example of the schema in docs/DESIGN.md. Rerun after changing what a run writes.
"""

from __future__ import annotations

import ast
import json
import random
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
from _pytest._code.code import ReprFileLocation

from clusterproof.claims import ClaimLedger, load_claims
from clusterproof.run import artifacts_dir_name

HERE = Path(__file__).parent
ROOT = HERE.parents[2]
CLAIMS = load_claims(ROOT / "clusterproof" / "data" / "CLAIMS.md")
MODULES = (
    "test_services",
    "test_service_discovery",
    "test_pod_network",
    "test_ingress",
    "test_volumes",
    "test_persistent_volumes",
    "test_workloads",
    "test_quota",
)


class Longrepr:
    """What pytest's longrepr offers the ledger: reprcrash and its text."""

    def __init__(self, message: str) -> None:
        self.reprcrash = ReprFileLocation("suites/x.py", 1, message)
        self.text = f"E   {message}"

    def __str__(self) -> str:
        return self.text


def suite_tests() -> list[tuple[str, tuple[str, ...]]]:
    tests = []
    for module in MODULES:
        tree = ast.parse((ROOT / "suites" / f"{module}.py").read_text())
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
                ids: list[str] = []
                for d in node.decorator_list:
                    if isinstance(d, ast.Call) and getattr(d.func, "attr", "") == "claim":
                        ids += [a.value for a in d.args if isinstance(a, ast.Constant)]
                if ids:
                    tests.append((f"suites/{module}.py::{node.name}", tuple(ids)))
    return tests


def epoch(text: str) -> float:
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC).timestamp()


def make_run(
    name: str,
    run_id: str,
    started: str,
    *,
    offline: bool,
    outcomes: dict[str, tuple[str, str]],
    seed: int,
    diagnostics: dict[str, str] | None = None,
    cluster_facts: dict | None = None,
    module_facts: dict[str, dict] | None = None,
) -> Path:
    """outcomes: test name -> (outcome, reason); the rest pass. module_facts: module -> what it added
    to its cluster's facts (the ingress module: its controller)."""
    rng = random.Random(seed)
    artifacts = HERE / name / "artifacts"
    shutil.rmtree(artifacts.parent, ignore_errors=True)
    artifacts.mkdir(parents=True)
    ledger = ClaimLedger(CLAIMS)
    t = epoch(started)
    run_start = t
    timings: list[dict] = []
    clusters = []
    if offline:
        timings.append({"what": "offline node image (build or cache check)", "seconds": 0.15, "start": t})
        t += 0.2
    by_module: dict[str, list] = {}
    for nodeid, ids in suite_tests():
        by_module.setdefault(nodeid.split("::")[0], []).append((nodeid, ids))
    for module, tests in by_module.items():
        mod_start = t
        cluster = f"cp-{run_id[9:15]}{run_id[-4:]}-{module.split('/')[1][5:-3].replace('_', '-')}"
        clusters.append(cluster)
        phases = [("kind create", rng.uniform(41, 43))]
        if offline:
            phases.append(("pod network (offline)", 0.2))
        phases += [("nodes ready", rng.uniform(8.5, 11)), ("kube-system DaemonSets ready", rng.uniform(0.5, 2))]
        c = t + 0.05
        for phase, seconds in phases:
            timings.append({"what": f"cluster {cluster}: {phase}", "seconds": round(seconds, 2), "start": round(c, 3)})
            c += seconds
        cluster_ready = c
        for i, (nodeid, ids) in enumerate(tests):
            fn = nodeid.split("::")[1]
            outcome, reason = outcomes.get(fn, ("passed", ""))
            setup = (cluster_ready - t + 1.1) if i == 0 else rng.uniform(0.8, 1.6)
            call = rng.uniform(1.5, 9) if outcome != "skipped" else 0.0
            if outcome == "failed":
                call = rng.uniform(60, 125)  # waits run to their deadline
            teardown = rng.uniform(0.5, 3)
            delete = 0.0
            if i == len(tests) - 1:
                delete = rng.uniform(1.5, 2.8)
            props = [("claim", cid) for cid in ids]
            if outcome == "skipped" and reason:
                phases_out = [
                    ("setup", "passed", None, setup),
                    ("call", "skipped", ("suites/x.py", 1, f"Skipped: {reason}"), 0.0),
                ]
            elif outcome == "error":
                phases_out = [("setup", "failed", Longrepr(reason), setup)]
            elif outcome == "failed":
                phases_out = [("setup", "passed", None, setup), ("call", "failed", Longrepr(reason), call)]
            else:
                phases_out = [("setup", "passed", None, setup), ("call", "passed", None, call)]
            phases_out.append(("teardown", "passed", None, teardown + delete))
            if diagnostics and fn in diagnostics:
                path = artifacts / artifacts_dir_name(nodeid) / "diagnostics.txt"
                path.parent.mkdir()
                path.write_text(diagnostics[fn])
                props.append(
                    (
                        "diagnostics",
                        f"/home/runner/work/clusterproof/.clusterproof/runs/{run_id}/artifacts/"
                        f"{path.parent.name}/diagnostics.txt",
                    )
                )
            for when, out, longrepr, seconds in phases_out:
                report = pytest.TestReport(
                    nodeid=nodeid,
                    location=(module, 1, fn),
                    keywords={},
                    outcome=out,
                    longrepr=longrepr,
                    when=when,
                    duration=seconds,
                    start=t,
                    stop=t + seconds,
                    user_properties=props,
                )
                ledger.record(report)
                t += seconds
            if delete:
                timings.append(
                    {
                        "what": f"cluster {cluster}: kind delete",
                        "seconds": round(delete, 2),
                        "start": round(t - delete, 3),
                    }
                )
            t += 0.02
        timings.append({"what": f"module {module}", "seconds": round(t - mod_start, 2), "start": round(mod_start, 3)})
    # the run's order: phases as they ended, then modules, then the whole run
    phases_rows = sorted(
        (r for r in timings if not r["what"].startswith("module ")), key=lambda r: r["start"] + r["seconds"]
    )
    module_rows = [r for r in timings if r["what"].startswith("module ")]
    rows = (
        phases_rows
        + module_rows
        + [{"what": "whole run", "seconds": round(t - run_start + 3.1, 2), "start": run_start - 3.1}]
    )
    (artifacts / "timings.json").write_text(json.dumps(rows, indent=2) + "\n")
    data = {"run_id": run_id, **ledger.to_json()}
    (artifacts / "claims.json").write_text(json.dumps(data, indent=2) + "\n")
    if cluster_facts:
        entries = [
            {
                **cluster_facts,
                "name": name,
                "key": f"suites.{m.split('/')[1][:-3]}",
                "context": f"kind-{name}",
                "recorded": round(run_start + 60 * i, 3),
                **(module_facts or {}).get(m, {}),
            }
            for i, (name, m) in enumerate(zip(clusters, by_module, strict=True))
        ]
        (artifacts / "cluster.json").write_text(json.dumps({"schema": 1, "clusters": entries}, indent=2) + "\n")
    return artifacts


def nodes(version: str, os_image: str, runtime: str, prefix: str = "") -> list[dict]:
    return [
        {
            "name": f"{prefix}control-plane",
            "roles": ["control-plane"],
            "kubelet": version,
            "ready": True,
            "os": os_image,
            "runtime": runtime,
        },
        {
            "name": f"{prefix}worker",
            "roles": ["worker"],
            "kubelet": version,
            "ready": True,
            "os": os_image,
            "runtime": runtime,
        },
        {
            "name": f"{prefix}worker2",
            "roles": ["worker"],
            "kubelet": version,
            "ready": True,
            "os": os_image,
            "runtime": runtime,
        },
    ]


ONLINE_FACTS = {
    "provider": "kind",
    "offline": False,
    "server_version": "v1.32.2",
    "nodes": nodes("v1.32.2", "Debian GNU/Linux 12 (bookworm)", "containerd://2.0.3"),
    "cni": {
        "name": "kindnet",
        "source": "DaemonSet kube-system/kindnet",
        "image": "docker.io/kindest/kindnetd:v20250214-acbabc1a",
    },
    "ingress_classes": [{"name": "nginx", "controller": "k8s.io/ingress-nginx", "default": False}],
    "storage_classes": [{"name": "standard", "provisioner": "rancher.io/local-path", "default": True}],
    "errors": [],
}
OFFLINE_FACTS = {
    "provider": "kind",
    "offline": True,
    "server_version": "v1.20.2",
    "nodes": nodes("v1.20.2", "Debian GNU/Linux 12 (bookworm)", "containerd://1.6.20~ds1"),
    "cni": {
        "name": "ptp (clusterproof offline)",
        "source": "per-node CNI config by clusterproof (no DaemonSet)",
        "image": "",
    },
    "ingress_classes": [],
    "storage_classes": [{"name": "standard", "provisioner": "rancher.io/local-path", "default": True}],
    "errors": [],
}

INGRESS_NGINX_INSTALLED = {
    "ingress_controller": {
        "name": "ingress-nginx",
        "version": "v1.15.1",
        "class": "nginx",
        "controller": "k8s.io/ingress-nginx",
        "namespace": "ingress-nginx",
        "installed": True,
    }
}
LONG_WORD = "-".join(["configmap-key-not-found"] * 40)  # 959 characters without a space
NO_DNS = "cluster DNS does not answer: no CoreDNS on the offline cluster"
NO_INGRESS = "no ingress controller: ingress-nginx is not to be had offline"
NO_INGRESS_FACT = {"ingress_controller": {"none": NO_INGRESS}}
SAMPLING_TIMEOUT = (
    "WaitTimeout: every backend of Service web (10.96.112.7:80) answering from every node within 120 s; "
    "last seen: from cp-130000c3d4-services-worker: {web-6d4cf56db6-8kx2p: 34, web-6d4cf56db6-tq9wz: 30, "
    "web-6d4cf56db6-zz7lm: 0} (errors: 0); from cp-130000c3d4-services-worker2: {web-6d4cf56db6-8kx2p: 31, "
    "web-6d4cf56db6-tq9wz: 33, web-6d4cf56db6-zz7lm: 0} (errors: 0); backend web-6d4cf56db6-zz7lm "
    "(10.244.2.5 on cp-130000c3d4-services-worker2) never answered; its endpoints entry is ready=true\n"
    "Endpoints web: 10.244.1.4:8080, 10.244.1.5:8080, 10.244.2.5:8080 (all ready)"
)
RESTART_TIMEOUT = (
    "WaitTimeout: container app of pod cp-130000c3d4-volumes-emptydir-restart-4f2a/vol-restart restarted "
    "and wrote its line again within 90 s; last seen: restarts=1, log: 'started\\nstarted' but "
    "/cache/marker missing after restart (the emptyDir should outlive the container)"
)
SETUP_ERROR = 'ApiException: (409) Reason: Conflict: persistentvolumes "cp-130000c3d4-pv-recycle" already exists'


def long_diagnostics() -> str:
    lines = [
        "cluster cp-130000c3d4-services (kind, offline=True)",
        "",
        "== namespace cp-130000c3d4-clusterip-spreads-9a1c",
        "-- pods",
    ]
    for i in range(3):
        lines += [
            f"pod web-6d4cf56db6-{['8kx2p', 'tq9wz', 'zz7lm'][i]}: phase=Running node=cp-130000c3d4-services-worker"
            f"{'' if i < 2 else '2'} ip=10.244.{1 if i < 2 else 2}.{4 + i}",
            "  container agnhost: running ready=True restarts=0",
        ]
    lines.append("  container sidecar: waiting CreateContainerConfigError " + LONG_WORD)
    lines.append("-- events (oldest first)")
    lines.append(
        "Warning Failed Pod/web-6d4cf56db6-zz7lm: pulling sidecar: 401 Unauthorized (sent Authorization: Bearer "
        "eyJhbGciOiJSUzI1NiIsImtpZCI6IjEifQ.eyJzdWIiOiJzeXN0ZW06a3ViZS1wcm94eSJ9.c2lnbmF0dXJlLXNpZ25hdHVyZQ)"
    )
    for i in range(140):
        lines.append(
            f"Normal Scheduled Pod/web-6d4cf56db6-{i:05x}: Successfully assigned cp-130000c3d4-clusterip-"
            f"spreads-9a1c/web-6d4cf56db6-{i:05x} to cp-130000c3d4-services-worker{2 if i % 2 else ''}"
        )
    lines.append("-- log client/agnhost (current, last 50 lines)")
    lines.append("I1201 03:19:44.100000       1 log.go:195] GET /hostname 200")
    lines.append("== nodes")
    lines += [
        "node cp-130000c3d4-services-control-plane: Ready=True",
        "node cp-130000c3d4-services-worker: Ready=True",
        "node cp-130000c3d4-services-worker2: Ready=True",
    ]
    lines.append("== kube-system: pods not ready; klog errors in the last 131s")
    lines.append("-- errors kube-proxy-7xk2m/kube-proxy (last 5)")
    for i in range(5):
        lines.append(
            f"E1201 03:2{i}:01.731324       1 proxier.go:1520] Failed to execute iptables-restore: exit status 1 "
            "(iptables-restore: line 42 failed) Authorization: Bearer eyJhbGciOiJSUzI1NiIsImtpZCI6IjEifQ."
            "eyJzdWIiOiJzeXN0ZW06a3ViZS1wcm94eSJ9.c2lnbmF0dXJlLXNpZ25hdHVyZQ"
        )
    return "\n".join(lines) + "\n"


def upgrade_json(t0: float) -> dict:
    """The example of docs/DESIGN.md's upgrade.json: kind v1.31 -> v1.32, three nodes."""

    def at(s: float) -> float:
        return round(t0 + s, 3)

    return {
        "schema": 1,
        "cluster": "cp-031700e5f6-upgrade",
        "from": "v1.31.6",
        "to": "v1.32.2",
        "phases": [
            {"name": "before", "start": at(0), "end": at(48)},
            {"name": "control plane", "start": at(50), "end": at(171)},
            {"name": "workers", "start": at(172), "end": at(330)},
            {"name": "after", "start": at(332), "end": at(379)},
        ],
        "targets": [
            "Service web ClusterIP (from a pod)",
            "NodePort 30080 on every node",
            "DNS web.default.svc.cluster.local",
            "Ingress /app",
        ],
        "disruptions": [
            {
                "target": "DNS web.default.svc.cluster.local",
                "start": at(118.4),
                "end": at(121.9),
                "detail": "no answer (CoreDNS pods rescheduled)",
            },
            {
                "target": "NodePort 30080 on every node",
                "start": at(181.2),
                "end": at(183.0),
                "detail": "connection refused on cp-031700e5f6-upgrade-worker",
            },
            {
                "target": "NodePort 30080 on every node",
                "start": at(262.5),
                "end": at(266.7),
                "detail": "connection refused on cp-031700e5f6-upgrade-worker2",
            },
            {"target": "Ingress /app", "start": at(263.0), "end": at(291.4), "detail": "HTTP 503 from ingress-nginx"},
        ],
        "nodes": [
            {
                "node": "cp-031700e5f6-upgrade-control-plane",
                "start": at(52),
                "end": at(168),
                "from": "v1.31.6",
                "to": "v1.32.2",
            },
            {
                "node": "cp-031700e5f6-upgrade-worker",
                "start": at(175),
                "end": at(246),
                "from": "v1.31.6",
                "to": "v1.32.2",
            },
            {
                "node": "cp-031700e5f6-upgrade-worker2",
                "start": at(250),
                "end": at(327),
                "from": "v1.31.6",
                "to": "v1.32.2",
            },
        ],
        "checks": [
            {
                "check": "Service web keeps its ClusterIP",
                "expected": "10.96.41.7",
                "observed": "10.96.41.7",
                "verdict": "held",
            },
            {
                "check": "StatefulSet db: pod db-0 keeps its PVC and its data (sha256 of /data/rows)",
                "expected": "data-db-0 sha256:3f1c9a0e5b7d",
                "observed": "data-db-0 sha256:3f1c9a0e5b7d",
                "verdict": "held",
            },
            {
                "check": "PersistentVolume pv-retain stays Bound to the same claim",
                "expected": "Bound default/keep",
                "observed": "Bound default/keep",
                "verdict": "held",
            },
            {
                "check": "ConfigMap settings unchanged (sha256)",
                "expected": "sha256:9b2e41d07c11",
                "observed": "sha256:9b2e41d07c11",
                "verdict": "held",
            },
            {
                "check": "hostPath file /var/local/cp-marker on the worker survives the node upgrade",
                "expected": "present, sha256:51aa0c",
                "observed": "missing (node re-created by kind's upgrade path)",
                "verdict": "failed",
            },
            {
                "check": "Deployment web: the same pods answer (UIDs)",
                "expected": "3 pods, UIDs changed by drain",
                "observed": "3 pods, 3 new UIDs",
                "verdict": "held",
            },
        ],
    }


def history(runs: list[tuple[str, dict[str, str]]]) -> None:
    """Earlier nightlies' claims.json: only a few claims differ from held."""
    root = HERE / "history"
    shutil.rmtree(root, ignore_errors=True)
    for run_id, verdicts in runs:
        started = datetime.strptime(run_id[:15], "%Y%m%d-%H%M%S").replace(tzinfo=UTC).timestamp()
        claims = [
            {
                "id": cid,
                "section": c.section,
                "claim": c.text,
                "verdict": verdicts.get(cid, "held"),
                "reason": "",
                "tests": [],
            }
            for cid, c in CLAIMS.items()
        ]
        counts: dict[str, int] = {}
        for c in claims:
            counts[c["verdict"]] = counts.get(c["verdict"], 0) + 1
        path = root / run_id / "claims.json"
        path.parent.mkdir(parents=True)
        data = {"run_id": run_id, "started": started, "finished": started + 800, "counts": counts, "claims": claims}
        path.write_text(json.dumps(data, indent=2) + "\n")


def main() -> None:
    make_run(
        "held",
        "20261130-031700-a1b2",
        "2026-11-30 03:17:05",
        offline=False,
        outcomes={},
        seed=1,
        cluster_facts=ONLINE_FACTS,
        module_facts={"suites/test_ingress.py": INGRESS_NGINX_INSTALLED},
    )
    offline_skips = {
        name: ("skipped", NO_DNS)
        for name in (
            "test_external_name_service_resolves_as_a_cname_to_its_external_name",
            "test_headless_service_name_resolves_to_the_ready_pod_ips",
            "test_service_name_resolves_to_its_cluster_ip_and_reaches_a_pod",
            "test_srv_records_give_each_named_port_and_the_service_name",
        )
    }
    offline_skips |= {
        name: ("skipped", NO_INGRESS)
        for name in (
            "test_bare_metal_ingress_nginx_runs_a_controller_behind_a_node_port_service",
            "test_controller_service_lists_external_ips_only_once_they_are_set_to_node_ips",
            "test_one_ingress_routes_each_path_prefix_to_its_own_service",
            "test_rewrite_target_changes_the_path_the_backend_sees",
            "test_ingress_terminates_https_with_the_tls_secret_for_its_host",
        )
    }
    failures = {
        "test_clusterip_spreads_requests_over_exactly_the_ready_pods_from_every_node": ("failed", SAMPLING_TIMEOUT),
        "test_recycle_reclaim_policy_outcome_is_recorded": ("error", SETUP_ERROR),
    }
    failures["test_emptydir_survives_a_container_restart_in_the_same_pod"] = ("failed", RESTART_TIMEOUT)
    make_run(
        "failures",
        "20261201-031700-c3d4",
        "2026-12-01 03:17:02",
        offline=True,
        seed=2,
        outcomes={**offline_skips, **failures},
        diagnostics={"test_clusterip_spreads_requests_over_exactly_the_ready_pods_from_every_node": long_diagnostics()},
        cluster_facts=OFFLINE_FACTS,
        module_facts={"suites/test_ingress.py": NO_INGRESS_FACT},
    )
    artifacts = make_run(
        "upgrade",
        "20261202-031700-e5f6",
        "2026-12-02 03:17:04",
        offline=False,
        outcomes={},
        seed=3,
        cluster_facts=ONLINE_FACTS,
        module_facts={"suites/test_ingress.py": INGRESS_NGINX_INSTALLED},
    )
    (artifacts / "upgrade.json").write_text(json.dumps(upgrade_json(epoch("2026-12-02 03:40:00")), indent=2) + "\n")
    history(
        [
            ("20261124-031700-0a01", {"SVC-03": "held", "PV-07": "held"}),
            ("20261125-031700-0a02", {"SVC-03": "failed"}),
            ("20261126-031700-0a03", {}),
            ("20261127-031700-0a04", {"SVC-03": "failed", "SVC-12": "skipped"}),
            ("20261128-031700-0a05", {"ING-01": "skipped"}),
            ("20261129-031700-0a06", {}),
            ("20261130-031700-a1b2", {}),
        ]
    )


if __name__ == "__main__":
    main()
