"""One cluster's side of the sweep: what dead runs left there (journaled Services put back,
run-labelled namespaces, PersistentVolumes and StorageClasses, files on the nodes, node-label
leases), then the records there of dead runs of which nothing is left."""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from clusterproof import journal, liveness, node_files, node_labels
from clusterproof.api_answers import unless_missing
from clusterproof.cluster import recycler_pod
from clusterproof.liveness import Machine, RunRecord, StartOf
from clusterproof.run import RUN_LABEL, STATE_LABEL
from clusterproof.run_records import ClusterRecords
from clusterproof.sweep.decide import Item, Report, apply, decide, records_by_run

if TYPE_CHECKING:
    from clusterproof.cluster import Cluster

SELECTOR = f"{RUN_LABEL},!{STATE_LABEL}"
REQUEST_TIMEOUT = 10

NodeCommand = Callable[..., subprocess.CompletedProcess]  # Cluster.node_exec: (node, *argv, check=, timeout=)


class ClusterSide:
    """What runs left on one cluster. `core`, `storage`: kubernetes CoreV1Api/StorageV1Api (or
    fakes); `node_exec`: a shell on the nodes (Cluster.node_exec), and `why_no_node_exec` says
    when there is none (asked only when a dead run left files there: asking may prepare host exec
    pods); without one, node files are left, saying why."""

    def __init__(
        self,
        name: str,
        core: Any,
        storage: Any,
        records: ClusterRecords | None,
        *,
        node_exec: NodeCommand | None = None,
        why_no_node_exec: Callable[[], str | None] = lambda: "no shell on the nodes",
    ) -> None:
        self.name = name
        self.core = core
        self.storage = storage
        self.records = records
        self.node_exec = node_exec
        self.why_no_node_exec = why_no_node_exec

    @classmethod
    def of(cls, cluster: Cluster, records: ClusterRecords | None) -> ClusterSide:
        """With the cluster's node access (its mechanism is chosen before the sweep runs)."""
        return cls(
            cluster.name,
            cluster.core,
            cluster.storage,
            records,
            node_exec=cluster.node_exec,
            why_no_node_exec=cluster.why_no_node_exec,
        )

    def items(self) -> list[Item]:
        """In the order they are removed: journaled Services put back, namespaces (with what runs in
        them), PersistentVolumes, StorageClasses, files on the nodes, then node-label leases."""
        from clusterproof.tracker import delete_namespace

        items = [
            _item(cm, entry.describe(), lambda e=entry: journal.restore(self.core, e), verb="restore")
            for entry, cm in journal.entries(self.core)
        ]
        listed = self.core.list_namespace(label_selector=SELECTOR, _request_timeout=REQUEST_TIMEOUT).items
        for ns in _ours(listed):
            if (ns.status and ns.status.phase == "Terminating") or ns.metadata.deletion_timestamp:
                continue
            name = ns.metadata.name
            items.append(_item(ns, f"namespace {name}", lambda n=name: delete_namespace(self, n)))
        listed = self.core.list_persistent_volume(label_selector=SELECTOR, _request_timeout=REQUEST_TIMEOUT).items
        for pv in _ours(listed):
            if not pv.metadata.deletion_timestamp:
                name = pv.metadata.name
                recycled = getattr(pv.spec, "persistent_volume_reclaim_policy", None) == "Recycle"
                items.append(_item(pv, f"PersistentVolume {name}", lambda n=name, r=recycled: self._delete_pv(n, r)))
        listed = self.storage.list_storage_class(label_selector=SELECTOR, _request_timeout=REQUEST_TIMEOUT).items
        for sc in _ours(listed):
            if not sc.metadata.deletion_timestamp:
                name = sc.metadata.name
                items.append(_item(sc, f"StorageClass {name}", lambda n=name: self._delete_sc(n)))
        nodes = self.core.list_node(_request_timeout=REQUEST_TIMEOUT).items
        items += self._node_files({n.metadata.name for n in nodes})
        for node in nodes:
            leases = node_labels.leases_in(node.metadata.annotations or {})
            for key, lease in sorted(leases.items()):
                for holder in lease.get("holders") or []:
                    items.append(
                        Item(
                            f"label {key} on node {node.metadata.name} (lease of {holder})",
                            str(holder).split("/", 1)[0],
                            lambda n=node.metadata.name, k=key, h=holder: node_labels.release(self.core, n, k, h),
                            verb="release",
                        )
                    )
        return items

    def _node_files(self, nodes: set[str]) -> list[Item]:
        """A run's files on each node (clusterproof.node_files), removed through the node access
        of the sweeping run; only entries named after their run are removed."""
        items = []
        records = node_files.list_records(self.core)
        missing = (self.why_no_node_exec() if self.node_exec else "no shell on the nodes") if records else None
        for record in records:
            run_id = node_files.record_run_id(record)
            if run_id is None:
                continue
            name = record.metadata.name
            for node, entries in sorted(node_files.entries_of(record.data).items()):

                def drop(node: str = node, name: str = name) -> None:
                    node_files.drop_node(self.core, name, node)

                if node not in nodes:
                    what = f"record of files on node {node} (the node is gone)"
                    items.append(_item(record, what, drop, run_id=run_id))
                    continue
                refused = [why for e in entries if (why := node_files.sweepable(e, run_id))]
                removable = [e for e in entries if not node_files.sweepable(e, run_id)]
                what = f"files on node {node}: {', '.join(e.path for e in removable) or 'none'}"
                if refused:
                    what += f" (left: {'; '.join(refused)})"

                def remove(node: str = node, entries: list[node_files.Entry] = removable, name: str = name) -> None:
                    if entries:
                        assert self.node_exec is not None  # else the item is blocked
                        done = self.node_exec(node, *node_files.removal_argv(entries), check=False, timeout=60)
                        if done.returncode != 0:
                            raise RuntimeError(f"on node {node}: exit {done.returncode}: {done.stderr.strip()[:200]}")
                    node_files.drop_node(self.core, name, node)

                blocked = f"not removed from here: {missing}" if missing and removable else None
                items.append(_item(record, what, remove, run_id=run_id, verb="remove", blocked=blocked))
        return items

    def _delete_pv(self, name: str, recycled: bool) -> None:
        """With its recycler pod, if a run killed while its claim's release was being recycled left
        one (the PV controller's, in `default`, named after the PV; the test's cleanup removes it)."""
        self.core.delete_persistent_volume(name, _request_timeout=REQUEST_TIMEOUT)
        if recycled:
            namespace, pod = recycler_pod(name)
            unless_missing(
                lambda: self.core.delete_namespaced_pod(
                    pod, namespace, grace_period_seconds=0, _request_timeout=REQUEST_TIMEOUT
                )
            )

    def _delete_sc(self, name: str) -> None:
        self.storage.delete_storage_class(name, _request_timeout=REQUEST_TIMEOUT)


def _ours(objects: Iterable[Any]) -> list[Any]:
    """Labelled with a run id and not an upgrade's state (checked here too, whatever the server did
    with the selector)."""
    found = []
    for obj in objects:
        labels = obj.metadata.labels or {}
        if labels.get(RUN_LABEL) and STATE_LABEL not in labels:
            found.append(obj)
    return found


def _item(obj: Any, what: str, remove: Callable[[], None], *, run_id: str | None = None, **how: Any) -> Item:
    created = obj.metadata.creation_timestamp
    return Item(
        what,
        run_id or obj.metadata.labels[RUN_LABEL],
        remove,
        created=created.timestamp() if isinstance(created, datetime) else None,
        **how,
    )


def sweep_cluster(
    side: ClusterSide,
    host_records: Iterable[RunRecord],
    *,
    this_run: str | None = None,
    dry_run: bool = False,
    dead: Sequence[str] = (),
    machine: Machine | None = None,
    start_of: StartOf = liveness.process_start,
    now: float | None = None,
) -> Report:
    """Remove what dead runs left on this cluster, then the records there of dead runs of which
    nothing is left."""
    machine = machine or liveness.this_machine()
    now = time.time() if now is None else now
    cluster_records = side.records.records() if side.records is not None else []
    records = [*host_records, *cluster_records]
    items = side.items()
    decisions = decide(items, records, machine, this_run=this_run, dead=dead, start_of=start_of, now=now)
    report = apply(decisions, dry_run=dry_run)
    if dry_run or side.records is None:
        return report
    still_there = {d.item.run_id for d in (*report.left, *report.failed)}
    runs = records_by_run(records)
    for record in cluster_records:
        if record.run_id == this_run or record.run_id in still_there:
            continue
        if not liveness.judge_run(runs[record.run_id], machine, start_of=start_of, now=now).alive:
            with contextlib.suppress(Exception):
                side.records.remove(record)
    return report
