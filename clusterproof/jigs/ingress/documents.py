"""Ingress documents: one host and class per test, and the load-balancer addresses in an Ingress's status."""

from __future__ import annotations

from typing import Any

from clusterproof import wait
from clusterproof.cluster import Cluster


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
