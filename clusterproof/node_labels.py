"""Node labels several processes may need at once, held as leases in the node's own annotations.

xdist workers and other runs can need one label on one node at the same time (the PV claims'
`node=node1`). Each process takes the label under its holder id; the annotation
`clusterproof.io/label-leases` records, per label key, the value held, who holds it and the value
from before the first holder. The last holder to release puts that value back. Every change is
computed from the node as read and carries that resourceVersion: a concurrent change (409) makes
it read and compute again.
"""

from __future__ import annotations

import json
from typing import Any

from kubernetes import client

from clusterproof.errors import ClusterproofError

LEASES_ANNOTATION = "clusterproof.io/label-leases"
REQUEST_TIMEOUT = 15
CONFLICT_RETRIES = 10

Leases = dict[str, dict[str, Any]]  # key -> {"value": str | None, "before": str | None, "holders": [str]}


class LabelConflict(ClusterproofError):
    """Another holder keeps the label at another value."""


def take(core: client.CoreV1Api, node: str, key: str, value: str | None, holder: str) -> None:
    """Set label `key` to `value` (None: removed) on `node` for `holder`, recording the lease."""
    _update(core, node, lambda labels, leases: taken(labels, leases, node, key, value, holder))


def release(core: client.CoreV1Api, node: str, key: str, holder: str) -> None:
    """Drop `holder`'s lease; the last holder out restores the value from before the first."""
    _update(core, node, lambda labels, leases: released(leases, key, holder))


def taken(
    labels: dict[str, str], leases: Leases, node: str, key: str, value: str | None, holder: str
) -> tuple[dict[str, str | None], Leases]:
    """The label patch and the leases after `holder` takes `key=value`."""
    lease = leases.get(key)
    if lease is None:
        lease = {"value": value, "before": labels.get(key), "holders": []}
    others = [h for h in lease["holders"] if h != holder]
    if others and lease["value"] != value:
        raise LabelConflict(
            f"node {node}: label {key} is held at {lease['value']!r} by {others}; cannot set it to {value!r}"
        )
    lease = {**lease, "value": value, "holders": sorted({*lease["holders"], holder})}
    return {key: value}, {**leases, key: lease}


def released(leases: Leases, key: str, holder: str) -> tuple[dict[str, str | None], Leases]:
    """The label patch and the leases after `holder` lets go of `key` (nothing to do if not held)."""
    lease = leases.get(key)
    if lease is None or holder not in lease["holders"]:
        return {}, leases
    holders = [h for h in lease["holders"] if h != holder]
    if holders:
        return {}, {**leases, key: {**lease, "holders": holders}}
    rest = {k: v for k, v in leases.items() if k != key}
    return {key: lease["before"]}, rest


def _update(core: client.CoreV1Api, node: str, change: Any) -> None:
    for _ in range(CONFLICT_RETRIES):
        meta = core.read_node(node, _request_timeout=REQUEST_TIMEOUT).metadata
        labels, leases = change(dict(meta.labels or {}), leases_in(meta.annotations or {}))
        annotation = json.dumps(leases, sort_keys=True) if leases else None
        body = {
            "metadata": {
                "resourceVersion": meta.resource_version,
                "labels": labels,
                "annotations": {LEASES_ANNOTATION: annotation},
            }
        }
        try:
            core.patch_node(node, body, _request_timeout=REQUEST_TIMEOUT)
            return
        except client.ApiException as e:
            if e.status != 409:
                raise
    raise ClusterproofError(f"node {node}: its labels kept changing under us ({CONFLICT_RETRIES} conflicts)")


def leases_in(annotations: dict[str, str]) -> Leases:
    """The leases a node's annotations hold (none if the annotation is missing or not ours)."""
    text = annotations.get(LEASES_ANNOTATION)
    try:
        leases = json.loads(text) if text else {}
    except ValueError:
        return {}
    return leases if isinstance(leases, dict) else {}
