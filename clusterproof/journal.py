"""Changes to a Service the run did not create, journaled on the cluster before they are made.

A test that must change someone else's object (ING-02 patches the ingress controller's Service,
opted in with --allow-disruptive) first writes what puts it back: a merge patch of the Service's
spec, in a ConfigMap of the runs' own namespace (`clusterproof-runs`, never swept), labelled with
the run and `clusterproof.io/journal`. Its name derives from the Service alone, so creating it is
the lock: a second run finds it there and is refused, naming the run that holds it. The run restores
the Service and deletes the entry when its change ends; after a kill, the sweep of a later run (or
`python -m clusterproof.sweep`) does it, once the holder is judged dead.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from kubernetes import client

from clusterproof.api_answers import unless_missing
from clusterproof.errors import ClusterproofError
from clusterproof.run import RUN_LABEL, hash_of
from clusterproof.run_records import RECORDS_NAMESPACE, ensure_records_namespace

JOURNAL_LABEL = "clusterproof.io/journal"
REQUEST_TIMEOUT = 15
MERGE_PATCH = "application/merge-patch+json"


class Held(ClusterproofError):
    """Another run holds the journal of this Service: its change is under way, not to be stacked on."""


@dataclass(frozen=True)
class Entry:
    """What puts Service `namespace/name` back: `restore`, a merge patch of its spec (None: a field
    that was not set), written by `run_id`."""

    run_id: str
    namespace: str
    name: str
    restore: dict[str, Any]

    @property
    def config_map(self) -> str:
        return config_map_name(self.namespace, self.name)

    def describe(self) -> str:
        return f"the spec of Service {self.namespace}/{self.name} ({', '.join(sorted(self.restore))})"


def config_map_name(namespace: str, name: str) -> str:
    return f"journal-service-{hash_of(f'{namespace}/{name}', 12)}"


def hold(core: client.CoreV1Api, entry: Entry) -> None:
    """Journal `entry` before its change: Held when another run's entry is there (naming that run)."""
    ensure_records_namespace(core)
    body = {
        "metadata": {
            "name": entry.config_map,
            "labels": {RUN_LABEL: entry.run_id, JOURNAL_LABEL: "service"},
        },
        "data": {"service": f"{entry.namespace}/{entry.name}", "restore": json.dumps(entry.restore, sort_keys=True)},
    }
    try:
        core.create_namespaced_config_map(RECORDS_NAMESPACE, body, _request_timeout=REQUEST_TIMEOUT)
    except client.ApiException as e:
        if e.status != 409:
            raise
        there = unless_missing(
            lambda: core.read_namespaced_config_map(
                entry.config_map, RECORDS_NAMESPACE, _request_timeout=REQUEST_TIMEOUT
            )
        )
        holder = ((there.metadata.labels or {}).get(RUN_LABEL) if there is not None else None) or "?"
        if holder == entry.run_id:
            return
        raise Held(
            f"Service {entry.namespace}/{entry.name} is being changed by run {holder}: its original spec is "
            f"journaled in ConfigMap {RECORDS_NAMESPACE}/{entry.config_map} until that run puts it back (or, "
            "once that run is dead, a sweep does)"
        ) from None


def restore(core: client.CoreV1Api, entry: Entry) -> None:
    """Put the Service's spec back and drop the entry (a Service gone meanwhile needs nothing)."""
    unless_missing(
        lambda: core.patch_namespaced_service(
            entry.name,
            entry.namespace,
            {"spec": entry.restore},
            _content_type=MERGE_PATCH,
            _request_timeout=REQUEST_TIMEOUT,
        )
    )
    unless_missing(
        lambda: core.delete_namespaced_config_map(entry.config_map, RECORDS_NAMESPACE, _request_timeout=REQUEST_TIMEOUT)
    )


def entries(core: client.CoreV1Api) -> list[tuple[Entry, Any]]:
    """Every journal entry on the cluster, with its ConfigMap (for its labels and age)."""
    listed = unless_missing(
        lambda: core.list_namespaced_config_map(
            RECORDS_NAMESPACE, label_selector=JOURNAL_LABEL, _request_timeout=REQUEST_TIMEOUT
        )
    )
    found = []
    for cm in listed.items if listed is not None else []:
        data, labels = cm.data or {}, cm.metadata.labels or {}
        namespace, _, name = (data.get("service") or "").partition("/")
        try:
            restore_patch = json.loads(data.get("restore") or "")
        except ValueError:
            continue
        if labels.get(RUN_LABEL) and namespace and name and isinstance(restore_patch, dict):
            found.append((Entry(labels[RUN_LABEL], namespace, name, restore_patch), cm))
    return found
