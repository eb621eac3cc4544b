"""Pod networking for a kind cluster without kindnet (not to be had offline).

Each node gets a CNI config (ptp + host-local on its own podCIDR, then portmap), a route
to every other node's podCIDR via that node's IP, and masquerade for traffic leaving the
pod network. Pod-to-pod traffic is routed, never NATed: a server sees the client pod's IP.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

DEFAULT_POD_SUBNET = "10.244.0.0/16"
CONFLIST_PATH = "/etc/cni/net.d/10-clusterproof.conflist"


@dataclass(frozen=True)
class NodeRoute:
    name: str
    ip: str
    pod_cidr: str


def conflist(pod_cidr: str) -> str:
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
                        "ranges": [[{"subnet": pod_cidr}]],
                        "routes": [{"dst": "0.0.0.0/0"}],
                    },
                },
                {"type": "portmap", "capabilities": {"portMappings": True}},
            ],
        },
        indent=2,
    )


def node_script(me: NodeRoute, others: list[NodeRoute], pod_subnet: str = DEFAULT_POD_SUBNET) -> str:
    """Shell run on one node; idempotent, so a retry or a second call changes nothing."""
    lines = ["set -eu"]
    lines += [f"ip route replace {o.pod_cidr} via {o.ip}" for o in others]
    rule = f"-s {me.pod_cidr} ! -d {pod_subnet} -j MASQUERADE -m comment --comment clusterproof-pod-egress"
    lines.append(f"iptables -t nat -C POSTROUTING {rule} 2>/dev/null || iptables -t nat -A POSTROUTING {rule}")
    lines.append(f"mkdir -p /etc/cni/net.d && cat > {CONFLIST_PATH}.tmp && mv {CONFLIST_PATH}.tmp {CONFLIST_PATH}")
    return "\n".join(lines)


def plan(nodes: list[NodeRoute]) -> dict[str, str]:
    """node name -> the script that node runs."""
    return {n.name: node_script(n, [o for o in nodes if o.name != n.name]) for n in nodes}
