"""The API server as ING-02 and ING-06 read it: kubectl's EXTERNAL-IP column, a Service merge patch, and
which Ingress APIs are served."""

from __future__ import annotations

import json
from typing import Any

from kubernetes import client

from clusterproof.api_answers import unless_missing
from clusterproof.cluster import Cluster

# --- the controller Service's external IPs -----------------------------------------------------


def external_ip_column(cluster: Cluster, namespace: str, service: str) -> str:
    """The EXTERNAL-IP column of `kubectl get service -o wide`, as a person would read it (wide: a
    load balancer's addresses are not cut short)."""
    out = cluster.kubectl("get", "service", service, "-n", namespace, "--no-headers", "-o", "wide").stdout.split()
    return out[3] if len(out) > 3 else f"<unreadable: {' '.join(out)!r}>"


def expected_external_ip_column(service: client.V1Service, external_ips: list[str]) -> str:
    """What kubectl shows as EXTERNAL-IP for `service` with `external_ips` set: the externalIPs, or
    <none>; for a LoadBalancer Service, its load balancer's addresses first, or <pending> when it has
    neither (kubectl's own rule: a cloud install's Service lists its load balancer before any patch)."""
    if service.spec.type != "LoadBalancer":
        return ",".join(external_ips) or "<none>"
    ingresses = (service.status.load_balancer.ingress or []) if service.status and service.status.load_balancer else []
    balancer = [i.ip or i.hostname for i in ingresses if i.ip or i.hostname]
    return ",".join([*balancer, *external_ips]) or "<pending>"


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
    found = unless_missing(lambda: cluster.dynamic.request("GET", f"/apis/{group_version}"))
    return found is not None and any(r.name == plural for r in found.resources)
