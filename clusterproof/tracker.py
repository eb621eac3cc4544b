"""What this run created, and putting the cluster back: at the end of a test or module, at the
end of the session, and on SIGINT/SIGTERM. Every step is idempotent (404 is success)."""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from types import FrameType
from typing import TYPE_CHECKING, Any

import pytest
from kubernetes.client import ApiException, V1DeleteOptions

from clusterproof.run import RUN_LABEL

if TYPE_CHECKING:
    from clusterproof.cluster import Cluster

log = logging.getLogger("clusterproof.tracker")
REQUEST_TIMEOUT = 15  # cleanup also runs from a signal handler: never wait on a hung API for long


@dataclass(frozen=True)
class TrackedObject:
    api_version: str
    kind: str
    name: str
    namespace: str | None

    def __str__(self) -> str:
        where = f"{self.namespace}/" if self.namespace else ""
        return f"{self.kind} {where}{self.name}"


@dataclass
class _ClusterRecord:
    cluster: Cluster
    objects: list[TrackedObject] = field(default_factory=list)
    namespaces: list[str] = field(default_factory=list)
    # LIFO undo steps (node labels restored, ...): (description, fn)
    undo: list[tuple[str, Callable[[], None]]] = field(default_factory=list)
    undo_keys: set[str] = field(default_factory=set)  # `once` keys of the steps above


OWNER_LABEL = "clusterproof.io/owner"


class ResourceTracker:
    def __init__(self, run_id: str, owner: str | None = None) -> None:
        self.run_id = run_id
        # xdist workers share the run id (and maybe the cluster): each sweeps only its own
        self.owner = owner or os.environ.get("PYTEST_XDIST_WORKER", "main")
        self._records: dict[str, _ClusterRecord] = {}
        self._lock = threading.RLock()

    def _record(self, cluster: Cluster) -> _ClusterRecord:
        with self._lock:
            return self._records.setdefault(cluster.name, _ClusterRecord(cluster))

    # --- recording ------------------------------------------------------------------------

    def register(self, cluster: Cluster, obj: dict[str, Any], *, namespaced: bool) -> None:
        meta = obj.get("metadata") or {}
        tracked = TrackedObject(
            obj["apiVersion"], obj["kind"], meta["name"], meta.get("namespace") if namespaced else None
        )
        with self._lock:
            record = self._record(cluster)
            if obj["kind"] == "Namespace":
                record.namespaces.append(meta["name"])
            else:
                record.objects.append(tracked)

    def register_namespace(self, cluster: Cluster, name: str) -> None:
        with self._lock:
            self._record(cluster).namespaces.append(name)

    def on_cleanup(
        self, cluster: Cluster, description: str, undo: Callable[[], None], *, once: str | None = None
    ) -> None:
        """Run `undo` at cleanup (latest first); it must tolerate having nothing to undo. With
        `once`, a step under the same key is recorded only the first time (until cleanup)."""
        with self._lock:
            record = self._record(cluster)
            if once is not None:
                if once in record.undo_keys:
                    return
                record.undo_keys.add(once)
            record.undo.append((description, undo))

    def label_node(self, cluster: Cluster, node: str, key: str, value: str | None) -> None:
        """Set (or remove, value=None) a node label; the original value comes back at cleanup."""
        once = f"label {node} {key}"
        with self._lock:
            if once not in self._record(cluster).undo_keys:  # the value from before the first change
                original = (cluster.core.read_node(node).metadata.labels or {}).get(key)
                self.on_cleanup(
                    cluster,
                    f"restore label {key} on node {node}",
                    lambda: _patch_node_label(cluster, node, key, original),
                    once=once,
                )
        _patch_node_label(cluster, node, key, value)

    # --- cleaning -------------------------------------------------------------------------

    def release_namespace(self, cluster: Cluster, name: str) -> list[str]:
        """Delete one namespace (not waiting) and forget it and what was recorded inside."""
        with self._lock:
            record = self._record(cluster)
            record.namespaces = [n for n in record.namespaces if n != name]
            record.objects = [o for o in record.objects if o.namespace != name]
        return _collect_errors([("delete namespace " + name, lambda: _delete_namespace(cluster, name))])

    def cleanup(self, cluster: Cluster | None = None) -> list[str]:
        """Undo everything recorded (for one cluster, or all); returns the errors, also logged."""
        with self._lock:
            names = [cluster.name] if cluster is not None else list(self._records)
            records = [self._records.pop(n) for n in names if n in self._records]
        errors: list[str] = []
        for record in records:
            errors += _collect_errors(self._steps(record))
        for error in errors:
            log.warning("cleanup: %s", error)
        return errors

    def forget(self, cluster: Cluster) -> None:
        """Drop the records of a cluster that is being deleted anyway."""
        with self._lock:
            self._records.pop(cluster.name, None)

    def _steps(self, record: _ClusterRecord) -> list[tuple[str, Callable[[], None]]]:
        cluster = record.cluster
        steps = list(reversed(record.undo))
        namespaces = set(record.namespaces)
        for obj in reversed(record.objects):
            if obj.namespace is None or obj.namespace not in namespaces:
                steps.append((f"delete {obj}", _deleter(cluster, obj)))
        labelled = _run_namespaces(cluster, f"{RUN_LABEL}={self.run_id},{OWNER_LABEL}={self.owner}")
        for name in dict.fromkeys([*record.namespaces, *labelled]):
            steps.append((f"delete namespace {name}", _namespace_deleter(cluster, name)))
        return steps


def _collect_errors(steps: list[tuple[str, Callable[[], None]]]) -> list[str]:
    errors = []
    for description, step in steps:
        try:
            step()
        except ApiException as e:
            if e.status != 404:
                errors.append(f"{description}: HTTP {e.status} {e.reason}")
        except Exception as e:  # cleanup goes on whatever one step does
            errors.append(f"{description}: {type(e).__name__}: {e}")
    return errors


def _deleter(cluster: Cluster, obj: TrackedObject) -> Callable[[], None]:
    def delete() -> None:
        resource = cluster.dynamic.resources.get(api_version=obj.api_version, kind=obj.kind)
        resource.delete(
            name=obj.name,
            namespace=obj.namespace,
            body={"propagationPolicy": "Background"},
            _request_timeout=REQUEST_TIMEOUT,
        )

    return delete


def _namespace_deleter(cluster: Cluster, name: str) -> Callable[[], None]:
    return lambda: _delete_namespace(cluster, name)


def _delete_namespace(cluster: Cluster, name: str) -> None:
    # Test servers run as PID 1 and ignore SIGTERM: without this every namespace would
    # wait out the 30 s grace period, holding node ports and cluster-wide names meanwhile.
    cluster.core.delete_collection_namespaced_pod(
        name, grace_period_seconds=0, propagation_policy="Background", _request_timeout=REQUEST_TIMEOUT
    )
    cluster.core.delete_namespace(
        name, body=V1DeleteOptions(propagation_policy="Background"), _request_timeout=REQUEST_TIMEOUT
    )


def _run_namespaces(cluster: Cluster, selector: str) -> list[str]:
    try:
        found = cluster.core.list_namespace(label_selector=selector, _request_timeout=REQUEST_TIMEOUT)
    except Exception as e:
        log.warning("cleanup: cannot list this run's namespaces: %s", type(e).__name__)
        return []
    return [ns.metadata.name for ns in found.items if ns.status.phase != "Terminating"]


def _patch_node_label(cluster: Cluster, node: str, key: str, value: str | None) -> None:
    cluster.core.patch_node(node, {"metadata": {"labels": {key: value}}}, _request_timeout=REQUEST_TIMEOUT)


# --- signals -------------------------------------------------------------------------------


def install_signal_cleanup(cleanup: Callable[[], object]) -> Callable[[], None]:
    """SIGINT/SIGTERM: run `cleanup`, then let pytest unwind (its fixture finalizers delete
    clusters): KeyboardInterrupt for SIGINT, pytest.exit(143) for SIGTERM. A second signal
    during cleanup acts as if no handler were installed. Returns a function that restores the
    previous handlers. Only in the main thread (signal handlers cannot be set elsewhere)."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}

    def restore() -> None:
        for signum, handler in previous.items():
            signal.signal(signum, handler)

    def handler(signum: int, frame: FrameType | None) -> None:
        restore()
        log.warning("signal %s: cleaning up", signal.Signals(signum).name)
        cleanup()
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        pytest.exit(f"{signal.Signals(signum).name} received: cleaned up", returncode=128 + signum)

    for signum in previous:
        signal.signal(signum, handler)
    return restore
