"""Pod network verbs: what a container sees of its own network, and what a server sees of its peer.

Everything runs inside containers (exec); the test host never sends traffic to pod IPs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from clusterproof.cluster import Cluster
from clusterproof.probe import ExecResult, exec_in_pod

_INET = re.compile(r"\binet (\d+\.\d+\.\d+\.\d+)/\d+")


@dataclass(frozen=True)
class Container:
    """One container of a pod, to run commands in."""

    cluster: Cluster
    namespace: str
    pod: str
    name: str | None = None

    def __str__(self) -> str:
        return f"{self.pod}/{self.name}" if self.name else self.pod

    def sh(self, script: str, timeout: float = 30) -> ExecResult:
        return exec_in_pod(
            self.cluster.core, self.namespace, self.pod, ["sh", "-c", script], container=self.name, timeout=timeout
        )

    def global_ipv4(self) -> set[str]:
        """The IPv4 addresses of the container's interfaces, loopback excluded (`ip -4 addr`)."""
        result = self.sh("ip -4 -o addr show scope global")
        return set(_INET.findall(result.stdout))

    def network_namespace(self) -> str:
        """The kernel's id of the container's network namespace, e.g. net:[4026532840]."""
        return self.sh("readlink /proc/self/ns/net").stdout.strip()

    def get(self, url: str, timeout: float = 3) -> ExecResult:
        """One GET with curl; rc != 0 when nothing answered."""
        return self.sh(f"curl -sS --max-time {timeout:g} '{url}'", timeout=timeout + 30)


def peer_ip_seen_by_server(client: Container, server_ip: str, port: int) -> str:
    """agnhost netexec /clientip answers with the remote address of the connection, "ip:port"."""
    result = client.get(f"http://{server_ip}:{port}/clientip")
    if result.rc != 0:
        raise AssertionError(
            f"{client} got no answer from netexec at {server_ip}:{port}/clientip: {(result.stderr or result.stdout)!r}"
        )
    return result.stdout.strip().rsplit(":", 1)[0]
