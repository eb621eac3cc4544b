"""Verbs for the pod-volume claims: start pods that mount volumes, read and write files in
their containers and on the nodes, restart a container, and sort hostPath pods by outcome."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client

from clusterproof import wait
from clusterproof.cluster import Cluster
from clusterproof.manifests import Manifests
from clusterproof.probe import ExecResult, exec_in_pod
from clusterproof.tracker import ResourceTracker

ABSENT_RC = 3  # exit code of read_file's script when the path does not exist
START_TIMEOUT = 120.0
HOSTPATH_TYPE_FAILURE = "hostPath type check failed"
HOSTPATH_VOLUME = 'volume "host-path"'  # the template's volume, as the kubelet names it in events
HOSTPATH_CASES_TIMEOUT = 240.0  # every case pod on one node at once


# --- pods ------------------------------------------------------------------------------------


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

    def lines_when(self, pod: str, path: str, container: str, count: int, timeout: float = 30) -> list[str]:
        """The file's lines once it has `count` of them: a container counts as running before
        its first command has written anything. At the deadline, whatever lines it has."""
        return wait.last_seen(
            lambda: (self.read(pod, path, container) or "").splitlines(),
            lambda lines: len(lines) >= count,
            f"{count} lines in {path} of {pod}/{container}",
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
        try:
            pod = read_pod(cluster, namespace, name)
        except client.ApiException as e:
            if e.status == 404:
                return None
            raise
        return pod if pod.metadata.uid == uid else None

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
    """Until `container` has restarted more than `more_than` times and is running and ready again."""

    def restarted(current: client.V1Pod) -> client.V1Pod | None:
        status = container_status(current, container)
        running = status.state is not None and status.state.running is not None
        return current if status.restart_count > more_than and running and status.ready else None

    def describe(current: client.V1Pod) -> str:
        status = container_status(current, container)
        return f"restartCount {status.restart_count}, state {status.state.to_dict() if status.state else None}"

    return wait.until_seen(
        lambda: read_pod(cluster, namespace, pod),
        restarted,
        f"container {container} of pod {namespace}/{pod} restarted (restartCount > {more_than}) and ready",
        timeout,
        describe=describe,
    )


def start_pod(
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


def started(cluster: Cluster, namespace: str, name: str, timeout: float = START_TIMEOUT) -> client.V1Pod:
    """The pod Ready; if it never gets there, the failure names its last FailedMount event."""
    try:
        return wait.pod_ready(cluster.core, namespace, name, timeout)
    except wait.WaitTimeout as e:
        mounts = failed_mounts(cluster, namespace, name)
        raise AssertionError(f"pod {name} did not start: {e}; last FailedMount: {mounts.last}") from None


# --- nodes -----------------------------------------------------------------------------------


class NodeFiles:
    """Files on the nodes (node exec). Whatever `keep_clean` names is removed when the test
    ends (`cleanup`) and again, if still there, when the tracker cleans up (failure, signal)."""

    def __init__(self, cluster: Cluster, tracker: ResourceTracker, run_id: str) -> None:
        self.cluster = cluster
        self.tracker = tracker
        self.run_id = run_id
        self._undo: list[tuple[str, Callable[[], None]]] = []

    @property
    def run_dir(self) -> str:
        """Per-run directory on the nodes (fixtures use /tmp/clusterproof-${RUN_ID})."""
        return f"/tmp/clusterproof-{self.run_id}"

    def sh(self, node: str, script: str, *args: str, check: bool = True) -> str:
        done = self.cluster.node_exec(node, "sh", "-c", script, "sh", *args, check=False)
        if check and done.returncode != 0:
            raise AssertionError(f"on node {node}: `{script}` failed ({done.returncode}): {done.stderr.strip()}")
        return done.stdout

    def test(self, node: str, flag: str, path: str) -> bool:
        """`test -<flag> path` on the node (d: directory, f: regular file, S: socket, ...)."""
        return self.cluster.node_exec(node, "test", f"-{flag}", path, check=False).returncode == 0

    def read(self, node: str, path: str) -> str | None:
        done = self.cluster.node_exec(node, "cat", path, check=False)
        return done.stdout if done.returncode == 0 else None

    def write(self, node: str, path: str, text: str) -> None:
        self.sh(node, 'mkdir -p "$(dirname "$1")" && printf %s "$2" > "$1"', path, text)

    def kind_of(self, node: str, path: str) -> str:
        return self.sh(node, 'stat -c %F "$1" 2>&1 || true', path).strip()

    def keep_clean(self, nodes: Iterable[str], path: str, *, rmdir_only: bool = False) -> None:
        """Remove `path` from `nodes` at the end (rmdir_only: only if it is an empty directory)."""
        command = 'rmdir "$1" 2>/dev/null || true' if rmdir_only else 'rm -rf -- "$1"'
        for node in nodes:
            description = f"remove {path} on node {node}"

            def undo(node: str = node) -> None:
                self.cluster.node_exec(node, "sh", "-c", command, "sh", path, check=False, timeout=30)

            self._undo.append((description, undo))
            self.tracker.on_cleanup(self.cluster, description, undo)

    def make_dir(self, nodes: Iterable[str], path: str) -> dict[str, bool]:
        """mkdir -p on each node; returns node -> True when this call created it."""
        made = {}
        for node in nodes:
            out = self.sh(node, '[ -d "$1" ] && echo existed || { mkdir -p "$1" && echo created; }', path)
            made[node] = out.strip() == "created"
        return made

    def cleanup(self) -> None:
        while self._undo:
            _, undo = self._undo.pop()
            with contextlib.suppress(Exception):  # the tracker tries again at the end of the session
                undo()


# --- hostPath types --------------------------------------------------------------------------


@dataclass(frozen=True)
class HostPathCase:
    """One pod of the hostPath `type` matrix: the type, the path, what the node has there."""

    type: str
    path: str
    present: str  # what exists at path: "missing", "directory", "file", "socket", "char device", ...
    starts: bool  # the notes' prediction: the pod starts (True) or fails its mount (False)
    creates: str | None = None  # `test` flag the node path must pass afterwards (…OrCreate)

    @property
    def pod_name(self) -> str:
        return f"hp-{self.type.lower()}-{self.present.replace(' ', '-')}"

    def __str__(self) -> str:
        return f"{self.type} on {self.present} {self.path}"


@dataclass
class HostPathOutcome:
    case: HostPathCase
    running: bool = False
    failed_mount: str | None = None  # message of the pod's FailedMount event, if any
    detail: str = ""

    @property
    def settled(self) -> bool:
        return self.running if self.case.starts else self.failed_mount is not None

    def describe(self) -> str:
        if self.running:
            return f"{self.case.pod_name}: Running"
        if self.failed_mount:
            return f"{self.case.pod_name}: FailedMount ({self.failed_mount})"
        return f"{self.case.pod_name}: {self.detail or 'not started, no FailedMount event'}"


def prepare_node_paths(files: NodeFiles, node: str, base: str) -> dict[str, str]:
    """Make one existing path of each kind under `base` on the node; kind -> path.
    The socket is bound by perl when the node has it, else the runtime's socket is used."""
    files.keep_clean([node], base)
    files.sh(node, 'mkdir -p "$1/dir" && : > "$1/file" && mknod "$1/block" b 7 0 && mknod "$1/char" c 1 3', base)
    paths = {"directory": f"{base}/dir", "file": f"{base}/file", "block device": f"{base}/block"}
    paths["char device"] = f"{base}/char"
    bind = "use IO::Socket::UNIX; IO::Socket::UNIX->new(Type => SOCK_STREAM(), Local => $ARGV[0], Listen => 1) or die"
    made = files.cluster.node_exec(node, "perl", "-e", bind, f"{base}/socket", check=False)
    if made.returncode == 0 and files.test(node, "S", f"{base}/socket"):
        paths["socket"] = f"{base}/socket"
    elif files.test(node, "S", "/run/containerd/containerd.sock"):
        paths["socket"] = "/run/containerd/containerd.sock"
    for kind, path in paths.items():
        flag = {"directory": "d", "file": "f", "socket": "S", "char device": "c", "block device": "b"}[kind]
        if not files.test(node, flag, path):
            raise AssertionError(f"could not make a {kind} at {path} on node {node}: {files.kind_of(node, path)}")
    return paths


def hostpath_cases(paths: Mapping[str, str], base: str) -> list[HostPathCase]:
    """Every type of the notes with its path present (right kind), absent, and of a wrong kind."""
    missing = f"{base}/missing"
    cases = [
        HostPathCase("DirectoryOrCreate", f"{base}/made-dir/sub", "missing", True, creates="d"),
        HostPathCase("DirectoryOrCreate", paths["directory"], "directory", True, creates="d"),
        HostPathCase("FileOrCreate", f"{base}/made-file", "missing", True, creates="f"),
        HostPathCase("FileOrCreate", paths["file"], "file", True, creates="f"),
    ]
    # type -> (the kind it needs, a wrong kind to offer it)
    kinds = {
        "Directory": ("directory", "file"),
        "File": ("file", "directory"),
        "Socket": ("socket", "file"),
        "CharDevice": ("char device", "block device"),
        "BlockDevice": ("block device", "char device"),
    }
    for type_, (kind, wrong) in kinds.items():
        cases.append(HostPathCase(type_, f"{missing}-{type_.lower()}", "missing", False))
        cases.append(HostPathCase(type_, paths[wrong], wrong, False))
        if kind in paths:
            cases.append(HostPathCase(type_, paths[kind], kind, True))
    return cases


def hostpath_outcomes(
    cluster: Cluster, namespace: str, cases: list[HostPathCase], timeout: float = HOSTPATH_CASES_TIMEOUT
) -> list[HostPathOutcome]:
    """Watch the case pods until each shows the outcome the notes predict (Running, or a
    FailedMount event); on the deadline, return what was seen (the test names the rest)."""
    by_pod = {c.pod_name: c for c in cases}

    def observe() -> list[HostPathOutcome]:
        outcomes = {name: HostPathOutcome(case) for name, case in by_pod.items()}
        for pod in cluster.core.list_namespaced_pod(namespace).items:
            outcome = outcomes.get(pod.metadata.name)
            if outcome is not None:
                outcome.running = pod.status.phase == "Running"
                outcome.detail = wait.describe_pods([pod])
        for event in cluster.core.list_namespaced_event(namespace).items:
            outcome = outcomes.get(event.involved_object.name)
            # the kubelet also reports slow token/secret mounts as FailedMount: not a hostPath outcome
            message = event.message or ""
            if outcome is None or event.reason != "FailedMount" or HOSTPATH_VOLUME not in message:
                continue
            if HOSTPATH_TYPE_FAILURE in message or not outcome.failed_mount:
                outcome.failed_mount = message
        return list(outcomes.values())

    return wait.last_seen(
        observe,
        lambda outcomes: all(o.settled for o in outcomes),
        "every hostPath case pod Running or FailedMount",
        timeout,
        interval=2,
    )


# --- gitRepo ---------------------------------------------------------------------------------

GIT_SERVER_PORT = 2345
GIT_CONTAINER_PORT = 8000  # agnhost fake-gitserver listens here


@dataclass
class GitServer:
    url: str
    cluster_ip: str


def start_git_server(manifests: Manifests, name: str = "git-server") -> GitServer:
    """agnhost fake-gitserver behind a Service, as upstream's gitRepo e2e does; the URL uses the
    ClusterIP because the kubelet clones on the node, outside the cluster's DNS."""
    labels = {"app": name}
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "containers": [
                {
                    "name": "git",
                    "image": "agnhost",
                    "args": ["fake-gitserver"],
                    "ports": [{"name": "http", "containerPort": GIT_CONTAINER_PORT}],
                    "readinessProbe": {"tcpSocket": {"port": "http"}, "periodSeconds": 1},
                }
            ],
            "terminationGracePeriodSeconds": 0,
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {"selector": labels, "ports": [{"port": GIT_SERVER_PORT, "targetPort": "http"}]},
    }
    manifests.apply([pod])
    (created,) = manifests.apply([service])
    started(manifests.cluster, manifests.namespace, name)
    wait_endpoints(manifests.cluster, manifests.namespace, name)
    ip = created["spec"]["clusterIP"]
    return GitServer(url=f"http://{ip}:{GIT_SERVER_PORT}", cluster_ip=ip)


def wait_endpoints(cluster: Cluster, namespace: str, service: str, timeout: float = 60) -> None:
    def ready_addresses() -> int:
        endpoints = cluster.core.read_namespaced_endpoints(service, namespace)
        return sum(len(s.addresses or []) for s in endpoints.subsets or [])

    wait.until(ready_addresses, f"endpoints of Service {namespace}/{service}", timeout, describe=lambda n: f"{n} ready")


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


def git_missing(message: str) -> bool:
    """The kubelet's error when the node has no git binary."""
    return "executable file not found" in message and "git" in message
