"""Cluster: the clients of one cluster, its nodes and version, and a shell on its nodes."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import pytest
from kubernetes import client, config
from kubernetes.dynamic import DynamicClient

from clusterproof import wait
from clusterproof.node_exec import NodeExec, NoNodeExec

CONTROL_PLANE_LABELS = ("node-role.kubernetes.io/control-plane", "node-role.kubernetes.io/master")
BLOCKING_EFFECTS = ("NoSchedule", "NoExecute")


def recycler_pod(pv_name: str) -> tuple[str, str]:
    """The PV controller's recycler pod of PV `pv_name` (reclaim policy Recycle): namespace, name."""
    return "default", f"recycler-for-{pv_name}"


@dataclass(frozen=True)
class Node:
    name: str
    internal_ip: str | None
    labels: Mapping[str, str]
    taints: tuple[Mapping[str, str], ...]
    is_control_plane: bool

    @property
    def blocking_taints(self) -> tuple[Mapping[str, str], ...]:
        """Taints that keep pods without tolerations off (NoSchedule, NoExecute)."""
        return tuple(t for t in self.taints if t["effect"] in BLOCKING_EFFECTS)

    @classmethod
    def from_api(cls, node: client.V1Node) -> Node:
        labels = dict(node.metadata.labels or {})
        addresses = (node.status.addresses if node.status else None) or []
        internal = next((a.address for a in addresses if a.type == "InternalIP"), None)
        taints = tuple({"key": t.key, "value": t.value or "", "effect": t.effect} for t in (node.spec.taints or []))
        return cls(
            name=node.metadata.name,
            internal_ip=internal,
            labels=labels,
            taints=taints,
            is_control_plane=any(label in labels for label in CONTROL_PLANE_LABELS),
        )


class Cluster:
    """One cluster under test. Build with `Cluster.from_kubeconfig`; nothing here prints
    credentials (the kubeconfig is read by the client library only)."""

    def __init__(
        self,
        *,
        name: str,
        kubeconfig: Path,
        context: str,
        provider: str,
        api: client.ApiClient,
        node_exec: NodeExec,
        offline: bool = False,
        kubectl_bin: Path | None = None,
    ) -> None:
        self.name = name
        self.kubeconfig = kubeconfig
        self.context = context
        self.provider = provider
        self.api = api
        self.offline = offline
        self.kubectl_bin = kubectl_bin
        self._node_exec = node_exec
        self.core = client.CoreV1Api(api)
        self.apps = client.AppsV1Api(api)
        self.networking = client.NetworkingV1Api(api)
        self.storage = client.StorageV1Api(api)
        self.batch = client.BatchV1Api(api)

    @classmethod
    def from_kubeconfig(
        cls,
        kubeconfig: Path,
        context: str,
        *,
        name: str,
        provider: str,
        node_exec: NodeExec | None = None,
        offline: bool = False,
        kubectl_bin: Path | None = None,
    ) -> Cluster:
        api = config.new_client_from_config(config_file=str(kubeconfig), context=context, persist_config=False)
        return cls(
            name=name,
            kubeconfig=kubeconfig,
            context=context,
            provider=provider,
            api=api,
            node_exec=node_exec or NoNodeExec(),
            offline=offline,
            kubectl_bin=kubectl_bin,
        )

    def __repr__(self) -> str:
        return f"Cluster({self.name!r}, provider={self.provider!r}, offline={self.offline})"

    @cached_property
    def dynamic(self) -> DynamicClient:
        return DynamicClient(self.api)

    @property
    def nodes(self) -> list[Node]:
        """Read now (labels and taints change during a run)."""
        return [Node.from_api(n) for n in self.core.list_node().items]

    @property
    def workers(self) -> list[Node]:
        return [n for n in self.nodes if not n.is_control_plane]

    @cached_property
    def _version(self) -> client.VersionInfo:
        return client.VersionApi(self.api).get_code()

    @property
    def server_version(self) -> tuple[int, int]:
        """(major, minor), e.g. (1, 20); compare with tuples: `cluster.server_version < (1, 24)`."""
        info = self._version
        found = re.match(r"v?(\d+)\.(\d+)", info.git_version or "")
        if found:
            return int(found.group(1)), int(found.group(2))
        return int(re.sub(r"\D", "", info.major)), int(re.sub(r"\D", "", info.minor))

    @property
    def git_version(self) -> str:
        return self._version.git_version

    # --- nodes ----------------------------------------------------------------------------

    def use_node_exec(self, node_exec: NodeExec) -> None:
        self._node_exec = node_exec

    @property
    def node_access(self) -> str:
        """The mechanism behind node_exec: "docker", "pod" or "none" (suites need not know)."""
        return self._node_exec.mechanism

    @property
    def can_node_exec(self) -> bool:
        """Whether nodes can be reached at all (a given node may still not be: node_exec says)."""
        return self._node_exec.unavailable() is None

    def why_no_node_exec(self) -> str | None:
        """Why no node can be reached (the skip reason), or None."""
        return self._node_exec.unavailable()

    def node_exec(
        self,
        node: str,
        *argv: str,
        input: str | None = None,
        check: bool = True,
        timeout: float = 60,
    ) -> subprocess.CompletedProcess[str]:
        """Run argv on a node, answered like subprocess.run (see clusterproof.node_exec: docker
        exec, a host exec pod, or none). Raises NodeExecUnavailable, naming why, where the node
        cannot be reached (a test meeting it is skipped)."""
        return self._node_exec(node, argv, input=input, check=check, timeout=timeout)

    def delete_pod_now(self, namespace: str, name: str, *, wait_gone: bool = True, timeout: float = 60) -> None:
        """Delete with grace 0 (test servers ignore SIGTERM) and, unless told not to, wait until
        the API no longer has it."""
        self.core.delete_namespaced_pod(name, namespace, grace_period_seconds=0)
        if wait_gone:
            wait.gone(lambda: self.core.read_namespaced_pod(name, namespace), f"pod {namespace}/{name}", timeout)

    def require(self, condition: object, reason: str) -> None:
        """Skip the test, saying what the cluster lacks, unless `condition` holds."""
        if not condition:
            pytest.skip(reason)

    def require_node_exec(self) -> None:
        """Skip, saying why, unless nodes can be reached (the `needs_node_exec` marker calls it)."""
        reason = self.why_no_node_exec()
        if reason:
            pytest.skip(reason)

    def require_workers(self, count: int) -> list[Node]:
        """At least `count` nodes that run ordinary pods: the workers, and control-plane nodes
        without a NoSchedule/NoExecute taint (a single-node cluster's one node: kind, k3s,
        minikube). Untainted nodes first, workers before control planes. Skips, naming them, when
        there are fewer."""
        nodes = self.nodes
        usable = [n for n in nodes if not n.is_control_plane or not n.blocking_taints]
        if len(usable) < count:
            names = ", ".join(n.name for n in usable) or "none"
            pytest.skip(
                f"needs {count} nodes that run ordinary pods (workers, or a control plane without a NoSchedule "
                f"taint); the cluster has {len(usable)} ({names}) of {len(nodes)} node(s)"
            )
        return sorted(usable, key=lambda n: (bool(n.blocking_taints), n.is_control_plane, n.name))

    # --- kubectl (for claims about kubectl itself) ----------------------------------------

    def require_kubectl(self) -> Path:
        if self.kubectl_bin is None:
            pytest.skip("kubectl not found on PATH (or --kind-kubectl-bin)")
        return self.kubectl_bin

    def kubectl(
        self, *args: str, check: bool = True, timeout: float = 60, kubeconfig: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        """kubectl against this cluster (its kubeconfig and context, never the user's current).
        `kubeconfig`: a private copy of this cluster's kubeconfig to use instead (same context)."""
        kubectl = self.require_kubectl()
        return subprocess.run(
            [str(kubectl), f"--kubeconfig={kubeconfig or self.kubeconfig}", f"--context={self.context}", *args],
            capture_output=True,
            text=True,
            check=check,
            timeout=timeout,
        )

    def close(self) -> None:
        self.api.close()
