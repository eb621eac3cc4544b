"""Pod networking for a kind cluster without kindnet (not to be had offline).

Each node gets a CNI config (ptp + host-local on its own podCIDRs, then portmap), a route to
every other node's podCIDRs via that node's IP of the same family, and masquerade for traffic
leaving the pod network. Pod-to-pod traffic is routed, never NATed: a server sees the client
pod's IP. IPv4, IPv6 and dual-stack alike: each family on its own (`ip route`, iptables or
ip6tables).

"The pod network" is the cluster's pod subnet as configured (kubeadm's `networking.podSubnet`,
or kube-controller-manager's `--cluster-cidr`), read from the cluster in use: a masquerade rule
for kind's default 10.244.0.0/16 on a cluster whose pods live in 10.250.0.0/16 NATs pod-to-pod
traffic across nodes.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import yaml

from clusterproof.urls import family

DEFAULT_POD_SUBNET = "10.244.0.0/16"  # kind's (IPv4); used only when the cluster says nothing
CONFLIST_PATH = "/etc/cni/net.d/10-clusterproof.conflist"
DEFAULT_ROUTE = {4: "0.0.0.0/0", 6: "::/0"}
IPTABLES = {4: "iptables", 6: "ip6tables"}


@dataclass(frozen=True)
class NodeRoute:
    """A node as the pod network sees it: its InternalIPs and podCIDRs (one of each per family)."""

    name: str
    ips: tuple[str, ...]
    pod_cidrs: tuple[str, ...]

    def ip_of_family(self, version: int) -> str | None:
        return next((ip for ip in self.ips if family(ip) == version), None)


def conflist(pod_cidrs: Sequence[str]) -> str:
    families = sorted({family(c) for c in pod_cidrs})
    return json.dumps(
        {
            "cniVersion": "0.4.0",
            "name": "clusterproof",
            "plugins": [
                {
                    "type": "ptp",
                    "ipMasq": False,
                    "mtu": 1500,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": cidr}] for cidr in pod_cidrs],
                        "routes": [{"dst": DEFAULT_ROUTE[f]} for f in families],
                    },
                },
                {"type": "portmap", "capabilities": {"portMappings": True}},
            ],
        },
        indent=2,
    )


def node_script(me: NodeRoute, others: Iterable[NodeRoute], pod_subnets: Sequence[str]) -> str:
    """Shell run on one node; idempotent, so a retry or a second call changes nothing."""
    lines = ["set -eu"]
    for other in others:
        for cidr in other.pod_cidrs:
            via = other.ip_of_family(family(cidr))
            if via:
                lines.append(f"ip route replace {cidr} via {via}")
    if any(family(c) == 6 for c in me.pod_cidrs):
        lines.append("sysctl -qw net.ipv6.conf.all.forwarding=1")
    for cidr in me.pod_cidrs:
        version = family(cidr)
        subnet = next((s for s in pod_subnets if family(s) == version), cidr)
        rule = f"-s {cidr} ! -d {subnet} -j MASQUERADE -m comment --comment clusterproof-pod-egress"
        tables = IPTABLES[version]
        lines.append(f"{tables} -t nat -C POSTROUTING {rule} 2>/dev/null || {tables} -t nat -A POSTROUTING {rule}")
    lines.append(f"mkdir -p /etc/cni/net.d && cat > {CONFLIST_PATH}.tmp && mv {CONFLIST_PATH}.tmp {CONFLIST_PATH}")
    return "\n".join(lines)


def plan(nodes: Sequence[NodeRoute], pod_subnets: Sequence[str]) -> dict[str, str]:
    """node name -> the script that node runs."""
    return {n.name: node_script(n, [o for o in nodes if o.name != n.name], pod_subnets) for n in nodes}


# --- the cluster's pod subnet -------------------------------------------------------------------


def subnets_from_kubeadm(cluster_configuration: str | None) -> tuple[str, ...]:
    """`networking.podSubnet` of kubeadm's ClusterConfiguration (the kubeadm-config ConfigMap's
    text), split on commas (dual-stack); () when it says nothing."""
    try:
        config = yaml.safe_load(cluster_configuration or "") or {}
    except yaml.YAMLError:
        return ()
    subnet = ((config.get("networking") or {}) if isinstance(config, dict) else {}).get("podSubnet") or ""
    return _valid(subnet.split(","))


def subnets_from_flags(args: Iterable[str]) -> tuple[str, ...]:
    """kube-controller-manager's `--cluster-cidr=...` (comma-separated); () without one."""
    for arg in args:
        flag, _, value = arg.partition("=")
        if flag == "--cluster-cidr":
            return _valid(value.split(","))
    return ()


def covering_subnets(pod_cidrs: Iterable[str]) -> tuple[str, ...]:
    """Per family, the smallest network holding every given podCIDR: the pod network as far as
    the nodes show it, when the cluster's configuration cannot be read."""
    networks = [ipaddress.ip_network(c, strict=False) for c in pod_cidrs]
    found = []
    for version in (4, 6):
        mine = [n for n in networks if n.version == version]
        if not mine:
            continue
        cover = mine[0]
        while not all(n.subnet_of(cover) for n in mine):  # type: ignore[arg-type]
            cover = cover.supernet()
        found.append(str(cover))
    return tuple(found)


def pod_subnets(
    kubeadm_configuration: str | None, controller_manager_args: Iterable[str], nodes: Sequence[NodeRoute]
) -> tuple[str, ...]:
    """The cluster's pod network: kubeadm's podSubnet, else kube-controller-manager's
    --cluster-cidr, else what covers the nodes' podCIDRs, else kind's default."""
    return (
        subnets_from_kubeadm(kubeadm_configuration)
        or subnets_from_flags(controller_manager_args)
        or covering_subnets(c for n in nodes for c in n.pod_cidrs)
        or (DEFAULT_POD_SUBNET,)
    )


def _valid(values: Iterable[str]) -> tuple[str, ...]:
    found = []
    for value in values:
        try:
            found.append(str(ipaddress.ip_network(value.strip(), strict=False)))
        except ValueError:
            continue
    return tuple(found)
