"""One look at a cluster's system components: each list (nodes; kube-system's DaemonSets, pods,
Deployments, Services, Endpoints, EndpointSlices, leader Leases; kube-proxy's /healthz on each node)
read at most once, when first needed, never raising: what cannot be read is empty and named in
`unread`. clusterproof.health judges what it sees; clusterproof.causes asks it why a wait cannot end.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from functools import cached_property
from typing import TYPE_CHECKING, Any

from kubernetes import client

from clusterproof.api_answers import raw_request
from clusterproof.pod_states import pod_is_ready

if TYPE_CHECKING:
    from clusterproof.cluster import Cluster

REQUEST_TIMEOUT = 10
SYSTEM = "kube-system"
ADDON_NAMESPACES = (SYSTEM, "local-path-storage")  # Deployments looked at (CoreDNS, provisioners)
ENDPOINTS_NAMESPACES = (SYSTEM, "default")
KUBE_PROXY = "kube-proxy"
KUBE_PROXY_HEALTHZ_PORT = 10256  # kube-proxy's --healthz-bind-address (kubeadm: 0.0.0.0:10256)
HEALTHZ_TIMEOUT = 5.0
CONTROLLER_MANAGER = "kube-controller-manager"


class Look:
    """One look at the cluster: each list read at most once, when first needed; a list that
    cannot be read is empty and named in `unread`."""

    def __init__(self, cluster: Cluster, now: float | None = None) -> None:
        self.cluster = cluster
        self.now = time.time() if now is None else now
        self.unread: list[str] = []

    def _read(self, what: str, fn: Callable[[], Any]) -> list[Any]:
        try:
            return list(fn().items)
        except Exception as e:  # a health look never fails anything
            self.unread.append(f"{what}: {type(e).__name__} {getattr(e, 'status', '') or ''}".strip())
            return []

    def _read_in(self, kind: str, namespaces: Iterable[str], list_in: Callable[[str], Any]) -> list[Any]:
        """`kind` in each namespace (`list_in(namespace)`); one that cannot be read is named in `unread`."""
        found: list[Any] = []
        for ns in namespaces:
            found += self._read(f"{kind} in {ns}", lambda ns=ns: list_in(ns))
        return found

    def _by_key_in(
        self, kind: str, list_in: Callable[[str], Any], key: Callable[[Any], str]
    ) -> dict[tuple[str, str], Any] | None:
        """(namespace, key(object)) -> object of `kind` in ENDPOINTS_NAMESPACES; None (named in
        `unread`) as soon as one namespace cannot be read."""
        found: dict[tuple[str, str], Any] = {}
        for ns in ENDPOINTS_NAMESPACES:
            try:
                items = list_in(ns).items
            except Exception as e:
                self.unread.append(f"{kind} in {ns}: {type(e).__name__}")
                return None
            found |= {(ns, key(item)): item for item in items}
        return found

    @cached_property
    def nodes(self) -> list[client.V1Node]:
        return self._read("nodes", lambda: self.cluster.core.list_node(_request_timeout=REQUEST_TIMEOUT))

    @cached_property
    def daemonsets(self) -> list[client.V1DaemonSet]:
        apps = self.cluster.apps
        return self._read(
            "DaemonSets", lambda: apps.list_namespaced_daemon_set(SYSTEM, _request_timeout=REQUEST_TIMEOUT)
        )

    @cached_property
    def all_daemonset_names(self) -> list[str]:
        apps = self.cluster.apps
        sets = self._read(
            "DaemonSets (all namespaces)",
            lambda: apps.list_daemon_set_for_all_namespaces(_request_timeout=REQUEST_TIMEOUT),
        )
        return [d.metadata.name for d in sets]

    @cached_property
    def system_pods(self) -> list[client.V1Pod]:
        core = self.cluster.core
        return self._read("pods", lambda: core.list_namespaced_pod(SYSTEM, _request_timeout=REQUEST_TIMEOUT))

    @cached_property
    def deployments(self) -> list[client.V1Deployment]:
        apps = self.cluster.apps
        return self._read_in(
            "Deployments",
            ADDON_NAMESPACES,
            lambda ns: apps.list_namespaced_deployment(ns, _request_timeout=REQUEST_TIMEOUT),
        )

    def pods_in(self, namespace: str) -> list[client.V1Pod]:
        if namespace == SYSTEM:
            return self.system_pods
        core = self.cluster.core
        return self._read(
            f"pods in {namespace}", lambda: core.list_namespaced_pod(namespace, _request_timeout=REQUEST_TIMEOUT)
        )

    @cached_property
    def services(self) -> list[client.V1Service]:
        core = self.cluster.core
        return self._read_in(
            "Services",
            ENDPOINTS_NAMESPACES,
            lambda ns: core.list_namespaced_service(ns, _request_timeout=REQUEST_TIMEOUT),
        )

    @cached_property
    def endpoints_objects(self) -> dict[tuple[str, str], client.V1Endpoints] | None:
        """The Endpoints objects by (namespace, name); None when they cannot be read."""
        core = self.cluster.core
        return self._by_key_in(
            "Endpoints",
            lambda ns: core.list_namespaced_endpoints(ns, _request_timeout=REQUEST_TIMEOUT),
            lambda e: e.metadata.name,
        )

    @property
    def endpoints(self) -> set[tuple[str, str]] | None:
        """(namespace, name) of the Endpoints objects; None when they cannot be read."""
        objects = self.endpoints_objects
        return set(objects) if objects is not None else None

    @cached_property
    def slice_services(self) -> set[tuple[str, str]] | None:
        """(namespace, Service name) of the EndpointSlices the endpointslice controller made."""
        found = self._by_key_in(
            "EndpointSlices",
            lambda ns: client.DiscoveryV1Api(self.cluster.api).list_namespaced_endpoint_slice(
                ns,
                label_selector="endpointslice.kubernetes.io/managed-by=endpointslice-controller.k8s.io",
                _request_timeout=REQUEST_TIMEOUT,
            ),
            lambda s: (s.metadata.labels or {}).get("kubernetes.io/service-name", ""),
        )
        return set(found) if found is not None else None

    @cached_property
    def kube_proxy_health(self) -> dict[str, tuple[int, Any]]:
        """node -> (status, body) of kube-proxy's /healthz on the nodes where a kube-proxy pod
        runs, asked through the API server's node proxy; nodes not answered are left out."""
        nodes = {p.spec.node_name for p in kube_proxy_pods(self) if p.spec and p.spec.node_name and pod_is_ready(p)}
        found = {}
        for node in sorted(nodes):
            path = f"/api/v1/nodes/{node}:{KUBE_PROXY_HEALTHZ_PORT}/proxy/healthz"
            try:
                answer = raw_request(self.cluster, "GET", path, timeout=HEALTHZ_TIMEOUT)
            except Exception as e:
                self.unread.append(f"kube-proxy healthz on {node}: {type(e).__name__}")
                continue
            if answer.status in (200, 503):  # anything else: not its healthz (proxy refused, other port)
                found[node] = (answer.status, answer.body)
        return found

    def lease(self, name: str) -> client.V1Lease | None:
        try:
            return client.CoordinationV1Api(self.cluster.api).read_namespaced_lease(
                name, SYSTEM, _request_timeout=REQUEST_TIMEOUT
            )
        except Exception:  # no leader election, or not allowed to read: nothing to say
            return None

    def age(self, obj: Any) -> float:
        created = obj.metadata.creation_timestamp
        return self.now - created.timestamp() if created is not None else 0.0

    def component_args(self, component: str) -> list[str] | None:
        """A control-plane component's flags as its (static) mirror pod shows them (kubeadm's
        `component=<name>` label); None when not visible."""
        pods = [p for p in self.system_pods if (p.metadata.labels or {}).get("component") == component]
        if not pods:
            return None
        container = pods[0].spec.containers[0]
        return [*(container.command or []), *(container.args or [])]

    def apiserver_args(self) -> list[str] | None:
        """kube-apiserver's flags as its (static) mirror pod shows them; None when not visible."""
        return self.component_args("kube-apiserver")

    def controller_manager_args(self) -> list[str] | None:
        return self.component_args(CONTROLLER_MANAGER)


def kube_proxy_pods(look: Look) -> list[client.V1Pod]:
    return [
        p
        for p in look.system_pods
        if (p.metadata.labels or {}).get("k8s-app") == KUBE_PROXY or p.metadata.name.startswith(f"{KUBE_PROXY}-")
    ]
