"""The upgrade phases without a cluster: the state file's refusals (other cluster, newer schema,
downgrade, missing), which tests each phase runs, the monitor's outage arithmetic and the
record the report reads. Items and clusters are fakes (SimpleNamespace), declared as such."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from clusterproof.upgrade import monitor
from clusterproof.upgrade import plugin as upgrade_plugin
from clusterproof.upgrade.state import SCHEMA, StateError, UpgradeState


def state(**given) -> UpgradeState:
    base = dict(
        run_id="r1",
        cluster_uid="uid-a",
        context="kind-x",
        server_version="v1.36.3",
        node_versions={"n1": "v1.36.3"},
        node_ips={"n1": "10.0.0.1"},
        namespace="cp-upgrade-r1",
        quota_namespace="cp-upgrade-r1-quota",
    )
    return UpgradeState(**{**base, **given})


def test_state_round_trips_through_its_file(tmp_path):
    path = tmp_path / "s.json"
    state(checksums={"f": {"sha256": "a" * 64}}).save(path)
    assert UpgradeState.load(path) == state(
        checksums={"f": {"sha256": "a" * 64}}, created=UpgradeState.load(path).created
    )


def test_missing_state_file_is_one_line(tmp_path):
    with pytest.raises(
        StateError, match=r"^--phase after needs the state file --phase before wrote: .* does not exist"
    ):
        UpgradeState.load(tmp_path / "none.json")


def test_a_newer_schema_is_refused(tmp_path):
    path = tmp_path / "s.json"
    path.write_text(json.dumps({**json.loads(state().to_json()), "schema": SCHEMA + 1}))
    with pytest.raises(StateError, match="written by a newer clusterproof"):
        UpgradeState.load(path)


def test_not_a_state_file(tmp_path):
    path = tmp_path / "s.json"
    path.write_text("{}")
    with pytest.raises(StateError, match="not a clusterproof upgrade state file"):
        UpgradeState.load(path)


def test_another_clusters_state_is_refused():
    with pytest.raises(
        StateError, match=r"belongs to another cluster \(kube-system UID uid-a, this cluster's is uid-b\)"
    ):
        state().check_cluster("uid-b", "v1.37.2", "s.json")


def test_a_downgrade_is_refused():
    with pytest.raises(StateError, match="runs v1.35.0 but ran v1.36.3 before: a downgrade"):
        state().check_cluster("uid-a", "v1.35.0", "s.json")
    state().check_cluster("uid-a", "v1.36.3", "s.json")  # same version: allowed (nothing upgraded yet)


def item(name: str, phase: str | None) -> SimpleNamespace:
    """Fake pytest item: a name and the upgrade_phase marker."""
    marker = SimpleNamespace(args=(phase,)) if phase else None
    return SimpleNamespace(name=name, get_closest_marker=lambda _: marker)


ITEMS = [
    item("svc", None),
    item("after1", "after"),
    item("before1", "before"),
    item("vol", None),
    item("after2", "after"),
]


@pytest.mark.parametrize(
    "phase, kept",
    [
        (None, ["svc", "vol"]),
        ("before", ["before1"]),
        ("after", ["after1", "after2", "svc", "vol"]),
    ],
)
def test_each_phase_runs_its_tests_and_after_runs_first(phase, kept):
    selected, _ = upgrade_plugin.select(ITEMS, phase)
    assert [i.name for i in selected] == kept


def test_outages_are_intervals_from_the_first_failure_to_the_next_success():
    target = monitor.outages_from_samples(
        "t", [(1.0, True, ""), (2.0, False, "refused"), (2.5, False, "timeout"), (3.0, True, ""), (4.0, False, "x")]
    )
    assert target.outages == [{"target": "t", "start": 2.0, "end": 3.0, "detail": "timeout"}]
    assert target.down_seconds(now=5.0) == pytest.approx(1.0 + 1.0)  # the open one counts until now


def test_prober_lines_parse_and_garbage_is_skipped():
    assert monitor.parse_prober_line("1796079667.51 up") == (1796079667.51, True, "")
    assert monitor.parse_prober_line("1796079667.51 down curl: (7) refused") == (
        1796079667.51,
        False,
        "curl: (7) refused",
    )
    assert monitor.parse_prober_line("bash: oops") is None


def test_upgrade_record_joins_steps_monitor_and_checks(tmp_path):
    steps = tmp_path / "s.steps.json"
    steps.write_text(
        json.dumps(
            {"phases": [{"name": "apply", "start": 5, "end": 9}], "nodes": [{"node": "n1", "start": 9, "end": 12}]}
        )
    )
    mon = tmp_path / "s.monitor.jsonl"
    mon.write_text(
        json.dumps({"target": "apiserver", "start": 6, "end": 8})
        + "\n"
        + json.dumps({"summary": {"apiserver": {"down_seconds": 2}}, "started": 1, "stopped": 20})
        + "\n"
    )
    record = upgrade_plugin.upgrade_record(state(), "v1.37.2", [{"check": "c"}], mon, steps, 30)
    assert record["from"] == "v1.36.3" and record["to"] == "v1.37.2"
    assert record["disruptions"] == [{"target": "apiserver", "start": 6, "end": 8}]
    assert [p["name"] for p in record["phases"]] == ["monitor", "apply"]
    assert record["nodes"][0]["node"] == "n1" and record["targets"] == ["apiserver"]


def test_each_phase_tables_its_own_claims():
    claims = {k: k for k in ("SVC-01", "UPG-01", "UPG-02", "UPG-09")}
    assert list(upgrade_plugin.claims_for_phase(claims, None)) == ["SVC-01"]
    assert list(upgrade_plugin.claims_for_phase(claims, "before")) == ["UPG-01"]
    assert list(upgrade_plugin.claims_for_phase(claims, "after")) == ["SVC-01", "UPG-02", "UPG-09"]


def test_tox_e_upgrade_shows_each_stage_as_it_starts_and_ends(tmp_path, monkeypatch, capsys):
    """`python -m clusterproof.upgrade` with every outside thing FAKE (the build, both pytest runs, the
    monitor, the in-place upgrade, kind delete): each stage prints a start and an end line with its
    duration, in order, into progress.log too, and where the time went lists them."""
    from clusterproof.offline import kind_upgrade
    from clusterproof.run import RANDOM_PART
    from clusterproof.upgrade import __main__ as upgrade_main

    monkeypatch.chdir(tmp_path)
    calls: list[str] = []

    class FakeBuilder:
        def __init__(self, progress):
            self.progress = progress

        def build(self, release):
            with self.progress.step(f"offline build go-kubernetes-{release.minor} (Go)"):
                calls.append(f"build {release.minor}")

        def report(self):
            return "  (fake)"

    class FakeMonitor:
        returncode = 0

        def __init__(self, argv):
            state_file = argv[argv.index("--state-file") + 1]
            Path(state_file).with_suffix(".monitor.jsonl").touch()  # "every target answered"

        def poll(self):
            return None

        def wait(self, timeout=None):
            return 0

    class FakeUpgrade:
        def __init__(self, name, target, builder):
            self.progress = builder.progress

        def upgrade(self, leave):
            with self.progress.step("cpup-x-control-plane: kubeadm upgrade v1.37.2"):
                calls.append("upgrade")
            return SimpleNamespace(write=lambda path: None, summary=lambda: "  (fake)")

    def fake_call(argv, **kwargs):
        calls.append(f"pytest --phase {argv[argv.index('--phase') + 1]}")
        run_id = argv[argv.index("--run-id") + 1]
        (tmp_path / ".clusterproof" / "runs" / f"{run_id}-{'0' * RANDOM_PART}").mkdir(parents=True)  # what a run leaves
        return 0, None

    monkeypatch.setattr(upgrade_main.build, "Builder", FakeBuilder)
    monkeypatch.setattr(upgrade_main.stopping, "call", fake_call)
    monkeypatch.setattr(upgrade_main.subprocess, "Popen", FakeMonitor)
    monkeypatch.setattr(upgrade_main.subprocess, "run", lambda argv, **kw: calls.append(" ".join(argv[1:3])))
    monkeypatch.setattr(kind_upgrade, "KindUpgrade", FakeUpgrade)

    assert upgrade_main.main([]) == 0
    out = capsys.readouterr().out.splitlines()
    assert calls == ["build 1.36", "build 1.37", "pytest --phase before", "upgrade", "pytest --phase after",
                     "delete cluster"]
    stages = ["node images v1.36.3 and v1.37.2 (build or cache check)", "boot v1.36.3 and --phase before",
              "in-place upgrade to v1.37.2 (monitored)", "--phase after and the suites on the upgraded cluster"]
    ends = [next(i for i, line in enumerate(out) if line.startswith(f"[upgrade] {s}: done in ")) for s in stages]
    starts = [out.index(f"[upgrade] {s}: started") for s in stages]
    assert starts == sorted(starts) and all(s < e for s, e in zip(starts, ends, strict=True))
    assert starts[1] > ends[0] and starts[2] > ends[1]  # one after the other
    assert "[upgrade] offline build go-kubernetes-1.36 (Go): started" in out
    assert "[upgrade] cpup-x-control-plane: kubeadm upgrade v1.37.2: started" in out
    logged = next((tmp_path / ".clusterproof" / "upgrades").glob("*/progress.log")).read_text()
    assert all(f"{s}: done in " in logged for s in stages)
    table = "\n".join(out[out.index("[upgrade] where the time went:"):])
    assert all(s in table for s in stages) and "total" in table
