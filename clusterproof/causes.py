"""Causes for waits that cannot succeed: a shared precondition known to be broken, in words.

The health read-out's reads (clusterproof.health) answer the jigs' "is waiting pointless?"
questions (`routing_cause`, `service_cause`, `endpoints_cause`, `slices_cause`, `controller_cause`,
`daemonset_controller_cause`, `provisioner_cause`, `admission_disabled`): each returns the cause
in words when a shared precondition is known to be broken, else None, and is cached per cluster
for a few seconds. They are conservative: "unknown" is None, so a wait only ends early on
positive evidence. `give_up_after` makes one a wait's `final`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kubernetes import client

from clusterproof import health
from clusterproof.pod_states import daemonset_processed, describe_pods, pod_is_ready

if TYPE_CHECKING:
    from clusterproof.cluster import Cluster

# provisioner name -> the Deployment that serves it, for provisioners whose pods do not say so
KNOWN_PROVISIONERS = {"rancher.io/local-path": "local-path-provisioner"}
CACHE_SECONDS = 15.0
# a controller acts on a new object within a second: one not processed after CONTROLLER_GRACE is
# given up on when the controller is known not to run, after UNPROCESSED_LIMIT in any case
CONTROLLER_GRACE = 15.0
UNPROCESSED_LIMIT = 45.0

_cache: dict[tuple[str, str], tuple[float, Any]] = {}
_confirmed: set[tuple[str, str]] = set()  # (cluster, cause) a wait gave up on after its grace (confirm)
_cache_lock = threading.Lock()


def _cached(cluster: Cluster, key: str, fn: Callable[[], Any], *, clock: Callable[[], float] = time.monotonic) -> Any:
    with _cache_lock:
        hit = _cache.get((cluster.name, key))
        if hit is not None and clock() - hit[0] < CACHE_SECONDS:
            return hit[1]
    value = fn()
    with _cache_lock:
        _cache[(cluster.name, key)] = (clock(), value)
    return value


def forget(cluster: Cluster) -> None:
    """Drop what is cached about the cluster (it was changed on purpose, or let go)."""
    with _cache_lock:
        for key in [k for k in _cache if k[0] == cluster.name]:
            del _cache[key]
        _confirmed.difference_update({k for k in _confirmed if k[0] == cluster.name})


def routing_cause(cluster: Cluster) -> str | None:
    """Why no Service can route, when known: kube-proxy runs (Ready) on no node and nothing
    replaces it. None when kube-proxy runs somewhere, or when unsure."""

    def look_once() -> str | None:
        look = health.Look(cluster)
        if not look.nodes or health.proxy_replacement(look):
            return None
        pods = health.kube_proxy_pods(look)
        if any(pod_is_ready(p) for p in pods):
            synced = look.kube_proxy_health
            if synced and all(status == 503 for status, _ in synced.values()):
                return health.kube_proxy_sync_findings(look)[0].text + ": the Services' rules are stale"
            return None
        ds = next((d for d in look.daemonsets if d.metadata.name == health.KUBE_PROXY), None)
        if ds is None and not pods:
            where = f"no DaemonSet or pod {health.SYSTEM}/{health.KUBE_PROXY}"
        elif ds is not None and not daemonset_processed(ds):
            where = (
                f"DaemonSet {health.SYSTEM}/{health.KUBE_PROXY} never processed: is the DaemonSet controller running?"
            )
        else:
            wanted = (ds.status.desired_number_scheduled or 0) if ds is not None and ds.status else len(pods)
            where = f"0 of {wanted} {health.KUBE_PROXY} pods ready" + (f": {describe_pods(pods)}" if pods else "")
        return f"{health.KUBE_PROXY} runs on no node ({where}): nothing writes the Services' rules"

    return _cached(cluster, "routing", look_once)


def endpoints_cause(cluster: Cluster) -> str | None:
    """Why a Service gets no Endpoints object, when known (the cluster's older Services have none)."""

    def look_once() -> str | None:
        found = [f for f in health.endpoints_findings(health.Look(cluster)) if f.component == "endpoints controller"]
        return found[0].text if found else None

    return _cached(cluster, "endpoints", look_once)


def slices_cause(cluster: Cluster) -> str | None:
    """Why Services get no EndpointSlices, when known: the EndpointSlice controller is off in
    kube-controller-manager's flags, or the cluster's Services have Endpoints but no slices."""

    def look_once() -> str | None:
        look = health.Look(cluster)
        off = health.controller_off(look.controller_manager_args() or [], "endpointslice-controller")
        found = [f.text for f in health.endpoints_findings(look) if f.component == health.SLICE_CONTROLLER]
        return off or (found[0] if found else None)

    return _cached(cluster, "slices", look_once)


def service_cause(cluster: Cluster, namespace: str, name: str) -> str | None:
    """Why Service `name` cannot route, when known: no Service can (routing_cause), or it has no
    EndpointSlice while the EndpointSlice controller is known not to run (kube-proxy reads only
    slices). A Service whose slices are there (a hand-made Endpoints object is mirrored into them
    by another controller) is not held back by the latter."""
    routing = routing_cause(cluster)
    if routing or slices_cause(cluster) is None:
        return routing
    try:
        own = client.DiscoveryV1Api(cluster.api).list_namespaced_endpoint_slice(
            namespace, label_selector=f"kubernetes.io/service-name={name}", _request_timeout=health.REQUEST_TIMEOUT
        ).items
    except Exception:  # not readable: unsure
        return None
    return None if own else slices_cause(cluster)


def controller_cause(cluster: Cluster, controller: str) -> str | None:
    """kube-controller-manager's flag that turns `controller` (a name of health.CONTROLLERS) off,
    when its mirror pod shows one."""

    def look_once() -> str | None:
        return health.controller_off(health.Look(cluster).controller_manager_args() or [], controller)

    return _cached(cluster, f"controller {controller}", look_once)


def daemonset_controller_cause(cluster: Cluster) -> str | None:
    """Why a DaemonSet is never processed, when known (no DaemonSet in kube-system ever was)."""

    def look_once() -> str | None:
        look = health.Look(cluster)
        off = health.controller_off(look.controller_manager_args() or [], "daemonset-controller")
        found = [f for f in health.daemonset_findings(look) if f.component == "DaemonSet controller" and f.final]
        return off or (found[0].text if found else None)

    return _cached(cluster, "daemonsets", look_once)


def provisioner_cause(cluster: Cluster, provisioner: str) -> str | None:
    """Why `provisioner` makes no PV, when known: its Deployment (KNOWN_PROVISIONERS) is scaled to
    0 or has no available replica."""
    deployment = KNOWN_PROVISIONERS.get(provisioner)
    if deployment is None:
        return None

    def look_once() -> str | None:
        try:
            found = cluster.apps.list_deployment_for_all_namespaces(
                field_selector=f"metadata.name={deployment}", _request_timeout=health.REQUEST_TIMEOUT
            ).items
        except Exception:
            return None
        for d in found:
            want = d.spec.replicas if d.spec.replicas is not None else 1
            available = (d.status.available_replicas or 0) if d.status else 0
            where = f"Deployment {d.metadata.namespace}/{d.metadata.name}"
            if want == 0:
                return f"{where} is scaled to 0 replicas: nothing provisions for {provisioner}"
            if available == 0:
                return f"{where} has 0 of {want} replicas available: nothing provisions for {provisioner}"
        return None

    return _cached(cluster, f"provisioner {provisioner}", look_once)


def admission_disabled(cluster: Cluster, plugin: str) -> str | None:
    """kube-apiserver's flag that turns admission plugin `plugin` off, when its mirror pod shows one."""

    def look_once() -> str | None:
        args = health.Look(cluster).apiserver_args() or []
        for arg in args:
            flag, _, value = arg.partition("=")
            if flag == "--disable-admission-plugins" and plugin in value.split(","):
                return f"kube-apiserver runs with {arg}: the {plugin} admission plugin is off"
        return None

    return _cached(cluster, f"admission {plugin}", look_once)


def not_processed(
    cluster: Cluster, what: str, controller: str, waited: float, known: Callable[[], str | None]
) -> str | None:
    """Why `what` (e.g. "StatefulSet ns/web") is still unprocessed by the `controller` (in words)
    after `waited` seconds: `known()` (a cause of the cluster's: the controller turned off) once
    CONTROLLER_GRACE has passed, or at once when an earlier wait on this cluster already gave up
    on that cause; after UNPROCESSED_LIMIT in any case."""
    cause = known()
    if cause and (waited >= CONTROLLER_GRACE or confirmed(cluster, cause)):
        confirm(cluster, cause)
        return cause
    if waited >= UNPROCESSED_LIMIT:
        return f"the {controller} has not processed {what} in {waited:.0f} s: is it running?"
    return None


def confirm(cluster: Cluster, cause: str) -> None:
    """A wait on `cluster` gave up on `cause` after its grace: later waits need none."""
    with _cache_lock:
        _confirmed.add((cluster.name, cause))


def confirmed(cluster: Cluster, cause: str | None) -> bool:
    with _cache_lock:
        return cause is not None and (cluster.name, cause) in _confirmed


def grace_for(cluster: Cluster, cause: str | None, grace: float) -> float:
    """How long a wait that depends on `cause` still goes on: `grace`, or none once an earlier
    wait on the cluster gave up on that cause."""
    return 0.0 if confirmed(cluster, cause) else grace


def give_up_after(
    grace: float,
    cause: Callable[[], str | None],
    *,
    cluster: Cluster | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> Callable[[Any], str | None]:
    """A wait's `final` (for state it ignores): once `grace` seconds have passed, the cause of a
    broken shared precondition, when there is one (then confirmed on `cluster`, when given: a
    later wait on the same cause gives up at once). Within the grace a wait goes on, unless its
    cause is confirmed already."""
    started = clock()

    def final(_: Any = None) -> str | None:
        waited = clock() - started
        if waited < grace and cluster is None:
            return None
        reason = cause()
        if reason is None:
            return None
        if waited < grace and not (cluster is not None and confirmed(cluster, reason)):
            return None
        if cluster is not None:
            confirm(cluster, reason)
        return reason

    return final
