"""What a Kubernetes object's state means: Ready or not, stuck for good, rolled out, in words.

Pure functions and constants on API objects (pods, nodes, DaemonSets, PV/claim phases): no
cluster, no waiting. The waits (clusterproof.wait) and the health read-out (clusterproof.health)
judge what they see with them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from kubernetes import client

# --- pods ----------------------------------------------------------------------------------

# container states that say nothing about a claim's own objects: the image cannot be had
IMAGE_REASONS = frozenset({"ErrImagePull", "ImagePullBackOff", "ErrImageNeverPull", "InvalidImageName"})
# Container states the kubelet only retries into the same failure: a pod showing one is never Ready
# (as upstream's pod waits, they end the wait at once).
FINAL_WAITING_REASONS = IMAGE_REASONS | frozenset({"CrashLoopBackOff", "CreateContainerConfigError"})
TERMINAL_PHASES = frozenset({"Succeeded", "Failed"})


def pod_is_ready(pod: client.V1Pod) -> bool:
    conditions = (pod.status.conditions if pod.status else None) or []
    return pod.metadata.deletion_timestamp is None and any(c.type == "Ready" and c.status == "True" for c in conditions)


def stuck_container(pod: client.V1Pod) -> str | None:
    """`container <name> <reason>: <message>` for a container waiting in a final reason, else None."""
    status = pod.status
    for s in [
        *((status.init_container_statuses or []) if status else []),
        *((status.container_statuses or []) if status else []),
    ]:
        waiting = s.state.waiting if s.state else None
        if waiting is not None and waiting.reason in FINAL_WAITING_REASONS:
            return f"container {s.name} {waiting.reason}" + (f": {waiting.message}" if waiting.message else "")
    return None


def never_ready(pod: client.V1Pod) -> str | None:
    """Why the pod can never become Ready, or None while it still may: a container stuck in a
    final reason, or a terminal phase (only for a pod no controller owns: a controller replaces a
    failed pod with a new one)."""
    name = pod.metadata.name
    stuck = stuck_container(pod)
    if stuck:
        return f"pod {name}: {stuck}"
    phase = pod.status.phase if pod.status else None
    owned = any(ref.controller for ref in pod.metadata.owner_references or [])
    if phase in TERMINAL_PHASES and not owned:
        why = " ".join(x for x in (pod.status.reason, pod.status.message) if x)
        return f"pod {name}: {phase}" + (f" ({why})" if why else "")
    return None


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


# --- volumes, nodes, DaemonSets ----------------------------------------------------------------

# phases an object does not leave by itself: PV Failed, claim Lost
FINAL_PHASES = frozenset({"Failed", "Lost"})


def node_is_ready(node: client.V1Node) -> bool:
    conditions = (node.status.conditions if node.status else None) or []
    return any(c.type == "Ready" and c.status == "True" for c in conditions)


def daemonset_processed(ds: client.V1DaemonSet) -> bool:
    """The DaemonSet controller has processed the DaemonSet at least once (it has a status.observedGeneration)."""
    return ds.status is not None and bool(ds.status.observed_generation)


def daemonset_rolled_out(ds: Any) -> bool:
    """The DaemonSet controller has seen the current spec and every pod it wants is Ready."""
    s = ds.status
    observed = s is not None and (s.observed_generation or 0) >= (ds.metadata.generation or 1)
    return observed and (s.number_ready or 0) == (s.desired_number_scheduled or 0)
