"""What the kind provider asks of the offline tooling; each function is one step of
bringing up a cluster whose images come from Debian packages instead of a registry."""

from __future__ import annotations

import socket
import subprocess
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from clusterproof import health
from clusterproof.api_answers import unless_missing
from clusterproof.offline import capabilities, hygiene, podnetwork, releases
from clusterproof.offline.build import Builder
from clusterproof.progress import Progress

if TYPE_CHECKING:
    from kubernetes import client

    from clusterproof.cluster import Cluster

# kind v0.33's default node image; present locally means kind can boot without a registry
STOCK_NODE_IMAGE = "kindest/node:v1.37.0"
REGISTRY_HOSTS = ("registry-1.docker.io", "registry.k8s.io")
POD_CIDR_TIMEOUT = 60
KUBEADM_CONFIG = "kubeadm-config"
CONTROLLER_MANAGER = "kube-controller-manager"


def _resolves(host: str, timeout: float = 2.0) -> bool:
    """DNS only: no packet is sent to the registry itself."""
    result: list[bool] = []

    def lookup() -> None:
        try:
            socket.getaddrinfo(host, 443)
            result.append(True)
        except OSError:
            result.append(False)

    t = threading.Thread(target=lookup, daemon=True)
    t.start()
    t.join(timeout)
    return bool(result and result[0])


def resolve_offline(mode: str, kind_image: str | None = None) -> bool:
    """`yes`/`no` as asked; `auto`: offline when kind's stock image is neither local nor pullable."""
    if mode in ("yes", "no"):
        return mode == "yes"
    if kind_image:
        return False
    local = subprocess.run(["docker", "image", "inspect", STOCK_NODE_IMAGE], capture_output=True).returncode == 0
    return not local and not all(_resolves(h) for h in REGISTRY_HOSTS)


def ensure_images(version: str | None = None, progress: Progress | None = None) -> str:
    """The offline node image tag of a release (`1.37`; None: the default), built first if its
    recipe changed (slow only the first time; each step built is a step of `progress`)."""
    builder = Builder(progress=progress)
    tag = builder.build(releases.release(version))
    builder.progress.say("offline images:\n" + builder.report())
    return tag


def stock_image(version: str | None) -> str | None:
    """Online: kind's published node image of that release (None: kind's default)."""
    return f"kindest/node:{releases.release(version).kube}" if version else None


def kind_command(kind_path: Path, run_dir: Path) -> Path:
    return capabilities.kind_command(kind_path, run_dir)


def kind_config_overrides(version: str | None = None) -> dict:
    """Merged into the kind cluster config of an offline cluster: no kindnet (its module is not
    served: the pod network is set up by configure_cluster). Go-built releases run the kubelet
    with the cgroupfs driver their containerd is configured for, and allow cgroup v1 (kubelet
    1.35+ refuses it by default); kind writes cgroupfs itself below 1.24."""
    release = releases.release(version)
    patches = []
    if release.minor_number >= 24:
        patches.append(
            "kind: KubeletConfiguration\ncgroupDriver: cgroupfs\n"
            + ("failCgroupV1: false\n" if release.minor_number >= 31 else "")
        )
    return {"networking": {"disableDefaultCNI": True}, "kubeadmConfigPatches": patches}


def configure_cluster(cluster: Cluster, node_count: int) -> None:
    """Pod networking on every node, once all `node_count` have registered and the
    controller-manager has given each its podCIDRs. (`kind create` can return before the last
    worker's Node exists: on a busy host, a cluster configured then kept that node NotReady.)
    The pod subnet is the cluster's own (podnetwork.pod_subnets), not kind's default."""
    from clusterproof.wait import until_seen

    def routes(nodes: list[client.V1Node]) -> list[podnetwork.NodeRoute] | None:
        found = [
            podnetwork.NodeRoute(
                n.metadata.name,
                tuple(a.address for a in n.status.addresses if a.type == "InternalIP"),
                tuple(n.spec.pod_cidrs or [n.spec.pod_cidr]),
            )
            for n in nodes
            if n.spec.pod_cidr
        ]
        return found if len(found) == len(nodes) >= node_count else None

    def registered(nodes: list[client.V1Node]) -> str:
        return "registered: " + (
            ", ".join(f"{n.metadata.name} (podCIDR {n.spec.pod_cidr or 'none yet'})" for n in nodes) or "none"
        )

    nodes = until_seen(
        lambda: cluster.core.list_node().items,
        routes,
        f"all {node_count} nodes registered, each with a spec.podCIDR",
        POD_CIDR_TIMEOUT,
        describe=registered,
    )
    subnets = podnetwork.pod_subnets(
        kubeadm_cluster_configuration(cluster), health.Look(cluster).component_args(CONTROLLER_MANAGER) or [], nodes
    )
    for node, script in podnetwork.plan(nodes, subnets).items():
        pod_cidrs = next(n.pod_cidrs for n in nodes if n.name == node)
        cluster.node_exec(node, "sh", "-c", script, input=podnetwork.conflist(pod_cidrs))


def kubeadm_cluster_configuration(cluster: Cluster) -> str | None:
    """kubeadm's ClusterConfiguration as the cluster keeps it (kube-system/kubeadm-config); None
    when there is none."""
    config_map = unless_missing(lambda: cluster.core.read_namespaced_config_map(KUBEADM_CONFIG, "kube-system"))
    return (config_map.data or {}).get("ClusterConfiguration") if config_map is not None else None


host_hygiene = hygiene.host_hygiene


def gateway_api_crds(progress: Progress | None = None) -> Path:
    """The Gateway API CRDs (standard channel) Traefik's Gateway provider is built against, generated
    from the Go module at build time (a cache check once the images are built: the same for every
    Go-built release)."""
    return Builder(progress=progress).gateway_api_crds()
