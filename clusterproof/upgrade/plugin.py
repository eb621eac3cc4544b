"""The upgrade topic's pytest plugin: its options (--phase before|after and the rest), which tests
run and in which order, the state they share, and what is left behind. Loaded by clusterproof.plugin.

- no --phase: tests marked `upgrade_phase` are deselected (they need a state to carry over);
- --phase before: only the `before` tests run (they create the durable state);
- --phase after: the `after` tests run first (against the state), then every other selected test
  (the suites again, on the upgraded cluster). The durable state is removed when every test of
  the upgrade module passed, unless --keep-upgrade-state; a failed `after` keeps it as evidence.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from kubernetes import client

from clusterproof.api_answers import unless_missing
from clusterproof.claims import Claim, load_claims
from clusterproof.images import ImageCatalogue
from clusterproof.run import RunContext
from clusterproof.settings import Settings
from clusterproof.upgrade.jig import UpgradeJig
from clusterproof.upgrade.monitor import read_monitor_file
from clusterproof.upgrade.state import API_DISRUPTION_BUDGET, DISRUPTION_BUDGET, StateError, UpgradeState

MARKER = "upgrade_phase(name): before/after test of an upgrade; runs only with --phase <name>"
UPGRADE_CLAIMS = Path(__file__).parent.parent / "data" / "UPGRADE-CLAIMS.md"
DEFAULT_STATE_FILE = Path(".clusterproof/upgrade-state.json")
SETTINGS = pytest.StashKey["UpgradeSettings"]()


@dataclass(frozen=True)
class UpgradeSettings:
    phase: str | None = None
    state_file: Path = DEFAULT_STATE_FILE
    keep_upgrade_state: bool = False
    disruption_budget: float = DISRUPTION_BUDGET
    api_disruption_budget: float = API_DISRUPTION_BUDGET
    monitor_file: Path | None = None


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("clusterproof-upgrade", "clusterproof: before and after an upgrade")
    group.addoption(
        "--phase",
        choices=("before", "after"),
        default=None,
        help="upgrade validation: `before` creates durable state and records it (state file + ConfigMap); "
        "`after` compares the upgraded cluster with it, then runs the selected suites",
    )
    group.addoption(
        "--state-file",
        default=None,
        metavar="PATH",
        help=f"the upgrade state file (default: <rootdir>/{DEFAULT_STATE_FILE})",
    )
    group.addoption(
        "--keep-upgrade-state",
        action="store_true",
        help="--phase after: keep the durable namespaces and volumes even when every check held",
    )
    group.addoption(
        "--disruption-budget",
        type=float,
        default=DISRUPTION_BUDGET,
        metavar="SECONDS",
        help="--phase after: seconds a monitored target may be down during the upgrade (more fails UPG-09; "
        "less than this but more than none is reported as tolerated)",
    )
    group.addoption(
        "--api-disruption-budget",
        type=float,
        default=API_DISRUPTION_BUDGET,
        metavar="SECONDS",
        help="--phase after: the same for the API server (a single control plane is down while kubeadm "
        "replaces it)",
    )
    group.addoption(
        "--monitor-file",
        default=None,
        metavar="PATH",
        help="--phase after: what `python -m clusterproof.upgrade.monitor` wrote "
        "(default: <state file>.monitor.jsonl)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", MARKER)


def pytest_clusterproof_configure(config: pytest.Config, settings: Settings) -> None:
    config.stash[SETTINGS] = build_upgrade_settings(config.getoption, settings)


def build_upgrade_settings(option: Callable[[str], object], settings: Settings) -> UpgradeSettings:
    """The upgrade options, checked against the run's settings; pytest.UsageError with one line."""
    phase = option("phase")
    state_file = _path(option("state_file")) or settings.rootdir / DEFAULT_STATE_FILE
    if phase and settings.provider == "kind" and not (settings.cluster_scope == "session" and settings.keep_clusters):
        raise pytest.UsageError(
            f"--phase {phase} needs a cluster that outlives the run: an existing cluster (--kubeconfig, --context, "
            "--allow-context) or a kept kind cluster (--cluster-scope session --keep-clusters --cluster-name NAME)"
        )
    if phase == "after":
        try:
            UpgradeState.load(state_file)
        except StateError as e:
            raise pytest.UsageError(str(e)) from None
    budget = option("disruption_budget")
    if budget is not None and budget < 0:
        raise pytest.UsageError(f"--disruption-budget {budget:g}: seconds, 0 or more")
    api_budget = option("api_disruption_budget")
    return UpgradeSettings(
        phase=phase,
        state_file=state_file,
        keep_upgrade_state=bool(option("keep_upgrade_state")),
        disruption_budget=DISRUPTION_BUDGET if budget is None else budget,
        api_disruption_budget=API_DISRUPTION_BUDGET if api_budget is None else api_budget,
        monitor_file=_path(option("monitor_file")) or state_file.with_suffix(".monitor.jsonl"),
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
    return {k: v for k, v in claims.items()
            if not k.startswith("UPG-") or (phase == "after" and k not in BEFORE_CLAIMS)}


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


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    kept, dropped = select(items, config.stash[SETTINGS].phase)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


def check_state_against(cluster, state: UpgradeState, source: str) -> None:
    """The same cluster, not a downgrade, the durable namespaces still there: else a StateError."""
    uid = cluster.core.read_namespace("kube-system").metadata.uid
    version = client.VersionApi(cluster.api).get_code().git_version
    state.check_cluster(uid, version, source)
    for ns in (state.namespace, state.quota_namespace):
        found = unless_missing(lambda ns=ns: cluster.core.read_namespace(ns))
        if found is None or (found.status and found.status.phase == "Terminating"):
            raise StateError(
                f"durable namespace {ns} of {source} is gone (deleted by hand?): nothing to compare after the upgrade"
            )


def upgrade_record(
    state: UpgradeState, target: str, checks: list[dict], monitor_file: Path, steps_file: Path, budget: float
) -> dict:
    """upgrade.json for the report: phases and node upgrades (from the kind upgrade's steps file, if
    any), disruption intervals (from the monitor), the before/after checks."""
    record: dict = {
        "schema": 1,
        "cluster": state.context,
        "from": state.server_version,
        "to": target,
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
        outages, summary = read_monitor_file(monitor_file)
        record["disruptions"] = outages
        if summary:
            record["targets"] = sorted(summary["summary"])
            record["phases"].insert(0, {"name": "monitor", "start": summary["started"], "end": summary["stopped"]})
    return record


@pytest.fixture(scope="module")
def upgrade(cluster, images: ImageCatalogue, run: RunContext, settings: Settings) -> UpgradeJig:
    """The upgrade jig of this module (its checks become upgrade.json's rows)."""
    return UpgradeJig(cluster, images, settings.fixtures_dir, run.run_id)


@pytest.fixture(scope="session")
def upgrade_settings(pytestconfig: pytest.Config) -> UpgradeSettings:
    """phase, state_file, monitor_file, the disruption budgets, keep_upgrade_state."""
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
    """--phase after: what --phase before recorded, checked against this cluster (else one line and
    the run ends). At the module's end: upgrade.json, then the state removed if every test passed."""
    settings = upgrade_settings
    try:
        state = UpgradeState.load(settings.state_file)
        check_state_against(cluster, state, str(settings.state_file))
    except StateError as e:
        pytest.exit(f"clusterproof: {e}", returncode=4)
    failed_before = request.session.testsfailed
    yield state
    target = client.VersionApi(cluster.api).get_code().git_version
    steps_file = settings.state_file.with_suffix(".steps.json")
    checks = [c.to_json() for c in upgrade.checks]
    record = upgrade_record(state, target, checks, settings.monitor_file, steps_file, settings.disruption_budget)
    (run.artifacts_root() / "upgrade.json").write_text(json.dumps(record, indent=2) + "\n")
    if request.session.testsfailed > failed_before:
        note(
            f"upgrade checks failed: the durable state of {state.run_id} is kept as evidence "
            f"(namespaces {state.namespace}, {state.quota_namespace}; state file {settings.state_file})"
        )
    elif settings.keep_upgrade_state:
        note(f"--keep-upgrade-state: the durable state of {state.run_id} is kept")
    else:
        upgrade.remove_state(state, note)
        settings.state_file.rename(settings.state_file.with_suffix(f".done-{int(time.time())}.json"))
