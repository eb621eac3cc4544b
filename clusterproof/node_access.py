"""Node access: one way to run a command on a cluster's nodes, chosen per cluster.

Every node check goes through `Cluster.node_exec(node, *argv, input=, check=, timeout=)`, which
answers like `subprocess.run` (a CompletedProcess; CalledProcessError with check=True;
TimeoutExpired). Behind it, one of three mechanisms (`--node-access`):

- `docker`: kind nodes are docker containers on this host: `docker exec`.
- `pod`: a privileged "host exec" pod on the node, as upstream's e2e hostexec and
  `kubectl debug node/...` do (hostNetwork, hostPID, privileged, the catalogue's agnhost), and
  each command run through the API's exec as `nsenter --target 1 --mount --uts --ipc --net --pid
  -- argv`: in the host's namespaces, with the host's own binaries. Pods are made on first use,
  one per node, in a namespace of the run's own; the tracker removes them.
- `none`: no node commands; `require_node_exec()` (and the `needs_node_exec` marker) skip with
  the reason.

`auto` (the default) picks docker for kind nodes running on this host (providerID
`kind://docker/...`), else the pod only with --allow-privileged (a privileged pod is never made on
someone's cluster unasked), else none. Suites never know which: they call `cluster.node_exec` and
skip where `require_node_exec` says so. A node one mechanism cannot reach while others can (a
cordoned node, a pod that never starts there) raises NodeExecUnavailable naming the node; the
plugin (`UnreachableNodeSkips`) turns that into a skip of the test that asked, so the checks on
other nodes still run.

Each command's cost is measured (logged at DEBUG by `clusterproof.node_access`, and summed per
cluster into the run's timings: `cluster <name>: node commands via <mechanism> (n, median s)`);
each host exec pod's start is a timings row of its own.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import shlex
import statistics
import subprocess
import time
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import pytest
from kubernetes import client

from clusterproof import wait
from clusterproof.api_answers import ApiAnswer, answer_to
from clusterproof.errors import ExecTimeout, NodeExecUnavailable
from clusterproof.probe import ExecResult, exec_in_pod
from clusterproof.run import hash_of, short_id, slug

if TYPE_CHECKING:
    from clusterproof.cluster import Cluster
    from clusterproof.images import ImageCatalogue
    from clusterproof.options import Settings
    from clusterproof.run import RunContext
    from clusterproof.timings import Stopwatch
    from clusterproof.tracker import ResourceTracker

log = logging.getLogger("clusterproof.node_access")

MODES = ("auto", "docker", "pod", "none")
NOT_CHOSEN = "no shell on the nodes: node access not set up for this cluster"
NO_PRIVILEGED = (
    "no shell on the nodes: they are not kind containers on this host, and clusterproof makes no privileged "
    "pod unasked (--allow-privileged lets it reach each node through a privileged host exec pod)"
)
NOT_KIND = "--node-access docker: the nodes are not kind containers running on this host (providerID kind://docker/...)"
NONE_CHOSEN = "no shell on the nodes: --node-access none"
# what the pod runs every command through: the host's mount, UTS, IPC, network and PID namespaces
NSENTER = ("nsenter", "--target", "1", "--mount", "--uts", "--ipc", "--net", "--pid", "--")
HOSTEXEC_APP = "clusterproof-hostexec"
POD_SECURITY_LEVEL = "privileged"
POD_START_TIMEOUT = 120.0
REQUEST_TIMEOUT = 15  # the cleanup also runs from a signal handler: never wait on a hung API for long
REASON_LIMIT = 400


# --- the interface -----------------------------------------------------------------------


class NodeExec(Protocol):
    """A mechanism: runs argv on a node (answers like subprocess.run) and says whether it can
    reach nodes at all."""

    mechanism: str  # "docker", "pod", "none"

    def unavailable(self) -> str | None:
        """Why no node can be reached (a skip reason naming what is missing), or None."""

    def __call__(
        self, node: str, argv: Sequence[str], *, input: str | None, check: bool, timeout: float
    ) -> subprocess.CompletedProcess[str]: ...


class DockerNodeExec:
    """kind nodes are docker containers named like the nodes."""

    mechanism = "docker"

    def __init__(self, docker: str = "docker") -> None:
        self.docker = docker

    def unavailable(self) -> str | None:
        return None

    def __call__(
        self, node: str, argv: Sequence[str], *, input: str | None, check: bool, timeout: float
    ) -> subprocess.CompletedProcess[str]:
        flags = ["-i"] if input is not None else []
        return subprocess.run(
            [self.docker, "exec", *flags, node, *argv],
            input=input,
            capture_output=True,
            text=True,
            check=check,
            timeout=timeout,
        )


def kind_node_exec(api: client.ApiClient, docker: str = "docker") -> DockerNodeExec | None:
    """Docker exec for a cluster whose nodes are kind containers running on this host
    (providerID kind://docker/<cluster>/<node>), so a kept kind cluster gets node checks too."""
    nodes = client.CoreV1Api(api).list_node().items
    if not nodes or not all((n.spec.provider_id or "").startswith("kind://docker/") for n in nodes):
        return None
    try:
        found = subprocess.run(
            [docker, "inspect", "-f", "{{.State.Running}}", *(n.metadata.name for n in nodes)],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if found.returncode != 0 or set(found.stdout.split()) != {"true"}:
        return None
    return DockerNodeExec(docker)


class NoNodeExec:
    mechanism = "none"

    def __init__(self, reason: str = NOT_CHOSEN) -> None:
        self.reason = reason

    def unavailable(self) -> str | None:
        return self.reason

    def __call__(
        self, node: str, argv: Sequence[str], *, input: str | None, check: bool, timeout: float
    ) -> subprocess.CompletedProcess[str]:
        raise NodeExecUnavailable(self.reason)


# --- the host exec pod ---------------------------------------------------------------------


def nsenter_argv(argv: Sequence[str]) -> list[str]:
    """argv as the host exec pod runs it: in the namespaces of the host's PID 1."""
    return [*NSENTER, *argv]


def with_input(command: Sequence[str], size: int) -> list[str]:
    """`command` fed exactly `size` bytes of the exec's stdin, then end of file: an API server
    older than the v5 stream protocol (Kubernetes 1.30) cannot close an exec's stdin, so the
    container's `head -c` reads the input and closes the pipe itself."""
    return ["sh", "-c", 'head -c "$0" | "$@"', str(size), *command]


def hostexec_namespace(run_id: str, token: str | None = None) -> str:
    """`cp-<short run id>-hostexec-<random>`: new for every cluster handed out (a module's, with
    the previous module's namespace perhaps still terminating; an xdist worker's)."""
    return f"cp-{short_id(run_id)}-hostexec-{token or secrets.token_hex(3)}"


def hostexec_pod_name(node: str) -> str:
    return f"hostexec-{slug(node, 40) or 'node'}-{hash_of(node, 6)}"


def hostexec_pod(name: str, namespace: str, node: str, image: str, labels: Mapping[str, str]) -> dict[str, Any]:
    """The host exec pod for `node`, as upstream's hostexec: privileged, the host's network and PID
    namespaces (nsenter enters the rest through PID 1), bound to the node by nodeName (no
    scheduler: the kubelet admits it). The kubelet checks only NoExecute taints of a pod bound so;
    the pod tolerates every NoSchedule taint (control-plane and dedicated nodes are reached) and no
    NoExecute one (a node being drained of its pods is left alone: its checks skip). No API token,
    no resource requests (a full node still admits it), no grace period."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {**labels, "app.kubernetes.io/name": HOSTEXEC_APP},
        },
        "spec": {
            "nodeName": node,
            "hostNetwork": True,
            "hostPID": True,
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "terminationGracePeriodSeconds": 0,
            "tolerations": [{"operator": "Exists", "effect": "NoSchedule"}],
            "containers": [
                {
                    "name": "hostexec",
                    "image": image,
                    "args": ["pause"],
                    "securityContext": {"privileged": True},
                }
            ],
        },
    }


def why_unreachable(node: client.V1Node) -> str | None:
    """What keeps a host exec pod off `node`, read from the node itself, or None."""
    name = node.metadata.name
    system = (node.metadata.labels or {}).get("kubernetes.io/os", "linux")
    if system != "linux":
        return f"node {name} runs {system}: the host exec pod (nsenter) is for Linux nodes"
    if node.spec and node.spec.unschedulable:
        return f"node {name} is cordoned: no host exec pod is placed on it"
    untolerated = [t for t in (node.spec.taints if node.spec else None) or [] if t.effect == "NoExecute"]
    if untolerated:
        listed = ", ".join(f"{t.key}{'=' + t.value if t.value else ''}:NoExecute" for t in untolerated)
        return f"node {name} has taint {listed}, which the host exec pod does not tolerate"
    ready = next((c for c in (node.status.conditions if node.status else None) or [] if c.type == "Ready"), None)
    if ready is not None and ready.status != "True":
        return f"node {name} is not Ready ({ready.reason or ready.status}): no host exec pod can start there"
    return None


def one_line(text: str, limit: int = REASON_LIMIT) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def refusal(what: str, answer: ApiAnswer) -> str:
    """A skip reason naming the refusal in the server's words (Pod Security, a webhook, a policy)."""
    return one_line(f"node access through a privileged pod refused: {what}: {answer}")


Exec = Callable[..., ExecResult]


@dataclass
class HostExecPods:
    """The `pod` mechanism: one host exec pod per node, made when a command first needs that node
    and reused for the cluster's life (a module's tests, or the session's). Its cleanup (delete the
    pods and the namespace) is a tracker step of the cluster's scope, registered when this is made,
    before anything else of that scope: it runs after every later step, which may still run node
    commands. After it ran, no pod is made again."""

    cluster: Cluster
    tracker: ResourceTracker
    namespace: str
    image: str
    labels: Mapping[str, str]
    start_timeout: float = POD_START_TIMEOUT
    exec: Exec = exec_in_pod
    stopwatch: Stopwatch | None = None
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    mechanism: str = field(default="pod", init=False)
    _prepared: bool = field(default=False, init=False)
    _refused: str | None = field(default=None, init=False)
    _namespace_made: bool = field(default=False, init=False)
    _pods: dict[str, str] = field(default_factory=dict, init=False)  # node -> Ready pod
    _unreachable: dict[str, str] = field(default_factory=dict, init=False)  # node -> skip reason
    _closed: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        self.tracker.on_cleanup(
            self.cluster, f"delete host exec pods (namespace {self.namespace})", self.close, scope="cluster"
        )

    # -- the mechanism --

    def unavailable(self) -> str | None:
        """Made on first ask: the namespace, and the pod as admission would judge it (a dry run),
        so a refusal is one reason for every node check before any of them starts."""
        if self._closed:
            return f"host exec pods of namespace {self.namespace} already removed (the cluster's cleanup ran)"
        if not self._prepared:
            self._prepared = True
            try:
                self._refused = self._prepare()
            except client.ApiException as e:  # not allowed to list nodes, an API answering 5xx
                self._refused = refusal("preparing host exec pods", ApiAnswer.from_exception(e))
            if self._refused:
                log.warning("%s", self._refused)
        return self._refused

    def __call__(
        self, node: str, argv: Sequence[str], *, input: str | None, check: bool, timeout: float
    ) -> subprocess.CompletedProcess[str]:
        pod = self.pod_for(node)
        command = nsenter_argv(argv)
        data = None
        if input is not None:
            data = input.encode()
            command = with_input(command, len(data))
        try:
            done = self.exec(self.cluster.core, self.namespace, pod, command, stdin=data, timeout=timeout)
        except ExecTimeout:
            raise subprocess.TimeoutExpired(command, timeout) from None
        result = subprocess.CompletedProcess(command, done.rc, done.stdout, done.stderr)
        if check:
            result.check_returncode()
        return result

    def pod_for(self, node: str) -> str:
        """The Ready host exec pod on `node` (made now if there is none); NodeExecUnavailable
        naming the node when it cannot be there."""
        reason = self.unavailable()
        if reason:
            raise NodeExecUnavailable(reason)
        if node in self._pods:
            return self._pods[node]
        if node not in self._unreachable:
            try:
                self._pods[node] = self._start(node)
            except NodeExecUnavailable as e:
                self._unreachable[node] = str(e)
                log.warning("%s", e)
        if node in self._unreachable:
            raise NodeExecUnavailable(self._unreachable[node])
        return self._pods[node]

    # -- making --

    def _prepare(self) -> str | None:
        from clusterproof.namespaces import wait_usable

        labels = {
            **self.labels,
            "app.kubernetes.io/name": HOSTEXEC_APP,
            **{f"pod-security.kubernetes.io/{mode}": POD_SECURITY_LEVEL for mode in ("enforce", "warn", "audit")},
        }
        body = client.V1Namespace(metadata=client.V1ObjectMeta(name=self.namespace, labels=labels))
        made = answer_to(lambda: self.cluster.core.create_namespace(body))
        if not made.accepted:
            return refusal(f"namespace {self.namespace}", made)
        self._namespace_made = True
        try:
            wait_usable(self.cluster, self.namespace)
        except wait.WaitTimeout as e:
            return one_line(f"no shell on the nodes: host exec namespace {self.namespace}: {e}")
        nodes = self.cluster.core.list_node().items
        if not nodes:
            return "no shell on the nodes: the cluster lists no nodes"
        node = nodes[0].metadata.name
        probe = hostexec_pod(hostexec_pod_name(node), self.namespace, node, self.image, self.labels)
        judged = answer_to(lambda: self.cluster.core.create_namespaced_pod(self.namespace, probe, dry_run="All"))
        return None if judged.accepted else refusal(f"pod {self.namespace}/{probe['metadata']['name']}", judged)

    def _start(self, node: str) -> str:
        try:
            found = self.cluster.core.read_node(node)
        except client.ApiException as e:
            if e.status == 404:
                raise NodeExecUnavailable(f"node {node} not found: no host exec pod there") from None
            raise
        reason = why_unreachable(found)
        if reason:
            raise NodeExecUnavailable(reason)
        name = hostexec_pod_name(node)
        manifest = hostexec_pod(name, self.namespace, node, self.image, self.labels)
        wall, started = time.time(), self.clock()
        made = answer_to(lambda: self.cluster.core.create_namespaced_pod(self.namespace, manifest))
        if not made.accepted and made.status != 409:  # 409: this run's, from an earlier try
            raise NodeExecUnavailable(refusal(f"pod {self.namespace}/{name} on node {node}", made))
        try:
            wait.until_seen(
                lambda: self.cluster.core.read_namespaced_pod(name, self.namespace),
                wait.pod_is_ready,
                f"host exec pod {self.namespace}/{name} on node {node} Ready",
                self.start_timeout,
                describe=_describe,
                final=wait.never_ready,
                sleep=self.sleep,
                clock=self.clock,
            )
        except wait.WaitTimeout as e:
            self._delete_pod(name)
            raise NodeExecUnavailable(one_line(f"node {node}: no host exec pod: {e}")) from None
        seconds = self.clock() - started
        if self.stopwatch is not None:
            self.stopwatch.phases.append((f"cluster {self.cluster.name}: host exec pod on {node} Ready", seconds, wall))
        log.debug("node access: host exec pod %s/%s on node %s Ready in %.2fs", self.namespace, name, node, seconds)
        entered = self.exec(self.cluster.core, self.namespace, name, nsenter_argv(["true"]), timeout=30)
        if entered.rc != 0:
            self._delete_pod(name)
            raise NodeExecUnavailable(
                one_line(
                    f"node {node}: the host exec pod ({self.image}) cannot enter the host's namespaces "
                    f"(`{shlex.join(nsenter_argv(['true']))}` exited {entered.rc}: {entered.stderr.strip()})"
                )
            )
        return name

    def _delete_pod(self, name: str) -> None:
        with contextlib.suppress(Exception):  # the namespace's removal takes it anyway
            self.cluster.core.delete_namespaced_pod(
                name, self.namespace, grace_period_seconds=0, _request_timeout=REQUEST_TIMEOUT
            )

    # -- removing --

    def close(self) -> None:
        """Delete the pods (no grace: `pause` is PID 1 and ignores SIGTERM) and the namespace.
        Idempotent; nothing is made afterwards."""
        self._closed = True
        self._pods.clear()
        if not self._namespace_made:
            return
        self._namespace_made = False
        core = self.cluster.core
        core.delete_collection_namespaced_pod(
            self.namespace, grace_period_seconds=0, propagation_policy="Background", _request_timeout=REQUEST_TIMEOUT
        )
        core.delete_namespace(
            self.namespace,
            body=client.V1DeleteOptions(propagation_policy="Background"),
            _request_timeout=REQUEST_TIMEOUT,
        )


def _describe(pod: client.V1Pod) -> str:
    described = wait.describe_pods([pod])
    status = pod.status
    waiting = [c.message for c in (status.conditions if status else None) or [] if c.status != "True" and c.message]
    return described + (f": {waiting[0]}" if waiting else "")


# --- timing ----------------------------------------------------------------------------------


@dataclass
class TimedNodeExec:
    """A mechanism whose every command is timed: logged at DEBUG, kept for the run's timings."""

    inner: NodeExec
    seconds: list[float] = field(default_factory=list)
    clock: Callable[[], float] = time.monotonic

    @property
    def mechanism(self) -> str:
        return self.inner.mechanism

    def unavailable(self) -> str | None:
        return self.inner.unavailable()

    def __call__(
        self, node: str, argv: Sequence[str], *, input: str | None, check: bool, timeout: float
    ) -> subprocess.CompletedProcess[str]:
        started = self.clock()
        outcome = "error"
        try:
            done = self.inner(node, argv, input=input, check=False, timeout=timeout)
            outcome = f"rc {done.returncode}"
        finally:
            seconds = self.clock() - started
            if outcome != "error":
                self.seconds.append(seconds)
            log.debug(
                "node exec via %s on %s: %s -> %s in %.3fs",
                self.mechanism, node, one_line(shlex.join(argv), 120), outcome, seconds,
            )
        if check:
            done.check_returncode()
        return done

    def summary(self) -> str | None:
        """`n commands, median s, max s` or None when none ran."""
        if not self.seconds:
            return None
        return (
            f"{len(self.seconds)} commands, median {statistics.median(self.seconds):.3f}s, "
            f"max {max(self.seconds):.3f}s"
        )


# --- choosing --------------------------------------------------------------------------------


def choose(
    mode: str,
    cluster: Cluster,
    *,
    allow_privileged: bool,
    host_exec_pods: Callable[[], NodeExec],
    detect_kind: Callable[[client.ApiClient], NodeExec | None] = kind_node_exec,
) -> NodeExec:
    """The mechanism for `cluster` (see the module's docstring). The kind provider's clusters are
    kind containers here by construction; an existing cluster's nodes are looked at."""

    def docker() -> NodeExec | None:
        if cluster.provider == "kind":
            return DockerNodeExec()
        return detect_kind(cluster.api)

    if mode == "none":
        return NoNodeExec(NONE_CHOSEN)
    if mode == "docker":
        return docker() or NoNodeExec(NOT_KIND)
    if mode == "pod":
        return host_exec_pods()
    found = docker()
    if found is not None:
        return found
    return host_exec_pods() if allow_privileged else NoNodeExec(NO_PRIVILEGED)


@contextlib.contextmanager
def installed(
    cluster: Cluster,
    settings: Settings,
    *,
    tracker: ResourceTracker,
    run: RunContext,
    images: ImageCatalogue,
    note: Callable[[str], None],
    stopwatch: Stopwatch,
) -> Iterator[TimedNodeExec]:
    """Give `cluster` its node access for the time it is in use; then the commands' cost goes to
    the run's timings (the host exec pods themselves go with the tracker's cluster scope)."""
    from clusterproof.tracker import OWNER_LABEL

    def host_exec_pods() -> NodeExec:
        return HostExecPods(
            cluster,
            tracker,
            namespace=hostexec_namespace(run.run_id),
            image=images.ref("agnhost", offline=cluster.offline),
            labels={**run.labels, OWNER_LABEL: tracker.owner},
            stopwatch=stopwatch,
        )

    chosen = choose(
        settings.node_access, cluster, allow_privileged=settings.allow_privileged, host_exec_pods=host_exec_pods
    )
    timed = TimedNodeExec(chosen)
    cluster.use_node_exec(timed)
    note(f"node access on {cluster.name}: {describe(chosen)}")
    wall, started = time.time(), time.monotonic()
    try:
        yield timed
    finally:
        summary = timed.summary()
        if summary:
            stopwatch.phases.append(
                (f"cluster {cluster.name}: node commands via {chosen.mechanism} ({summary})", sum(timed.seconds), wall)
            )
            log.info("node access on %s via %s: %s (over %.0fs)", cluster.name, chosen.mechanism, summary,
                     time.monotonic() - started)


def describe(mechanism: NodeExec) -> str:
    if isinstance(mechanism, HostExecPods):
        return f"pod (a privileged host exec pod per node on first use, namespace {mechanism.namespace})"
    if mechanism.mechanism == "none":
        return f"none ({mechanism.unavailable()})"
    return mechanism.mechanism


# --- node checks that meet an unreachable node -------------------------------------------------


class UnreachableNodeSkips:
    """pytest plugin: a test (or its fixture) whose node command meets a node that cannot be reached
    (NodeExecUnavailable: no mechanism, a refusal, a cordoned node, a pod that never started) is
    skipped with that reason, so that node's checks skip and the others run. Also when a jig or a
    set-up step re-raised it as another error `from` it (its __cause__)."""

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> Iterator[None]:
        return (yield from _skipping_unreachable())

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Iterator[None]:
        return (yield from _skipping_unreachable())


def _skipping_unreachable() -> Generator[None, Any, Any]:
    """Both wrappers' body: the hook's result, or its error turned into a skip where it is (or was
    raised from) NodeExecUnavailable."""
    try:
        return (yield)
    except Exception as e:
        _skip_if_unreachable(e)
        raise


def _skip_if_unreachable(error: BaseException) -> None:
    seen: set[int] = set()
    cause: BaseException | None = error
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, NodeExecUnavailable):
            pytest.skip(str(cause))
        seen.add(id(cause))
        cause = cause.__cause__
