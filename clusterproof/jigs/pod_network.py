"""Pod network verbs: what a container sees of its own network, and what a server sees of its peer.

Everything runs inside containers (exec); the test host never sends traffic to pod IPs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from clusterproof import wait
from clusterproof.cluster import Cluster
from clusterproof.errors import ProbeError
from clusterproof.probe import ANSWER_TIMEOUT, ExecResult, exec_in_pod

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


def peer_ip_seen_by_server(client: Container, server_ip: str, port: int, timeout: float = ANSWER_TIMEOUT) -> str:
    """agnhost netexec /clientip answers with the remote address of the connection, "ip:port".
    Retried until the first answer: a new pod's route may lag behind its Ready condition."""
    url = f"http://{server_ip}:{port}/clientip"

    def answer() -> str:
        result = client.get(url)
        if result.rc != 0:
            raise ProbeError(f"no answer: {(result.stderr or result.stdout).strip()!r}")
        return result.stdout.strip()

    return wait.until(answer, f"an answer from netexec at {url} in {client}", timeout).rsplit(":", 1)[0]
