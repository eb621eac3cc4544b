"""This host's side of the sweep: the kind clusters dead runs made (by the identity they recorded),
their credential copies, then the records of dead runs."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from clusterproof import kind_clusters, liveness
from clusterproof.liveness import Machine, RunRecord, StartOf
from clusterproof.run import credential_owner, credentials_root
from clusterproof.run_records import HostRegistry
from clusterproof.sweep.decide import Item, Report, apply, decide, decide_kind, records_by_run

RECORD_KEEP = 7 * 24 * 3600.0  # a dead run's host record outlives its kind clusters this long (existing clusters)
KIND_TIMEOUT = 180


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
    dead: Sequence[str] = (),
    machine: Machine | None = None,
    start_of: StartOf = liveness.process_start,
    now: float | None = None,
) -> Report:
    """Remove the credential copies (RunContext.credentials_dir) of dead runs of this host (`dead`:
    runs that left no record, named dead by the user)."""
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
            items,
            registry.records(),
            machine or liveness.this_machine(),
            this_run=this_run,
            dead=dead,
            start_of=start_of,
            now=now,
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
