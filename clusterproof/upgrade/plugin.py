"""The upgrade topic's pytest plugin: its options (--phase before|after and the rest), which tests
run and in which order, the state they share, and what is left behind. Loaded by clusterproof.plugin.

- no --phase: tests marked `upgrade_phase` are deselected (they need a state to carry over);
- --phase before: only the `before` tests run (they create the durable state, all or nothing);
- --phase after: the `after` tests run first (against the state), then every other selected test
  (the suites again, on the upgraded cluster). The durable state is removed only when every UPG
  claim of the after phase was evaluated and held in this run (`StateVerdict`), unless
  --keep-upgrade-state; otherwise — a failure, a skip, a claim deselected or not reached because
  the run was stopped — it is kept and the run says how to finish. Kept after a run where all
  held (--keep-upgrade-state, a hop of a multi-hop upgrade), the state file records the hop.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from kubernetes import client

from clusterproof.claims import Claim, claim_ids, load_claims
from clusterproof.images import ImageCatalogue
from clusterproof.run import RunContext
from clusterproof.settings import Settings
from clusterproof.tracker import ResourceTracker
from clusterproof.upgrade.durable import kube_proxy_tag, node_versions
from clusterproof.upgrade.jig import UpgradeJig
from clusterproof.upgrade.monitor_file import read_monitor_file
from clusterproof.upgrade.state import API_DISRUPTION_BUDGET, DISRUPTION_BUDGET, StateError, UpgradeState
from clusterproof.upgrade.versions import BadVersion, VersionRule, numbers, parse_expected

MARKER = "upgrade_phase(name): before/after test of an upgrade; runs only with --phase <name>"
UPGRADE_CLAIMS = Path(__file__).parent.parent / "data" / "UPGRADE-CLAIMS.md"
DEFAULT_STATE_FILE = Path(".clusterproof/upgrade-state.json")
SETTINGS = pytest.StashKey["UpgradeSettings"]()
OUTCOMES = pytest.StashKey["Outcomes"]()


@dataclass(frozen=True)
class UpgradeSettings:
    phase: str | None = None
    state_file: Path = DEFAULT_STATE_FILE
    keep_upgrade_state: bool = False
    remove_upgrade_state: bool = False
    overwrite_state_file: bool = False
    disruption_budget: float = DISRUPTION_BUDGET
    api_disruption_budget: float = API_DISRUPTION_BUDGET
    monitor_file: Path | None = None
    version_rule: VersionRule = VersionRule()

    @property
    def steps_file(self) -> Path:
        """The in-place upgrade's record of its steps (tox -e upgrade writes it): the window's evidence."""
        return self.state_file.with_suffix(".steps.json")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("clusterproof-upgrade", "clusterproof: before and after an upgrade")
    group.addoption(
        "--phase",
        choices=("before", "after"),
        default=None,
        help="upgrade validation: `before` creates durable state and records it (the state file); "
        "`after` compares the upgraded cluster with it, then runs the selected suites",
    )
    group.addoption(
        "--state-file",
        default=None,
        metavar="PATH",
        help=f"the upgrade state file (default: <rootdir>/{DEFAULT_STATE_FILE})",
    )
    group.addoption(
        "--overwrite-state-file",
        action="store_true",
        help="--phase before: replace an existing state file (its durable state, if any is left, is not removed)",
    )
    group.addoption(
        "--expect-version",
        default=None,
        metavar="VERSION",
        help="--phase after: the version every component must run (1.37 or v1.37.2); default: newer than before",
    )
    group.addoption(
        "--allow-same-version",
        action="store_true",
        help="--phase after: a rehearsal: components still at the version of before hold UPG-08 (the report says so)",
    )
    group.addoption(
        "--keep-upgrade-state",
        action="store_true",
        help="--phase after: keep the durable namespaces and volumes even when every check held",
    )
    group.addoption(
        "--remove-upgrade-state",
        action="store_true",
        help="--phase after: remove the durable state at the end whatever the checks found",
    )
    group.addoption(
        "--disruption-budget",
        type=float,
        default=DISRUPTION_BUDGET,
        metavar="SECONDS",
        help="--phase after: seconds a monitored target may be down (or not observed) during the upgrade "
        "(more fails UPG-09; less than this but more than none is reported as tolerated)",
    )
    group.addoption(
        "--api-disruption-budget",
        type=float,
        default=API_DISRUPTION_BUDGET,
        metavar="SECONDS",
        help="--phase after: the same for the API server (a single control plane is down while kubeadm replaces it)",
    )
    group.addoption(
        "--monitor-file",
        default=None,
        metavar="PATH",
        help="--phase after: what `python -m clusterproof.upgrade.monitor` wrote (default: <state file>.monitor.jsonl)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", MARKER)


def pytest_clusterproof_configure(config: pytest.Config, settings: Settings) -> None:
    config.stash[SETTINGS] = build_upgrade_settings(config.getoption, settings)
    config.stash[OUTCOMES] = Outcomes()
    config.pluginmanager.register(config.stash[OUTCOMES], "clusterproof-upgrade-outcomes")


def build_upgrade_settings(option: Callable[[str], object], settings: Settings) -> UpgradeSettings:
    """The upgrade options, checked against the run's settings; pytest.UsageError with one line."""
    phase = option("phase")
    state_file = _path(option("state_file")) or settings.rootdir / DEFAULT_STATE_FILE
    if phase and settings.provider == "kind" and not (settings.cluster_scope == "session" and settings.keep_clusters):
        raise pytest.UsageError(
            f"--phase {phase} needs a cluster that outlives the run: an existing cluster (--kubeconfig, --context, "
            "--allow-context) or a kept kind cluster (--cluster-scope session --keep-clusters --cluster-name NAME)"
        )
    if option("keep_upgrade_state") and option("remove_upgrade_state"):
        raise pytest.UsageError("--keep-upgrade-state and --remove-upgrade-state: one or the other")
    if phase == "before" and state_file.exists() and not option("overwrite_state_file"):
        raise pytest.UsageError(
            f"{state_file} exists: the state of an earlier --phase before, not finished by a --phase after whose "
            "checks all held; finish it (--phase after), pass another --state-file, or --overwrite-state-file"
        )
    rule = VersionRule(allow_same=bool(option("allow_same_version")))
    if option("expect_version"):
        try:
            rule = VersionRule(parse_expected(str(option("expect_version"))), rule.allow_same)
        except BadVersion as e:
            raise pytest.UsageError(str(e)) from None
    if phase == "after":
        try:
            state = UpgradeState.load(state_file)
        except StateError as e:
            raise pytest.UsageError(str(e)) from None
        before = state.last["server_version"]
        if rule.expect and (numbers(rule.expect) or ()) < (numbers(before) or ())[: len(numbers(rule.expect) or ())]:
            raise pytest.UsageError(
                f"--expect-version {rule.expect} is older than the state's {before}: not an upgrade"
            )
    for name in ("disruption_budget", "api_disruption_budget"):
        value = option(name)
        if value is not None and value < 0:  # type: ignore[operator]
            raise pytest.UsageError(f"--{name.replace('_', '-')} {value:g}: seconds, 0 or more")
    budget, api_budget = option("disruption_budget"), option("api_disruption_budget")
    return UpgradeSettings(
        phase=phase,
        state_file=state_file,
        keep_upgrade_state=bool(option("keep_upgrade_state")),
        remove_upgrade_state=bool(option("remove_upgrade_state")),
        overwrite_state_file=bool(option("overwrite_state_file")),
        disruption_budget=DISRUPTION_BUDGET if budget is None else float(budget),  # type: ignore[arg-type]
        api_disruption_budget=API_DISRUPTION_BUDGET if api_budget is None else float(api_budget),  # type: ignore[arg-type]
        monitor_file=_path(option("monitor_file")) or state_file.with_suffix(".monitor.jsonl"),
        version_rule=rule,
    )


def _path(value: object) -> Path | None:
    return Path(str(value)).expanduser() if value else None


def pytest_clusterproof_claims(config: pytest.Config, known: dict[str, Claim]) -> Iterable[str]:
    """The UPG claims are known to every run; rows of the table only when an upgrade phase runs."""
    known.update(load_claims(UPGRADE_CLAIMS))
    shown = claims_for_phase(known, config.stash[SETTINGS].phase)
    return [cid for cid in known if cid not in shown]


BEFORE_CLAIMS = ("UPG-01",)  # what --phase before shows; --phase after shows the other UPG rows


def claims_for_phase(claims: dict, phase: str | None) -> dict:
    """The claims table's rows: the notes' claims, and the UPG rows of the phase that runs."""
    if phase == "before":
        return {k: v for k, v in claims.items() if k in BEFORE_CLAIMS}
    return {
        k: v for k, v in claims.items() if not k.startswith("UPG-") or (phase == "after" and k not in BEFORE_CLAIMS)
    }


def after_claims() -> list[str]:
    return [cid for cid in load_claims(UPGRADE_CLAIMS) if cid not in BEFORE_CLAIMS]


def phase_of(item: pytest.Item) -> str | None:
    marker = item.get_closest_marker("upgrade_phase")
    return str(marker.args[0]) if marker else None


def select(items: list[pytest.Item], phase: str | None) -> tuple[list[pytest.Item], list[pytest.Item]]:
    """(kept in run order, deselected)."""
    kept, dropped = [], []
    for item in items:
        wanted = phase_of(item)
        if phase is None:
            keep = wanted is None
        elif phase == "before":
            keep = wanted == "before"
        else:
            keep = wanted != "before"
        (kept if keep else dropped).append(item)
    if phase == "after":
        kept.sort(key=lambda i: 0 if phase_of(i) == "after" else 1)  # stable: file order otherwise
    return kept, dropped


@pytest.hookimpl(wrapper=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> Iterator[None]:
    kept, dropped = select(items, config.stash[SETTINGS].phase)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept
    yield
    # after -k/-m took theirs: what is left is what runs
    config.stash[OUTCOMES].selected = {i.nodeid: claim_ids(i) for i in items if phase_of(i) == "after"}


@dataclass
class Outcomes:
    """The after tests that run in this session (nodeid -> claims) and what became of them (a
    plugin of its own: it hears every test's reports)."""

    selected: dict[str, tuple[str, ...]] = field(default_factory=dict)
    outcome: dict[str, str] = field(default_factory=dict)  # nodeid -> passed | skipped | failed

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.nodeid not in self.selected or report.when not in ("setup", "call"):
            return
        seen = "failed" if report.failed else report.outcome
        if report.when == "setup" and seen == "passed":
            seen = "not finished"  # set up, not yet run: a stop during its call leaves it so (seen: SIGTERM)
        rank = {"not finished": 0, "passed": 0, "skipped": 1, "failed": 2}
        if rank.get(seen, 2) >= rank[self.outcome.get(report.nodeid, "passed")]:
            self.outcome[report.nodeid] = seen

    def verdict(self, claims: list[str]) -> StateVerdict:
        return state_verdict(self.selected, self.outcome, claims)


@dataclass(frozen=True)
class StateVerdict:
    held: bool
    open: dict[str, str]  # claim -> what keeps it from "held in this run"


def state_verdict(selected: dict[str, tuple[str, ...]], outcome: dict[str, str], claims: list[str]) -> StateVerdict:
    """Whether every one of `claims` was evaluated and held in this run: each has a selected test,
    and each of its tests passed (not skipped, not failed, not left unfinished by a stop)."""
    open_: dict[str, str] = {}
    for claim in claims:
        tests = [nodeid for nodeid, ids in selected.items() if claim in ids]
        if not tests:
            open_[claim] = "not run (deselected)"
            continue
        results = [outcome.get(t, "not finished") for t in tests]
        worst = next((r for r in ("failed", "not finished", "skipped") if r in results), None)
        if worst:
            open_[claim] = worst
    return StateVerdict(not open_, open_)


def check_state_against(cluster, state: UpgradeState, source: str) -> None:
    """The same cluster, not a downgrade: else a StateError."""
    uid = cluster.core.read_namespace("kube-system").metadata.uid
    version = client.VersionApi(cluster.api).get_code().git_version
    state.check_cluster(uid, version, source)


def upgrade_record(
    state: UpgradeState,
    target: str,
    checks: list[dict],
    monitor_file: Path,
    steps_file: Path,
    budget: float,
    rule: str = "",
) -> dict:
    """upgrade.json for the report: phases and node upgrades (from the kind upgrade's steps file, if
    any), disruption intervals (from the monitor), the before/after checks."""
    record: dict = {
        "schema": 1,
        "cluster": state.context,
        "from": state.last["server_version"],
        "to": target,
        "version_rule": rule,
        "budget_seconds": budget,
        "phases": [],
        "nodes": [],
        "targets": [],
        "disruptions": [],
        "checks": checks,
    }
    if steps_file.is_file():
        steps = json.loads(steps_file.read_text())
        record["phases"], record["nodes"] = steps.get("phases", []), steps.get("nodes", [])
    if monitor_file.is_file():
        found = read_monitor_file(monitor_file)
        sessions = [
            s for s in found.sessions if s.state_id == state.run_id and (s.started or 0) >= state.last["checked"]
        ]
        record["disruptions"] = [interval for s in sessions for interval in s.outages + s.gaps]
        record["targets"] = sorted({t for s in sessions for t in s.targets} - {"control"})
        for s in sessions:
            if s.started is not None and s.stopped is not None:
                record["phases"].insert(0, {"name": "monitor", "start": s.started, "end": s.stopped})
    return record


@pytest.fixture(scope="module")
def upgrade(
    cluster, images: ImageCatalogue, run: RunContext, settings: Settings, tracker: ResourceTracker
) -> UpgradeJig:
    """The upgrade jig of this module (its checks become upgrade.json's rows)."""
    return UpgradeJig(cluster, images, settings.fixtures_dir, run.run_id, tracker)


@pytest.fixture(scope="session")
def upgrade_settings(pytestconfig: pytest.Config) -> UpgradeSettings:
    """phase, state_file, monitor_file, the disruption budgets, version_rule, keep/remove/overwrite."""
    return pytestconfig.stash[SETTINGS]


@pytest.fixture(scope="module")
def upgrade_state(
    request: pytest.FixtureRequest,
    cluster,
    upgrade: UpgradeJig,
    upgrade_settings: UpgradeSettings,
    run: RunContext,
    note: Callable[[str], None],
) -> Iterator[UpgradeState]:
    """--phase after: what --phase before recorded, checked against this cluster (another cluster or a
    downgrade: one line and the run ends; lost durable objects: the checks that need them fail).
    At the module's end: upgrade.json, then the state removed only if every after claim held."""
    settings = upgrade_settings
    try:
        state = UpgradeState.load(settings.state_file)
        check_state_against(cluster, state, str(settings.state_file))
    except StateError as e:
        pytest.exit(f"clusterproof: {e}", returncode=4)
    upgrade.after_started = time.time()
    lost = upgrade.gone(state)
    if lost:
        note(f"durable state of {state.run_id} lost: {'; '.join(f'{k}: {v}' for k, v in sorted(lost.items()))}")
    yield state
    target = client.VersionApi(cluster.api).get_code().git_version
    checks = [c.to_json() for c in upgrade.checks]
    record = upgrade_record(
        state,
        target,
        checks,
        settings.monitor_file,
        settings.steps_file,
        settings.disruption_budget,
        settings.version_rule.describe(state.last["server_version"]),
    )
    (run.artifacts_root() / "upgrade.json").write_text(json.dumps(record, indent=2) + "\n")
    verdict = request.config.stash[OUTCOMES].verdict(after_claims())
    leave_state(upgrade, state, settings, verdict, note, cluster, target)


def leave_state(
    upgrade: UpgradeJig,
    state: UpgradeState,
    settings: UpgradeSettings,
    verdict: StateVerdict,
    note: Callable[[str], None],
    cluster,
    target: str,
) -> None:
    """Remove the durable state, or keep it and say why and how to finish."""
    where = f"namespaces {state.namespace}, {state.quota_namespace}; state file {settings.state_file}"
    if settings.remove_upgrade_state:
        upgrade.remove_state(state, note)
        settings.state_file.rename(settings.state_file.with_suffix(f".done-{int(time.time())}.json"))
        return
    if not verdict.held:
        open_ = ", ".join(f"{claim} {why}" for claim, why in verdict.open.items())
        note(
            f"the durable state of {state.run_id} is kept ({where}): not every upgrade claim was evaluated and held "
            f"in this run ({open_}). To finish: run --phase after again with --state-file {settings.state_file} "
            "(every UPG test selected, the monitor's output at --monitor-file); to remove the state whatever "
            "the checks find: --phase after --remove-upgrade-state"
        )
        return
    if settings.keep_upgrade_state:
        state.hops.append(
            {
                "server_version": target,
                "node_versions": node_versions(cluster),
                "kube_proxy": kube_proxy_tag(cluster) or "",
                "checked": time.time(),
            }
        )
        state.replace(settings.state_file)
        note(
            f"--keep-upgrade-state: the durable state of {state.run_id} is kept ({where}); the state file records "
            f"this hop ({target}): the next --phase after judges the next upgrade against it"
        )
        return
    upgrade.remove_state(state, note)
    settings.state_file.rename(settings.state_file.with_suffix(f".done-{int(time.time())}.json"))
