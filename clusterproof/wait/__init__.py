"""Waiting with deadlines (clusterproof.wait.engine) and the waits on Kubernetes objects built on it
(clusterproof.wait.objects): `from clusterproof import wait` gives both, as `wait.until`,
`wait.pods_ready`.
"""

from clusterproof.errors import WaitGaveUp, WaitTimeout
from clusterproof.wait.engine import (
    DEFAULT_TIMEOUT,
    Hint,
    Never,
    WatchFailed,
    hint_text,
    is_not_yet,
    last_seen,
    seen_within,
    until,
    until_seen,
    watch_until,
)
from clusterproof.wait.objects import (
    daemonsets_ready,
    deployment_available,
    failed_create,
    gone,
    nodes_ready,
    pod_phase,
    pod_ready,
    pods_ready,
    pv_phase,
    pvc_phase,
)

__all__ = [
    "DEFAULT_TIMEOUT",
    "Hint",
    "WaitGaveUp",
    "WaitTimeout",
    "Never",
    "WatchFailed",
    "daemonsets_ready",
    "deployment_available",
    "failed_create",
    "gone",
    "hint_text",
    "is_not_yet",
    "last_seen",
    "nodes_ready",
    "pod_phase",
    "pod_ready",
    "pods_ready",
    "pv_phase",
    "pvc_phase",
    "seen_within",
    "until",
    "until_seen",
    "watch_until",
]
