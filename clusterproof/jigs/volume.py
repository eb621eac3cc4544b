"""Verbs for the pod-volume claims: files on the nodes (and removing them when the test ends),
the hostPath `type` matrix sorted by outcome, an emptyDir watched on its node, and a git server
for gitRepo volumes. Pods themselves (start, files inside, restarts) are clusterproof.jigs.pods."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from kubernetes import client

from clusterproof import pod_states, urls, wait
from clusterproof.cluster import Cluster
from clusterproof.errors import WaitTimeout
from clusterproof.jigs import Jig, kubelet
from clusterproof.jigs.pods import (
    START_TIMEOUT,
    MountFailures,
    create_pod,
    failed_mounts,
    not_started,
    read_pod,
    started,
)
from clusterproof.manifests import Manifests
from clusterproof.node_files import node_dir, node_name
from clusterproof.probe import exec_in_pod
from clusterproof.tracker import ResourceTracker
from clusterproof.verdicts import setup_step

HOSTPATH_TYPE_FAILURE = "hostPath type check failed"
HOSTPATH_VOLUME = 'volume "host-path"'  # the template's volume, as the kubelet names it in events
HOSTPATH_CASES_TIMEOUT = 240.0  # every case pod on one node at once
# a pod pinned to a node, mounting one directory of it read-only (hostPath type Directory): VOL-02's probe
EMPTYDIR_PROBE = "claims/volumes/emptydir-probe.yaml"


# --- nodes -----------------------------------------------------------------------------------


class NodeFiles:
    """Files on the nodes (node exec). Every path is declared (`keep_clean`, `make_dir`) before
    anything is written there: recorded on the cluster and removed when the test ends
    (ResourceTracker.node_path: a later run's sweep removes it should this run be killed). A test
    that declares one where the nodes cannot be reached is skipped, saying why: nothing is written
    on a node unless it can be removed, and node access is what the user opted into
    (--node-access, --allow-privileged)."""

    def __init__(self, cluster: Cluster, tracker: ResourceTracker, run_id: str) -> None:
        self.cluster = cluster
        self.tracker = tracker
        self.run_id = run_id

    @property
    def run_dir(self) -> str:
        """Per-run directory on the nodes (fixtures use /tmp/clusterproof-${RUN_ID})."""
        return node_dir(self.run_id)

    def own_name(self, what: str) -> str:
        """A name of this run's for a file or directory outside run_dir (`clusterproof-<run id>-<hash>`):
        the sweep removes only what is named after its run."""
        return node_name(self.run_id, what)

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
        """`path` is about to be written on `nodes` (by a node command, or a pod's hostPath): recorded,
        and removed when the test ends (rmdir_only: only if it is an empty directory), after
        whatever is registered later. Skips the test where the nodes cannot be reached."""
        self.cluster.require_node_exec()
        self.tracker.node_path(self.cluster, nodes, path, tree=not rmdir_only)

    def make_dir(self, nodes: Iterable[str], path: str) -> None:
        """mkdir -p where `path` is missing; what this made goes when the test ends, if empty."""
        missing = [node for node in nodes if not self.test(node, "d", path)]
        self.keep_clean(missing, path, rmdir_only=True)
        for node in missing:
            self.sh(node, 'mkdir -p "$1"', path)


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
                outcome.detail = pod_states.describe_pods([pod])
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

GIT_CONTAINER_PORT = 8000  # agnhost fake-gitserver listens here
# the kubelet of 1.37+ (feature gate GitRepoVolumeDriver off by default) refuses gitRepo volumes so
GITREPO_DISABLED = "git-repo volume plugin has been disabled"
GITREPO_FEATURE_GATE = "GitRepoVolumeDriver"


@dataclass
class GitServer:
    url: str
    pod_ip: str


def start_git_server(manifests: Manifests, node: str, name: str = "git-server") -> GitServer:
    """agnhost fake-gitserver, as upstream's gitRepo e2e uses, on `node` (where the gitRepo pod
    will be): the kubelet clones on the node, outside the cluster's DNS, so the URL is the pod's
    IP, reached from its own node without a Service, kube-proxy or a route to another node
    (none of them is what VOL-04 observes). A set-up step (SetupFailed when it does not start)."""
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "nodeName": node,
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
    with setup_step(f"start the git server (agnhost fake-gitserver) on node {node}"):
        server = started(manifests.cluster, manifests.namespace, manifests.apply_one(pod)["metadata"]["name"])
    ip = server.status.pod_ip
    return GitServer(url=urls.url(ip, GIT_CONTAINER_PORT, ""), pod_ip=ip)


def ready_or_refused(
    cluster: Cluster, namespace: str, name: str, refusal: Callable[[str], str | None], expected: str, timeout: float
) -> str | None:
    """Until pod `name` is Ready (None) or the kubelet refused its volume: the first FailedMount
    message `refusal` names (its answer is returned). A pod that can never be Ready ends the wait
    at once; a timeout names the pod's last FailedMount."""

    def read() -> tuple[client.V1Pod, MountFailures]:
        return read_pod(cluster, namespace, name), failed_mounts(cluster, namespace, name)

    def outcome(seen: tuple[client.V1Pod, MountFailures]) -> tuple[str | None] | None:
        pod, failures = seen
        if pod_states.pod_is_ready(pod):
            return (None,)
        refused = next(filter(None, map(refusal, failures.messages)), None)
        return (refused,) if refused else None

    (result,) = wait.until_seen(
        read,
        outcome,
        expected,
        timeout,
        describe=lambda seen: f"{pod_states.describe_pods([seen[0]])}; last FailedMount: {seen[1].last}",
        final=lambda seen: pod_states.never_ready(seen[0]),
    )
    return result


def wait_cloned(cluster: Cluster, namespace: str, name: str, node: str, timeout: float = 120) -> None:
    """Until the gitRepo pod `name` is Ready (the kubelet cloned the repository into its volume).
    Skips at once when the kubelet says it cannot: the node has no git binary, or the git-repo
    volume plugin is disabled (1.37+, feature gate GitRepoVolumeDriver): a part the node lacks or
    was configured without, not a broken claim. A timeout names the pod's last FailedMount."""

    def refusal(message: str) -> str | None:
        if gitrepo_disabled(message):
            return f"disabled: {message}"
        return f"no git: {message}" if git_missing(message) else None

    expected = f"pod {name} on {node} Running (or the kubelet saying it cannot clone)"
    result = ready_or_refused(cluster, namespace, name, refusal, expected, timeout)
    if result is None:
        return
    if result.startswith("disabled: "):
        cluster.require(
            False,
            f"the kubelet on node {node} refuses gitRepo volumes: the git-repo volume plugin is disabled "
            f"(re-enabled only by the feature gate {GITREPO_FEATURE_GATE}); FailedMount: "
            f"{result.removeprefix('disabled: ')}",
        )
    if result.startswith("no git: "):
        message = result.removeprefix("no git: ")
        cluster.require(False, f"node {node} cannot clone a gitRepo volume (no git binary): FailedMount: {message}")


# --- emptyDir on its node ----------------------------------------------------------------------

EMPTY_DIR_PLUGIN = "kubernetes.io~empty-dir"
EMPTYDIR_REMOVED_TIMEOUT = 60.0


def emptydir_path(root: str, pod: client.V1Pod, volume_name: str) -> str:
    return f"{root}/pods/{pod.metadata.uid}/volumes/{EMPTY_DIR_PLUGIN}/{volume_name}"


@dataclass
class EmptyDirOnNode(Jig):
    """Where the kubelet keeps a pod's emptyDir on its node (under its root dir: jigs.kubelet),
    found there with a file the pod wrote (so that "gone" later means removed, not a wrong
    guess), and watched until it is removed. With node access: `ls` on the node. Without: through
    probe pods pinned to the node that mount exactly that directory (hostPath type Directory,
    read-only: a directory that is gone is refused by the kubelet's type check)."""

    node: str
    path: str

    @classmethod
    def find(cls, manifests: Manifests, pod: client.V1Pod, volume_name: str, file: str) -> EmptyDirOnNode:
        """The emptyDir `volume_name` of the running `pod`, holding `file`. A set-up step: where
        it is not found (another kubelet root, no hostPath allowed) the claim is not evaluated."""
        cluster, node = manifests.cluster, pod.spec.node_name
        with setup_step(f"find the emptyDir {volume_name} of pod {pod.metadata.name} on node {node}"):
            setup = kubelet.setup_of(cluster, node)
            found = cls(cluster, manifests, node, emptydir_path(setup.root_dir, pod, volume_name))
            listing = found._listing()
            if listing is None or file not in listing:
                how = f" (the kubelet's root dir: {setup.read_from.split('root dir: ')[-1]})"
                seen = "no such directory" if listing is None else f"a directory holding {listing}"
                raise AssertionError(f"{found.path} on node {node}: {seen}, not the file {file} the pod wrote{how}")
            return found

    def wait_removed(self, timeout: float = EMPTYDIR_REMOVED_TIMEOUT) -> None:
        """Until the directory is gone from the node (the claim fails naming what is left)."""

        def describe(listing: list[str] | None) -> str:
            return "gone" if listing is None else f"still there, holding {listing}"

        wait.until_seen(
            self._listing,
            lambda listing: listing is None,
            f"{self.path} removed from node {self.node} after its pod's deletion",
            timeout,
            describe=describe,
            interval=2,
        )

    def _listing(self) -> list[str] | None:
        """The directory's entries, None when it is not there."""
        if self.cluster.can_node_exec:
            script = 'cd "$1" 2>/dev/null && ls -A'
            done = self.cluster.node_exec(self.node, "sh", "-c", script, "sh", self.path, check=False)
            return done.stdout.split() if done.returncode == 0 else None
        return self._probe()

    def _probe(self) -> list[str] | None:
        """A probe pod on the node mounting the directory: its listing when it runs, None when the
        kubelet's type check refuses the mount (the directory is not there). Deleted after."""
        name = f"emptydir-probe-{secrets.token_hex(3)}"
        create_pod(self.manifests, EMPTYDIR_PROBE, values={"PROBE_PATH": self.path}, name=name, node=self.node)
        try:
            return self._probe_outcome(name)
        finally:
            self.cluster.delete_pod_now(self.namespace, name, wait_gone=False)

    def _probe_outcome(self, name: str) -> list[str] | None:
        try:
            refused = ready_or_refused(
                self.cluster,
                self.namespace,
                name,
                lambda message: message if HOSTPATH_TYPE_FAILURE in message else None,
                f"probe pod {name} on node {self.node} mounting {self.path} (Running), or the kubelet refusing it",
                START_TIMEOUT,
            )
        except WaitTimeout as e:
            judged = not_started(self.cluster, self.namespace, name, e)
            raise (judged or e) from e
        if refused:
            return None
        listed = exec_in_pod(self.core, self.namespace, name, ["ls", "-A", "/seen"])
        if listed.rc != 0:
            raise AssertionError(f"probe pod {name} could not list {self.path} on node {self.node}: {listed.stderr}")
        return listed.stdout.split()


def git_missing(message: str) -> bool:
    """The kubelet's error when the node has no git binary."""
    return "executable file not found" in message and "git" in message


def gitrepo_disabled(message: str) -> bool:
    """The kubelet's error when its git-repo volume plugin is disabled (1.37+)."""
    return GITREPO_DISABLED in message
