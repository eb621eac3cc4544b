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

import logging
import shlex
import statistics
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

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
    """kind nodes are docker containers named like the nodes."""

    mechanism = "docker"

    def __init__(self, docker: str = "docker") -> None:
        self.docker = docker

    def unavailable(self) -> str | None:
        return None

    def __call__(
        self, node: str, argv: Sequence[str], *, input: str | None, check: bool, timeout: float
    ) -> subprocess.CompletedProcess[str]:
        flags = ["-i"] if input is not None else []
        return subprocess.run(
            [self.docker, "exec", *flags, node, *argv],
            input=input,
            capture_output=True,
            text=True,
            check=check,
            timeout=timeout,
        )


def kind_node_exec(api: client.ApiClient, docker: str = "docker") -> DockerNodeExec | None:
    """Docker exec for a cluster whose nodes are kind containers running on this host
    (providerID kind://docker/<cluster>/<node>), so a kept kind cluster gets node checks too."""
    nodes = client.CoreV1Api(api).list_node().items
    if not nodes or not all((n.spec.provider_id or "").startswith("kind://docker/") for n in nodes):
        return None
    try:
        found = subprocess.run(
            [docker, "inspect", "-f", "{{.State.Running}}", *(n.metadata.name for n in nodes)],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if found.returncode != 0 or set(found.stdout.split()) != {"true"}:
        return None
    return DockerNodeExec(docker)


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
