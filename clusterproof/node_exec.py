"""The node-exec protocol: one way to run a command on a cluster's nodes, and the mechanisms that
need no cluster objects (docker exec into kind nodes, none, a timing wrapper).

Every node check goes through `Cluster.node_exec(node, *argv, input=, check=, timeout=)`, which
answers like `subprocess.run` (a CompletedProcess; CalledProcessError with check=True;
TimeoutExpired). The mechanisms (`--node-access`): `docker` (kind nodes are docker containers on
this host: `docker exec`), `pod` (a privileged host exec pod per node: clusterproof.hostexec),
`none` (no node commands: `require_node_exec()` and the `needs_node_exec` marker skip with the
reason). A node one mechanism cannot reach raises NodeExecUnavailable naming the node.
"""

from __future__ import annotations

import json
import logging
import shlex
import statistics
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from kubernetes import client

from clusterproof.errors import NodeExecUnavailable, one_line

log = logging.getLogger("clusterproof.node_access")

MODES = ("auto", "docker", "pod", "none")
NOT_CHOSEN = "no shell on the nodes: node access not set up for this cluster"


class NodeExec(Protocol):
    """A mechanism: runs argv on a node (answers like subprocess.run) and says whether it can
    reach nodes at all."""

    mechanism: str  # "docker", "pod", "none"

    def unavailable(self) -> str | None:
        """Why no node can be reached (a skip reason naming what is missing), or None."""

    def __call__(
        self, node: str, argv: Sequence[str], *, input: str | None, check: bool, timeout: float
    ) -> subprocess.CompletedProcess[str]: ...


class DockerNodeExec:
    """kind nodes are docker containers on this host: `docker exec` into the node's container, by
    the container id its proof found (clusterproof.node_exec.kind_node_exec), else by the node's
    name (the kind provider's own set-up of containers it has just made)."""

    mechanism = "docker"

    def __init__(self, docker: str = "docker", containers: Mapping[str, str] | None = None) -> None:
        self.docker = docker
        self.containers = dict(containers) if containers is not None else None  # node -> container id

    def unavailable(self) -> str | None:
        return None

    def __call__(
        self, node: str, argv: Sequence[str], *, input: str | None, check: bool, timeout: float
    ) -> subprocess.CompletedProcess[str]:
        container = node
        if self.containers is not None:
            if node not in self.containers:
                raise NodeExecUnavailable(f"node {node} was not among the nodes proven to be containers here")
            container = self.containers[node]
        flags = ["-i"] if input is not None else []
        return subprocess.run(
            [self.docker, "exec", *flags, container, *argv],
            input=input,
            capture_output=True,
            text=True,
            check=check,
            timeout=timeout,
        )


# --- is this cluster's node that container? ---------------------------------------------------
# A kind node's providerID (kind://docker/<cluster>/<node>) and a container of the node's name on
# this host prove nothing: a kind cluster on another machine has the same default names as one
# here, and commands (and `rm -rf` cleanups) would land on this host's cluster. A node is that
# container when its kubelet runs on this host's kernel (the Node's bootID is this host's boot id:
# containers share the kernel's) and its InternalIP is an address of the container (addresses are
# unique on a docker network, so the container is that node, not another local cluster's).

KIND_PROVIDER_ID = "kind://docker/"
BOOT_ID = "/proc/sys/kernel/random/boot_id"
NOT_KIND = "the nodes are not kind containers (providerID kind://docker/...)"


@dataclass(frozen=True)
class Container:
    """What `docker inspect` says of one container."""

    id: str
    name: str
    running: bool
    addresses: Mapping[str, str]  # address (IPv4 and IPv6 alike) -> its docker network

    @classmethod
    def from_inspect(cls, data: Mapping[str, Any]) -> Container:
        networks = ((data.get("NetworkSettings") or {}).get("Networks")) or {}
        addresses = {
            str(settings[key]): network
            for network, settings in networks.items()
            for key in ("IPAddress", "GlobalIPv6Address")
            if (settings or {}).get(key)
        }
        return cls(
            id=str(data.get("Id") or ""),
            name=str(data.get("Name") or "").lstrip("/"),
            running=bool((data.get("State") or {}).get("Running")),
            addresses=addresses,
        )


def _provider_id(node: client.V1Node) -> str:
    return (node.spec.provider_id if node.spec else None) or ""


def internal_ips(node: client.V1Node) -> list[str]:
    addresses = (node.status.addresses if node.status else None) or []
    return [a.address for a in addresses if a.type == "InternalIP"]


def prove_kind_nodes(
    nodes: Sequence[client.V1Node], containers: Mapping[str, Container], boot_id: str
) -> dict[str, str] | str:
    """node -> container id when every node is proven to be a running container here (see above),
    else why not (one line, naming the first node that is not)."""
    if not nodes:
        return "the cluster lists no nodes"
    proven = {}
    for node in nodes:
        name = node.metadata.name
        if not _provider_id(node).startswith(KIND_PROVIDER_ID):
            return f"{NOT_KIND}: node {name} has providerID {_provider_id(node) or 'none'}"
        container = containers.get(name)
        if container is None:
            return f"node {name}: this host's docker has no container {name}"
        if not container.running:
            return f"node {name}: container {name} here is not running"
        node_boot = (node.status.node_info.boot_id if node.status and node.status.node_info else None) or ""
        if node_boot != boot_id:
            return (
                f"node {name} runs on another machine than this host's docker (its bootID {node_boot or 'unknown'}, "
                f"this host's {boot_id or 'unknown'}): container {name} here is another cluster's"
            )
        ips = internal_ips(node)
        if not ips or any(ip not in container.addresses for ip in ips):
            held = ", ".join(f"{a} on {n}" for a, n in container.addresses.items()) or "none"
            return (
                f"node {name} (InternalIP {', '.join(ips) or 'none'}) is not container {name} here "
                f"(its addresses: {held}): another cluster's node of the same name"
            )
        proven[name] = container.id
    return proven


def docker_containers(names: Sequence[str], docker: str = "docker") -> dict[str, Container] | str:
    """The containers of these names on this host's docker (missing ones absent), or why docker
    could not say."""
    try:
        found = subprocess.run(
            [docker, "inspect", "--type", "container", *names], capture_output=True, text=True, timeout=20
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"docker inspect: {type(e).__name__}: {e}"
    try:
        listed = json.loads(found.stdout or "[]")  # the containers found, also when others are missing (exit 1)
    except ValueError:
        return f"docker inspect exited {found.returncode}: {one_line(found.stderr or found.stdout, 200)}"
    if not listed and found.returncode != 0:  # no daemon, or none of the names
        return f"docker inspect exited {found.returncode}: {one_line(found.stderr, 200)}"
    containers = [Container.from_inspect(item) for item in listed if isinstance(item, dict)]
    return {c.name: c for c in containers}


def host_boot_id(path: str = BOOT_ID) -> str:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return ""


def kind_node_exec(
    api: client.ApiClient,
    docker: str = "docker",
    *,
    inspect: Callable[[Sequence[str], str], dict[str, Container] | str] = docker_containers,
    boot_id: Callable[[], str] = host_boot_id,
) -> NodeExec:
    """Docker exec into this cluster's nodes when each is proven to be a container on this host
    (see above); else NoNodeExec saying why (NOT_KIND in front when they are not kind nodes at all)."""
    nodes = client.CoreV1Api(api).list_node().items
    if not nodes or not all(_provider_id(n).startswith(KIND_PROVIDER_ID) for n in nodes):
        return NoNodeExec(NOT_KIND)
    containers = inspect([n.metadata.name for n in nodes], docker)
    if isinstance(containers, str):
        return NoNodeExec(f"docker access refused: {containers}")
    proven = prove_kind_nodes(nodes, containers, boot_id())
    if isinstance(proven, str):
        return NoNodeExec(f"docker access refused: {proven}")
    return DockerNodeExec(docker, proven)


class NoNodeExec:
    mechanism = "none"

    def __init__(self, reason: str = NOT_CHOSEN) -> None:
        self.reason = reason

    def unavailable(self) -> str | None:
        return self.reason

    def __call__(
        self, node: str, argv: Sequence[str], *, input: str | None, check: bool, timeout: float
    ) -> subprocess.CompletedProcess[str]:
        raise NodeExecUnavailable(self.reason)


@dataclass
class TimedNodeExec:
    """A mechanism whose every command is timed: logged at DEBUG, kept for the run's timings."""

    inner: NodeExec
    seconds: list[float] = field(default_factory=list)
    clock: Callable[[], float] = time.monotonic

    @property
    def mechanism(self) -> str:
        return self.inner.mechanism

    def unavailable(self) -> str | None:
        return self.inner.unavailable()

    def __call__(
        self, node: str, argv: Sequence[str], *, input: str | None, check: bool, timeout: float
    ) -> subprocess.CompletedProcess[str]:
        started = self.clock()
        outcome = "error"
        try:
            done = self.inner(node, argv, input=input, check=False, timeout=timeout)
            outcome = f"rc {done.returncode}"
        finally:
            seconds = self.clock() - started
            if outcome != "error":
                self.seconds.append(seconds)
            log.debug(
                "node exec via %s on %s: %s -> %s in %.3fs",
                self.mechanism, node, one_line(shlex.join(argv), 120), outcome, seconds,
            )
        if check:
            done.check_returncode()
        return done

    def summary(self) -> str | None:
        """`n commands, median s, max s` or None when none ran."""
        if not self.seconds:
            return None
        return (
            f"{len(self.seconds)} commands, median {statistics.median(self.seconds):.3f}s, "
            f"max {max(self.seconds):.3f}s"
        )
