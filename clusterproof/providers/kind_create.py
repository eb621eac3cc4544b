"""`kind create cluster` that leaves the cause of its failure visible.

kind deletes the nodes of a failed create, and with them the only account of why: its own message
names the control-plane components "not healthy after 4m0s", not what kept them down. Created with
--retain, the nodes stay until the provider deletes the cluster (as any it made); before that, each
node's kubelet errors and the end of every container's log go into the run's artifacts, and the
kubelet's most repeated error about a pod into the exception (an API server that never came up makes
the kubelet repeat errors about the node more often than the cause). (Seen: a 1.35 node image without its containerd's
sandbox image; the kubelet said "failed to pull image registry.k8s.io/pause:3.10.2" every second.)
"""

from __future__ import annotations

import re
import subprocess
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pytest_kind import KindCluster

from clusterproof.errors import ClusterproofError
from clusterproof.kind_clusters import KIND_CLUSTER_LABEL
from clusterproof.stopping import run_as_group

Run = Callable[..., Any]
DOCKER_TIMEOUT = 30
# klog's error lines (E<date> ...): journald files the kubelet's stderr at priority info, so `-p err` finds none
KUBELET_ERRORS = "journalctl -u kubelet --no-pager -o cat | grep '^E[0-9]' | tail -n 500"
SHOWN_ERRORS = 20
# the node image has no crictl: the kubelet keeps each container's log under /var/log/pods
CONTAINER_LOGS = 'for f in /var/log/pods/*/*/*.log; do [ -e "$f" ] || continue; echo "== $f"; tail -n 10 "$f"; done'
HEADLINE = 400
# klog's pod fields: the same error about two pods reads the same without them
POD_FIELDS = re.compile(r' pod(UID)?="[^"]*"')


class CreateFailed(ClusterproofError):
    """`kind create cluster` failed; what its nodes said is in a file."""


class RetainingKindCluster(KindCluster):
    """pytest-kind's cluster, created with --retain: a failed create leaves its nodes to be read."""

    def create(self, config_file: str | Path | None = None) -> None:
        self.ensure_kind()
        listed = subprocess.run([str(self.kind_path), "get", "clusters"], capture_output=True, text=True, check=True)
        if self.name not in listed.stdout.split():
            command = [str(self.kind_path), "create", "cluster", f"--name={self.name}", "--retain",
                       f"--kubeconfig={self.kubeconfig_path}"]
            command += [f"--image={self.image}"] if self.image else []
            command += ["--config", str(config_file)] if config_file else []
            rc = run_as_group(command)  # stopped meanwhile: kind and its docker runs are gone before the delete
            if rc != 0:
                raise subprocess.CalledProcessError(rc, command)
        super().create(config_file)  # the cluster exists: pytest-kind only reads its kubeconfig


def explain(name: str, error: subprocess.CalledProcessError, into: Path, run: Run = subprocess.run) -> CreateFailed:
    """What the nodes of cluster `name` said, written to `into`; the error naming the kubelet's most
    repeated error about a pod (else at all). Reading them never hides the create's own failure."""
    failed = f"kind create cluster {name} failed (exit {error.returncode})"
    try:
        errors, text = _node_logs(name, run)
    except (OSError, subprocess.SubprocessError) as e:
        return CreateFailed(f"{failed}; its nodes could not be read: {e}")
    into.write_text(text)
    if not errors:
        return CreateFailed(f"{failed}; no kubelet error on its nodes (their logs: {into})")
    about_pods = [POD_FIELDS.sub("", line) for line in errors if ' pod="' in line]
    line, count = Counter(about_pods or errors).most_common(1)[0]
    return CreateFailed(f"{failed}; the kubelet said {count} times: {line[:HEADLINE]} (the nodes' logs: {into})")


def _node_logs(name: str, run: Run) -> tuple[list[str], str]:
    """Every node's kubelet error lines (klog's header cut: the same error reads the same) and the text
    of the diagnostics file."""
    listed = run(["docker", "ps", "-a", "--filter", f"label={KIND_CLUSTER_LABEL}={name}", "--format", "{{.Names}}"],
                 capture_output=True, text=True, timeout=DOCKER_TIMEOUT, check=True)
    errors: list[str] = []
    sections = []
    for node in sorted(listed.stdout.split()):
        kubelet, containers = (
            run(["docker", "exec", node, "sh", "-c", script], capture_output=True, text=True, timeout=DOCKER_TIMEOUT)
            for script in (KUBELET_ERRORS, CONTAINER_LOGS)
        )
        lines = kubelet.stdout.splitlines()
        errors += [line.split("] ", 1)[-1] for line in lines]
        sections.append(
            f"### {node}: the kubelet's last errors\n" + "\n".join(lines[-SHOWN_ERRORS:])
            + f"\n### {node}: the end of each container's log\n{containers.stdout}{containers.stderr}"
        )
    return errors, "\n".join(sections) if sections else f"no node container of {name} left\n"
