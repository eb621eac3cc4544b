"""Files a run writes on the nodes: named after the run, recorded on the cluster before they are
written, and removed by the run's cleanup or, after a kill, by a later run's sweep.

- Names: a run writes under its own directory `/tmp/clusterproof-<run id>` (`node_dir`), or at a
  path one of whose parts is `node_name(run_id, ...)` (`clusterproof-<run id>-<hash>`: a marker in
  /var/log, a file under the notes' /node-v), or makes an empty directory the notes name (/node-v).
- Record: one ConfigMap per process and cluster in the run records' namespace (`clusterproof-runs`),
  `node-files-<run key>`, labelled with the run id: node name -> the JSON list of entries
  `[path, how]` in the order they were declared (how: "tree", removed with `rm -rf`; "empty-dir",
  removed by `rmdir` only when empty). The process is its only writer: it keeps the data and
  replaces the object; an entry goes once its removal succeeded, the object with its last entry.
- Removal (the run's cleanup and the sweep alike: `removal_argv`): latest first.

The sweep trusts a record only as far as the names go (`sweepable`): a tree is removed only if a
part of its path is the run's own name, so a ConfigMap written by hand cannot make a sweep
`rm -rf` anything else; an empty directory anywhere is removed (rmdir removes nothing more).
"""

from __future__ import annotations

import json
import posixpath
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kubernetes import client

from clusterproof.api_answers import unless_missing
from clusterproof.run import RUN_LABEL, hash_of, is_valid_run_id, slug
from clusterproof.run_records import RECORDS_NAMESPACE, REGISTRY_LABEL, REQUEST_TIMEOUT, ensure_records_namespace

RECORD_KIND = "node-files"  # the registry label's value on these ConfigMaps
TREE = "tree"
EMPTY_DIR = "empty-dir"


def node_dir(run_id: str) -> str:
    """The run's own directory on every node."""
    return f"/tmp/clusterproof-{run_id}"


def node_name(run_id: str, what: str) -> str:
    """A file or directory name of the run's own, outside its directory: `clusterproof-<run id>-<hash of what>`."""
    return f"clusterproof-{run_id}-{hash_of(what, 6)}"


@dataclass(frozen=True)
class Entry:
    path: str
    how: str = TREE  # TREE | EMPTY_DIR

    def to_json(self) -> list[str]:
        return [self.path, self.how]


def sweepable(entry: Entry, run_id: str) -> str | None:
    """None when a sweep may remove `entry` for run `run_id`, else why not."""
    path = entry.path
    if not path.startswith("/") or posixpath.normpath(path) != path or any(c in path for c in "\0\n"):
        return f"{path!r} is not a plain absolute path"
    if entry.how == EMPTY_DIR:
        return None
    if entry.how != TREE:
        return f"{path}: unknown removal {entry.how!r}"
    own = f"clusterproof-{run_id}"
    if any(part == own or part.startswith((f"{own}-", f"{own}.")) for part in path.split("/")):
        return None
    return f"{path} is not named after run {run_id} ({own}...): not removed"


def removal_argv(entries: Sequence[Entry]) -> list[str]:
    """argv (for node exec) removing `entries` on a node, the last declared first; exits non-zero
    if a tree could not be removed (an empty directory that is not empty is left, as meant)."""
    script = (
        'status=0; for e; do case "$e" in '
        f'{TREE}:*) rm -rf -- "${{e#{TREE}:}}" || status=1;; '
        f'{EMPTY_DIR}:*) rmdir -- "${{e#{EMPTY_DIR}:}}" 2>/dev/null || true;; '
        'esac; done; exit $status'
    )
    return ["sh", "-c", script, "sh", *(f"{e.how}:{e.path}" for e in reversed(entries))]


def record_name(run_id: str, owner: str) -> str:
    key = f"{run_id}.{owner}"
    return f"{RECORD_KIND}-{slug(key, 200)}-{hash_of(key, 6)}"


def entries_of(data: Mapping[str, str] | None) -> dict[str, list[Entry]]:
    """A record's data, read: node -> entries (what is not an entry is dropped)."""
    found: dict[str, list[Entry]] = {}
    for node, text in (data or {}).items():
        try:
            items = json.loads(text)
        except ValueError:
            continue
        entries = [Entry(i[0], i[1]) for i in items if isinstance(i, list) and len(i) == 2 and all(
            isinstance(x, str) for x in i)] if isinstance(items, list) else []
        if entries:
            found[node] = entries
    return found


def record_run_id(config_map: Any) -> str | None:
    """The run a record belongs to (its label), if it is a valid run id."""
    run_id = (config_map.metadata.labels or {}).get(RUN_LABEL) or ""
    return run_id if is_valid_run_id(run_id) else None


class NodeFileRecord:
    """This process's record of its node files on one cluster (see the module's docstring).
    `core`: a CoreV1Api (or a fake)."""

    def __init__(self, core: Any, run_id: str, owner: str) -> None:
        self.core = core
        self.run_id = run_id
        self.name = record_name(run_id, owner)
        self._entries: dict[str, list[Entry]] = {}
        self._lock = threading.Lock()
        self._exists = False

    def add(self, nodes: Iterable[str], entry: Entry) -> None:
        """Before anything is written at entry.path on `nodes`: recorded on the cluster."""
        with self._lock:
            for node in nodes:
                listed = self._entries.setdefault(node, [])
                if entry not in listed:
                    listed.append(entry)
            self._write()

    def forget(self, node: str, entry: Entry) -> None:
        """After entry.path was removed from `node`."""
        with self._lock:
            listed = self._entries.get(node, [])
            if entry not in listed:
                return
            listed.remove(entry)
            if not listed:
                del self._entries[node]
            self._write()

    def _write(self) -> None:
        if not self._entries:
            if self._exists:
                unless_missing(
                    lambda: self.core.delete_namespaced_config_map(
                        self.name, RECORDS_NAMESPACE, _request_timeout=REQUEST_TIMEOUT
                    )
                )
                self._exists = False
            return
        body = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": self.name,
                "labels": {REGISTRY_LABEL: RECORD_KIND, RUN_LABEL: self.run_id},
            },
            "data": {node: json.dumps([e.to_json() for e in entries]) for node, entries in self._entries.items()},
        }
        if self._exists:
            replaced = unless_missing(
                lambda: self.core.replace_namespaced_config_map(
                    self.name, RECORDS_NAMESPACE, body, _request_timeout=REQUEST_TIMEOUT
                )
            )
            if replaced is not None:
                return
        ensure_records_namespace(self.core)
        try:
            self.core.create_namespaced_config_map(RECORDS_NAMESPACE, body, _request_timeout=REQUEST_TIMEOUT)
        except client.ApiException as e:
            if e.status != 409:
                raise
            self.core.replace_namespaced_config_map(
                self.name, RECORDS_NAMESPACE, body, _request_timeout=REQUEST_TIMEOUT
            )
        self._exists = True


def list_records(core: Any) -> list[Any]:
    """Every run's node-file records on the cluster (ConfigMaps)."""
    listed = unless_missing(
        lambda: core.list_namespaced_config_map(
            RECORDS_NAMESPACE, label_selector=f"{REGISTRY_LABEL}={RECORD_KIND}", _request_timeout=REQUEST_TIMEOUT
        )
    )
    found = listed.items if listed is not None else []
    return [cm for cm in found if (cm.metadata.labels or {}).get(REGISTRY_LABEL) == RECORD_KIND]


def drop_node(core: Any, name: str, node: str) -> None:
    """A sweep removed `node`'s entries of record `name`: drop them, and the record with the last."""
    patched = unless_missing(
        lambda: core.patch_namespaced_config_map(
            name, RECORDS_NAMESPACE, {"data": {node: None}}, _request_timeout=REQUEST_TIMEOUT
        )
    )
    if patched is not None and not patched.data:
        unless_missing(
            lambda: core.delete_namespaced_config_map(name, RECORDS_NAMESPACE, _request_timeout=REQUEST_TIMEOUT)
        )
