"""Where a run records itself (clusterproof.liveness.RunRecord) for later runs to judge.

- On the host: one JSON file per process, `<registry>/<run id>.<owner>.json`; the registry is
  $CLUSTERPROOF_RUNS_REGISTRY, else $XDG_CACHE_HOME/clusterproof/runs, else
  ~/.cache/clusterproof/runs: one per user and host, whatever the checkout (kind clusters are the
  host's). Rewritten at every heartbeat; `ended` set when the process finishes.
- On each cluster the run uses: a Lease (coordination.k8s.io/v1, Kubernetes' own object for "held
  while renewed") per process in the namespace `clusterproof-runs`: spec.renewTime is the
  heartbeat, spec.leaseDurationSeconds the staleness limit, the annotation
  `clusterproof.io/run-record` the record. The namespace carries no run label: never swept.

A later run reads both (a record on the host wins: it can be checked against the process table).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, Protocol

from kubernetes import client

from clusterproof.api_answers import unless_missing
from clusterproof.liveness import HEARTBEAT_EVERY, STALE_AFTER, RunRecord
from clusterproof.run import RUN_LABEL, hash_of, slug

log = logging.getLogger("clusterproof.run_records")

REGISTRY_ENV = "CLUSTERPROOF_RUNS_REGISTRY"
RECORDS_NAMESPACE = "clusterproof-runs"
REGISTRY_LABEL = "clusterproof.io/registry"  # on the records' namespace and Leases
RECORD_ANNOTATION = "clusterproof.io/run-record"
REQUEST_TIMEOUT = 10


def registry_dir(env: Mapping[str, str] = os.environ) -> Path:
    if env.get(REGISTRY_ENV):
        return Path(env[REGISTRY_ENV]).expanduser()
    cache = Path(env["XDG_CACHE_HOME"]).expanduser() if env.get("XDG_CACHE_HOME") else Path.home() / ".cache"
    return cache / "clusterproof" / "runs"


def write_whole(target: Path, text: str) -> None:
    """Write a file readers never see half of (a temporary file renamed over it)."""
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    temporary.write_text(text + "\n")
    os.replace(temporary, target)


class HostRegistry:
    """The records of this host's runs: files in one directory (0700)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _file(self, record: RunRecord) -> Path:
        return self.path / f"{slug(record.key, 150) or 'run'}-{hash_of(record.key, 6)}.json"

    def write(self, record: RunRecord) -> None:
        self.path.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_whole(self._file(record), record.to_json())

    def records(self) -> list[RunRecord]:
        found = []
        for path in sorted(self.path.glob("*.json")) if self.path.is_dir() else []:
            with contextlib.suppress(OSError):
                record = RunRecord.from_json(path.read_text())
                if record is not None:
                    found.append(record)
        return found

    def remove(self, record: RunRecord) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._file(record).unlink()

    @contextlib.contextmanager
    def sweeping(self) -> Iterator[None]:
        """One sweep of this host at a time (xdist workers start together)."""
        self.path.mkdir(parents=True, exist_ok=True, mode=0o700)
        with open(self.path / ".sweep.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield


class CoordinationApi(Protocol):  # kubernetes.client.CoordinationV1Api, or a fake
    def create_namespaced_lease(self, namespace: str, body: Any, **kw: Any) -> Any: ...
    def patch_namespaced_lease(self, name: str, namespace: str, body: Any, **kw: Any) -> Any: ...
    def list_namespaced_lease_with_http_info(self, namespace: str, **kw: Any) -> Any: ...
    def delete_namespaced_lease(self, name: str, namespace: str, **kw: Any) -> Any: ...


def lease_name(record: RunRecord) -> str:
    return f"run-{slug(record.key, 200)}-{hash_of(record.key, 6)}"


def micro_time(when: float) -> str:
    return datetime.fromtimestamp(when, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class ClusterRecords:
    """The run records (Leases) on one cluster. `core` creates their namespace when needed.

    A record read here is judged by the API server's clock, never the writer's or the reader's: its
    heartbeat is when the server last stored a renewal (the Lease's managedFields time, which the
    server sets when a manager changes a field's value: renewTime changes at every heartbeat; else
    spec.renewTime), moved into the reader's clock by the server's time of the answer (its Date
    header) against the reader's. A sweeper whose clock runs minutes ahead does not take a live
    run for dead."""

    def __init__(
        self, name: str, core: Any, coordination: CoordinationApi, clock: Callable[[], float] = time.time
    ) -> None:
        self.name = name
        self.core = core
        self.coordination = coordination
        self.clock = clock

    @classmethod
    def for_cluster(cls, cluster: Any) -> ClusterRecords:
        """On a client of its own: the heartbeat outlives the cluster's client (closed at release)."""
        from kubernetes import config

        api = config.new_client_from_config(
            config_file=str(cluster.kubeconfig), context=cluster.context, persist_config=False
        )
        return cls(cluster.name, client.CoreV1Api(api), client.CoordinationV1Api(api))

    def _body(self, record: RunRecord) -> dict[str, Any]:
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {
                "name": lease_name(record),
                "labels": {REGISTRY_LABEL: "run", RUN_LABEL: record.run_id},
                "annotations": {RECORD_ANNOTATION: record.to_json()},
            },
            "spec": {
                "holderIdentity": f"{record.machine.host}/{record.pid}",
                "leaseDurationSeconds": STALE_AFTER,
                "acquireTime": micro_time(record.started),
                "renewTime": micro_time(record.heartbeat),
            },
        }

    def write(self, record: RunRecord) -> None:
        """Create or update the record (and the namespace)."""
        body = self._body(record)
        try:
            self.coordination.patch_namespaced_lease(
                lease_name(record), RECORDS_NAMESPACE, body, _request_timeout=REQUEST_TIMEOUT
            )
            return
        except client.ApiException as e:
            if e.status != 404:
                raise
        self._ensure_namespace()
        try:
            self.coordination.create_namespaced_lease(RECORDS_NAMESPACE, body, _request_timeout=REQUEST_TIMEOUT)
        except client.ApiException as e:
            if e.status != 409:  # written meanwhile by ourselves (another thread): fine
                raise

    def _ensure_namespace(self) -> None:
        ensure_records_namespace(self.core)

    def records(self) -> list[RunRecord]:
        asked = self.clock()
        listed = unless_missing(
            lambda: self.coordination.list_namespaced_lease_with_http_info(
                RECORDS_NAMESPACE, label_selector=f"{REGISTRY_LABEL}=run", _request_timeout=REQUEST_TIMEOUT
            )
        )
        if listed is None:
            return []
        leases, _, headers = listed
        local = (asked + self.clock()) / 2  # when the server answered, by the reader's clock
        server_ahead = server_time(headers, local) - local
        found = []
        for lease in leases.items:
            text = (lease.metadata.annotations or {}).get(RECORD_ANNOTATION)
            record = RunRecord.from_json(text) if text else None
            if record is None:
                continue
            renewed = stored_at(lease)
            if renewed is not None:  # in the reader's clock
                record = replace(record, heartbeat=renewed - server_ahead)
            found.append(record)
        return found

    def remove(self, record: RunRecord) -> None:
        unless_missing(
            lambda: self.coordination.delete_namespaced_lease(
                lease_name(record), RECORDS_NAMESPACE, _request_timeout=REQUEST_TIMEOUT
            )
        )


def ensure_records_namespace(core: Any) -> None:
    """The namespace of the runs' records (and journals), made when missing; never swept."""
    body = {"metadata": {"name": RECORDS_NAMESPACE, "labels": {REGISTRY_LABEL: "runs"}}}
    try:
        core.create_namespace(body, _request_timeout=REQUEST_TIMEOUT)
    except client.ApiException as e:
        if e.status != 409:
            raise


def server_time(headers: Mapping[str, str] | None, default: float) -> float:
    """The API server's time of an answer (its Date header, to the second); `default` without one."""
    date = next((v for k, v in (headers or {}).items() if k.lower() == "date"), None)
    try:
        return parsedate_to_datetime(date).timestamp() if date else default
    except (TypeError, ValueError):
        return default


def stored_at(lease: Any) -> float | None:
    """When the API server last stored a change of the Lease, by its own clock: the newest
    managedFields time; else spec.renewTime (written by the holder's clock); None without either."""
    entries = getattr(lease.metadata, "managed_fields", None) or []
    times = [entry.time for entry in entries if isinstance(entry.time, datetime)]
    if times:
        return max(times).timestamp()
    renewed = lease.spec.renew_time if lease.spec is not None else None
    return renewed.timestamp() if isinstance(renewed, datetime) else None


class RunRecorder:
    """This process's record, kept fresh: on the host from start(), on each cluster from
    on_cluster(); a heartbeat every HEARTBEAT_EVERY s on a daemon thread; `ended` at close()."""

    def __init__(self, record: RunRecord, registry: HostRegistry, *, every: float = HEARTBEAT_EVERY) -> None:
        self.record = record
        self.registry = registry
        self.every = every
        self._clusters: dict[str, ClusterRecords] = {}  # renewed at each heartbeat
        self._seen: dict[str, ClusterRecords] = {}  # marked ended at close()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self.registry.write(self.record)
        self._thread = threading.Thread(target=self._beat, name="clusterproof-heartbeat", daemon=True)
        self._thread.start()

    def on_cluster(self, records: ClusterRecords) -> None:
        with self._lock:
            self._clusters[records.name] = self._seen[records.name] = records
            record = self.record
        records.write(record)

    def let_go(self, name: str) -> None:
        """The cluster was released: stop renewing there (a later on_cluster renews again). Not
        marked ended yet: the run may come back to it at once (the next module)."""
        with self._lock:
            self._clusters.pop(name, None)

    def _beat(self) -> None:
        while not self._stop.wait(self.every):
            self._write(ended=None)

    def _write(self, *, ended: float | None) -> None:
        with self._lock:
            self.record = replace(self.record, heartbeat=time.time(), ended=ended)
            record = self.record
            clusters = list((self._seen if ended else self._clusters).values())
        try:
            self.registry.write(record)
        except OSError as e:
            log.debug("run record on the host: %s", e)
        for records in clusters:
            try:
                records.write(record)
            except Exception as e:  # the next heartbeat tries again
                log.debug("run record on cluster %s: %s", records.name, type(e).__name__)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._write(ended=time.time())
        with self._lock:
            self._clusters.clear()
            self._seen.clear()
