"""kube-proxy's NAT rules: every node's nat table (iptables-save), a Service's rules in it, and the waits
until kube-proxy has written or removed them."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from kubernetes import client

from clusterproof import causes, wait
from clusterproof.cluster import Cluster
from clusterproof.jigs.service import BROKEN_GRACE, Backends

RULES_TIMEOUT = 60.0


def nat_rules(cluster: Cluster, node: str) -> str:
    """The node's nat table, from the nf_tables backend and, when kube-proxy uses it, the legacy one."""
    rules = cluster.node_exec(node, "iptables-save", "-t", "nat").stdout
    if "-A KUBE-SERVICES" not in rules:
        legacy = cluster.node_exec(node, "iptables-legacy-save", "-t", "nat", check=False)
        rules += legacy.stdout if legacy.returncode == 0 else ""
    return rules


@dataclass(frozen=True)
class ServiceRules:
    """kube-proxy's rules for one Service port: the portal in KUBE-SERVICES, and where its
    endpoint chains DNAT to."""

    portal: tuple[str, ...]
    destinations: frozenset[str]

    @property
    def present(self) -> bool:
        return bool(self.portal)


def service_rules(rules: str, namespace: str, name: str, cluster_ip: str, port: int) -> ServiceRules:
    comment = re.compile(r'--comment "?' + re.escape(f"{namespace}/{name}") + r'[:" ]')
    portal = tuple(
        line
        for line in rules.splitlines()
        if line.startswith("-A KUBE-SERVICES ")
        and f"-d {cluster_ip}/32 " in line
        and f"--dport {port} " in line
        and "-j KUBE-SVC-" in line
    )
    destinations = frozenset(
        m.group(1)
        for line in rules.splitlines()
        if line.startswith("-A KUBE-SEP-") and comment.search(line)
        for m in [re.search(r"--to-destination (\S+)", line)]
        if m
    )
    return ServiceRules(portal, destinations)


def nat_tables(cluster: Cluster) -> dict[str, str]:
    """Every node's nat table, by node name."""
    return {n.name: nat_rules(cluster, n.name) for n in cluster.nodes}


def wait_rules_written(
    cluster: Cluster, service: client.V1Service, pods: Backends, timeout: float = RULES_TIMEOUT
) -> None:
    """Until every node's nat table has the Service's ClusterIP:port in KUBE-SERVICES and
    DNATs it to exactly the pods' IP:targetPort."""
    ip, port = service.spec.cluster_ip, service.spec.ports[0].port
    destinations = {f"{pod_ip}:{service.spec.ports[0].target_port}" for pod_ip in pods.ips}
    name = service.metadata.name

    def wrong(rules: ServiceRules) -> str | None:
        if not rules.present:
            return f"no KUBE-SERVICES rule for {name}'s ClusterIP {ip}:{port}"
        if rules.destinations != destinations:
            return f"{name} DNATs to {sorted(rules.destinations)}, pods are {sorted(destinations)}"
        return None

    _wait_every_node(
        cluster, service, wrong, f"kube-proxy to write {name} ({ip}:{port}) into every node's nat table", timeout
    )


def wait_rules_removed(cluster: Cluster, service: client.V1Service, timeout: float = RULES_TIMEOUT) -> None:
    """Until no node's nat table has rules for the (deleted) Service."""
    ip, port, name = service.spec.cluster_ip, service.spec.ports[0].port, service.metadata.name

    def wrong(rules: ServiceRules) -> str | None:
        if rules.present or rules.destinations:
            return f"rules for deleted {name} ({ip}:{port}) still there: {rules.portal[:1]}"
        return None

    _wait_every_node(
        cluster, service, wrong, f"kube-proxy to remove {name} ({ip}:{port}) from every node's nat table", timeout
    )


def _wait_every_node(
    cluster: Cluster,
    service: client.V1Service,
    wrong: Callable[[ServiceRules], str | None],
    expected: str,
    timeout: float,
) -> None:
    ip, port, name = service.spec.cluster_ip, service.spec.ports[0].port, service.metadata.name
    namespace = service.metadata.namespace

    def problems() -> dict[str, str | None]:
        return {
            node: wrong(service_rules(rules, namespace, name, ip, port)) for node, rules in nat_tables(cluster).items()
        }

    wait.until_seen(
        problems,
        lambda found: not any(found.values()),
        expected,
        timeout,
        describe=lambda found: "; ".join(f"{node}: {p}" for node, p in sorted(found.items()) if p) or "-",
        final=causes.give_up_after(BROKEN_GRACE, lambda: causes.routing_cause(cluster)),
        interval=2,
    )
