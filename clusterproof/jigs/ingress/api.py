"""The API server as ING-02 and ING-06 read it: kubectl's EXTERNAL-IP column, a Service merge patch, and
which Ingress APIs are served."""

from __future__ import annotations

import json
from typing import Any

from kubernetes import client
from kubernetes.client import ApiException

from clusterproof.cluster import Cluster

# --- the controller Service's external IPs -----------------------------------------------------


def external_ip_column(cluster: Cluster, namespace: str, service: str) -> str:
    """The EXTERNAL-IP column of `kubectl get service`, as a person would read it."""
    out = cluster.kubectl("get", "service", service, "-n", namespace, "--no-headers").stdout.split()
    return out[3] if len(out) > 3 else f"<unreadable: {' '.join(out)!r}>"


def patch_service_spec(cluster: Cluster, namespace: str, service: str, spec: dict[str, Any]) -> None:
    """A merge patch, as the notes' `kubectl edit` would leave it."""
    patch = json.dumps({"spec": spec})
    cluster.kubectl("patch", "service", service, "-n", namespace, "--type", "merge", "-p", patch)


# --- which Ingress APIs the server serves ------------------------------------------------------


def served_versions(cluster: Cluster, group: str) -> list[str]:
    """Versions of an API group, from live discovery (/apis), not a cache."""
    groups = client.ApisApi(cluster.api).get_api_versions().groups
    return [v.version for g in groups if g.name == group for v in g.versions]


def serves_resource(cluster: Cluster, group_version: str, plural: str) -> bool:
    """Whether /apis/<group_version> lists `plural` (live request)."""
    try:
        found = cluster.dynamic.request("GET", f"/apis/{group_version}")
    except ApiException as e:
        if e.status == 404:
            return False
        raise
    return any(r.name == plural for r in found.resources)
