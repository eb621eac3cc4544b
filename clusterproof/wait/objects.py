"""Waits on Kubernetes objects: pods Ready or in a phase, a controller's FailedCreate, a Deployment
rolled out, PVC/PV phases, nodes and DaemonSets ready, objects gone. Each says what it expected and
the last state seen; what a state means is clusterproof.pod_states'.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from kubernetes import client

from clusterproof import pod_states
from clusterproof.api_answers import unless_missing
from clusterproof.errors import WaitGaveUp, WaitTimeout
from clusterproof.wait.engine import DEFAULT_TIMEOUT, Clock, until_seen, watch_until

# --- pods ----------------------------------------------------------------------------------


def pods_ready(
    core: client.CoreV1Api,
    namespace: str,
    selector: str,
    count: int,
    timeout: float = DEFAULT_TIMEOUT,
    *,
    field_selector: str | None = None,
    never: Callable[[], str | None] | None = None,
    **seams: Any,
) -> list[client.V1Pod]:
    """At least `count` Ready pods matching the label selector; returns the ready pods. Gives up
    at once when pods that can never be Ready (`never_ready`) leave fewer than `count` that may,
    and when `never()` names a cause (their controller refuses to create them: `failed_create`)."""

    def done(pods: dict[str, client.V1Pod]) -> list[client.V1Pod]:
        ready = [p for p in pods.values() if pod_states.pod_is_ready(p)]
        return ready if len(ready) >= count else []

    def final(pods: dict[str, client.V1Pod]) -> str | None:
        hopeless = [reason for p in pods.values() if (reason := pod_states.never_ready(p))]
        return "; ".join(hopeless) if hopeless and len(pods) - len(hopeless) < count else None

    extra: dict[str, Any] = {"field_selector": field_selector} if field_selector else {}
    if never is not None:
        extra["never"] = never
    what = selector or field_selector or "any"
    expected = f"{count} ready pod(s) matching {what} in {namespace}"
    return _watch_pods(core, namespace, done, final, expected, timeout, label_selector=selector, **extra, **seams)


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
    """Pod `name` in one of `phases` (e.g. "Succeeded", or ("Succeeded", "Failed")). Gives up at
    once on a terminal phase not wanted, or a container stuck in a final reason."""
    wanted = {phases} if isinstance(phases, str) else set(phases)

    def done(pods: dict[str, client.V1Pod]) -> client.V1Pod | None:
        pod = pods.get(name)
        return pod if pod is not None and pod.status and pod.status.phase in wanted else None

    def final(pods: dict[str, client.V1Pod]) -> str | None:
        pod = pods.get(name)
        if pod is None:
            return None
        phase = pod.status.phase if pod.status else None
        if phase in pod_states.TERMINAL_PHASES:
            return f"pod {name}: {phase}"
        stuck = pod_states.stuck_container(pod)
        return f"pod {name}: {stuck}" if stuck else None

    expected = f"pod {namespace}/{name} in phase {'/'.join(sorted(wanted))}"
    return _watch_pods(core, namespace, done, final, expected, timeout, field_selector=f"metadata.name={name}", **seams)


def _watch_pods(
    core: client.CoreV1Api,
    namespace: str,
    done: Callable[[dict[str, client.V1Pod]], Any],
    final: Callable[[dict[str, client.V1Pod]], str | None],
    expected: str,
    timeout: float,
    **kwargs: Any,
) -> Any:
    def describe(pods: dict[str, client.V1Pod]) -> str:
        return pod_states.describe_pods(pods.values())

    return watch_until(
        core.list_namespaced_pod, done, expected, describe, timeout, final=final, namespace=namespace, **kwargs
    )


def failed_create(
    core: client.CoreV1Api, namespace: str, kind: str | None = None, name: str | None = None
) -> Callable[[], str | None]:
    """For a wait on a controller's pods (`never=`): the controller's refusal to create them, as
    its FailedCreate event says, when an admission plugin forbade it (Pod Security, a quota, a
    webhook: "... is forbidden: ..."): a final answer, named. `kind`/`name`: the controller
    (a Deployment's name also stands for its ReplicaSets, `<name>-<hash>`); None: any in the
    namespace."""

    def refused() -> str | None:
        events = core.list_namespaced_event(namespace, field_selector="reason=FailedCreate", _request_timeout=15).items
        for event in sorted(events, key=lambda e: e.count or 1, reverse=True):
            owner = event.involved_object
            if kind and not _made_by(owner.kind, owner.name, kind, name):
                continue
            if "forbidden" in (event.message or ""):
                return f"{owner.kind} {owner.name}: FailedCreate: {event.message}"
        return None

    return refused


def _made_by(owner_kind: str, owner_name: str, kind: str, name: str | None) -> bool:
    if kind == "Deployment":  # its pods are its ReplicaSets' (<name>-<pod template hash>)
        return owner_kind == "ReplicaSet" and (name is None or owner_name.startswith(f"{name}-"))
    return owner_kind == kind and (name is None or owner_name == name)


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
    """Claim `name` in `phase`; gives up at once when it is Lost (its PV is gone)."""
    return _phase_wait(
        core.list_namespaced_persistent_volume_claim,
        f"PVC {namespace}/{name}",
        name,
        (phase,),
        timeout,
        namespace=namespace,
        **seams,
    )


def pv_phase(
    core: client.CoreV1Api, name: str, phases: str | tuple[str, ...], timeout: float = DEFAULT_TIMEOUT, **seams: Any
) -> client.V1PersistentVolume:
    """PV `name` in `phases` (one, or any of several); gives up at once when it is Failed (a
    failed reclaim: only an admin brings it back) unless Failed is wanted."""
    wanted = (phases,) if isinstance(phases, str) else phases
    return _phase_wait(core.list_persistent_volume, f"PV {name}", name, wanted, timeout, **seams)


def _phase_wait(
    list_fn: Callable[..., Any], what: str, name: str, phases: tuple[str, ...], timeout: float, **kwargs: Any
) -> Any:
    def phase(objs: dict[str, Any]) -> str | None:
        obj = objs.get(name)
        return obj.status.phase if obj is not None and obj.status else None

    def final(objs: dict[str, Any]) -> str | None:
        if phase(objs) not in pod_states.FINAL_PHASES:
            return None
        message = objs[name].status.message
        return f"{what} {phase(objs)}" + (f" ({message})" if message else "")

    return watch_until(
        list_fn,
        lambda objs: objs[name] if phase(objs) in phases else None,
        f"{what} {' or '.join(phases)}",
        lambda objs: f"phase {phase(objs)}" if name in objs else "not found",
        timeout,
        final=final,
        field_selector=f"metadata.name={name}",
        **kwargs,
    )


def nodes_ready(
    core: client.CoreV1Api,
    timeout: float = 300.0,
    *,
    count: int | None = None,
    give_up: Callable[[], str | None] | None = None,
    check_every: float = 15.0,
    clock: Clock = time.monotonic,
    **seams: Any,
) -> list[client.V1Node]:
    """Every node Ready (and at least `count` of them, when given). `give_up()`, asked every
    `check_every` seconds while they are not, may name why they never will be (a NotReady node
    posts no status changes a watch would see): the wait then ends at once (WaitGaveUp)."""

    def done(nodes: dict[str, client.V1Node]) -> list[client.V1Node]:
        enough = len(nodes) >= (count or 1)
        ready = enough and all(pod_states.node_is_ready(n) for n in nodes.values())
        return list(nodes.values()) if ready else []

    def describe(nodes: dict[str, client.V1Node]) -> str:
        return (
            ", ".join(
                f"{n}: {'Ready' if pod_states.node_is_ready(v) else 'NotReady'}" for n, v in sorted(nodes.items())
            )
            or "no nodes"
        )

    if give_up is None:
        return watch_until(core.list_node, done, "all nodes Ready", describe, timeout, clock=clock, **seams)
    started = clock()
    while True:
        left = timeout - (clock() - started)
        try:
            return watch_until(
                core.list_node, done, "all nodes Ready", describe, min(left, check_every), clock=clock, **seams
            )
        except WaitGaveUp:
            raise
        except WaitTimeout as e:
            cause = give_up()
            if cause:
                raise WaitGaveUp("all nodes Ready", cause, clock() - started, last_seen=e.last_seen) from None
            if left <= check_every:
                raise WaitTimeout("all nodes Ready", e.last_seen, timeout) from None


def daemonsets_ready(
    apps: client.AppsV1Api,
    namespace: str,
    timeout: float = DEFAULT_TIMEOUT,
    *,
    grace: float = 30.0,
    clock: Clock = time.monotonic,
    **seams: Any,
) -> None:
    """Every DaemonSet in `namespace` rolled out: in kube-system, kube-proxy (and kindnet on
    kind's own images): Services and the pod network work only from then on. Listed, not
    watched: a watch's first ADDED is not yet all of them. Gives up once `grace` seconds have
    passed without the DaemonSet controller having processed any of them (it is not running)."""
    started = clock()

    def describe(sets: list[Any]) -> str:
        return (
            ", ".join(
                f"{d.metadata.name}: {(d.status.number_ready or 0) if d.status else 0}/"
                f"{(d.status.desired_number_scheduled or 0) if d.status else 0} ready"
                for d in sets
            )
            or "no DaemonSets"
        )

    def final(sets: list[Any]) -> str | None:
        unprocessed = not any(d.status is not None and d.status.observed_generation for d in sets)
        if sets and unprocessed and clock() - started >= grace:
            names = ", ".join(sorted(d.metadata.name for d in sets))
            return f"no DaemonSet has been processed ({names}): is the DaemonSet controller running?"
        return None

    until_seen(
        lambda: apps.list_namespaced_daemon_set(namespace, _request_timeout=15).items,
        lambda sets: all(pod_states.daemonset_rolled_out(d) for d in sets),
        f"every DaemonSet in {namespace} Ready on its nodes",
        timeout,
        describe=describe,
        final=final,
        clock=clock,
        **seams,
    )


def gone(
    read_fn: Callable[[], Any],
    description: str,
    timeout: float = DEFAULT_TIMEOUT,
    **seams: Any,
) -> None:
    """Until read_fn raises 404, e.g. gone(lambda: core.read_namespace(ns), f"namespace {ns}")."""

    def describe(obj: Any) -> str:
        deleting = getattr(getattr(obj, "metadata", None), "deletion_timestamp", None)
        return "still there" + (" (terminating)" if deleting else "")

    until_seen(
        lambda: unless_missing(read_fn),
        lambda obj: obj is None,
        f"{description} to be gone",
        timeout,
        describe=describe,
        **seams,
    )
