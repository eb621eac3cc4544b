"""Waiting with deadlines: kubernetes watches for object state, tenacity for polling.

Every wait raises WaitTimeout("timed out after Ns waiting for <expected>; last seen: <state>").
`clock` and `watcher` are seams for unit tests (fake clock, fake watch); suites never pass them.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import tenacity
import urllib3
from kubernetes import client, watch

from clusterproof.errors import WaitTimeout

T = TypeVar("T")
S = TypeVar("S")
Clock = Callable[[], float]
Watcher = Callable[[], watch.Watch]

DEFAULT_TIMEOUT = 120.0
# transient trouble on the wire: the watch is simply opened again until the deadline
_TRANSIENT = (urllib3.exceptions.HTTPError, ConnectionError, TimeoutError)
_RETRY_STATUS = {410, 429, 500, 502, 503, 504}


def until(
    fn: Callable[[], T | None],
    description: str,
    timeout: float = DEFAULT_TIMEOUT,
    *,
    interval: float = 1.0,
    describe: Callable[[Any], str] = repr,
    clock: Clock = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Call fn until it returns something truthy (returned) or the deadline passes.
    Exceptions from fn count as "not yet" and show up as the last state seen."""
    deadline = clock() + timeout
    last = ["nothing yet"]

    def attempt() -> T | None:
        try:
            value = fn()
        except Exception as e:
            last[0] = f"{type(e).__name__}: {e}"
            return None
        if not value:
            last[0] = describe(value)
        return value

    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_result(lambda v: not v),
        stop=lambda state: clock() >= deadline,
        wait=tenacity.wait_fixed(interval),
        sleep=sleep,
        reraise=True,
    )
    try:
        return retrying(attempt)
    except tenacity.RetryError:
        raise WaitTimeout(description, last[0], timeout) from None


def until_seen(
    read: Callable[[], S],
    done: Callable[[S], T | None],
    description: str,
    timeout: float = DEFAULT_TIMEOUT,
    *,
    describe: Callable[[S], str],
    interval: float = 1.0,
    **seams: Any,
) -> T:
    """until() for a condition on state read once per attempt: `done(state)` decides, and a
    timeout describes the last state read (without reading it again)."""
    last: list[S] = []

    def attempt() -> T | None:
        last[:] = [read()]
        return done(last[0])

    return until(
        attempt,
        description,
        timeout,
        interval=interval,
        describe=lambda _: describe(last[0]) if last else "nothing read yet",
        **seams,
    )


def last_seen(
    read: Callable[[], S],
    done: Callable[[S], bool],
    description: str,
    timeout: float = DEFAULT_TIMEOUT,
    *,
    interval: float = 1.0,
    **seams: Any,
) -> S:
    """Read until `done(state)` or the deadline, and return the last state read either way: for
    checks that judge what was seen themselves (and name what is missing)."""
    last: list[S] = []

    def attempt() -> bool | None:
        last[:] = [read()]
        return done(last[0]) or None

    with contextlib.suppress(WaitTimeout):
        until(attempt, description, timeout, interval=interval, **seams)
    return last[0] if last else read()


def daemonset_rolled_out(ds: Any) -> bool:
    """The DaemonSet controller has seen the current spec and every pod it wants is Ready."""
    s = ds.status
    observed = s is not None and (s.observed_generation or 0) >= (ds.metadata.generation or 1)
    return observed and (s.number_ready or 0) == (s.desired_number_scheduled or 0)


def watch_until(
    list_fn: Callable[..., Any],
    done: Callable[[dict[str, Any]], Any],
    expected: str,
    describe: Callable[[dict[str, Any]], str],
    timeout: float = DEFAULT_TIMEOUT,
    *,
    clock: Clock = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    watcher: Watcher = watch.Watch,
    **list_kwargs: Any,
) -> Any:
    """Watch objects of `list_fn` (filtered by list_kwargs) into a name -> object dict until
    `done(objects)` returns something truthy, which is returned. A new watch starts with the
    full current state (synthetic ADDED events), so each reconnect starts from a fresh dict."""
    deadline = clock() + timeout
    objects: dict[str, Any] = {}
    last = "nothing seen yet"

    def one_stream() -> Any:
        nonlocal objects, last
        remaining = deadline - clock()
        if remaining <= 0:
            return None
        objects = {}
        last = describe(objects)
        w = watcher()
        stream = w.stream(
            list_fn,
            timeout_seconds=max(1, int(remaining)),
            _request_timeout=remaining + 5,
            **list_kwargs,
        )
        for event in stream:
            obj = event["object"]
            name = _name(obj)
            if event["type"] == "DELETED":
                objects.pop(name, None)
            elif event["type"] in ("ADDED", "MODIFIED"):
                objects[name] = obj
            result = done(objects)
            last = describe(objects)
            if result:
                w.stop()
                return result
            if clock() >= deadline:
                w.stop()
                break
        return None

    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception(_transient) | tenacity.retry_if_result(lambda r: not r),
        stop=lambda state: clock() >= deadline,
        wait=tenacity.wait_exponential(multiplier=0.2, max=2),
        sleep=sleep,
        reraise=True,
    )
    try:
        return retrying(one_stream)
    except tenacity.RetryError:
        raise WaitTimeout(expected, last, timeout) from None
    except Exception as e:
        if _transient(e):
            raise WaitTimeout(expected, f"{last} ({type(e).__name__})", timeout) from None
        raise


def _transient(e: BaseException) -> bool:
    if isinstance(e, client.ApiException):
        return e.status in _RETRY_STATUS
    return isinstance(e, _TRANSIENT)


def _name(obj: Any) -> str:
    meta = obj.metadata if hasattr(obj, "metadata") else obj.get("metadata", {})
    return meta.name if hasattr(meta, "name") else meta.get("name", "?")


# --- pods ----------------------------------------------------------------------------------


def pod_is_ready(pod: client.V1Pod) -> bool:
    conditions = (pod.status.conditions if pod.status else None) or []
    return pod.metadata.deletion_timestamp is None and any(c.type == "Ready" and c.status == "True" for c in conditions)


def describe_pods(pods: Iterable[client.V1Pod]) -> str:
    parts = []
    for pod in sorted(pods, key=lambda p: p.metadata.name):
        state = "Ready" if pod_is_ready(pod) else (pod.status.phase if pod.status else "?")
        reasons = [
            s.state.waiting.reason
            for s in ((pod.status.container_statuses or []) if pod.status else [])
            if s.state and s.state.waiting and s.state.waiting.reason
        ]
        parts.append(f"{pod.metadata.name}: {state}" + (f" ({', '.join(reasons)})" if reasons else ""))
    return ", ".join(parts) or "no pods"


def pods_ready(
    core: client.CoreV1Api,
    namespace: str,
    selector: str,
    count: int,
    timeout: float = DEFAULT_TIMEOUT,
    *,
    field_selector: str | None = None,
    **seams: Any,
) -> list[client.V1Pod]:
    """At least `count` Ready pods matching the label selector; returns the ready pods."""

    def done(pods: dict[str, client.V1Pod]) -> list[client.V1Pod]:
        ready = [p for p in pods.values() if pod_is_ready(p)]
        return ready if len(ready) >= count else []

    extra = {"field_selector": field_selector} if field_selector else {}
    what = selector or field_selector or "any"
    return watch_until(
        core.list_namespaced_pod,
        done,
        f"{count} ready pod(s) matching {what} in {namespace}",
        lambda pods: describe_pods(pods.values()),
        timeout,
        namespace=namespace,
        label_selector=selector,
        **extra,
        **seams,
    )


def pod_ready(
    core: client.CoreV1Api, namespace: str, name: str, timeout: float = DEFAULT_TIMEOUT, **seams: Any
) -> client.V1Pod:
    return pods_ready(core, namespace, "", 1, timeout, field_selector=f"metadata.name={name}", **seams)[0]


def pod_phase(
    core: client.CoreV1Api,
    namespace: str,
    name: str,
    phases: str | Iterable[str],
    timeout: float = DEFAULT_TIMEOUT,
    **seams: Any,
) -> client.V1Pod:
    """Pod `name` in one of `phases` (e.g. "Succeeded", or ("Succeeded", "Failed"))."""
    wanted = {phases} if isinstance(phases, str) else set(phases)

    def done(pods: dict[str, client.V1Pod]) -> client.V1Pod | None:
        pod = pods.get(name)
        return pod if pod is not None and pod.status and pod.status.phase in wanted else None

    return watch_until(
        core.list_namespaced_pod,
        done,
        f"pod {namespace}/{name} in phase {'/'.join(sorted(wanted))}",
        lambda pods: describe_pods(pods.values()),
        timeout,
        namespace=namespace,
        field_selector=f"metadata.name={name}",
        **seams,
    )


# --- workloads, volumes, events, nodes -------------------------------------------------------


def deployment_available(
    apps: client.AppsV1Api, namespace: str, name: str, timeout: float = DEFAULT_TIMEOUT, **seams: Any
) -> client.V1Deployment:
    """All desired replicas updated and available, for the latest generation."""

    def done(objs: dict[str, client.V1Deployment]) -> client.V1Deployment | None:
        d = objs.get(name)
        if d is None or d.status is None:
            return None
        want = d.spec.replicas if d.spec.replicas is not None else 1
        s = d.status
        current = (s.observed_generation or 0) >= (d.metadata.generation or 0)
        ok = current and (s.updated_replicas or 0) == want and (s.available_replicas or 0) == want
        return d if ok and (s.replicas or 0) == want else None

    def describe(objs: dict[str, client.V1Deployment]) -> str:
        d = objs.get(name)
        if d is None or d.status is None:
            return "no such deployment"
        s = d.status
        return (
            f"replicas={s.replicas or 0} updated={s.updated_replicas or 0} "
            f"available={s.available_replicas or 0} of {d.spec.replicas}"
        )

    return watch_until(
        apps.list_namespaced_deployment,
        done,
        f"deployment {namespace}/{name} available",
        describe,
        timeout,
        namespace=namespace,
        field_selector=f"metadata.name={name}",
        **seams,
    )


def pvc_phase(
    core: client.CoreV1Api,
    namespace: str,
    name: str,
    phase: str,
    timeout: float = DEFAULT_TIMEOUT,
    **seams: Any,
) -> client.V1PersistentVolumeClaim:
    return watch_until(
        core.list_namespaced_persistent_volume_claim,
        lambda objs: _in_phase(objs.get(name), phase),
        f"PVC {namespace}/{name} {phase}",
        lambda objs: _phase_of(objs.get(name)),
        timeout,
        namespace=namespace,
        field_selector=f"metadata.name={name}",
        **seams,
    )


def pv_phase(
    core: client.CoreV1Api, name: str, phase: str, timeout: float = DEFAULT_TIMEOUT, **seams: Any
) -> client.V1PersistentVolume:
    return watch_until(
        core.list_persistent_volume,
        lambda objs: _in_phase(objs.get(name), phase),
        f"PV {name} {phase}",
        lambda objs: _phase_of(objs.get(name)),
        timeout,
        field_selector=f"metadata.name={name}",
        **seams,
    )


def _in_phase(obj: Any, phase: str) -> Any:
    return obj if obj is not None and obj.status and obj.status.phase == phase else None


def _phase_of(obj: Any) -> str:
    if obj is None:
        return "not found"
    return f"phase {obj.status.phase if obj.status else None}"


def event_seen(
    core: client.CoreV1Api,
    namespace: str,
    involved_name: str,
    reason: str,
    timeout: float = DEFAULT_TIMEOUT,
    **seams: Any,
) -> client.CoreV1Event:
    """An event with `reason` about the object named `involved_name` (e.g. FailedMount)."""

    def done(events: dict[str, client.CoreV1Event]) -> client.CoreV1Event | None:
        return next((e for e in events.values() if e.reason == reason), None)

    def describe(events: dict[str, client.CoreV1Event]) -> str:
        reasons = sorted({e.reason for e in events.values() if e.reason})
        return f"events {', '.join(reasons)}" if reasons else "no events"

    return watch_until(
        core.list_namespaced_event,
        done,
        f"event {reason} for {namespace}/{involved_name}",
        describe,
        timeout,
        namespace=namespace,
        field_selector=f"involvedObject.name={involved_name}",
        **seams,
    )


def node_is_ready(node: client.V1Node) -> bool:
    conditions = (node.status.conditions if node.status else None) or []
    return any(c.type == "Ready" and c.status == "True" for c in conditions)


def nodes_ready(
    core: client.CoreV1Api, timeout: float = 300.0, *, count: int | None = None, **seams: Any
) -> list[client.V1Node]:
    """Every node Ready (and at least `count` of them, when given)."""

    def done(nodes: dict[str, client.V1Node]) -> list[client.V1Node]:
        enough = len(nodes) >= (count or 1)
        ready = enough and all(node_is_ready(n) for n in nodes.values())
        return list(nodes.values()) if ready else []

    def describe(nodes: dict[str, client.V1Node]) -> str:
        return (
            ", ".join(f"{n}: {'Ready' if node_is_ready(v) else 'NotReady'}" for n, v in sorted(nodes.items()))
            or "no nodes"
        )

    return watch_until(core.list_node, done, "all nodes Ready", describe, timeout, **seams)


def daemonsets_ready(apps: client.AppsV1Api, namespace: str, timeout: float = DEFAULT_TIMEOUT, **seams: Any) -> None:
    """Every DaemonSet in `namespace` rolled out: in kube-system, kube-proxy (and kindnet on
    kind's own images): Services and the pod network work only from then on. Listed, not
    watched: a watch's first ADDED is not yet all of them."""

    def describe(sets: list[Any]) -> str:
        return (
            ", ".join(
                f"{d.metadata.name}: {(d.status.number_ready or 0) if d.status else 0}/"
                f"{(d.status.desired_number_scheduled or 0) if d.status else 0} ready"
                for d in sets
            )
            or "no DaemonSets"
        )

    until_seen(
        lambda: apps.list_namespaced_daemon_set(namespace, _request_timeout=15).items,
        lambda sets: all(daemonset_rolled_out(d) for d in sets),
        f"every DaemonSet in {namespace} Ready on its nodes",
        timeout,
        describe=describe,
        **seams,
    )


def gone(
    read_fn: Callable[[], Any],
    description: str,
    timeout: float = DEFAULT_TIMEOUT,
    **seams: Any,
) -> None:
    """Until read_fn raises 404, e.g. gone(lambda: core.read_namespace(ns), f"namespace {ns}")."""

    def absent() -> bool:
        try:
            obj = read_fn()
        except client.ApiException as e:
            if e.status == 404:
                return True
            raise
        raise _StillThere(obj)

    until(absent, f"{description} to be gone", timeout, describe=str, **seams)


class _StillThere(Exception):
    def __init__(self, obj: Any) -> None:
        meta = getattr(obj, "metadata", None)
        deleting = getattr(meta, "deletion_timestamp", None)
        super().__init__("still there" + (" (terminating)" if deleting else ""))
