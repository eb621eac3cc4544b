"""Ingress documents: one host and class per test, a class of the test's own, and the load-balancer
addresses in an Ingress's status."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from clusterproof import wait
from clusterproof.cluster import Cluster
from clusterproof.manifests import CLUSTER_SCOPED_KINDS
from clusterproof.run import hash_of

if TYPE_CHECKING:
    from clusterproof.manifests import Manifests


def ingresses(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [d for d in docs if d.get("kind") == "Ingress"]


def set_host(docs: list[dict[str, Any]], host: str) -> list[dict[str, Any]]:
    """Give every rule (and TLS entry) of the Ingresses one host: a per-test host keeps tests
    apart on a shared controller, where host-less rules of different namespaces would collide."""
    for doc in ingresses(docs):
        for rule in doc["spec"].get("rules") or []:
            rule["host"] = host
        for tls in doc["spec"].get("tls") or []:
            tls["hosts"] = [host]
    return docs


def set_class(docs: list[dict[str, Any]], class_name: str) -> list[dict[str, Any]]:
    for doc in ingresses(docs):
        doc["spec"]["ingressClassName"] = class_name
    return docs


def load_balancer_addresses(ingress: Any) -> list[str]:
    status = ingress.get("status") if isinstance(ingress, dict) else ingress.status
    if not status:
        return []
    lb = status.get("loadBalancer") if isinstance(status, dict) else status.load_balancer
    entries = (lb.get("ingress") if isinstance(lb, dict) else lb.ingress) if lb else None
    found = []
    for entry in entries or []:
        ip = entry.get("ip") if isinstance(entry, dict) else entry.ip
        hostname = entry.get("hostname") if isinstance(entry, dict) else entry.hostname
        found.append(ip or hostname or "?")
    return found


NGINX_ANNOTATION_PREFIX = "nginx.ingress.kubernetes.io/"


def ingress_state(cluster: Cluster, namespace: str, name: str) -> str:
    """`Ingress x (class nginx, rewrite-target /$2): address 172.18.0.3`, or that no controller wrote
    one (a hint for a route nothing serves: with a controller that reports status, no address means
    nobody took it on). Its ingress-nginx annotations are as stored now: what the controller reads."""
    return describe_ingress(cluster.networking.read_namespaced_ingress(name, namespace))


def describe_ingress(found: Any) -> str:
    class_name = found.spec.ingress_class_name if found.spec else None
    annotations = {
        key.removeprefix(NGINX_ANNOTATION_PREFIX): value
        for key, value in sorted((found.metadata.annotations or {}).items())
        if key.startswith(NGINX_ANNOTATION_PREFIX)
    }
    what = ", ".join([f"class {class_name}", *(f"{key} {value}" for key, value in annotations.items())])
    addresses = load_balancer_addresses(found)
    if addresses:
        return f"Ingress {found.metadata.name} ({what}): address {', '.join(addresses)}"
    return (
        f"Ingress {found.metadata.name} ({what}): no address in its status (has a controller of its class taken it on?)"
    )


def address_within(cluster: Cluster, namespace: str, name: str, window: float) -> list[str]:
    """Watch Ingress `name` for `window` seconds; the status addresses it got ([] when none)."""
    return wait.seen_within(
        cluster.networking.list_namespaced_ingress,
        lambda objs: load_balancer_addresses(objs[name]) if name in objs else [],
        window,
        default=[],
        namespace=namespace,
        field_selector=f"metadata.name={name}",
    )


def renamed(docs: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    """The Ingress (of one-Ingress documents) under another name: a second copy in one namespace."""
    for doc in ingresses(docs):
        doc["metadata"]["name"] = name
    return docs


def unclaimed_class_name(namespace: str) -> str:
    """A class name of the test's own (IngressClass or GatewayClass): cluster-scoped, so unique per test."""
    return f"cp-unclaimed-{hash_of(namespace, 10)}"


def create_owned_by_namespace(manifests: Manifests, docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Create `docs`, the cluster-scoped ones owned by the test's namespace: they go with it (deleted
    by the tracker, or by the garbage collector after the sweep deletes the namespace of a killed run)."""
    ns = manifests.cluster.core.read_namespace(manifests.namespace)
    owner = {"apiVersion": "v1", "kind": "Namespace", "name": ns.metadata.name, "uid": ns.metadata.uid}
    for doc in docs:
        if doc["kind"] in CLUSTER_SCOPED_KINDS:
            doc["metadata"]["ownerReferences"] = [owner]
    return manifests.create(docs)
