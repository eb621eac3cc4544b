"""What runs that are no longer alive left behind, removed: at the start of a run, and on demand.

    python -m clusterproof.sweep [--dry-run] [--kubeconfig PATH --context NAME --allow-context NAME]
                                 [--dead RUN_ID] [--no-kind] [--kind-bin PATH]

A run stopped by SIGKILL (an OOM kill, a CI runner torn down) cannot undo what it made. Every run
records itself (clusterproof.run_records) and a later one judges it (clusterproof.liveness). When a
run starts (and on demand) it removes, of runs judged dead:
- on this host: its credential copies (a flattened kubeconfig, in a private temp directory); the
  kind clusters it created, as recorded then (clusterproof.kind_clusters: a claim
  written before `kind create`, with the node containers' IDs once made; never by name), unless the
  run kept them (--keep-clusters); then the records of dead runs;
- on each cluster it uses: the Services it was changing, put back from their journal
  (clusterproof.journal), namespaces, PersistentVolumes and StorageClasses labelled
  `clusterproof.io/run-id=<run id>`, the node-label leases it held (released: the last holder
  out puts the label back as it was), then its record there.

Never touched: anything of a live run; anything without the suite's run label, and kind clusters
no run claimed when it created them, or whose node containers are not the ones it made; anything
labelled `clusterproof.io/upgrade-state` (an upgrade's state, kept on purpose from `--phase before`
to `--phase after`). A run id found on a cluster with no record anywhere (a run of an older
clusterproof, or one whose record could not be written) counts as dead once its newest object is
UNRECORDED_AFTER old; until then it is named and left (`--dead RUN_ID`).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from clusterproof import journal, kind_clusters, liveness, node_files, node_labels
from clusterproof.errors import one_line
from clusterproof.kind_clusters import Claim
from clusterproof.kubeconfig import read_contexts, resolve_kubeconfig
from clusterproof.liveness import Machine, RunRecord, StartOf
from clusterproof.node_exec import kind_node_exec
from clusterproof.run import RUN_LABEL, STATE_LABEL, credential_owner, credentials_root
from clusterproof.run_records import ClusterRecords, HostRegistry, RunRecorder, registry_dir

if TYPE_CHECKING:
    from clusterproof.cluster import Cluster
    from clusterproof.run import RunContext
    from clusterproof.settings import Settings

log = logging.getLogger("clusterproof.sweep")

SELECTOR = f"{RUN_LABEL},!{STATE_LABEL}"
UNRECORDED_AFTER = 24 * 3600.0  # a run that left no record is dead once its newest object is this old
RECORD_KEEP = 7 * 24 * 3600.0  # a dead run's host record outlives its kind clusters this long (existing clusters)
REQUEST_TIMEOUT = 10
KIND_TIMEOUT = 180


@dataclass(frozen=True)
class Item:
    """Something a run left: what it is, the run it names, when it was made, how to remove it."""

    what: str
    run_id: str
    remove: Callable[[], None] = field(compare=False, repr=False)
    created: float | None = None
    verb: str = "delete"  # delete | release | restore | remove
    blocked: str | None = None  # why it cannot be removed from here even if its run is dead


@dataclass(frozen=True)
class Decision:
    item: Item
    remove: bool
    why: str
    stale: bool = False  # kind: the claim does not name this cluster any more (made again since)


@dataclass
class Report:
    removed: list[Decision] = field(default_factory=list)
    left: list[Decision] = field(default_factory=list)
    failed: list[Decision] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    dry_run: bool = False

    def lines(self) -> list[str]:
        out = []
        for d in self.removed:
            verb = f"would {d.item.verb}" if self.dry_run else f"{d.item.verb}d"
            out.append(f"{verb} {d.item.what} (run {d.item.run_id}: {d.why})")
        alive: dict[str, list[Decision]] = {}
        for d in self.left:
            if d.why.startswith("alive"):
                alive.setdefault(d.item.run_id, []).append(d)
            else:
                out.append(f"left alone: {d.item.what} ({d.why})")
        for run_id, decisions in alive.items():
            out.append(f"left alone: {len(decisions)} thing(s) of run {run_id}, {decisions[0].why}")
        out += [f"error: {e}" for e in self.errors]
        return out

    def merge(self, other: Report) -> Report:
        self.removed += other.removed
        self.left += other.left
        self.failed += other.failed
        self.errors += other.errors
        return self


# --- deciding (no I/O: the unit tests' subject) ------------------------------------------------


def records_by_run(records: Iterable[RunRecord]) -> dict[str, list[RunRecord]]:
    runs: dict[str, list[RunRecord]] = {}
    for record in records:
        runs.setdefault(record.run_id, []).append(record)
    return runs


def decide(
    items: Iterable[Item],
    records: Iterable[RunRecord],
    machine: Machine,
    *,
    this_run: str | None = None,
    dead: Sequence[str] = (),
    start_of: StartOf = liveness.process_start,
    now: float | None = None,
) -> list[Decision]:
    """Which of `items` (each naming a run id) to remove: those of runs judged dead."""
    now = time.time() if now is None else now
    runs = records_by_run(records)
    by_run: dict[str, list[Item]] = {}
    for item in items:
        if item.run_id != this_run:
            by_run.setdefault(item.run_id, []).append(item)
    decisions = []
    for run_id, its in by_run.items():
        remove, why = _run_is_dead(run_id, its, runs.get(run_id, []), machine, dead, start_of, now)
        for item in its:
            if remove and item.blocked:
                decisions.append(Decision(item, False, f"{why}; {item.blocked}"))
            else:
                decisions.append(Decision(item, remove, why))
    return decisions


def _run_is_dead(
    run_id: str,
    items: list[Item],
    records: list[RunRecord],
    machine: Machine,
    dead: Sequence[str],
    start_of: StartOf,
    now: float,
) -> tuple[bool, str]:
    if records:
        verdict = liveness.judge_run(records, machine, start_of=start_of, now=now)
        return (False, f"alive: {verdict.why}") if verdict.alive else (True, verdict.why)
    if run_id in dead:
        return True, "named dead (--dead), no record says otherwise"
    ages = [now - i.created for i in items if i.created is not None]
    if ages and min(ages) > UNRECORDED_AFTER:
        return True, f"left no record; its newest object is {min(ages) / 3600:.0f}h old"
    newest = f"its newest object is {min(ages) / 3600:.1f}h old" if ages else "nothing dates it"
    return False, (
        f"run {run_id} left no record and {newest} (dead after {UNRECORDED_AFTER / 3600:.0f}h): "
        f"`python -m clusterproof.sweep --dead {run_id}` removes it"
    )


def decide_kind(
    names: Iterable[str],
    claims: Mapping[str, Claim],
    records: Sequence[RunRecord],
    machine: Machine,
    *,
    containers: Callable[[str], Mapping[str, float]],
    this_run: str | None = None,
    delete: Callable[[str], Callable[[], None]],
    start_of: StartOf = liveness.process_start,
    now: float | None = None,
) -> list[Decision]:
    """Which kind clusters to delete: those a dead run claimed when it created them (and did not
    keep), whose node containers (`containers(name)`) are still the ones it made. A `cp-` cluster
    no claim names is reported and left; other names are not ours."""
    runs = records_by_run(records)
    decisions = []
    for name in names:
        claim = claims.get(name)
        what = f"kind cluster {name}"
        if claim is None:
            if name.startswith("cp-"):
                unclaimed = Item(what, "?", delete(name))
                decisions.append(Decision(unclaimed, False, "no run of this host recorded making it"))
            continue
        if claim.run_id == this_run:
            continue
        item = Item(what, claim.run_id, delete(name))
        its = runs.get(claim.run_id, [])
        verdict = liveness.judge_run(its, machine, start_of=start_of, now=now) if its else None
        if verdict is not None and verdict.alive:
            decisions.append(Decision(item, False, f"alive: {verdict.why}"))
        elif claim.kept:
            decisions.append(Decision(item, False, f"run {claim.run_id} kept it (--keep-clusters)"))
        else:
            containers_now = containers(name)
            identity = kind_clusters.identify(claim, containers_now)
            why = verdict.why if verdict is not None else "no record of its run is left"
            stale = not identity.ours and bool(containers_now)
            decisions.append(Decision(item, identity.ours, f"{why}; {identity.why}", stale=stale))
    return decisions


def apply(decisions: Iterable[Decision], *, dry_run: bool = False) -> Report:
    report = Report(dry_run=dry_run)
    for decision in decisions:
        if not decision.remove:
            report.left.append(decision)
            continue
        if not dry_run:
            try:
                decision.item.remove()
            except Exception as e:
                status = getattr(e, "status", None)
                if status != 404:
                    report.failed.append(decision)
                    report.errors.append(f"{decision.item.verb} {decision.item.what}: {_one_line(e)}")
                    continue
        report.removed.append(decision)
    return report


# --- this host: kind clusters ------------------------------------------------------------------


class KindHost:
    """`kind get clusters` / `kind delete cluster` (no docker shim needed: deleting runs no
    privileged container)."""

    def __init__(self, kind: str = "kind", run: Callable[..., subprocess.CompletedProcess] = subprocess.run) -> None:
        self.kind = kind
        self.run = run

    def containers(self, name: str) -> dict[str, float]:
        """The node containers of cluster `name`: ID -> when created."""
        return kind_clusters.node_containers(name, self.run)

    def clusters(self) -> list[str]:
        done = self.run([self.kind, "get", "clusters"], capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            raise RuntimeError(f"`kind get clusters` failed: {(done.stderr or '').strip()[:200]}")
        return [line.strip() for line in done.stdout.splitlines() if line.strip()]

    def deleter(self, name: str, kubeconfig: Path | None) -> Callable[[], None]:
        def attempt() -> str | None:
            with tempfile.TemporaryDirectory() as scratch:
                # kind also removes the cluster's entry from this kubeconfig (the run's own; else none)
                config = kubeconfig if kubeconfig is not None and kubeconfig.is_file() else Path(scratch) / "none"
                done = self.run(
                    [self.kind, "delete", "cluster", "--name", name, "--kubeconfig", str(config)],
                    capture_output=True,
                    text=True,
                    timeout=KIND_TIMEOUT,
                )
            return None if done.returncode == 0 else (done.stderr or "").strip()[-300:]

        def delete() -> None:
            # a run SIGKILLed during its own `kind delete` leaves that child running (measured): both
            # remove the same containers, and ours fails on the ones already gone. Gone is done; else
            # once more, on what is left.
            failed = attempt()
            if failed and name in self.clusters():
                failed = attempt()
                if failed and name in self.clusters():
                    raise RuntimeError(f"kind delete cluster failed: {failed}")

        return delete


def sweep_host(
    kind: KindHost,
    registry: HostRegistry,
    *,
    this_run: str | None = None,
    dry_run: bool = False,
    machine: Machine | None = None,
    docker: str | None = None,
    start_of: StartOf = liveness.process_start,
    now: float | None = None,
) -> Report:
    """Delete the kind clusters dead runs of this host made, then forget dead runs (and the
    claims of clusters that are gone)."""
    machine = machine or liveness.this_machine()
    docker = kind_clusters.docker_host() if docker is None else docker
    now = time.time() if now is None else now
    claims_of_host = kind_clusters.Claims(registry.path)
    with registry.sweeping():
        records = registry.records()
        claims = claims_of_host.read(docker)
        names = kind.clusters()

        def delete(name: str) -> Callable[[], None]:
            claim = claims.get(name)
            return kind.deleter(name, Path(claim.kubeconfig) if claim and claim.kubeconfig else None)

        decisions = decide_kind(
            names, claims, records, machine, containers=kind.containers, this_run=this_run, delete=delete,
            start_of=start_of, now=now,
        )
        report = apply(decisions, dry_run=dry_run)
        if not dry_run:
            gone = {d.item.what for d in report.removed}
            for name, claim in claims.items():
                if f"kind cluster {name}" in gone or (name not in names and claim.run_id != this_run):
                    claims_of_host.remove(name, docker)
            for d in report.left:
                if d.stale:
                    claims_of_host.remove(d.item.what.removeprefix("kind cluster "), docker)
            _forget_dead(registry, records, machine, this_run, start_of, now)
    return report


def sweep_credentials(
    registry: HostRegistry,
    *,
    this_run: str | None = None,
    dry_run: bool = False,
    machine: Machine | None = None,
    start_of: StartOf = liveness.process_start,
    now: float | None = None,
) -> Report:
    """Remove the credential copies (RunContext.credentials_dir) of dead runs of this host."""
    root = credentials_root(create=False)
    if not root.is_dir():
        return Report(dry_run=dry_run)
    items = []
    for path in sorted(root.iterdir()):
        run_id, _ = credential_owner(path.name)
        remove = lambda p=path: shutil.rmtree(p)  # noqa: E731
        items.append(Item(f"credential copies {path}", run_id, remove, created=path.stat().st_mtime))
    with registry.sweeping():
        decisions = decide(
            items, registry.records(), machine or liveness.this_machine(), this_run=this_run, start_of=start_of, now=now
        )
        return apply(decisions, dry_run=dry_run)


def _forget_dead(
    registry: HostRegistry,
    records: list[RunRecord],
    machine: Machine,
    this_run: str | None,
    start_of: StartOf,
    now: float,
) -> None:
    for run_id, its in records_by_run(records).items():
        if run_id == this_run or liveness.judge_run(its, machine, start_of=start_of, now=now).alive:
            continue
        for record in its:
            if record.provider == "kind" or now - record.started > RECORD_KEEP:
                registry.remove(record)


# --- a cluster: run-labelled objects, node-label leases, run records ---------------------------


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
                items.append(_item(pv, f"PersistentVolume {name}", lambda n=name: self._delete_pv(n)))
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

    def _delete_pv(self, name: str) -> None:
        self.core.delete_persistent_volume(name, _request_timeout=REQUEST_TIMEOUT)

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


# --- at the start of a run (registered by the plugin) ------------------------------------------


class SweepAtStart:
    """Records this process (host: when the cluster provider is set up; each cluster: when it is
    acquired, before anything is made there) and sweeps what dead runs left: the kind clusters of
    this host (kind provider) and each cluster acquired. Never fails the run: what cannot be done
    (no docker, an unreachable cluster) is said in one line and skipped."""

    def __init__(
        self,
        settings: Callable[[], Settings],
        run: RunContext,
        note: Callable[[str], None],
        *,
        registry: HostRegistry | None = None,
    ) -> None:
        self.settings = settings
        self.run = run
        self.note = note
        self.registry = registry or HostRegistry(registry_dir())
        self.owner = os.environ.get("PYTEST_XDIST_WORKER", "main")  # as ResourceTracker.owner
        self.recorder: RunRecorder | None = None

    @pytest.hookimpl(wrapper=True)
    def pytest_fixture_setup(self, fixturedef: pytest.FixtureDef[Any], request: pytest.FixtureRequest) -> Any:
        result = yield
        if fixturedef.argname == "cluster_provider" and self.recorder is None:
            self._started()
        elif fixturedef.argname == "cluster":
            self._acquired(result)
        return result

    def pytest_fixture_post_finalizer(self, fixturedef: pytest.FixtureDef[Any]) -> None:
        if fixturedef.argname == "cluster" and self.recorder is not None and fixturedef.cached_result:
            self.recorder.let_go(getattr(fixturedef.cached_result[0], "name", ""))

    def pytest_unconfigure(self) -> None:
        if self.recorder is not None:
            self.recorder.close()
            self.recorder = None

    def _say(self, report: Report) -> None:
        for line in report.lines():
            self.note(f"sweep: {line}")

    def _started(self) -> None:
        settings = self.settings()
        kind = settings.provider == "kind"
        try:
            record = liveness.new_record(
                self.run.run_id,
                self.owner,
                provider=settings.provider,
                keep_clusters=settings.keep_clusters,
                run_dir=str(self.run.run_dir),
            )
            self.recorder = RunRecorder(record, self.registry)
            self.recorder.start()
        except Exception as e:
            self.note(f"sweep: could not record this run in {self.registry.path}: {_one_line(e)}")
            return
        try:
            self._say(sweep_credentials(self.registry, this_run=self.run.run_id))
        except Exception as e:
            self.note(f"sweep: credential copies of this host not swept: {_one_line(e)}")
        if kind:
            try:
                kind_host = KindHost(str(settings.kind_bin or "kind"))
                self._say(sweep_host(kind_host, self.registry, this_run=self.run.run_id))
            except Exception as e:
                self.note(f"sweep: kind clusters of this host not swept: {_one_line(e)}")

    def _acquired(self, cluster: Cluster) -> None:
        if self.recorder is None:
            return
        try:
            records = ClusterRecords.for_cluster(cluster)
        except Exception as e:
            self.note(f"sweep: cluster {cluster.name} not swept: {_one_line(e)}")
            return
        try:
            self.recorder.on_cluster(records)  # first: from now on a sweeper elsewhere sees us alive
        except Exception as e:  # others then see our objects as unrecorded: left alone for a day
            self.note(f"sweep: could not record this run on cluster {cluster.name}: {_one_line(e)}")
        try:
            side = ClusterSide.of(cluster, records)
            self._say(sweep_cluster(side, self.registry.records(), this_run=self.run.run_id))
        except Exception as e:
            self.note(f"sweep: cluster {cluster.name} not swept: {_one_line(e)}")


def _one_line(e: BaseException) -> str:
    """An API error by its status (its body may be long), any other by its type and first line."""
    status = getattr(e, "status", None)
    if status is not None:
        return f"HTTP {status} {getattr(e, 'reason', '')}".strip()
    return f"{type(e).__name__}: {one_line(e, None, first_line=True)}".rstrip(": ")


# --- on demand ---------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m clusterproof.sweep",
        description="Remove what clusterproof runs that are no longer alive left behind.",
    )
    parser.add_argument("--dry-run", action="store_true", help="say what would be removed; remove nothing")
    parser.add_argument("--kubeconfig", default=None, metavar="PATH", help="sweep this cluster too")
    parser.add_argument("--context", default=None, metavar="NAME", help="the kubeconfig's context (default: current)")
    parser.add_argument(
        "--allow-context", action="append", default=[], metavar="NAME", help="required, as for the suite"
    )
    parser.add_argument(
        "--dead", action="append", default=[], metavar="RUN_ID", help="a run that left no record: remove its things"
    )
    parser.add_argument("--no-kind", action="store_true", help="leave this host's kind clusters alone")
    parser.add_argument("--kind-bin", default=None, metavar="PATH", help="kind binary (default: kind on PATH)")
    args = parser.parse_args(argv)

    registry = HostRegistry(registry_dir())
    report = Report(dry_run=args.dry_run)
    try:
        report.merge(sweep_credentials(registry, dry_run=args.dry_run))
    except Exception as e:
        report.errors.append(f"credential copies not swept: {_one_line(e)}")
    if not args.no_kind:
        kind = args.kind_bin or shutil.which("kind")
        if kind is None:
            print("sweep: kind not found on PATH: kind clusters not swept")
        else:
            try:
                report.merge(sweep_host(KindHost(kind), registry, dry_run=args.dry_run))
            except Exception as e:
                report.errors.append(f"kind clusters not swept: {_one_line(e)}")
    if args.kubeconfig or args.context:
        try:
            side = _cluster_side(args.kubeconfig, args.context, args.allow_context)
        except pytest.UsageError as e:
            print(f"sweep: {e}", file=sys.stderr)
            return 2
        try:
            report.merge(sweep_cluster(side, registry.records(), dry_run=args.dry_run, dead=args.dead))
        except Exception as e:
            report.errors.append(f"cluster {side.name} not swept: {_one_line(e)}")
    lines = report.lines()
    for line in lines:
        print(f"sweep: {line}")
    if not lines:
        print("sweep: nothing left by dead runs")
    return 1 if report.errors else 0


def _cluster_side(kubeconfig: str | None, context: str | None, allowed: list[str]) -> ClusterSide:
    from kubernetes import client, config


    path = resolve_kubeconfig(Path(kubeconfig).expanduser() if kubeconfig else None, os.environ)
    contexts, current = read_contexts(path)
    context = context or current
    if not context or context not in contexts:
        raise pytest.UsageError(f"context {context!r} not in kubeconfig {path}")
    if context not in allowed:
        raise pytest.UsageError(
            f"refusing to sweep context {context!r}: pass --allow-context {context} to let clusterproof delete there"
        )
    api = config.new_client_from_config(config_file=str(path), context=context, persist_config=False)
    records = ClusterRecords(context, client.CoreV1Api(api), client.CoordinationV1Api(api))
    docker = functools.cache(lambda: kind_node_exec(api))  # asked only when a dead run left node files

    def node_exec(node: str, *argv: str, input: str | None = None, check: bool = True, timeout: float = 60) -> Any:
        return docker()(node, argv, input=input, check=check, timeout=timeout)

    def why_no_node_exec() -> str | None:
        missing = docker().unavailable()
        return missing and f"{missing} (only docker reaches nodes here; a suite run with node access sweeps them)"

    return ClusterSide(
        context,
        client.CoreV1Api(api),
        client.StorageV1Api(api),
        records,
        node_exec=node_exec,
        why_no_node_exec=why_no_node_exec,
    )


if __name__ == "__main__":
    sys.exit(main())
