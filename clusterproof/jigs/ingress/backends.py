"""The backends behind an Ingress path: which Service a path routes to, and that Service's ready pods."""

from __future__ import annotations

from kubernetes import client
from kubernetes.client import ApiException

from clusterproof import wait
from clusterproof.cluster import Cluster
from clusterproof.errors import WaitTimeout
from clusterproof.manifests import Doc

ENDPOINTS_GRACE = 15.0  # a backend Service the suite made Ready has endpoints by now


def path_services(doc: Doc) -> dict[str, str]:
    """{path: Service} of an Ingress document's (first) rule."""
    rules = doc["spec"].get("rules") or []
    paths = ((rules[0].get("http") or {}).get("paths") or []) if rules else []
    return {p["path"]: p["backend"]["service"]["name"] for p in paths}


def service_for(routes: dict[str, str], path: str) -> str:
    """The Service whose Prefix path matches `path` longest (element-wise, as pathType Prefix):
    /testpath matches /testpath and /testpath/x, not /testpathx."""

    def matches(prefix: str) -> bool:
        stem = prefix.rstrip("/")
        return stem == "" or path == stem or path.startswith(stem + "/")

    found = sorted((p for p in routes if matches(p)), key=len, reverse=True)
    if not found:
        raise AssertionError(f"no path of {sorted(routes)} matches {path}")
    return routes[found[0]]


def ready_backends(cluster: Cluster, namespace: str, service: str) -> set[str]:
    """Names of the pods behind `service` that its EndpointSlices call ready."""
    slices = client.DiscoveryV1Api(cluster.api).list_namespaced_endpoint_slice(
        namespace, label_selector=f"kubernetes.io/service-name={service}"
    )
    return {
        e.target_ref.name
        for s in slices.items
        for e in s.endpoints or []
        if e.target_ref is not None and (e.conditions is None or e.conditions.ready is not False)
    }


def service_backends(
    cluster: Cluster, namespace: str, service: str, grace: float = ENDPOINTS_GRACE, *, what: str = "a path"
) -> set[str]:
    """The ready pods behind `service`; an AssertionError naming the Service when it has none
    (after `grace`): `what` the Ingress routes to it can have no answer from a backend."""
    try:
        return wait.until(
            lambda: ready_backends(cluster, namespace, service) or None,
            f"ready endpoints of Service {namespace}/{service}",
            grace,
        )
    except WaitTimeout:
        raise AssertionError(
            f"{what} is routed by the Ingress to Service {service}, which "
            f"{_endpoints_words(cluster, namespace, service)}: no backend can answer it"
        ) from None


def service_state(cluster: Cluster, namespace: str, service: str) -> str:
    """`Service test has no ready endpoints (selector app=x)`, `... has ready endpoints: a, b`, or `... does
    not exist in ns`."""
    return f"Service {service} {_endpoints_words(cluster, namespace, service)}"


def _endpoints_words(cluster: Cluster, namespace: str, service: str) -> str:
    try:
        svc = cluster.core.read_namespaced_service(service, namespace)
    except ApiException as e:
        if e.status == 404:
            return f"does not exist in {namespace}"
        raise
    ready = ready_backends(cluster, namespace, service)
    if ready:
        return f"has ready endpoints: {', '.join(sorted(ready))}"
    selector = ",".join(f"{k}={v}" for k, v in sorted((svc.spec.selector or {}).items())) or "none"
    return f"has no ready endpoints (selector {selector})"
