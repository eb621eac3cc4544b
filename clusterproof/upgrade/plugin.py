"""--phase before|after: which tests run and in which order, the state they share, and what is
left behind. Registered by clusterproof.plugin.

- no --phase: tests marked `upgrade_phase` are deselected (they need a state to carry over);
- --phase before: only the `before` tests run (they create the durable state);
- --phase after: the `after` tests run first (against the state), then every other selected test
  (the suites again, on the upgraded cluster). The durable state is removed when every test of
  the upgrade module passed, unless --keep-upgrade-state; a failed `after` keeps it as evidence.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from clusterproof.upgrade.state import StateError, UpgradeState

MARKER = "upgrade_phase(name): before/after test of an upgrade; runs only with --phase <name>"
UPGRADE_CLAIMS = Path(__file__).parent.parent / "data" / "UPGRADE-CLAIMS.md"


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


class UpgradePhase:
    def __init__(self, phase: str | None) -> None:
        self.phase = phase

    def pytest_collection_modifyitems(self, config: pytest.Config, items: list[pytest.Item]) -> None:
        kept, dropped = select(items, self.phase)
        if dropped:
            config.hook.pytest_deselected(items=dropped)
            items[:] = kept


def check_state_against(cluster, state: UpgradeState, source: str) -> None:
    """The same cluster, not a downgrade, the durable namespaces still there: else a StateError."""
    from kubernetes import client

    uid = cluster.core.read_namespace("kube-system").metadata.uid
    version = client.VersionApi(cluster.api).get_code().git_version
    state.check_cluster(uid, version, source)
    for ns in (state.namespace, state.quota_namespace):
        try:
            found = cluster.core.read_namespace(ns)
        except client.ApiException as e:
            if e.status != 404:
                raise
            found = None
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
        from clusterproof.monitor import read_monitor_file

        outages, summary = read_monitor_file(monitor_file)
        record["disruptions"] = outages
        if summary:
            record["targets"] = sorted(summary["summary"])
            record["phases"].insert(0, {"name": "monitor", "start": summary["started"], "end": summary["stopped"]})
    return record


@pytest.fixture(scope="module")
def upgrade(cluster, images, run, pytestconfig: pytest.Config):
    """The upgrade jig of this module (its checks become upgrade.json's rows)."""
    from clusterproof.jigs.upgrade import UpgradeJig
    from clusterproof.plugin import SETTINGS

    return UpgradeJig(cluster, images, pytestconfig.stash[SETTINGS].fixtures_dir, run.run_id)


@pytest.fixture(scope="session")
def upgrade_settings(pytestconfig: pytest.Config):
    """state_file, monitor_file, disruption_budget, keep_upgrade_state (the run's Settings)."""
    from clusterproof.plugin import SETTINGS

    return pytestconfig.stash[SETTINGS]


@pytest.fixture(scope="module")
def upgrade_state(
    request: pytest.FixtureRequest, cluster, upgrade, upgrade_settings, run, pytestconfig: pytest.Config
) -> Iterator[UpgradeState]:
    """--phase after: what --phase before recorded, checked against this cluster (else one line and
    the run ends). At the module's end: upgrade.json, then the state removed if every test passed."""
    from kubernetes import client

    from clusterproof.plugin import _note

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
    note = _note(pytestconfig)
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
