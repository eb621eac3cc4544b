"""Upgrade a kind cluster in place to the next minor release, the way kubeadm documents it.

kind has no upgrade; this module does what a platform team does on machines, with the new
release's binaries and images coming from the offline build instead of a registry:
1. every node gets the target's images in its containerd (no registry to pull from);
2. the first control-plane node: new kubeadm, `kubeadm upgrade plan`, `kubeadm upgrade apply`;
3. each node in turn (control plane first, then workers): drained, `kubeadm upgrade node`
   (workers), kubelet and kubectl swapped, kubelet restarted, uncordoned.
Each node's start and end and each phase are recorded (`UpgradeLog`), for the report and for
the after phase's disruption timeline.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from clusterproof.errors import ClusterproofError
from clusterproof.offline import build, releases
from clusterproof.offline.releases import Release
from clusterproof.progress import Progress, Step

KIND_CLUSTER_LABEL = "io.x-k8s.kind.cluster"
KIND_ROLE_LABEL = "io.x-k8s.kind.role"
ADMIN = "--kubeconfig=/etc/kubernetes/admin.conf"
DRAIN_TIMEOUT = 180
READY_TIMEOUT = 180
# what kubectl says while the API server restarts (RBAC not loaded yet reads as forbidden)
API_AWAY = (
    "connection refused",
    "was refused",  # kubectl: "The connection to the server HOST:6443 was refused"
    "is forbidden",
    "currently unable to handle",
    "EOF",
    "TLS handshake timeout",
    "ServiceUnavailable",
)
COMMAND_TIMEOUT = 900


class UpgradeError(ClusterproofError):
    """One line: which node, which step, what it said."""


@dataclass
class UpgradeLog:
    cluster: str
    source: str
    target: str
    phases: list[dict] = field(default_factory=list)  # {name, start, end}
    nodes: list[dict] = field(default_factory=list)  # {node, start, end, from, to}

    def phase(self, name: str, started: float) -> None:
        self.phases.append({"name": name, "start": started, "end": time.time()})

    def to_json(self) -> dict:
        return {
            "cluster": self.cluster,
            "from": self.source,
            "to": self.target,
            "phases": self.phases,
            "nodes": self.nodes,
        }

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_json(), indent=2) + "\n")

    def summary(self) -> str:
        lines = [f"  {p['name']:<40} {p['end'] - p['start']:6.1f}s" for p in self.phases]
        return "\n".join(lines)


@dataclass(frozen=True)
class KindNode:
    name: str
    role: str  # control-plane | worker


def kind_nodes(cluster: str, docker: str = "docker") -> list[KindNode]:
    """The cluster's node containers, control plane first (the order kubeadm upgrades them)."""
    out = subprocess.run(
        [
            docker,
            "ps",
            "--filter",
            f"label={KIND_CLUSTER_LABEL}={cluster}",
            "--format",
            f'{{{{.Names}}}} {{{{.Label "{KIND_ROLE_LABEL}"}}}}',
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\n")
    nodes = [KindNode(*line.split()) for line in out if line.strip()]
    nodes = [n for n in nodes if n.role in ("control-plane", "worker")]
    if not nodes:
        raise UpgradeError(f"kind cluster {cluster}: no running node containers")
    return sorted(nodes, key=lambda n: (n.role != "control-plane", n.name))


class KindUpgrade:
    def __init__(
        self,
        cluster: str,
        target: Release,
        log: Callable[[str], None] = print,
        builder: build.Builder | None = None,
        docker: str = "docker",
    ) -> None:
        """Each stage is a step of the builder's progress (without a builder: lines to `log`)."""
        self.cluster = cluster
        self.target = target
        self.builder = builder or build.Builder(progress=Progress(show=log))
        self.progress = self.builder.progress
        self.say = self.progress.say
        self.docker = docker

    # --- plumbing ------------------------------------------------------------------------------

    def run(
        self, node: str, *argv: str, stdin: Path | None = None, timeout: float = COMMAND_TIMEOUT, what: str = ""
    ) -> str:
        flags = ["-i"] if stdin else []
        try:
            with open(stdin, "rb") if stdin else open("/dev/null", "rb") as feed:
                done = subprocess.run(
                    [self.docker, "exec", *flags, node, *argv], stdin=feed, capture_output=True, timeout=timeout
                )
        except subprocess.TimeoutExpired:
            raise UpgradeError(f"{node}: {what or argv[0]} still running after {timeout:.0f}s") from None
        out = done.stdout.decode(errors="replace") + done.stderr.decode(errors="replace")
        if done.returncode != 0:
            tail = " | ".join(line.strip() for line in out.strip().splitlines()[-3:])
            raise UpgradeError(f"{node}: {what or ' '.join(argv)} failed (exit {done.returncode}): {tail}")
        return out

    def copy_in(self, node: str, source: Path, target: str) -> None:
        """`source` installed at `target` on the node (copied beside it, then moved: never half a binary)."""
        try:
            done = subprocess.run(
                [self.docker, "cp", str(source), f"{node}:{target}.new"], capture_output=True, timeout=COMMAND_TIMEOUT
            )
        except subprocess.TimeoutExpired:
            raise UpgradeError(f"{node}: docker cp {source.name} still running after {COMMAND_TIMEOUT:.0f}s") from None
        if done.returncode != 0:  # e.g. the host's disk full: docker says so on stderr
            why = " | ".join(done.stderr.decode(errors="replace").strip().splitlines()[-3:])
            raise UpgradeError(f"{node}: docker cp {source} to {target} failed (exit {done.returncode}): {why}")
        self.run(node, "sh", "-c", f"chmod 0755 {target}.new && mv -f {target}.new {target}", what=f"install {target}")

    def version_of(self, node: str) -> str:
        return self.run(node, "cat", "/kind/version").strip()

    # --- the upgrade ---------------------------------------------------------------------------

    def inputs(self) -> tuple[Path, Path]:
        """The target's binaries and images, built (or found cached) by the offline build."""
        graph = build.steps(self.target)
        kube = graph[f"go-kubernetes-{self.target.minor}"]
        images = graph[f"images-{self.target.minor}"]
        self.builder.ensure(graph["node"])
        return kube.output_dir(self.builder.cache) / "bin", images.output_dir(self.builder.cache) / "images.tar"

    def upgrade(self, leave: set[str] = frozenset()) -> UpgradeLog:
        """Upgrade every node not at the target yet (so an interrupted upgrade can be resumed);
        `leave`: nodes (or name suffixes, `worker2`) whose kubelet stays at the old release (to
        rehearse a bad upgrade)."""
        nodes = kind_nodes(self.cluster, self.docker)
        first = nodes[0]
        versions = {n.name: self.version_of(n.name) for n in nodes}
        pending = [n for n in nodes if versions[n.name] != self.target.kube]
        if not pending:
            raise UpgradeError(f"kind cluster {self.cluster} already runs {self.target.kube} on every node")
        source = min(versions.values(), key=lambda v: [int(x) for x in v.lstrip("v").split(".")])
        expected = releases.upgrade_target(releases.release(source))
        if expected.kube != self.target.kube:
            raise UpgradeError(f"{source} upgrades to {expected.kube} (one minor at a time), not {self.target.kube}")
        upgrade_log = UpgradeLog(self.cluster, source, self.target.kube)

        started = time.time()
        bin_dir, images_tar = self.inputs()
        upgrade_log.phase(f"target {self.target.kube} images and binaries (build or cache check)", started)

        for node in pending:
            started = time.time()
            loading = f"{node.name}: load {self.target.kube}'s images into containerd"
            with self.progress.step(loading, "ctr images import"):
                self.run(
                    node.name,
                    "ctr",
                    "-n",
                    "k8s.io",
                    "images",
                    "import",
                    "--all-platforms",
                    "--snapshotter",
                    "overlayfs",
                    "-",
                    stdin=images_tar,
                    what="ctr images import",
                )
            upgrade_log.phase(f"{node.name}: images loaded", started)

        if self.server_version(first.name) != self.target.kube:
            started = time.time()
            with self.progress.step(
                f"{first.name}: kubeadm upgrade {self.target.kube}", "kubeadm upgrade plan, apply, the API server ready"
            ) as step:
                self.copy_in(first.name, bin_dir / "kubeadm", "/usr/bin/kubeadm")
                step.waiting("kubeadm upgrade plan")
                plan = self.run(first.name, "kubeadm", "upgrade", "plan", self.target.kube, what="kubeadm upgrade plan")
                self.say("  " + "\n  ".join(line for line in plan.splitlines() if "->" in line or "COMPONENT" in line))
                step.waiting(f"kubeadm upgrade apply {self.target.kube}")
                self.run(
                    first.name,
                    "kubeadm",
                    "upgrade",
                    "apply",
                    self.target.kube,
                    "--yes",
                    *self.preflight_waivers(first.name),
                    what="kubeadm upgrade apply",
                )
                step.waiting("the API server's /readyz")
                self.wait_api_ready(first.name)
            upgrade_log.phase(f"{first.name}: kubeadm upgrade apply", started)

        for node in pending:
            if any(node.name == n or node.name.endswith(f"-{n}") for n in leave):
                self.say(f"{node.name}: left at {versions[node.name]} (asked)")
                continue
            started = time.time()
            with self.progress.step(
                f"{node.name}: drain, upgrade, kubelet restart, uncordon", f"the drain of {node.name}"
            ) as step:
                self._upgrade_node(first.name, node.name, bin_dir, step)
            upgrade_log.nodes.append(
                {"node": node.name, "start": started, "end": time.time(), "from": source, "to": self.target.kube}
            )
            upgrade_log.phase(f"{node.name}: upgraded", started)
        return upgrade_log

    def _upgrade_node(self, first: str, node: str, bin_dir: Path, step: Step) -> None:
        """One node, the kubeadm way: drained, `kubeadm upgrade node` (not the first control plane:
        `apply` did it), kubelet and kubectl swapped, kubelet restarted, Ready, uncordoned."""
        self.drain(first, node)
        if node != first:
            step.waiting("kubeadm upgrade node")
            self.copy_in(node, bin_dir / "kubeadm", "/usr/bin/kubeadm")
            self.run(node, "kubeadm", "upgrade", "node", *self.preflight_waivers(node), what="kubeadm upgrade node")
        step.waiting("kubelet restart, the node Ready, uncordon")
        for binary in ("kubelet", "kubectl"):
            self.copy_in(node, bin_dir / binary, f"/usr/bin/{binary}")
        self.run(node, "sh", "-c", "systemctl daemon-reload && systemctl restart kubelet", what="kubelet restart")
        ready = ("wait", "--for=condition=Ready", f"node/{node}", f"--timeout={READY_TIMEOUT}s")
        self.kubectl(first, *ready, what=f"node {node} Ready")
        self.kubectl(first, "uncordon", node, what=f"uncordon {node}")
        self.run(node, "sh", "-c", f"echo {self.target.kube} >/kind/version", what="record the version")

    def server_version(self, control_plane: str) -> str:
        out = self.run(control_plane, "kubectl", ADMIN, "version", "-o", "json", what="kubectl version")
        return json.loads(out[out.index("{") :])["serverVersion"]["gitVersion"]

    def wait_api_ready(self, control_plane: str) -> None:
        """After a control-plane component or kubelet restart: /readyz ok (RBAC and the other
        post-start hooks done), polled until READY_TIMEOUT."""
        deadline = time.monotonic() + READY_TIMEOUT
        last = ""
        while time.monotonic() < deadline:
            done = subprocess.run(
                [self.docker, "exec", control_plane, "kubectl", ADMIN, "get", "--raw", "/readyz"],
                capture_output=True,
                text=True,
                timeout=30,
            )
            if done.returncode == 0 and done.stdout.strip() == "ok":
                return
            last = ((done.stdout + done.stderr).strip().splitlines() or ["?"])[-1]
            time.sleep(1)
        raise UpgradeError(f"{control_plane}: the API server was not ready within {READY_TIMEOUT}s; last: {last}")

    def preflight_waivers(self, node: str) -> list[str]:
        """On a cgroup v1 host kubeadm 1.35+'s SystemVerification refuses to go on, although the
        kubelet is configured for it (failCgroupV1: false, as kind's config was patched): the check
        is skipped there, and only there, as kubeadm's message asks."""
        v1 = self.run(node, "stat", "-fc", "%T", "/sys/fs/cgroup").strip() != "cgroup2fs"
        return ["--ignore-preflight-errors=SystemVerification"] if v1 and self.target.minor_number >= 35 else []

    def drain(self, control_plane: str, node: str) -> None:
        self.kubectl(
            control_plane,
            "drain",
            node,
            "--ignore-daemonsets",
            "--delete-emptydir-data",
            "--force",
            f"--timeout={DRAIN_TIMEOUT}s",
            what=f"drain {node}",
        )

    def kubectl(self, control_plane: str, *args: str, what: str, attempts: int = 3) -> str:
        """kubectl on the control plane, again after the API server is back when it was away: a
        kubelet restart may replace the static pods (new kubelet, new pod hashes) at any moment,
        and every one of these commands can be repeated."""
        for attempt in range(1, attempts + 1):
            try:
                return self.run(control_plane, "kubectl", ADMIN, *args, timeout=DRAIN_TIMEOUT + 60, what=what)
            except UpgradeError as e:
                if attempt == attempts or not any(s in str(e) for s in API_AWAY):
                    raise
                self.say(
                    f"{control_plane}: {what}: the API server went away ({attempt}/{attempts}); again once it is ready"
                )
                self.wait_api_ready(control_plane)
        raise AssertionError("unreachable")
