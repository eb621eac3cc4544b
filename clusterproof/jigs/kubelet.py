"""What a node's kubelet is set up with, as far as it can be read: its container runtime's endpoint
(the socket `ctr` must be pointed at: k3s and RKE2 run containerd at /run/k3s/containerd/...) and
its root directory (where pod volumes live: `--root-dir`, /var/lib/kubelet by default).

Read from the kubelet itself: its flags (the process's command line on the node), then its
configuration as it serves it (`/api/v1/nodes/<node>/proxy/configz`: containerRuntimeEndpoint
is a config field since 1.27), then kubeadm's node annotation; the defaults only when none says.
Read once per node and cluster.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from clusterproof.api_answers import raw_request, unless_missing
from clusterproof.cluster import Cluster

DEFAULT_RUNTIME_ENDPOINT = "unix:///run/containerd/containerd.sock"
DEFAULT_ROOT_DIR = "/var/lib/kubelet"
CRI_SOCKET_ANNOTATION = "kubeadm.alpha.kubernetes.io/cri-socket"  # kubeadm up to 1.2x
# every kubelet process's command line, one argument a line (a flag's value may hold spaces)
KUBELET_ARGS = 'for p in $(pgrep -x kubelet); do tr "\\0" "\\n" < /proc/$p/cmdline; done; true'


@dataclass(frozen=True)
class KubeletSetup:
    runtime_endpoint: str
    root_dir: str
    read_from: str  # where each came from, for messages

    @property
    def runtime_socket(self) -> str:
        """The endpoint as a path (`ctr --address` takes no unix:// scheme)."""
        return self.runtime_endpoint.removeprefix("unix://")

    def ctr(self, *argv: str) -> list[str]:
        """`ctr` against this kubelet's runtime, in CRI's namespace k8s.io."""
        return ["ctr", "--address", self.runtime_socket, "-n", "k8s.io", *argv]


def from_sources(args: Sequence[str], configz: Mapping[str, Any], annotations: Mapping[str, str]) -> KubeletSetup:
    """The setup the kubelet's flags, served configuration and node annotations say (in that
    order), with the defaults for what none of them says."""
    config = configz.get("kubeletconfig") or {}
    endpoint_sources = (
        (_flag(args, "--container-runtime-endpoint"), "kubelet flag --container-runtime-endpoint"),
        (config.get("containerRuntimeEndpoint"), "kubelet configz containerRuntimeEndpoint"),
        (annotations.get(CRI_SOCKET_ANNOTATION), f"node annotation {CRI_SOCKET_ANNOTATION}"),
        (DEFAULT_RUNTIME_ENDPOINT, "default"),
    )
    endpoint, endpoint_from = next((value, where) for value, where in endpoint_sources if value)
    if "://" not in endpoint:  # kubeadm's annotation was a bare path before 1.24
        endpoint = f"unix://{endpoint}"
    root, root_from = (_flag(args, "--root-dir"), "kubelet flag --root-dir")
    if not root:
        root, root_from = DEFAULT_ROOT_DIR, "default"
    return KubeletSetup(endpoint, root.rstrip("/") or "/", f"runtime endpoint: {endpoint_from}; root dir: {root_from}")


def _flag(args: Sequence[str], name: str) -> str | None:
    for i, arg in enumerate(args):
        if arg.startswith(f"{name}="):
            return arg.split("=", 1)[1]
        if arg == name and i + 1 < len(args):
            return args[i + 1]
    return None


_setups: dict[tuple[str, str], KubeletSetup] = {}
_lock = threading.Lock()


def setup_of(cluster: Cluster, node: str) -> KubeletSetup:
    """The node's kubelet setup (node access for its flags where there is any), read once."""
    with _lock:
        found = _setups.get((cluster.name, node))
    if found is not None:
        return found
    args: list[str] = []
    if cluster.can_node_exec:
        args = cluster.node_exec(node, "sh", "-c", KUBELET_ARGS, check=False).stdout.splitlines()
    answer = raw_request(cluster, "GET", f"/api/v1/nodes/{node}/proxy/configz")
    configz = answer.body if answer.accepted and isinstance(answer.body, dict) else {}
    read = unless_missing(lambda: cluster.core.read_node(node))
    annotations = (read.metadata.annotations or {}) if read is not None else {}
    found = from_sources(args, configz, annotations)
    with _lock:
        _setups[(cluster.name, node)] = found
    return found
