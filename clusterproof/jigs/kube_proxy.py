"""kube-proxy's rules on every node, in whichever mode it runs: iptables (the nat tables of
iptables-save and ip6tables-save) or nftables (its own `kube-proxy` tables, `nft list table`);
a Service's rules in them, and the waits until kube-proxy has written or removed them."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from kubernetes import client

from clusterproof import causes, health, urls, wait
from clusterproof.api_answers import unless_missing
from clusterproof.cluster import Cluster
from clusterproof.jigs.service import BROKEN_GRACE
from clusterproof.jigs.service_backends import Backends

RULES_TIMEOUT = 60.0
IPTABLES, NFTABLES = "iptables", "nftables"
NFT_TABLES = ("ip", "ip6")  # kube-proxy's nftables mode keeps one `kube-proxy` table per family


@dataclass(frozen=True)
class NodeRules:
    """What one node holds of kube-proxy's rules: its nat tables as iptables-save prints them
    (IPv4 then IPv6), and its nftables `kube-proxy` tables as nft prints them."""

    iptables: str
    nftables: str

    @property
    def mode(self) -> str | None:
        """The mode whose Service rules are there: nftables (the `service-ips` map), iptables
        (KUBE-SVC- chains), or None (neither: ipvs, a replacement, no kube-proxy)."""
        if "map service-ips" in self.nftables:
            return NFTABLES
        if "-j KUBE-SVC-" in self.iptables:
            return IPTABLES
        return None


def nat_rules(cluster: Cluster, node: str) -> str:
    """The node's nat tables (IPv4 and IPv6), from the nf_tables backend and, when kube-proxy
    uses it, the legacy one."""
    rules = cluster.node_exec(node, "sh", "-c", "iptables-save -t nat && { ip6tables-save -t nat || true; }").stdout
    if "-A KUBE-SERVICES" not in rules:
        legacy = "iptables-legacy-save -t nat && { ip6tables-legacy-save -t nat || true; }"
        found = cluster.node_exec(node, "sh", "-c", legacy, check=False)
        rules += found.stdout if found.returncode == 0 else ""
    return rules


def nft_rules(cluster: Cluster, node: str) -> str:
    """kube-proxy's nftables tables on the node ("" where there are none, or no nft binary)."""
    listing = "; ".join(f"nft list table {family} kube-proxy 2>/dev/null" for family in NFT_TABLES)
    return cluster.node_exec(node, "sh", "-c", f"{listing}; true").stdout


def node_rules(cluster: Cluster, mode: str | None = None) -> dict[str, NodeRules]:
    """Every node's kube-proxy rules, by node name: of `mode` only, when given."""
    return {
        n.name: NodeRules(
            nat_rules(cluster, n.name) if mode in (None, IPTABLES) else "",
            nft_rules(cluster, n.name) if mode in (None, NFTABLES) else "",
        )
        for n in cluster.nodes
    }


def mode_of(rules: dict[str, NodeRules]) -> str | None:
    """The mode kube-proxy's rules show on the nodes (nftables first: a node switched from
    iptables may keep stale chains a moment)."""
    modes = {r.mode for r in rules.values()} - {None}
    return NFTABLES if NFTABLES in modes else IPTABLES if IPTABLES in modes else None


def configured_mode(cluster: Cluster) -> str | None:
    """kube-proxy's `mode:` in kubeadm's kube-system/kube-proxy ConfigMap ("" is iptables); None
    when there is no such ConfigMap."""
    config_map = unless_missing(lambda: cluster.core.read_namespaced_config_map("kube-proxy", health.SYSTEM))
    if config_map is None:
        return None
    text = (config_map.data or {}).get("config.conf") or ""
    found = re.search(r"^mode:\s*\"?([a-z]*)\"?\s*$", text, re.MULTILINE)
    return (found.group(1) if found else "") or IPTABLES


def why_no_rules(cluster: Cluster) -> str:
    """Why no node shows kube-proxy's iptables or nftables rules, when that is no fault: a known
    replacement implements Services, or kube-proxy runs in another mode (ipvs)."""
    look = health.Look(cluster)
    replacement = health.proxy_replacement(look)
    if replacement:
        return f"Services are implemented by {replacement}, not by kube-proxy's rules"
    mode = configured_mode(cluster)
    if mode and mode not in (IPTABLES, NFTABLES):
        return f"kube-proxy runs in {mode} mode (kube-system/kube-proxy): no iptables or nftables rules to read"
    return "no kube-proxy rules on any node: no KUBE-SVC- chains in the nat tables, no nftables kube-proxy table"


@dataclass(frozen=True)
class ServiceRules:
    """kube-proxy's rules for one Service port: the portal (the ClusterIP:port dispatch: a
    KUBE-SERVICES rule, or an element of the nftables service-ips map), and where its endpoint
    chains DNAT to (`ip:port`, `[ip6]:port`)."""

    portal: tuple[str, ...]
    destinations: frozenset[str]

    @property
    def present(self) -> bool:
        return bool(self.portal)


def service_rules(rules: NodeRules, mode: str, namespace: str, name: str, cluster_ip: str, port: int) -> ServiceRules:
    if mode == NFTABLES:
        return nft_service_rules(rules.nftables, namespace, name, cluster_ip, port)
    return iptables_service_rules(rules.iptables, namespace, name, cluster_ip, port)


def iptables_service_rules(rules: str, namespace: str, name: str, cluster_ip: str, port: int) -> ServiceRules:
    comment = re.compile(r'--comment "?' + re.escape(f"{namespace}/{name}") + r'[:" ]')
    portal = tuple(
        line
        for line in rules.splitlines()
        if line.startswith("-A KUBE-SERVICES ")
        and f"-d {urls.host_prefix(cluster_ip)} " in line
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


_NFT_CHAIN = re.compile(r'^\s*chain "?([^\s"{]+)"? \{\n(.*?)^\s*\}', re.MULTILINE | re.DOTALL)


def nft_service_rules(rules: str, namespace: str, name: str, cluster_ip: str, port: int) -> ServiceRules:
    """From `nft list table ip|ip6 kube-proxy`: the service-ips map's element `<ClusterIP> . tcp .
    <port> : goto service-<hash>-<namespace>/<name>/tcp/<port name>`, and where the Service's
    chains DNAT to: in the service chain itself (1.37: `dnat to ip:port` for one endpoint, `dnat ip
    to numgen random mod N map { 0 : ip . port, ... }` for several), or in its endpoint chains
    (earlier releases: `endpoint-<hash>-<namespace>/<name>/tcp/<port name>__<ip>/<port>`)."""
    owner = f"-{namespace}/{name}/"
    element = re.compile(re.escape(cluster_ip) + r" \. tcp \. " + str(port) + r' : goto "?(service-[^\s",}]+)')
    portal = tuple(m.group(0) for m in element.finditer(rules) if owner in m.group(1))
    destinations: set[str] = set()
    for chain in _NFT_CHAIN.finditer(rules):
        if chain.group(1).startswith(("service-", "endpoint-")) and owner in chain.group(1):
            destinations |= nft_dnat_destinations(chain.group(2))
    return ServiceRules(portal, frozenset(destinations))


def nft_dnat_destinations(chain_body: str) -> set[str]:
    """`ip:port` (`[ip6]:port`) of each `dnat to` in a chain: one address, or a numgen map's."""
    found = {m.group(1) for m in re.finditer(r"\bdnat (?:ip6? )?to (?!numgen)(\S+)", chain_body)}
    for mapped in re.finditer(r"\bdnat (?:ip6? )?to numgen [^{]*\{([^}]*)\}", chain_body):
        for entry in mapped.group(1).split(","):
            target = entry.partition(" : ")[2].strip()  # "10.244.0.2 . 53"
            address, _, number = target.rpartition(" . ")
            if address and number:
                found.add(urls.host_port(address.strip(), number.strip()))
    return found


def wait_rules_written(
    cluster: Cluster, service: client.V1Service, pods: Backends, mode: str, timeout: float = RULES_TIMEOUT
) -> None:
    """Until every node's rules (of `mode`) have the Service's ClusterIP:port as a portal and
    DNAT it to exactly the pods' IP:targetPort."""
    ip, port = service.spec.cluster_ip, service.spec.ports[0].port
    destinations = {urls.host_port(pod_ip, service.spec.ports[0].target_port) for pod_ip in pods.ips}
    name = service.metadata.name

    def wrong(rules: ServiceRules) -> str | None:
        if not rules.present:
            return f"no {mode} rule for {name}'s ClusterIP {urls.host_port(ip, port)}"
        if rules.destinations != destinations:
            return f"{name} DNATs to {sorted(rules.destinations)}, pods are {sorted(destinations)}"
        return None

    _wait_every_node(
        cluster,
        service,
        mode,
        wrong,
        f"kube-proxy to write {name} ({urls.host_port(ip, port)}) into every node's {mode} rules",
        timeout,
        # kube-proxy writes endpoints from the Service's EndpointSlices only
        cause=lambda: causes.service_cause(cluster, service.metadata.namespace, name),
    )


def wait_rules_removed(cluster: Cluster, service: client.V1Service, mode: str, timeout: float = RULES_TIMEOUT) -> None:
    """Until no node's rules (of `mode`) have anything for the (deleted) Service."""
    ip, port, name = service.spec.cluster_ip, service.spec.ports[0].port, service.metadata.name

    def wrong(rules: ServiceRules) -> str | None:
        if rules.present or rules.destinations:
            return f"rules for deleted {name} ({urls.host_port(ip, port)}) still there: {rules.portal[:1]}"
        return None

    _wait_every_node(
        cluster,
        service,
        mode,
        wrong,
        f"kube-proxy to remove {name} ({urls.host_port(ip, port)}) from every node's {mode} rules",
        timeout,
    )


def _wait_every_node(
    cluster: Cluster,
    service: client.V1Service,
    mode: str,
    wrong: Callable[[ServiceRules], str | None],
    expected: str,
    timeout: float,
    *,
    cause: Callable[[], str | None] | None = None,
) -> None:
    ip, port, name = service.spec.cluster_ip, service.spec.ports[0].port, service.metadata.name
    namespace = service.metadata.namespace

    def problems() -> dict[str, str | None]:
        return {
            node: wrong(service_rules(rules, mode, namespace, name, ip, port))
            for node, rules in node_rules(cluster, mode).items()
        }

    wait.until_seen(
        problems,
        lambda found: not any(found.values()),
        expected,
        timeout,
        describe=lambda found: "; ".join(f"{node}: {p}" for node, p in sorted(found.items()) if p) or "-",
        final=causes.give_up_after(BROKEN_GRACE, cause or (lambda: causes.routing_cause(cluster)), cluster=cluster),
        interval=2,
    )
