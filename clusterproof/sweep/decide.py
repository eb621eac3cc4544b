"""Which things that runs left to remove: those of runs judged dead (by their records, or their age
when they left none), kind clusters only when the run that claimed them made them. No I/O here: the
unit tests' subject. `apply` carries the decisions out and reports them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from clusterproof import kind_clusters, liveness
from clusterproof.errors import one_line
from clusterproof.kind_clusters import Claim
from clusterproof.liveness import Machine, RunRecord, StartOf

UNRECORDED_AFTER = 24 * 3600.0  # a run that left no record is dead once its newest object is this old


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
                    report.errors.append(f"{decision.item.verb} {decision.item.what}: {error_line(e)}")
                    continue
        report.removed.append(decision)
    return report


def error_line(e: BaseException) -> str:
    """An API error by its status (its body may be long), any other by its type and first line."""
    status = getattr(e, "status", None)
    if status is not None:
        return f"HTTP {status} {getattr(e, 'reason', '')}".strip()
    return f"{type(e).__name__}: {one_line(e, None, first_line=True)}".rstrip(": ")
