"""Pod verbs every topic needs: create a fixture's pod (and wait until it is Ready), read and
write files inside its containers, restart a container and wait for it, delete a pod and wait
until the kubelet is done with it."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client

from clusterproof import wait
from clusterproof.api_answers import unless_missing
from clusterproof.cluster import Cluster
from clusterproof.errors import NodeDown, SetupFailed, WaitGaveUp, WaitTimeout
from clusterproof.hostexec import why_unreachable
from clusterproof.manifests import Manifests
from clusterproof.pod_exec import ExecResult, exec_in_pod
from clusterproof.pod_states import IMAGE_REASONS

ABSENT_RC = 3  # exit code of PodFiles.read's script when the path does not exist
START_TIMEOUT = 120.0


# --- creating and starting -------------------------------------------------------------------


def create_pod(
    manifests: Manifests,
    source: str,
    *,
    values: Mapping[str, str] | None = None,
    name: str | None = None,
    node: str | None = None,
    edit: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Create the fixture's single Pod (renamed and pinned to `node` when asked); not waited for."""
    (doc,) = manifests.render(source, values)
    if name:
        doc["metadata"]["name"] = name
    if node:
        doc["spec"]["nodeName"] = node
    if edit:
        edit(doc)
    return manifests.apply_one(doc)


def start_pod(manifests: Manifests, source: str, **how: Any) -> client.V1Pod:
    """create_pod, then the pod once Ready (see `started`)."""
    created = create_pod(manifests, source, **how)
    return started(manifests.cluster, manifests.namespace, created["metadata"]["name"])


def started(
    cluster: Cluster, namespace: str, name: str, timeout: float = START_TIMEOUT, *, observes: Collection[str] = ()
) -> client.V1Pod:
    """The pod once Ready. A pod that can never be (ImagePullBackOff, ...) fails at once; a
    timeout names the pod's last FailedMount event. A pod that did not start for a reason most
    claims do not observe (never scheduled, its image cannot be pulled, no sandbox: the pod network
    is broken) is a set-up failure (SetupFailed: the test errors, "could not evaluate"), unless
    the claim observes that very step (`observes`: UNSCHEDULED, NO_IMAGE, NO_SANDBOX): then it is
    the claim's failure, as is anything else (a mount that fails, a container that crashes). A pod
    bound to a node that is down (NotReady, the node lifecycle controller's taints) never starts:
    the wait stops on it at once, a set-up failure naming the node and its condition."""

    def node_down() -> str | None:
        failure = start_failure(cluster, namespace, name)
        return str(failure) if failure is not None and failure.final else None

    try:
        return wait.pod_ready(
            cluster.core,
            namespace,
            name,
            timeout,
            never=node_down,
            hint=lambda _: f"last FailedMount of pod {name}: {failed_mounts(cluster, namespace, name).last}",
        )
    except WaitTimeout as e:
        judged = not_started(cluster, namespace, name, e, observes)
        if judged is None:
            raise
        raise judged from e


def not_started(
    cluster: Cluster, namespace: str, name: str, error: WaitTimeout, observes: Collection[str] = ()
) -> Exception | None:
    """What a wait for pod `name` that came to nothing means: SetupFailed when the pod did not
    start for a reason the claim does not observe (StartFailure), an AssertionError naming it when
    the claim observes it, else None (the wait's own error stands: the claim's failure)."""
    failure = start_failure(cluster, namespace, name)
    if failure is None:
        return None
    waited = error
    if isinstance(error, WaitGaveUp) and error.final == str(failure):  # said once is enough
        waited = f"gave up after {error.timeout:.0f}s waiting for {error.expected}"
    if failure.kind in observes:
        return AssertionError(f"{failure} ({waited})")
    return SetupFailed(f"start pod {name}", f"{failure} ({waited})")


UNSCHEDULED, NO_IMAGE, NO_SANDBOX, NODE_DOWN = "unscheduled", "no image", "no sandbox", "node down"
# the kubelet's events when a pod gets no sandbox: the runtime failed to make it (CNI ADD failed), or
# the node's pod network is not ready at all (no CNI config: the kubelet does not even try)
SANDBOX_EVENTS = ("FailedCreatePodSandBox", "NetworkNotReady")
NETWORK_NOT_READY = "NetworkReady=false"  # the kubelet's Ready condition when the runtime has no pod network


@dataclass(frozen=True)
class StartFailure:
    """Why a pod did not start, of a kind most claims do not observe: UNSCHEDULED, NODE_DOWN,
    NO_IMAGE or NO_SANDBOX (the claims that do observe it pass `observes=`)."""

    kind: str
    text: str
    final: bool = False  # the pod's node says so itself: waiting longer cannot help

    def __str__(self) -> str:
        return self.text


def start_failure(cluster: Cluster, namespace: str, name: str) -> StartFailure | None:
    """Why pod `name` did not start, when it is a StartFailure (read now), or None."""
    try:
        pod = read_pod(cluster, namespace, name)
        events = cluster.core.list_namespaced_event(namespace, field_selector=f"involvedObject.name={name}").items
        bound = pod.spec.node_name if pod.spec else None
        node = cluster.core.read_node(bound) if bound else None
        nodes = cluster.core.list_node().items if _held_off_by_taints(_scheduled(pod)) else []
    except client.ApiException:
        return None
    return start_failure_of(pod, events, node, nodes)


def start_failure_of(
    pod: client.V1Pod,
    events: list[client.CoreV1Event],
    node: client.V1Node | None = None,
    nodes: Collection[client.V1Node] = (),
) -> StartFailure | None:
    """`node`: the one the pod is bound to (a node that is down explains a pod that never started);
    `nodes`: every node, read when the scheduler keeps the pod off nodes that are down."""
    status = pod.status
    name = pod.metadata.name
    scheduled = _scheduled(pod)
    if scheduled is not None and scheduled.status == "False":
        said = f"pod {name} not scheduled: {scheduled.reason}: {scheduled.message}"
        no_network = _kept_off_for_want_of_a_pod_network(scheduled, nodes)
        if no_network:
            return StartFailure(NO_SANDBOX, f"{said}; no pod network: {'; '.join(no_network)}", final=True)
        return StartFailure(UNSCHEDULED, said)
    containers = (status.container_statuses or []) if status else []
    down = why_unreachable(node) if node is not None else None
    if isinstance(down, NodeDown) and not any(s.ready for s in containers):
        # NotReady because its runtime has no pod network (no CNI config): no sandbox, the pod network's fault
        kind = NO_SANDBOX if NETWORK_NOT_READY in down.cause else NODE_DOWN
        return StartFailure(kind, f"pod {name}: {down.cause}", final=True)
    for s in [*((status.init_container_statuses or []) if status else []), *containers]:
        waiting = s.state.waiting if s.state else None
        if waiting is not None and waiting.reason in IMAGE_REASONS:
            text = f"pod {name}: container {s.name} {waiting.reason}: {waiting.message or ''}".rstrip(": ")
            return StartFailure(NO_IMAGE, text)
    sandbox = [e for e in events if e.reason in SANDBOX_EVENTS]
    if sandbox and not any(s.state and s.state.running for s in containers):
        on = f" on node {pod.spec.node_name}" if pod.spec and pod.spec.node_name else ""
        last = sandbox[-1]
        return StartFailure(NO_SANDBOX, f"pod {name}{on}: no sandbox ({last.reason}: {last.message})")
    return None


def _scheduled(pod: client.V1Pod) -> client.V1PodCondition | None:
    conditions = (pod.status.conditions if pod.status else None) or []
    return next((c for c in conditions if c.type == "PodScheduled"), None)


def _held_off_by_taints(scheduled: client.V1PodCondition | None) -> bool:
    """The scheduler's answer names untolerated taints (a NotReady node's among them, maybe)."""
    return scheduled is not None and scheduled.status == "False" and "taint" in (scheduled.message or "")


def _kept_off_for_want_of_a_pod_network(
    scheduled: client.V1PodCondition, nodes: Collection[client.V1Node]
) -> list[str]:
    """The nodes NotReady for want of a pod network (NetworkReady=false: no CNI config), when they
    are why the pod has nowhere to go: the scheduler names taints, and every other node is tainted
    (the control plane's, an admin's). No node can give the pod a sandbox, and none will. Else []."""
    if not _held_off_by_taints(scheduled):
        return []
    no_network, elsewhere = [], False
    for node in nodes:
        down = why_unreachable(node)
        if isinstance(down, NodeDown) and NETWORK_NOT_READY in down.cause:
            no_network.append(down.cause)
        elif not any(t.effect in ("NoSchedule", "NoExecute") for t in (node.spec.taints if node.spec else None) or []):
            elsewhere = True
    return [] if elsewhere else no_network


@dataclass
class PodFiles:
    """Files seen from inside a pod's containers (exec with sh, which every image here has)."""

    cluster: Cluster
    namespace: str

    def exec(self, pod: str, argv: list[str], container: str | None = None) -> ExecResult:
        return exec_in_pod(self.cluster.core, self.namespace, pod, argv, container=container)

    def kill_main_process(self, pod: str, container: str) -> None:
        """Signal the container's PID 1 so that it exits (and the kubelet restarts it). The kill
        runs detached, a moment later: an exec that dies with its container reports nothing
        reliable (137, an empty status, a broken stream). The restart that follows is the proof."""
        result = self.exec(pod, ["sh", "-c", "(sleep 1; kill 1) >/dev/null 2>&1 &"], container)
        if result.rc != 0:
            raise AssertionError(f"could not signal PID 1 in {pod}/{container} (exit {result.rc}): {result.stderr}")

    def write(self, pod: str, path: str, text: str, container: str | None = None) -> None:
        result = self.exec(pod, ["sh", "-c", 'printf %s "$1" > "$2"', "sh", text, path], container)
        if result.rc != 0:
            raise AssertionError(f"could not write {path} in pod {pod} ({container or 'default'}): {result.stderr}")

    def read(self, pod: str, path: str, container: str | None = None) -> str | None:
        """The file's text, or None when it does not exist."""
        script = f'[ -e "$1" ] || exit {ABSENT_RC}; cat "$1"'
        result = self.exec(pod, ["sh", "-c", script, "sh", path], container)
        if result.rc == ABSENT_RC:
            return None
        if result.rc != 0:
            raise AssertionError(f"could not read {path} in pod {pod} ({container or 'default'}): {result.stderr}")
        return result.stdout

    def read_lines(self, pod: str, path: str, container: str, *, at_least: int, timeout: float = 30) -> list[str]:
        """The file's lines once it has `at_least` of them (a container counts as running before
        its first command has written anything); at the deadline, whatever lines it has."""
        return wait.last_seen(
            lambda: (self.read(pod, path, container) or "").splitlines(),
            lambda lines: len(lines) >= at_least,
            f"{at_least} lines in {path} of {pod}/{container}",
            timeout,
        )

    def listing(self, pod: str, directory: str, container: str | None = None) -> list[str]:
        result = self.exec(pod, ["ls", "-A", directory], container)
        if result.rc != 0:
            raise AssertionError(f"could not list {directory} in pod {pod}: {result.stderr}")
        return result.stdout.split()


def read_pod(cluster: Cluster, namespace: str, name: str) -> client.V1Pod:
    return cluster.core.read_namespaced_pod(name, namespace)


def container_status(pod: client.V1Pod, container: str) -> client.V1ContainerStatus:
    statuses = [
        *(pod.status.init_container_statuses or []),
        *(pod.status.container_statuses or []),
    ]
    found = next((s for s in statuses if s.name == container), None)
    if found is None:
        raise AssertionError(f"pod {pod.metadata.name} reports no status for container {container}")
    return found


def delete_pod(
    cluster: Cluster, namespace: str, name: str, timeout: float = 60, *, grace_seconds: int | None = None
) -> None:
    """Delete gracefully and wait until the API no longer has this pod (a controller may already
    have made a new one of the same name). Not grace 0 at once: that removes the object while the
    kubelet still runs the containers, and an exec into a new pod of the same name can reach the
    old one's (the kubelet finds pods for exec by name). A 1.20 kubelet sometimes leaves a stopped
    pod terminating for minutes: once none of its containers runs, it is force-deleted."""
    uid = read_pod(cluster, namespace, name).metadata.uid
    what = f"pod {namespace}/{name} (uid {uid})"

    def old_pod() -> client.V1Pod | None:
        pod = unless_missing(lambda: read_pod(cluster, namespace, name))
        return pod if pod is not None and pod.metadata.uid == uid else None

    def gone(seconds: float) -> None:
        wait.until(lambda: old_pod() is None, f"{what} to be gone", seconds, describe=lambda _: "still there")

    cluster.core.delete_namespaced_pod(name, namespace, grace_period_seconds=grace_seconds)
    try:
        gone(timeout / 2)
        return
    except wait.WaitTimeout:
        pass

    def stopped() -> bool:
        pod = old_pod()
        return pod is None or not any(s.state and s.state.running for s in pod.status.container_statuses or [])

    wait.until(stopped, f"{what}: no container running", timeout)
    force = client.V1DeleteOptions(grace_period_seconds=0, preconditions=client.V1Preconditions(uid=uid))
    try:
        cluster.core.delete_namespaced_pod(name, namespace, body=force)
    except client.ApiException as e:
        if e.status not in (404, 409):  # 409: the name now belongs to a new pod
            raise
    gone(timeout / 2)


def wait_restarted(
    cluster: Cluster, namespace: str, pod: str, container: str, more_than: int, timeout: float = 90
) -> client.V1Pod:
    """Until `container` has restarted more than `more_than` times and is running and ready again
    (a pod that never started for a reason no claim observes: SetupFailed, as in `started`)."""

    def restarted(current: client.V1Pod) -> client.V1Pod | None:
        status = container_status(current, container)
        running = status.state is not None and status.state.running is not None
        return current if status.restart_count > more_than and running and status.ready else None

    def describe(current: client.V1Pod) -> str:
        status = container_status(current, container)
        return f"restartCount {status.restart_count}, state {status.state.to_dict() if status.state else None}"

    try:
        return wait.until_seen(
            lambda: read_pod(cluster, namespace, pod),
            restarted,
            f"container {container} of pod {namespace}/{pod} restarted (restartCount > {more_than}) and ready",
            timeout,
            describe=describe,
        )
    except WaitTimeout as e:
        judged = not_started(cluster, namespace, pod, e)  # never scheduled, no image: see started()
        if judged is None:
            raise
        raise judged from e


# --- what the kubelet said ---------------------------------------------------------------------


@dataclass
class MountFailures:
    messages: list[str] = field(default_factory=list)

    @property
    def last(self) -> str:
        return self.messages[-1] if self.messages else "no FailedMount event"


def failed_mounts(cluster: Cluster, namespace: str, pod: str) -> MountFailures:
    events = cluster.core.list_namespaced_event(namespace, field_selector=f"involvedObject.name={pod}").items
    events = sorted(
        (e for e in events if e.reason == "FailedMount"),
        key=lambda e: e.last_timestamp or e.event_time or e.metadata.creation_timestamp,
    )
    return MountFailures([e.message for e in events])
