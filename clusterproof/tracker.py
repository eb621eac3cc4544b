"""What this run created and changed, and putting the cluster back: the one cleanup mechanism.

Every step that undoes something (delete an object or a namespace, restore a node label, remove
files on the nodes, free a node port) is registered here where the change is made, and steps run
latest first (LIFO), as upstream's framework runs its deferred cleanups: a step registered later
runs earlier. Steps belong to a scope:
- "test": the test's own (opened by the plugin around each test that uses a cluster), run when
  the test ends, after its failure diagnostics were taken. The test's namespace is registered
  first, so it is deleted last, after everything the test made or changed;
- "cluster": run when the cluster is let go (end of module or session), e.g. node labels shared
  by the tests of a module.
Whatever is still registered runs at the end of the session, and on SIGINT/SIGTERM/SIGHUP
(install_signal_cleanup); what a killed run could not undo, a later run sweeps (clusterproof.sweep).
Every step is idempotent (404 is success) and a failing step does not stop the others.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, Literal

from kubernetes.client import ApiException, V1DeleteOptions

from clusterproof import node_labels, stopping
from clusterproof.node_files import EMPTY_DIR, TREE, Entry, NodeFileRecord, removal_argv
from clusterproof.run import RUN_LABEL

if TYPE_CHECKING:
    from clusterproof.cluster import Cluster

log = logging.getLogger("clusterproof.tracker")
REQUEST_TIMEOUT = 15  # cleanup also runs from a signal handler: never wait on a hung API for long
OWNER_LABEL = "clusterproof.io/owner"

Scope = Literal["test", "cluster"]
Step = tuple[str, Callable[[], None]]  # (description, undo)


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
class _Steps:
    name: str
    steps: list[Step] = field(default_factory=list)  # in registration order; run reversed
    once: set[str] = field(default_factory=set)  # `once` keys of the steps above


@dataclass
class _ClusterRecord:
    cluster: Cluster
    # [0]: the cluster's own scope; after it the open test scopes, innermost last
    scopes: list[_Steps] = field(default_factory=lambda: [_Steps("cluster")])
    namespaces: set[str] = field(default_factory=set)  # registered, not yet deleted
    deleted: set[str] = field(default_factory=set)  # namespaces deleted (the final sweep skips them)
    node_files: NodeFileRecord | None = None  # made on the first node path declared


class ResourceTracker:
    def __init__(self, run_id: str, owner: str | None = None) -> None:
        self.run_id = run_id
        # xdist workers share the run id (and maybe the cluster): each sweeps only its own
        self.owner = owner or os.environ.get("PYTEST_XDIST_WORKER", "main")
        self._records: dict[str, _ClusterRecord] = {}
        self._lock = threading.RLock()

    @property
    def holder(self) -> str:
        """This process's name in shared leases (node labels): run id and xdist worker."""
        return f"{self.run_id}/{self.owner}"

    def _record(self, cluster: Cluster) -> _ClusterRecord:
        with self._lock:
            return self._records.setdefault(cluster.name, _ClusterRecord(cluster))

    # --- scopes ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def test_scope(self, cluster: Cluster, name: str) -> Iterator[None]:
        """Steps registered for `cluster` with scope "test" while this is open run when it closes."""
        with self._lock:
            record = self._record(cluster)
            opened = _Steps(name)
            record.scopes.append(opened)
        try:
            yield
        finally:
            for error in self._close(cluster, opened):
                log.warning("cleanup of %s: %s", name, error)

    def _close(self, cluster: Cluster, scope: _Steps) -> list[str]:
        with self._lock:
            record = self._records.get(cluster.name)
            # gone when a signal's cleanup already ran everything
            if record is None or scope not in record.scopes:
                return []
            record.scopes.remove(scope)
        return _collect_errors(list(reversed(scope.steps)))

    # --- recording ------------------------------------------------------------------------

    def on_cleanup(
        self,
        cluster: Cluster,
        description: str,
        undo: Callable[[], None],
        *,
        once: str | None = None,
        scope: Scope = "test",
    ) -> None:
        """Run `undo` at the end of the test (scope "test"; the cluster's scope when no test is
        open) or when the cluster is let go (scope "cluster"), latest first. It must tolerate
        having nothing to undo. With `once`, a step under the same key is recorded only the first
        time (until its scope ends)."""
        with self._lock:
            record = self._record(cluster)
            steps = record.scopes[-1] if scope == "test" else record.scopes[0]
            if once is not None:
                if once in steps.once:
                    return
                steps.once.add(once)
            steps.steps.append((description, undo))

    def register(self, cluster: Cluster, obj: dict[str, Any], *, namespaced: bool) -> None:
        """Something created: deleted at the end of the test (objects inside a registered
        namespace go with the namespace)."""
        meta = obj.get("metadata") or {}
        if obj["kind"] == "Namespace":
            self.register_namespace(cluster, meta["name"])
            return
        tracked = TrackedObject(
            obj["apiVersion"], obj["kind"], meta["name"], meta.get("namespace") if namespaced else None
        )
        with self._lock:
            if tracked.namespace in self._record(cluster).namespaces:
                return
            self.on_cleanup(cluster, f"delete {tracked}", _deleter(cluster, tracked))

    def register_namespace(self, cluster: Cluster, name: str) -> None:
        """A namespace made for the test: deleted (not waiting) when the test ends, after the
        steps registered later."""
        with self._lock:
            self._record(cluster).namespaces.add(name)
            self.on_cleanup(
                cluster, f"delete namespace {name}", lambda: self._delete_registered_namespace(cluster, name)
            )

    def label_node(self, cluster: Cluster, node: str, key: str, value: str | None) -> None:
        """Set (or remove, value=None) a node label while this process needs it; other processes
        may hold the same label at the same value (see clusterproof.node_labels). The value from
        before the first holder comes back when the last one lets the cluster go."""
        self.on_cleanup(
            cluster,
            f"release label {key} on node {node}",
            lambda: node_labels.release(cluster.core, node, key, self.holder),
            once=f"label {node} {key}",
            scope="cluster",
        )
        node_labels.take(cluster.core, node, key, value, self.holder)

    def node_path(self, cluster: Cluster, nodes: Iterable[str], path: str, *, tree: bool = True) -> None:
        """A path this process is about to write on `nodes` (tree: a file or directory, removed
        whole; else a directory removed only if empty): recorded on the cluster now, so a later
        run's sweep removes it should this one be killed (clusterproof.node_files), and removed
        when the test ends, after whatever is registered later. Call it before the write."""
        nodes = list(nodes)
        entry = Entry(path, TREE if tree else EMPTY_DIR)
        with self._lock:
            record = self._record(cluster)
            if record.node_files is None:
                record.node_files = NodeFileRecord(cluster.core, self.run_id, self.owner)
            files = record.node_files
        files.add(nodes, entry)
        for node in nodes:

            def undo(node: str = node) -> None:
                done = cluster.node_exec(node, *removal_argv([entry]), check=False, timeout=30)
                if done.returncode != 0:
                    raise RuntimeError(f"exit {done.returncode}: {done.stderr.strip()[:200]}")
                files.forget(node, entry)

            self.on_cleanup(cluster, f"remove {path} on node {node}", undo)

    # --- cleaning -------------------------------------------------------------------------

    def cleanup(self, cluster: Cluster | None = None) -> list[str]:
        """Undo everything recorded (for one cluster, or all): open test scopes first, then the
        cluster's, each latest first, then this run's namespaces still there. Returns the
        errors, also logged."""
        with self._lock:
            names = [cluster.name] if cluster is not None else list(self._records)
            records = [self._records.pop(n) for n in names if n in self._records]
        errors: list[str] = []
        for record in records:
            steps = [step for scope in reversed(record.scopes) for step in reversed(scope.steps)]
            errors += _collect_errors(steps)
            errors += _collect_errors(self._sweep(record))
        for error in errors:
            log.warning("cleanup: %s", error)
        return errors

    def forget(self, cluster: Cluster) -> None:
        """Drop the records of a cluster that is being deleted anyway."""
        with self._lock:
            self._records.pop(cluster.name, None)

    def _delete_registered_namespace(self, cluster: Cluster, name: str) -> None:
        delete_namespace(cluster, name)
        with self._lock:
            record = self._records.get(cluster.name)
            if record is not None:
                record.namespaces.discard(name)
                record.deleted.add(name)

    def _sweep(self, record: _ClusterRecord) -> list[Step]:
        """This run's namespaces (of this process) that no step deleted: left by a crash."""
        cluster = record.cluster
        labelled = _run_namespaces(cluster, f"{RUN_LABEL}={self.run_id},{OWNER_LABEL}={self.owner}")
        return [
            (f"delete namespace {name}", _namespace_deleter(cluster, name))
            for name in labelled
            if name not in record.deleted
        ]


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
    return lambda: delete_namespace(cluster, name)


def delete_namespace(cluster: Cluster, name: str) -> None:
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


# --- signals -------------------------------------------------------------------------------

ECHO_SECONDS = 2.0  # signals this soon after the first are the same stop arriving by another way


def install_signal_cleanup(
    cleanup: Callable[[], object],
    *,
    hangup_log: Path | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> Callable[[], None]:
    """SIGINT/SIGTERM/SIGHUP: run `cleanup`, then let pytest unwind (its fixture finalizers delete
    clusters): KeyboardInterrupt for SIGINT, stopping.Stopped (a KeyboardInterrupt too, whose exit
    status is 128 + signal) otherwise: no `except Exception` on the way swallows either.

    SIGHUP means nobody reads our output any more (the terminal closed, or our parent - tox - died:
    see clusterproof.stopping, asked for here when CLUSTERPROOF_STOP_WITH_PARENT=1): the output
    goes to `hangup_log` first, whenever SIGHUP comes. Signals within ECHO_SECONDS of the first
    are that same stop arriving by several ways (a terminal's Ctrl-C reaches pytest and tox, and
    tox hands it on at once, twice; `timeout` signals the whole group and tox's death adds SIGHUP):
    ignored. A later signal (SIGHUP aside) acts as if no handler were installed: a second Ctrl-C,
    or tox's SIGTERM after its interrupt_timeout, stops at once. Returns a function that restores
    the previous handlers. Only in the main thread (signal handlers cannot be set elsewhere)."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = {s: signal.getsignal(s) for s in stopping.STOP_SIGNALS}
    first: list[tuple[int, float]] = []  # the stop under way: (signal, when)

    def restore() -> None:
        for signum, handler in previous.items():
            signal.signal(signum, handler)

    def handler(signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if signum == signal.SIGHUP:
            stopping.divert_output(hangup_log)
        if first:
            if signum == signal.SIGHUP or clock() - first[0][1] < ECHO_SECONDS:
                return
            restore()
            _as_if_unhandled(signum, previous[signum], frame)
            return
        first.append((signum, clock()))
        log.warning("signal %s: cleaning up", name)
        cleanup()
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise stopping.Stopped(signum)

    for signum in previous:
        signal.signal(signum, handler)
    stopping.stop_with_parent()
    return restore


def _as_if_unhandled(signum: int, previous: Any, frame: FrameType | None) -> None:
    if callable(previous):  # Python's own SIGINT handler: KeyboardInterrupt
        previous(signum, frame)
    elif previous != signal.SIG_IGN:  # the default action: for SIGINT/SIGTERM, the end of the process
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
