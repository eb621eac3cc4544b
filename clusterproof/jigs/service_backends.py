"""The pods that back the Services of the notes: each fixture's path, selector and count, and the
ready pods found behind a Service (names, IPs, UIDs)."""

from __future__ import annotations

from dataclasses import dataclass

from kubernetes import client


@dataclass(frozen=True)
class BackendPods:
    """A fixture of pods that back Services: its path, the selector of its pods, how many."""

    path: str
    selector: str
    count: int


# pod-1, pod-2 (app: pod), agnhost serve-hostname on 8080: [003]'s practice backends
APP_PODS = BackendPods("claims/services/app-pods.yaml", "app=pod", 2)
# Deployment np-pods, 2 replicas, serve-hostname on 80: [002]'s NodePort backends
NP_PODS = BackendPods("claims/services/np-pods.yaml", "app=np-pods", 2)
# Deployment sample-app, 2 replicas, agnhost porter on 80 and 443 ("port-80 <pod>")
SAMPLE_APP = BackendPods("claims/services/sample-app.yaml", "app=sample-app", 2)
# one pod standing for a workload outside the cluster (SVC-17): agnhost netexec on 8080 (/hostname)
LEGACY_BACKEND = BackendPods("claims/services/legacy-backend.yaml", "role=legacy-backend", 1)


@dataclass(frozen=True)
class Backends:
    """The ready pods behind a Service."""

    pods: tuple[client.V1Pod, ...]

    @property
    def names(self) -> set[str]:
        return {p.metadata.name for p in self.pods}

    @property
    def ips(self) -> set[str]:
        return {p.status.pod_ip for p in self.pods}

    @property
    def uids(self) -> set[str]:
        return {p.metadata.uid for p in self.pods}

    @property
    def by_ip(self) -> dict[str, str]:
        """pod IP -> pod name"""
        return {p.status.pod_ip: p.metadata.name for p in self.pods}

    def ip_of(self, name: str) -> str:
        return next(p.status.pod_ip for p in self.pods if p.metadata.name == name)

    def __str__(self) -> str:
        return ", ".join(f"{p.metadata.name} ({p.status.pod_ip})" for p in sorted(self.pods, key=_pod_name)) or "none"


def _pod_name(pod: client.V1Pod) -> str:
    return pod.metadata.name
