"""Pod network verbs: what a container sees of its own network, and what a server sees of its peer.

Everything runs inside containers (exec); the test host never sends traffic to pod IPs.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from clusterproof import urls, wait
from clusterproof.cluster import Cluster
from clusterproof.errors import ProbeError
from clusterproof.pod_exec import ExecResult, exec_in_pod
from clusterproof.probe import ANSWER_TIMEOUT

_INET = re.compile(r"\binet6? ([0-9a-fA-F.:]+)/\d+")


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

    def global_addresses(self) -> set[str]:
        """The global IPv4 and IPv6 addresses of the container's interfaces (`ip addr`: loopback
        and link-local excluded), in the API's spelling (`ipaddress`'s compressed form)."""
        return addresses_in(self.sh("ip -o addr show scope global").stdout)

    def network_namespace(self) -> str:
        """The kernel's id of the container's network namespace, e.g. net:[4026532840]."""
        return self.sh("readlink /proc/self/ns/net").stdout.strip()

    def get(self, url: str, timeout: float = 3) -> ExecResult:
        """One GET with curl; rc != 0 when nothing answered."""
        return self.sh(f"curl -sS -g --max-time {timeout:g} '{url}'", timeout=timeout + 30)


def addresses_in(ip_addr_output: str) -> set[str]:
    """The addresses `ip -o addr` lists (inet and inet6), compressed as the API writes them."""
    return {str(ipaddress.ip_address(found)) for found in _INET.findall(ip_addr_output)}


def peer_ip_seen_by_server(client: Container, server_ip: str, port: int, timeout: float = ANSWER_TIMEOUT) -> str:
    """agnhost netexec /clientip answers with the remote address of the connection, "ip:port"
    ("[ip]:port" for IPv6): the address alone is returned.
    Retried until the first answer: a new pod's route may lag behind its Ready condition."""
    url = urls.url(server_ip, port, "/clientip")

    def answer() -> str:
        result = client.get(url)
        if result.rc != 0:
            raise ProbeError(f"no answer: {(result.stderr or result.stdout).strip()!r}")
        return result.stdout.strip()

    return urls.host_of(wait.until(answer, f"an answer from netexec at {url} in {client}", timeout))
