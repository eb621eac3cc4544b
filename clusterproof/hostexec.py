"""Node access through host exec pods, and the choice of mechanism for a cluster.

- `pod`: a privileged "host exec" pod on the node, as upstream's e2e hostexec and
  `kubectl debug node/...` do (hostNetwork, hostPID, privileged, the catalogue's agnhost), and
  each command run through the API's exec as `nsenter --target 1 --mount --uts --ipc --net --pid
  -- argv`: in the host's namespaces, with the host's own binaries. Pods are made on first use,
  one per node, in a namespace of the run's own; the tracker removes them.

`choose`: `auto` (the default) picks docker for kind nodes proven to be containers on this host
(clusterproof.node_exec.kind_node_exec: the node's bootID is this host's, its InternalIP the
container's address; a providerID `kind://docker/...` and a container of the node's name are not
enough), else the pod only with --allow-privileged (a privileged pod is never made on someone's
cluster unasked), else none. Suites never know which: they call `cluster.node_exec` and
skip where `require_node_exec` says so. A node the user or admin kept pods off (cordoned, a
NoExecute taint of theirs, another OS) raises NodeExecUnavailable naming it: the plugin skips the
test that asked, so the checks on other nodes still run. A node that is down (NotReady, gone, its
pod never Ready or unable to enter the host) raises NodeDown: that test errors, naming the node.
Each host exec pod's start is a timings row of its own.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import shlex
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kubernetes import client

from clusterproof import pod_states, wait
from clusterproof.api_answers import ApiAnswer, answer_to, unless_missing
from clusterproof.errors import ExecTimeout, NodeDown, NodeExecUnavailable, one_line
from clusterproof.namespaces import pod_security_labels, wait_usable
from clusterproof.node_exec import NOT_KIND, NodeExec, NoNodeExec, kind_node_exec
from clusterproof.pod_exec import ExecResult, exec_in_pod
from clusterproof.run import hash_of, short_id, slug

if TYPE_CHECKING:
    from clusterproof.cluster import Cluster
    from clusterproof.timings import Stopwatch
    from clusterproof.tracker import ResourceTracker

log = logging.getLogger("clusterproof.node_access")

NOT_ASKED = (
    "clusterproof makes no privileged pod unasked (--allow-privileged lets it reach each node through a "
    "privileged host exec pod)"
)
NO_PRIVILEGED = f"no shell on the nodes: they are not kind containers on this host, and {NOT_ASKED}"
NONE_CHOSEN = "no shell on the nodes: --node-access none"
# what the pod runs every command through: the host's mount, UTS, IPC, network and PID namespaces
NSENTER = ("nsenter", "--target", "1", "--mount", "--uts", "--ipc", "--net", "--pid", "--")
HOSTEXEC_APP = "clusterproof-hostexec"
POD_SECURITY_LEVEL = "privileged"
POD_START_TIMEOUT = 120.0
# A host exec pod ends by itself this long after it started (activeDeadlineSeconds: the kubelet kills
# it, also when the run that made it was SIGKILLed); a pod with too little of it left for a command is
# replaced by a new one. The field can be lowered but never raised: a pod is never extended.
POD_DEADLINE = 300
DEADLINE_MARGIN = 30.0  # seconds of a pod's life kept beyond a command's own timeout
REQUEST_TIMEOUT = 15  # the cleanup also runs from a signal handler: never wait on a hung API for long
REASON_LIMIT = 400


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


def hostexec_pod_name(node: str, generation: int = 1) -> str:
    """`hostexec-<node>-<hash>`, and `-<n>` for the n-th pod on that node (one replacing another
    whose deadline was near)."""
    base = f"hostexec-{slug(node, 40) or 'node'}-{hash_of(node, 6)}"
    return base if generation == 1 else f"{base}-{generation}"


def hostexec_pod(
    name: str, namespace: str, node: str, image: str, labels: Mapping[str, str], deadline: int = POD_DEADLINE
) -> dict[str, Any]:
    """The host exec pod for `node`, as upstream's hostexec: privileged, the host's network and PID
    namespaces (nsenter enters the rest through PID 1), bound to the node by nodeName (no
    scheduler: the kubelet admits it). The kubelet checks only NoExecute taints of a pod bound so;
    the pod tolerates every NoSchedule taint (control-plane and dedicated nodes are reached) and no
    NoExecute one (a node being drained of its pods is left alone: its checks skip). No API token,
    no resource requests (a full node still admits it), no grace period; `deadline` seconds after
    it started the kubelet ends it (activeDeadlineSeconds), whatever became of the run."""
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
            "activeDeadlineSeconds": deadline,
            "restartPolicy": "Never",
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


# the node lifecycle controller's taints on a node that stopped answering: signs of a node down, not a choice
NODE_DOWN_TAINTS = ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable")


def why_unreachable(node: client.V1Node) -> NodeExecUnavailable | None:
    """What keeps a host exec pod off `node`, read from the node itself, or None: what the user or
    the admin chose (NodeExecUnavailable: another OS, cordoned, a NoExecute taint of theirs: the
    check skips), or a node that is down (NodeDown: NotReady: the check errors, naming it)."""
    name = node.metadata.name
    system = (node.metadata.labels or {}).get("kubernetes.io/os", "linux")
    if system != "linux":
        return NodeExecUnavailable(f"node {name} runs {system}: the host exec pod (nsenter) is for Linux nodes")
    if node.spec and node.spec.unschedulable:
        return NodeExecUnavailable(f"node {name} is cordoned: no host exec pod is placed on it")
    ready = next((c for c in (node.status.conditions if node.status else None) or [] if c.type == "Ready"), None)
    if ready is not None and ready.status != "True":
        said = f"{ready.reason or ready.status}" + (f": {ready.message}" if ready.message else "")
        return NodeDown(name, one_line(f"node {name} is not Ready ({said})", REASON_LIMIT))
    taints = (node.spec.taints if node.spec else None) or []
    untolerated = [t for t in taints if t.effect == "NoExecute" and t.key not in NODE_DOWN_TAINTS]
    if untolerated:
        listed = ", ".join(f"{t.key}{'=' + t.value if t.value else ''}:NoExecute" for t in untolerated)
        return NodeExecUnavailable(f"node {name} has taint {listed}, which the host exec pod does not tolerate")
    down = [t.key for t in taints if t.key in NODE_DOWN_TAINTS]
    if down:
        return NodeDown(name, f"node {name} is tainted {', '.join(down)} by the node lifecycle controller")
    return None


def refusal(what: str, answer: ApiAnswer) -> str:
    """A skip reason naming the refusal in the server's words (Pod Security, a webhook, a policy)."""
    return one_line(f"node access through a privileged pod refused: {what}: {answer}", REASON_LIMIT)


Exec = Callable[..., ExecResult]


@dataclass(frozen=True)
class _Pod:
    name: str
    generation: int  # the how-many-th pod on its node
    made_at: float  # on the mechanism's clock, before its creation: its deadline runs out no sooner


@dataclass
class HostExecPods:
    """The `pod` mechanism: one host exec pod per node, made when a command first needs that node
    and reused for the cluster's life (a module's tests, or the session's) while its deadline
    leaves the command time enough; then replaced by a new one. Its cleanup (delete the pods and the
    namespace) is a tracker step of the cluster's scope, registered when this is made, before
    anything else of that scope: it runs after every later step, which may still run node
    commands. After it ran, no pod is made again."""

    cluster: Cluster
    tracker: ResourceTracker
    namespace: str
    image: str
    labels: Mapping[str, str]
    start_timeout: float = POD_START_TIMEOUT
    deadline: int = POD_DEADLINE
    exec: Exec = exec_in_pod
    stopwatch: Stopwatch | None = None
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    mechanism: str = field(default="pod", init=False)
    _prepared: bool = field(default=False, init=False)
    _refused: str | None = field(default=None, init=False)
    _namespace_made: bool = field(default=False, init=False)
    _pods: dict[str, _Pod] = field(default_factory=dict, init=False)  # node -> its Ready pod
    _unreachable: dict[str, NodeExecUnavailable] = field(default_factory=dict, init=False)  # node -> why not
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
        pod = self.pod_for(node, need=timeout)
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

    def pod_for(self, node: str, need: float = 0.0) -> str:
        """The Ready host exec pod on `node` with `need` seconds (and a margin) left before its
        deadline: made now if there is none, or if the one there is too near its end (that one is
        deleted); NodeExecUnavailable naming the node when it cannot be there (NodeDown when the
        node is down)."""
        reason = self.unavailable()
        if reason:
            raise NodeExecUnavailable(reason)
        current = self._pods.get(node)
        if current is not None and self._left(current) < need + DEADLINE_MARGIN:
            log.debug("node access: host exec pod %s has %.0fs left: replaced", current.name, self._left(current))
            del self._pods[node]
            self._delete_pod(current.name)
        if node not in self._pods and node not in self._unreachable:
            try:
                self._pods[node] = self._start(node, (current.generation if current else 0) + 1)
            except NodeExecUnavailable as e:
                self._unreachable[node] = e
                log.warning("%s", e)
        if node in self._unreachable:
            raise self._unreachable[node].with_traceback(None)
        return self._pods[node].name

    def _left(self, pod: _Pod) -> float:
        return pod.made_at + self.deadline - self.clock()

    # -- making --

    def _prepare(self) -> str | None:
        labels = {
            **self.labels,
            "app.kubernetes.io/name": HOSTEXEC_APP,
            **pod_security_labels(POD_SECURITY_LEVEL),
        }
        body = client.V1Namespace(metadata=client.V1ObjectMeta(name=self.namespace, labels=labels))
        made = answer_to(lambda: self.cluster.core.create_namespace(body))
        if not made.accepted:
            return refusal(f"namespace {self.namespace}", made)
        self._namespace_made = True
        try:
            wait_usable(self.cluster, self.namespace)
        except wait.WaitTimeout as e:
            return one_line(f"no shell on the nodes: host exec namespace {self.namespace}: {e}", REASON_LIMIT)
        nodes = self.cluster.core.list_node().items
        if not nodes:
            return "no shell on the nodes: the cluster lists no nodes"
        node = nodes[0].metadata.name
        probe = hostexec_pod(hostexec_pod_name(node), self.namespace, node, self.image, self.labels, self.deadline)
        judged = answer_to(lambda: self.cluster.core.create_namespaced_pod(self.namespace, probe, dry_run="All"))
        return None if judged.accepted else refusal(f"pod {self.namespace}/{probe['metadata']['name']}", judged)

    def _start(self, node: str, generation: int) -> _Pod:
        found = unless_missing(lambda: self.cluster.core.read_node(node))
        if found is None:
            raise NodeDown(node, f"node {node} not found: no host exec pod there")
        unreachable = why_unreachable(found)
        if unreachable:
            raise unreachable
        name = hostexec_pod_name(node, generation)
        manifest = hostexec_pod(name, self.namespace, node, self.image, self.labels, self.deadline)
        wall, started = time.time(), self.clock()
        made = answer_to(lambda: self.cluster.core.create_namespaced_pod(self.namespace, manifest))
        if not made.accepted and made.status != 409:  # 409: this run's, from an earlier try
            raise NodeExecUnavailable(refusal(f"pod {self.namespace}/{name} on node {node}", made))
        try:
            wait.until_seen(
                lambda: self.cluster.core.read_namespaced_pod(name, self.namespace),
                pod_states.pod_is_ready,
                f"host exec pod {self.namespace}/{name} on node {node} Ready",
                self.start_timeout,
                describe=_describe,
                final=pod_states.never_ready,
                sleep=self.sleep,
                clock=self.clock,
            )
        except wait.WaitTimeout as e:
            self._delete_pod(name)
            raise NodeDown(node, one_line(f"its host exec pod never got Ready: {e}", REASON_LIMIT)) from None
        seconds = self.clock() - started
        if self.stopwatch is not None:
            self.stopwatch.phases.append((f"cluster {self.cluster.name}: host exec pod on {node} Ready", seconds, wall))
        log.debug("node access: host exec pod %s/%s on node %s Ready in %.2fs", self.namespace, name, node, seconds)
        entered = self.exec(self.cluster.core, self.namespace, name, nsenter_argv(["true"]), timeout=30)
        if entered.rc != 0:
            self._delete_pod(name)
            raise NodeDown(
                node,
                one_line(
                    f"its host exec pod ({self.image}) cannot enter the host's namespaces "
                    f"(`{shlex.join(nsenter_argv(['true']))}` exited {entered.rc}: {entered.stderr.strip()})",
                    REASON_LIMIT,
                )
            )
        return _Pod(name, generation, started)

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
    described = pod_states.describe_pods([pod])
    status = pod.status
    waiting = [c.message for c in (status.conditions if status else None) or [] if c.status != "True" and c.message]
    return described + (f": {waiting[0]}" if waiting else "")


# --- choosing --------------------------------------------------------------------------------


def choose(
    mode: str,
    cluster: Cluster,
    *,
    allow_privileged: bool,
    host_exec_pods: Callable[[], NodeExec],
    detect_kind: Callable[[client.ApiClient], NodeExec] = kind_node_exec,
) -> NodeExec:
    """The mechanism for `cluster` (see the module's docstring). Docker only where each node is
    proven to be a container on this host (clusterproof.node_exec.kind_node_exec), whoever made
    the cluster; a kind cluster refused so is said in the reason of what is chosen instead."""
    if mode == "none":
        return NoNodeExec(NONE_CHOSEN)
    if mode == "pod":
        return host_exec_pods()
    docker = detect_kind(cluster.api)
    refused = docker.unavailable()
    if refused is None:
        return docker
    if mode == "docker":
        return NoNodeExec(f"no shell on the nodes: --node-access docker: {refused}")
    if allow_privileged:
        if refused != NOT_KIND:
            log.warning("node access on %s: %s; a host exec pod instead", cluster.name, refused)
        return host_exec_pods()
    return NoNodeExec(NO_PRIVILEGED if refused == NOT_KIND else f"no shell on the nodes: {refused}; {NOT_ASKED}")


def describe(mechanism: NodeExec) -> str:
    if isinstance(mechanism, HostExecPods):
        return f"pod (a privileged host exec pod per node on first use, namespace {mechanism.namespace})"
    if mechanism.mechanism == "none":
        return f"none ({mechanism.unavailable()})"
    return mechanism.mechanism
