"""What the cluster under test is: provider, server version, nodes and their kubelets, the pod
network (CNI), the ingress controller, the StorageClasses. Read once per cluster when the run
acquires it, kept in `<artifacts>/cluster.json` (one entry per cluster) for the report.

cluster.json (schema 1; times in seconds since the epoch):

    {"schema": 1, "clusters": [{
        "name": "cp-163000ab12-services", "key": "suites.test_services", "provider": "kind",
        "context": "kind-cp-163000ab12-services", "offline": true, "recorded": 1764540000.0,
        "server_version": "v1.20.2",
        "nodes": [{"name": "...", "roles": ["control-plane"], "kubelet": "v1.20.2", "ready": true,
                   "os": "Debian GNU/Linux 12 (bookworm)", "runtime": "containerd://1.6.20"}],
        "cni": {"name": "kindnet", "source": "DaemonSet kube-system/kindnet", "image": "..."},
        "ingress_classes": [{"name": "nginx", "controller": "k8s.io/ingress-nginx", "default": false}],
        "storage_classes": [{"name": "standard", "provisioner": "rancher.io/local-path", "default": true}],
        "health": ["kube-proxy: 0 of 3 nodes ready (the DaemonSet was never processed)", ...],
        "errors": ["what could not be read, one line each"]}]}

`health`: what clusterproof.health found wrong with the system components when the cluster was
handed over (empty: nothing); the claims table and report.html show it first.
Reading facts never fails a test: whatever cannot be read is named in `errors`.

A module adds what it learnt of its cluster later (`add`), under a key of its own, e.g. the ingress
module's controller (installed or found):

        "ingress_controller": {"name": "traefik", "version": "v3.6.12", "class": "traefik",
                               "controller": "traefik.io/ingress-controller", "namespace": "traefik",
                               "installed": true}
    or  {"none": "why there is none to test"}, or the above with "error": "why the install failed".
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kubernetes import client

from clusterproof import health
from clusterproof.redact import redact

if TYPE_CHECKING:
    from clusterproof.cluster import Cluster

log = logging.getLogger("clusterproof")

SCHEMA = 1
FILE = "cluster.json"  # in the run's artifacts
REQUEST_TIMEOUT = 10
OFFLINE_CNI = "ptp (clusterproof offline)"
# DaemonSet (or pod) name prefixes of the pod networks people run, most specific first
KNOWN_CNIS = (
    ("kindnet", "kindnet"),
    ("calico-node", "calico"),
    ("canal", "canal"),
    ("cilium", "cilium"),
    ("kube-flannel", "flannel"),
    ("flannel", "flannel"),
    ("weave-net", "weave"),
    ("antrea-agent", "antrea"),
    ("kube-router", "kube-router"),
    ("aws-node", "aws-vpc-cni"),
    ("azure-cni", "azure-cni"),
    ("ovnkube-node", "ovn-kubernetes"),
)
DEFAULT_CLASS_ANNOTATIONS = (
    "storageclass.kubernetes.io/is-default-class",
    "storageclass.beta.kubernetes.io/is-default-class",
    "ingressclass.kubernetes.io/is-default-class",
)
ROLE_LABEL = "node-role.kubernetes.io/"


def read(cluster: Cluster, key: str = "") -> dict[str, Any]:
    """The facts of one cluster (a few list calls)."""
    errors: list[str] = []
    facts: dict[str, Any] = {
        "name": cluster.name,
        "key": key,
        "provider": cluster.provider,
        "context": cluster.context,
        "offline": cluster.offline,
        "recorded": round(time.time(), 3),
        "server_version": _guarded(errors, "server version", lambda: cluster.git_version, ""),
        "nodes": _guarded(errors, "nodes", lambda: _nodes(cluster.core), []),
        "cni": _guarded(errors, "pod network", lambda: cni_of(cluster.apps, cluster.core, cluster.offline), {}),
        "ingress_classes": _guarded(errors, "IngressClasses", lambda: _ingress_classes(cluster.networking), []),
        "storage_classes": _guarded(errors, "StorageClasses", lambda: _storage_classes(cluster.storage), []),
        "health": _guarded(errors, "health", lambda: [str(f) for f in health.findings_for(cluster)], []),
        "errors": errors,
    }
    return facts


def record(cluster: Cluster, path: Path, key: str = "") -> None:
    """Add (or replace, by cluster name) this cluster's entry in cluster.json. Several pytest-xdist
    workers may write at once: the file is locked while it is read and rewritten."""
    try:
        entry = read(cluster, key)

        def replace(data: dict[str, Any]) -> None:
            clusters = [c for c in data.get("clusters", []) if c.get("name") != entry["name"]]
            data.update(schema=SCHEMA, clusters=[*clusters, entry])

        _rewrite(path, replace)
    except Exception as e:  # facts are for the report: never fail a test over them
        log.warning("could not record cluster facts in %s: %s", path, e)


def add(path: Path, cluster_name: str, key: str, value: Any) -> None:
    """A fact a module learnt of its cluster (`key`: value) into that cluster's entry of cluster.json,
    redacted. Like `record`, never fails a test: a cluster not recorded there is left alone."""

    def put(data: dict[str, Any]) -> None:
        entry = next((c for c in data.get("clusters", []) if c.get("name") == cluster_name), None)
        if entry is None:
            raise LookupError(f"cluster {cluster_name} is not recorded there")
        entry[key] = value

    try:
        _rewrite(path, put)
    except Exception as e:  # facts are for the report: never fail a test over them
        log.warning("could not add %s of cluster %s to %s: %s", key, cluster_name, path, e)


def _rewrite(path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    """cluster.json read, changed and written back (redacted) under its lock."""
    with _locked(path) as f:
        text = f.read()
        data = json.loads(text) if text.strip() else {}
        change(data)
        f.seek(0)
        f.truncate()
        f.write(redact(json.dumps(data, indent=2)) + "\n")


def health_of(path: Path) -> list[dict[str, Any]]:
    """[{"cluster": name, "findings": [...]}] for the clusters of cluster.json with health findings
    (none when the file is missing or unreadable: the health section is for reading, not judging)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    clusters = data.get("clusters") if isinstance(data, dict) else None
    return [
        {"cluster": str(c.get("name", "?")), "findings": [str(f) for f in c["health"]]}
        for c in clusters or []
        if isinstance(c, dict) and isinstance(c.get("health"), list) and c["health"]
    ]


def health_lines(path: Path) -> list[str]:
    """The health findings as lines for the terminal (`<cluster>: <finding>`)."""
    return [f"{h['cluster']}: {finding}" for h in health_of(path) for finding in h["findings"]]


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[Any]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+", encoding="utf-8") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            f.seek(0)
            yield f
            f.flush()  # written before the next writer may read
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _guarded(errors: list[str], what: str, fn: Callable[[], Any], default: Any) -> Any:
    try:
        return fn()
    except Exception as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        errors.append(f"{what}: {type(e).__name__} {first}".strip())
        return default


def _nodes(core: client.CoreV1Api) -> list[dict[str, Any]]:
    nodes = []
    for node in core.list_node(_request_timeout=REQUEST_TIMEOUT).items:
        labels = node.metadata.labels or {}
        info = node.status.node_info if node.status else None
        conditions = (node.status.conditions if node.status else None) or []
        ready = next((c.status == "True" for c in conditions if c.type == "Ready"), False)
        roles = sorted(k.removeprefix(ROLE_LABEL) for k in labels if k.startswith(ROLE_LABEL)) or ["worker"]
        nodes.append(
            {
                "name": node.metadata.name,
                "roles": roles,
                "kubelet": info.kubelet_version if info else "",
                "ready": ready,
                "os": info.os_image if info else "",
                "runtime": info.container_runtime_version if info else "",
            }
        )
    return nodes


def cni_of(apps: client.AppsV1Api, core: client.CoreV1Api, offline: bool) -> dict[str, str]:
    """The pod network, guessed from DaemonSets (any namespace: flannel and calico's operator
    keep theirs outside kube-system), else from kube-system's pods (a static-pod CNI)."""
    for ds in apps.list_daemon_set_for_all_namespaces(_request_timeout=REQUEST_TIMEOUT).items:
        name = _known_cni(ds.metadata.name)
        if name:
            containers = (ds.spec.template.spec.containers if ds.spec and ds.spec.template.spec else None) or []
            return {
                "name": name,
                "source": f"DaemonSet {ds.metadata.namespace}/{ds.metadata.name}",
                "image": containers[0].image if containers else "",
            }
    for pod in core.list_namespaced_pod("kube-system", _request_timeout=REQUEST_TIMEOUT).items:
        name = _known_cni(pod.metadata.name)
        if name:
            containers = (pod.spec.containers if pod.spec else None) or []
            return {
                "name": name,
                "source": f"pod kube-system/{pod.metadata.name}",
                "image": containers[0].image if containers else "",
            }
    if offline:
        return {"name": OFFLINE_CNI, "source": "per-node CNI config by clusterproof (no DaemonSet)", "image": ""}
    return {"name": "unknown", "source": "no known CNI DaemonSet or pod", "image": ""}


def _known_cni(name: str) -> str:
    return next((cni for prefix, cni in KNOWN_CNIS if name.startswith(prefix)), "")


def _is_default(annotations: dict[str, str] | None) -> bool:
    return any((annotations or {}).get(a) == "true" for a in DEFAULT_CLASS_ANNOTATIONS)


def _ingress_classes(networking: client.NetworkingV1Api) -> list[dict[str, Any]]:
    return [
        {
            "name": c.metadata.name,
            "controller": c.spec.controller if c.spec else "",
            "default": _is_default(c.metadata.annotations),
        }
        for c in networking.list_ingress_class(_request_timeout=REQUEST_TIMEOUT).items
    ]


def _storage_classes(storage: client.StorageV1Api) -> list[dict[str, Any]]:
    return [
        {"name": c.metadata.name, "provisioner": c.provisioner, "default": _is_default(c.metadata.annotations)}
        for c in storage.list_storage_class(_request_timeout=REQUEST_TIMEOUT).items
    ]
