"""The upgrade phases without a cluster: the state file (refusals, atomic writes that never replace
another's), which tests each phase runs and when the durable state may go, the spec comparison,
the version rule, the monitor's outage and gap arithmetic, its output judged against an upgrade,
and the record the report reads. Items, API objects and probes are fakes (SimpleNamespace, dicts,
lambdas), declared as such."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from clusterproof.upgrade import monitor, monitor_file, specs, versions
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
        kube_proxy="v1.36.3",
        created=1000.0,
    )
    return UpgradeState(**{**base, **given})


# --- the state file ----------------------------------------------------------------------------


def test_state_round_trips_through_its_file(tmp_path):
    path = tmp_path / "s.json"
    state(checksums={"f": {"sha256": "a" * 64}}).write_new(path)
    assert UpgradeState.load(path) == state(checksums={"f": {"sha256": "a" * 64}})


def test_a_state_file_is_never_written_over_another_and_leaves_no_temporary_file(tmp_path):
    path = tmp_path / "s.json"
    state(run_id="first").write_new(path)
    with pytest.raises(FileExistsError):
        state(run_id="second").write_new(path)
    assert UpgradeState.load(path).run_id == "first"
    state(run_id="third").replace(path)  # the after phase adding a hop: replaced, atomically
    assert UpgradeState.load(path).run_id == "third"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.json"]


def test_concurrent_befores_on_one_state_file_one_wins_the_other_is_told(tmp_path):
    path = tmp_path / "s.json"
    outcomes = []

    def write(run_id):
        try:
            state(run_id=run_id).write_new(path)
            outcomes.append(("won", run_id))
        except FileExistsError:
            outcomes.append(("refused", run_id))

    threads = [threading.Thread(target=write, args=(f"r{i}",)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    won = [r for o, r in outcomes if o == "won"]
    assert len(won) == 1 and UpgradeState.load(path).run_id == won[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.json"]


def test_missing_state_file_is_one_line(tmp_path):
    with pytest.raises(
        StateError, match=r"^--phase after needs the state file --phase before wrote: .* does not exist"
    ):
        UpgradeState.load(tmp_path / "none.json")


@pytest.mark.parametrize(
    "change, message",
    [
        ({"schema": SCHEMA + 1}, "written by a newer clusterproof"),
        ({"schema": 1}, "written by an older clusterproof"),
        ({"schema": "2"}, "not a clusterproof upgrade state file"),
    ],
)
def test_a_schema_this_version_cannot_read_is_refused(tmp_path, change, message):
    path = tmp_path / "s.json"
    path.write_text(json.dumps({**json.loads(state().to_json()), **change}))
    with pytest.raises(StateError, match=message):
        UpgradeState.load(path)


def test_not_a_state_file(tmp_path):
    path = tmp_path / "s.json"
    path.write_text("{}")
    with pytest.raises(StateError, match="not a clusterproof upgrade state file"):
        UpgradeState.load(path)
    path.write_text(json.dumps({"cluster_uid": "u", "schema": SCHEMA}))  # fields missing
    with pytest.raises(StateError, match="not a clusterproof upgrade state file"):
        UpgradeState.load(path)


def test_another_clusters_state_is_refused():
    with pytest.raises(
        StateError, match=r"belongs to another cluster \(kube-system UID uid-a, this cluster's is uid-b\)"
    ):
        state().check_cluster("uid-b", "v1.37.2", "s.json")


def test_a_downgrade_is_refused_against_the_last_hop():
    with pytest.raises(StateError, match="runs v1.35.0 but ran v1.36.3 before: a downgrade"):
        state().check_cluster("uid-a", "v1.35.0", "s.json")
    state().check_cluster("uid-a", "v1.36.3", "s.json")  # same version: UPG-08's to judge
    hopped = state(hops=[{"server_version": "v1.37.2", "node_versions": {}, "kube_proxy": "", "checked": 2000.0}])
    with pytest.raises(StateError, match="runs v1.36.3 but ran v1.37.2 before"):
        hopped.check_cluster("uid-a", "v1.36.3", "s.json")
    assert hopped.last["checked"] == 2000.0 and state().last["checked"] == 1000.0


# --- which tests run, and when the durable state may go -------------------------------------------


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


CLAIMS = ["UPG-02", "UPG-08", "UPG-09"]
SELECTED = {"t::two": ("UPG-02",), "t::eight": ("UPG-08",), "t::nine": ("UPG-09",)}


@pytest.mark.parametrize(
    "selected, outcome, held, open_",
    [
        (SELECTED, {"t::two": "passed", "t::eight": "passed", "t::nine": "passed"}, True, {}),
        # the monitor's output missing: a skip keeps the state
        (SELECTED, {"t::two": "passed", "t::eight": "passed", "t::nine": "skipped"}, False, {"UPG-09": "skipped"}),
        (SELECTED, {"t::two": "failed", "t::eight": "passed", "t::nine": "passed"}, False, {"UPG-02": "failed"}),
        # Ctrl-C or SIGTERM during UPG-08: no report of it, nothing after it
        (SELECTED, {"t::two": "passed"}, False, {"UPG-08": "not finished", "UPG-09": "not finished"}),
        # -k: a subset
        (
            {"t::two": ("UPG-02",)},
            {"t::two": "passed"},
            False,
            {"UPG-08": "not run (deselected)", "UPG-09": "not run (deselected)"},
        ),
    ],
)
def test_the_durable_state_goes_only_when_every_after_claim_ran_and_held(selected, outcome, held, open_):
    verdict = upgrade_plugin.state_verdict(selected, outcome, CLAIMS)
    assert (verdict.held, verdict.open) == (held, open_)


def test_outcomes_hear_setup_and_call_and_keep_the_worst():
    """Reports are fakes (SimpleNamespace with nodeid, when, outcome, failed)."""
    outcomes = upgrade_plugin.Outcomes(selected={"t::two": ("UPG-02",), "t::x": ("UPG-08",)})

    def report(nodeid, when, outcome):
        return SimpleNamespace(nodeid=nodeid, when=when, outcome=outcome, failed=outcome == "failed")

    for r in (
        report("t::two", "setup", "passed"),
        report("t::two", "call", "failed"),
        report("t::two", "teardown", "passed"),
        report("t::x", "setup", "skipped"),
        report("other", "call", "passed"),
    ):
        outcomes.pytest_runtest_logreport(r)
    assert outcomes.outcome == {"t::two": "failed", "t::x": "skipped"}


def test_a_test_stopped_in_its_call_is_not_finished_and_keeps_the_state():
    """Seen on a real run: SIGTERM during UPG-04's call; its setup had passed, no call report came.
    Had that been the last test, the state would have been removed. Reports are fakes."""
    outcomes = upgrade_plugin.Outcomes(selected=dict(SELECTED))

    def report(nodeid, when, outcome):
        return SimpleNamespace(nodeid=nodeid, when=when, outcome=outcome, failed=outcome == "failed")

    for r in (
        report("t::two", "setup", "passed"),
        report("t::two", "call", "passed"),
        report("t::eight", "setup", "passed"),
        report("t::eight", "call", "passed"),
        report("t::nine", "setup", "passed"),  # the stop came here
    ):
        outcomes.pytest_runtest_logreport(r)
    verdict = outcomes.verdict(CLAIMS)
    assert (verdict.held, verdict.open) == (False, {"UPG-09": "not finished"})


def settings_for(tmp_path) -> SimpleNamespace:
    """Fake run settings: the fields the upgrade options are checked against."""
    return SimpleNamespace(rootdir=tmp_path, provider="existing", cluster_scope="module", keep_clusters=False)


def options(**given):
    values = {
        "phase": None,
        "state_file": None,
        "keep_upgrade_state": False,
        "remove_upgrade_state": False,
        "overwrite_state_file": False,
        "expect_version": None,
        "allow_same_version": False,
        "disruption_budget": 30.0,
        "api_disruption_budget": 180.0,
        "monitor_file": None,
        **given,
    }
    return values.__getitem__


def test_before_refuses_an_existing_state_file_unless_told(tmp_path):
    path = tmp_path / "s.json"
    state().write_new(path)
    with pytest.raises(pytest.UsageError, match=r"s.json exists: .* or --overwrite-state-file"):
        upgrade_plugin.build_upgrade_settings(options(phase="before", state_file=str(path)), settings_for(tmp_path))
    told = upgrade_plugin.build_upgrade_settings(
        options(phase="before", state_file=str(path), overwrite_state_file=True), settings_for(tmp_path)
    )
    assert told.overwrite_state_file


@pytest.mark.parametrize(
    "given, message",
    [
        ({"expect_version": "latest"}, "--expect-version latest: a Kubernetes version"),
        ({"expect_version": "1.35"}, "--expect-version v1.35 is older than the state's v1.36.3"),
        ({"keep_upgrade_state": True, "remove_upgrade_state": True}, "one or the other"),
        ({"disruption_budget": -1.0}, "--disruption-budget -1: seconds"),
    ],
)
def test_bad_upgrade_options_are_one_line(tmp_path, given, message):
    path = tmp_path / "s.json"
    state().write_new(path)
    with pytest.raises(pytest.UsageError, match=message):
        upgrade_plugin.build_upgrade_settings(
            options(phase="after", state_file=str(path), **given), settings_for(tmp_path)
        )


def test_each_phase_tables_its_own_claims():
    claims = {k: k for k in ("SVC-01", "UPG-01", "UPG-02", "UPG-09")}
    assert list(upgrade_plugin.claims_for_phase(claims, None)) == ["SVC-01"]
    assert list(upgrade_plugin.claims_for_phase(claims, "before")) == ["UPG-01"]
    assert list(upgrade_plugin.claims_for_phase(claims, "after")) == ["SVC-01", "UPG-02", "UPG-09"]


# --- specs: what is compared, named field by field -----------------------------------------------


def obj(kind: str, spec: dict | None = None, **extra) -> dict:
    """A fake API object as the API server serves it (dict, camelCase)."""
    meta = {
        "name": "x",
        "uid": "u1",
        "resourceVersion": "12",
        "generation": 3,
        "creationTimestamp": "2026-01-01T00:00:00Z",
        "managedFields": [{"manager": "kubectl"}],
        "finalizers": ["kubernetes.io/pv-protection"],
        "labels": {"app": "web", "clusterproof.io/upgrade-state": "r1"},
        "annotations": {"deployment.kubernetes.io/revision": "1", "team": "a"},
    }
    return {"kind": kind, "metadata": meta, **({"spec": spec} if spec is not None else {}), "status": {"x": 1}, **extra}


SERVICE = {
    "type": "NodePort",
    "selector": {"app": "web"},
    "ports": [{"port": 80, "targetPort": 8080, "nodePort": 30080}],
    "externalTrafficPolicy": "Cluster",
    "sessionAffinity": "None",
    "clusterIP": "10.96.0.10",
}
DEPLOYMENT = {
    "replicas": 2,
    "selector": {"matchLabels": {"app": "web"}},
    "template": {
        "metadata": {"creationTimestamp": None, "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "web", "image": "agnhost:2.66.1"}]},
    },
}
PV = {
    "persistentVolumeReclaimPolicy": "Retain",
    "capacity": {"storage": "64Mi"},
    "accessModes": ["ReadWriteOnce"],
    "claimRef": {"name": "retained", "namespace": "ns", "uid": "c1", "resourceVersion": "5"},
}


def test_normalised_spec_keeps_what_the_user_set_and_drops_what_the_server_and_controllers_write():
    found = specs.normalise(obj("Deployment", DEPLOYMENT))
    assert found["spec.replicas"] == 2
    assert found["spec.template.spec.containers.0.image"] == "agnhost:2.66.1"
    assert found["metadata.labels.app"] == "web" and found["metadata.annotations.team"] == "a"
    dropped = [p for p in found if p.startswith(("status", "metadata.uid", "metadata.resourceVersion"))]
    assert dropped == []
    assert "spec.template.metadata.creationTimestamp" not in found
    assert not any("clusterproof.io" in p or "deployment.kubernetes.io" in p for p in found)
    assert "spec.claimRef.resourceVersion" not in specs.normalise(obj("PersistentVolume", PV))
    configmap = specs.normalise(obj("ConfigMap", None, data={"greeting": "hello"}))
    assert configmap["data.greeting"] == "hello"


def changed(kind: str, spec: dict, edit, **extra) -> list[str]:
    before = obj(kind, json.loads(json.dumps(spec)), **extra)
    after = json.loads(json.dumps(before))
    edit(after)
    return specs.changes(specs.normalise(before), specs.normalise(after))


@pytest.mark.parametrize(
    "kind, spec, edit, expected",
    [
        (
            "Service",
            SERVICE,
            lambda o: o["spec"]["selector"].update(app="nobody-here"),
            ["spec.selector.app: web -> nobody-here"],
        ),
        (
            "Service",
            SERVICE,
            lambda o: o["spec"]["ports"][0].update(targetPort=9090),
            ["spec.ports.0.targetPort: 8080 -> 9090"],
        ),
        (
            "Service",
            SERVICE,
            lambda o: o["spec"].update(externalTrafficPolicy="Local"),
            ["spec.externalTrafficPolicy: Cluster -> Local"],
        ),
        (
            "Service",
            SERVICE,
            lambda o: o["spec"].update(externalIPs=["1.2.3.4"]),
            ["spec.externalIPs.0: (absent) -> 1.2.3.4"],
        ),
        ("Deployment", DEPLOYMENT, lambda o: o["spec"].update(replicas=5), ["spec.replicas: 2 -> 5"]),
        (
            "Deployment",
            DEPLOYMENT,
            lambda o: o["spec"]["template"]["spec"]["containers"][0].update(image="nginx"),
            ["spec.template.spec.containers.0.image: agnhost:2.66.1 -> nginx"],
        ),
        (
            "PodDisruptionBudget",
            {"minAvailable": 1},
            lambda o: o["spec"].update(minAvailable=0),
            ["spec.minAvailable: 1 -> 0"],
        ),
        (
            "ResourceQuota",
            {"hard": {"count/configmaps": "2"}},
            lambda o: o["spec"]["hard"].update({"count/configmaps": "12"}),
            ["spec.hard.count/configmaps: 2 -> 12"],
        ),
        (
            "PersistentVolume",
            PV,
            lambda o: o["spec"].update(persistentVolumeReclaimPolicy="Delete"),
            ["spec.persistentVolumeReclaimPolicy: Retain -> Delete"],
        ),
        (
            "PersistentVolume",
            PV,
            lambda o: o["spec"].update(capacity={"storage": "1Gi"}, accessModes=["ReadWriteMany"]),
            ["spec.accessModes.0: ReadWriteOnce -> ReadWriteMany", "spec.capacity.storage: 64Mi -> 1Gi"],
        ),
        ("Service", SERVICE, lambda o: o["spec"].pop("sessionAffinity"), ["spec.sessionAffinity: None -> (absent)"]),
        # what the rule leaves out: status, server metadata, a controller's annotation, our labels
        (
            "Deployment",
            DEPLOYMENT,
            lambda o: (
                o["status"].update(x=2),
                o["metadata"].update(resourceVersion="99"),
                o["metadata"]["annotations"].update({"deployment.kubernetes.io/revision": "2"}),
                o["metadata"]["labels"].pop("clusterproof.io/upgrade-state"),
            ),
            [],
        ),
        ("PersistentVolume", PV, lambda o: o["spec"]["claimRef"].update(resourceVersion="77"), []),
    ],
)
def test_each_change_of_a_durable_object_is_named_before_and_after(kind, spec, edit, expected):
    assert changed(kind, spec, edit) == expected


def test_configmap_data_changes_are_named():
    assert changed("ConfigMap", {}, lambda o: o["data"].update(greeting="bye"), data={"greeting": "hello"}) == [
        "data.greeting: hello -> bye"
    ]


def test_a_field_a_newer_release_defaults_is_not_a_change_unless_it_holds_another_value():
    """1.37 defaults a StatefulSet's maxUnavailable to 1 (seen on the in-place upgrade 1.36.3 -> 1.37.2)."""
    strategy = {"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}}

    def set_to(value):
        return lambda o: o["spec"]["updateStrategy"]["rollingUpdate"].update(maxUnavailable=value)

    assert changed("StatefulSet", strategy, set_to(1)) == []
    assert changed("StatefulSet", strategy, set_to(5)) == [
        "spec.updateStrategy.rollingUpdate.maxUnavailable: (absent) -> 5"
    ]


# --- the version rule (UPG-08) ---------------------------------------------------------------------

LAST = {"server_version": "v1.36.3", "node_versions": {"n1": "v1.36.3", "n2": "v1.36.3"}, "kube_proxy": "v1.36.3"}


def rows(rule, server, kubelets, kube_proxy="v1.37.2"):
    return {r.check: (r.verdict, r.why) for r in versions.component_rows(rule, LAST, server, kubelets, kube_proxy)}


def test_the_default_rule_is_newer_than_before_and_everything_at_the_servers_version():
    found = rows(versions.VersionRule(), "v1.37.2", {"n1": "v1.37.2", "n2": "v1.37.2"})
    assert {v for v, _ in found.values()} == {"held"}


def test_nothing_upgraded_fails_every_component_naming_it():
    found = rows(versions.VersionRule(), "v1.36.3", {"n1": "v1.36.3", "n2": "v1.36.3"}, "v1.36.3")
    assert found["API server"] == (
        "failed",
        "still v1.36.3, as before: nothing was upgraded (--allow-same-version for a rehearsal)",
    )
    assert found["kubelet on n1"][0] == found["kube-proxy image tag"][0] == "failed"


def test_the_same_version_holds_only_as_a_rehearsal_and_the_rule_says_so():
    rule = versions.VersionRule(allow_same=True)
    found = rows(rule, "v1.36.3", {"n1": "v1.36.3", "n2": "v1.36.3"}, "v1.36.3")
    assert {v for v, _ in found.values()} == {"held"}
    assert (
        rule.describe("v1.36.3")
        == "newer than v1.36.3, or still v1.36.3 (--allow-same-version: a rehearsal, not an upgrade)"
    )


def test_a_node_left_at_the_old_version_fails_naming_it():
    found = rows(versions.VersionRule(), "v1.37.2", {"n1": "v1.37.2", "n2": "v1.36.3"})
    assert found["kubelet on n2"] == (
        "failed",
        "still v1.36.3, as before: nothing was upgraded (--allow-same-version for a rehearsal)",
    )
    assert found["kubelet on n1"][0] == "held"


def test_expect_version_is_the_target():
    rule = versions.VersionRule(versions.parse_expected("1.37"))
    assert rows(rule, "v1.37.2-eks-1", {"n1": "v1.37.2-eks-1", "n2": "v1.37.2-eks-1"}, "v1.37.0-minimal-eksbuild.1")[
        "kube-proxy image tag"
    ] == ("held", "")
    wrong = rows(versions.VersionRule("v1.38"), "v1.37.2", {"n1": "v1.37.2", "n2": "v1.37.2"})
    assert wrong["API server"] == ("failed", "v1.37.2, expected v1.38")
    with pytest.raises(versions.BadVersion):
        versions.parse_expected("1.37-beta")


def test_skew_a_kubelet_newer_than_the_api_server_fails():
    found = rows(versions.VersionRule(), "v1.37.2", {"n1": "v1.38.0", "n2": "v1.37.2"})
    assert found["kubelet on n1"] == (
        "failed",
        "v1.38.0 is newer than the API server (v1.37.2): the skew policy forbids it",
    )


def test_a_downgrade_fails():
    found = rows(versions.VersionRule(), "v1.35.4", {"n1": "v1.35.4", "n2": "v1.35.4"})
    assert found["API server"] == ("failed", "v1.35.4 is older than before (v1.36.3): a downgrade")


def test_a_cluster_without_a_kube_proxy_daemonset_is_not_judged_on_it():
    """#24 item 13: managed and kube-proxy-free clusters."""
    found = rows(versions.VersionRule(), "v1.37.2", {"n1": "v1.37.2", "n2": "v1.37.2"}, None)
    assert found["kube-proxy"][0] == "skipped"
    assert rows(versions.VersionRule(), "v1.37.2", {"n1": "v1.37.2", "n2": "v1.37.2"}, "latest")["kube-proxy"][0] == (
        "skipped"
    )


# --- the monitor: outages, gaps, sessions --------------------------------------------------------


def test_outages_are_intervals_from_the_first_failure_to_the_next_success():
    target = monitor.outages_from_samples(
        "t", [(1.0, True, ""), (2.0, False, "refused"), (2.5, False, "timeout"), (3.0, True, ""), (4.0, False, "x")]
    )
    assert target.outages == [{"target": "t", "start": 2.0, "end": 3.0, "detail": "timeout"}]
    assert target.down_seconds(now=5.0) == pytest.approx(1.0 + 1.0)  # the open one counts until now


def test_a_stretch_without_samples_is_not_observed():
    """A prober stopped for a while: its log has a hole; so has the time before its first line."""
    target = monitor.outages_from_samples("t", [(10.0, True, ""), (11.0, True, ""), (56.0, True, "")], started=5.0)
    assert [(g["start"], g["end"]) for g in target.gaps] == [(5.0, 10.0), (11.0, 56.0)]
    assert target.unobserved_seconds() == pytest.approx(50.0) and target.down_seconds(56.0) == 0
    assert [(g["start"], g["end"]) for g in target.close(now=70.0)] == [(56.0, 70.0)]


def test_prober_lines_parse_and_garbage_is_skipped():
    assert monitor.parse_prober_line("1796079667.51 up") == (1796079667.51, True, "")
    assert monitor.parse_prober_line("1796079667.51 down curl: (7) refused") == (
        1796079667.51,
        False,
        "curl: (7) refused",
    )
    assert monitor.parse_prober_line("bash: oops") is None


def monitor_state() -> UpgradeState:
    return state(objects={"Service web-np": {"spec": {"spec.ports.0.nodePort": 30080}}})


def fake_monitor(tmp_path: Path, probes: dict) -> monitor.Monitor:
    """A Monitor whose probes are lambdas and whose API answers nothing (no prober pods: their
    target is never sampled, as when the API is away)."""
    from kubernetes import client

    found = monitor.Monitor(
        monitor_state(), client.ApiClient(), tmp_path / "m.jsonl", say=lambda m: None, stop_file=tmp_path / "stop"
    )
    found.probes = probes
    found.targets = {name: monitor.Target(name) for name in probes}
    found.prober_pods = lambda: {}
    return found


def test_a_restarted_monitor_appends_a_session_with_its_own_header_and_summary(tmp_path, monkeypatch):
    monkeypatch.setattr(monitor, "LOG_EVERY", 0.05)
    monkeypatch.setattr(monitor, "PROBER_STOP_TIMEOUT", 0.0)
    for _ in range(2):
        (tmp_path / "stop").unlink(missing_ok=True)
        m = fake_monitor(tmp_path, {"control": lambda: (True, ""), "apiserver": lambda: (False, "HTTP 503")})
        threading.Timer(0.3, (tmp_path / "stop").touch).start()
        summary = m.run(lambda: "stop file")
        assert summary["state_id"] == "r1" and summary["summary"]["apiserver"]["down_seconds"] > 0
    found = monitor_file.read_monitor_file(tmp_path / "m.jsonl")
    assert len(found.sessions) == 2 and found.torn == 0
    assert all(s.state_id == "r1" and s.summary and s.summary["stop"] == "stop file" for s in found.sessions)
    assert all(o["target"] == "apiserver" and o.get("open_at_stop") for s in found.sessions for o in s.outages)
    # the prober's log could not be read at the stop: said so, and its target is not observed
    assert all(s.summary["probers_unread"] == ["n1"] for s in found.sessions)


def test_the_probers_logs_are_read_again_at_the_stop_until_every_one_answers(tmp_path, monkeypatch):
    """A kubelet the upgrade just restarted does not serve logs at once (seen: 45 s of a prober's
    samples missing). FAKE API: the log read fails once, then answers."""
    monkeypatch.setattr(monitor, "PROBER_POLL", 0.01)
    m = fake_monitor(tmp_path, {"control": lambda: (True, "")})
    pod = SimpleNamespace(metadata=SimpleNamespace(name="prober-1"), status=SimpleNamespace(container_statuses=[]))
    m.prober_pods = lambda: {"n1": pod}
    answers = [RuntimeError("kubelet restarting"), "100.0 up\n100.5 down curl: (7)\n"]

    def log(*args, **kwargs):
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    m.core = SimpleNamespace(read_namespaced_pod_log=log)
    m.started = 50.0
    assert m.read_prober_logs_at_stop() == set()
    assert m.prober_samples["n1"] == [(100.0, True, ""), (100.5, False, "curl: (7)")]
    assert m.prober_logs["n1"].startswith("100.0 up")


HARNESS = """
import sys, threading
from pathlib import Path
from kubernetes import client
from clusterproof.upgrade import monitor
from clusterproof.upgrade.state import UpgradeState
monitor.PROBER_STOP_TIMEOUT = 0.0
state = UpgradeState.load(Path(sys.argv[1]))
m = monitor.Monitor(state, client.ApiClient(), Path(sys.argv[2]), say=lambda m: None)
m.probes = {"control": lambda: (True, "")}
m.targets = {"control": monitor.Target("control")}
m.prober_pods = lambda: {}
stops = monitor.stop_on_signals(m, Path(sys.argv[2]))
threading.Timer(0.2, lambda: print("sampling", flush=True)).start()
m.run(lambda: stops[0] if stops else "?")
"""


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_sigterm_sighup_and_ctrl_c_end_the_monitor_with_its_summary(tmp_path, signum):
    """A real process (the monitor's sampling with a fake probe), stopped by a signal."""
    state_file = tmp_path / "s.json"
    monitor_state().write_new(state_file)
    out = tmp_path / "m.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-c", HARNESS, str(state_file), str(out)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)},
    )
    assert proc.stdout.readline().strip() == "sampling"
    proc.send_signal(signum)
    assert proc.wait(timeout=30) == 0
    (session,) = monitor_file.read_monitor_file(out).sessions
    assert session.summary["stop"] == signal.Signals(signum).name


# --- the monitor's output judged against an upgrade --------------------------------------------------

TARGETS = ["apiserver", "clusterip from n1"]


def write_lines(path: Path, *records) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
    return path


def header(started, state_id="r1", targets=("apiserver", "clusterip from n1", "control")):
    return {"monitor": {"state_id": state_id, "started": started, "targets": list(targets)}}


def summary(started, stopped, state_id="r1"):
    return {
        "summary": {t: {"down_seconds": 0} for t in ("apiserver", "clusterip from n1", "control")},
        "state_id": state_id,
        "started": started,
        "stopped": stopped,
    }


def judge(path, since=1000.0, window=(1100.0, 1200.0, "kube-apiserver started"), targets=TARGETS):
    return monitor_file.judge(
        monitor_file.read_monitor_file(path),
        state_id="r1",
        since=since,
        since_what="the state was recorded",
        window=window,
        targets=targets,
        budget=30,
        api_budget=180,
    )


def test_a_clean_monitor_file_holds(tmp_path):
    found = judge(
        write_lines(
            tmp_path / "m", header(1050), {"target": "apiserver", "start": 1110, "end": 1150}, summary(1050, 1250)
        )
    )
    assert found.problems == []
    assert {t.target: (t.verdict, round(t.down), round(t.unobserved)) for t in found.targets} == {
        "apiserver": ("tolerated", 40, 0),
        "clusterip from n1": ("held", 0, 0),
    }


def test_a_monitor_file_of_another_state_is_not_this_upgrades(tmp_path):
    found = judge(write_lines(tmp_path / "m", header(1050, "old-state"), summary(1050, 1250, "old-state")))
    assert found.problems == [
        f"{tmp_path / 'm'} was not written for this upgrade's state r1: its monitor watched state old-state"
    ]


def test_an_older_monitor_file_of_this_state_is_not_this_hops(tmp_path):
    """Replaced by the file of an earlier cycle (or hop): it started before the state's last check."""
    found = judge(write_lines(tmp_path / "m", header(500), summary(500, 700)))
    assert (
        found.problems and "is older than this upgrade: its newest session of state r1 started at" in found.problems[0]
    )


def test_a_file_without_headers_from_an_older_monitor_is_refused(tmp_path):
    found = judge(
        write_lines(
            tmp_path / "m",
            {"target": "apiserver", "start": 1, "end": 2},
            {"summary": {}, "started": 1050, "stopped": 1250},
        )
    )
    assert "its monitor watched state none (an older monitor's file)" in found.problems[0]


def test_a_monitor_that_missed_part_of_the_upgrade_window_fails(tmp_path):
    found = judge(write_lines(tmp_path / "m", header(1150), summary(1150, 1250)))
    assert found.problems and found.problems[0].startswith("the monitor did not watch the whole upgrade")


def test_gaps_count_against_the_budget_and_a_session_without_summary_is_blind_after_its_last_line(tmp_path):
    path = write_lines(
        tmp_path / "m",
        header(1050),
        {"target": "clusterip from n1", "start": 1100, "end": 1145, "not_observed": True},
        {"alive": 1160},
        '{"target": "apiser',  # torn: the monitor was killed mid-write
        header(1180),  # restarted: a new session, appended
        summary(1180, 1250),
    )
    found = judge(path)
    by = {t.target: t for t in found.targets}
    assert by["clusterip from n1"].verdict == "failed"  # 45 s blind + 20 s between the sessions
    assert round(by["clusterip from n1"].unobserved) == 65 and by["apiserver"].verdict == "tolerated"
    assert any("ended without its summary" in n for n in found.notes) and any(
        "could not be read" in n for n in found.notes
    )


def test_every_target_of_the_state_is_judged(tmp_path):
    found = judge(
        write_lines(tmp_path / "m", header(1050, targets=("apiserver", "control")), summary(1050, 1250)),
        targets=[*TARGETS, "nodeport n1 new"],
    )
    by = {t.target: t for t in found.targets}
    assert by["nodeport n1 new"].verdict == "failed" and by["nodeport n1 new"].detail == "never observed"


def test_the_probing_side_down_is_not_observed_for_every_target(tmp_path):
    found = judge(
        write_lines(
            tmp_path / "m",
            header(1050),
            {"target": "control", "start": 1100, "end": 1101},
            {"target": "apiserver", "start": 1100.5, "end": 1102},
            summary(1050, 1250),
        )
    )
    assert not found.problems
    assert any("the monitor's own listener was down 1.0s" in n for n in found.notes)
    by = {t.target: t for t in found.targets}
    assert by["clusterip from n1"].unobserved == 1.0 and by["clusterip from n1"].verdict == "tolerated"
    assert by["apiserver"].down == 1.5 and by["apiserver"].unobserved == 0.5


def test_the_probing_side_down_for_long_fails_the_targets(tmp_path):
    found = judge(
        write_lines(
            tmp_path / "m", header(1050), {"target": "control", "start": 1100, "end": 1200}, summary(1050, 1250)
        )
    )
    assert {t.target: t.verdict for t in found.targets}["clusterip from n1"] == "failed"


def test_upgrade_record_joins_steps_monitor_and_checks(tmp_path):
    steps = tmp_path / "s.steps.json"
    steps.write_text(
        json.dumps(
            {
                "phases": [{"name": "apply", "start": 1100, "end": 1190}],
                "nodes": [{"node": "n1", "start": 1190, "end": 1200}],
            }
        )
    )
    mon = write_lines(
        tmp_path / "s.monitor.jsonl",
        header(1050),
        {"target": "apiserver", "start": 1106, "end": 1108},
        summary(1050, 1250),
    )
    record = upgrade_plugin.upgrade_record(state(), "v1.37.2", [{"check": "c"}], mon, steps, 30, "newer than v1.36.3")
    assert record["from"] == "v1.36.3" and record["to"] == "v1.37.2" and record["version_rule"] == "newer than v1.36.3"
    assert record["disruptions"] == [{"target": "apiserver", "start": 1106, "end": 1108}]
    assert [p["name"] for p in record["phases"]] == ["monitor", "apply"]
    assert record["nodes"][0]["node"] == "n1" and record["targets"] == ["apiserver", "clusterip from n1"]


# --- the driver (tox -e upgrade) -------------------------------------------------------------------


def test_the_multi_hop_path_goes_one_minor_at_a_time():
    from clusterproof.offline import releases
    from clusterproof.upgrade import __main__ as driver

    assert [r.kube for r in driver.hops_from(releases.release("1.35"))] == ["v1.36.3", "v1.37.2"]
    assert [r.kube for r in driver.hops_from(releases.release("1.36"))] == ["v1.37.2"]


@pytest.mark.parametrize(
    "source, message",
    [
        ("9.99", "--from: --k8s-version 9.99: the offline build makes"),
        ("1.37", "--from 1.37: start from a Go-built release older than 1.37 (1.36, 1.35)"),
        ("1.20", "--from 1.20: start from a Go-built release older than 1.37"),
    ],
)
def test_a_bad_from_is_one_line(capsys, source, message):
    from clusterproof.upgrade import __main__ as driver

    with pytest.raises(SystemExit) as exit_:
        driver.parse(["--from", source])
    assert exit_.value.code == 2 and message in capsys.readouterr().err


def fake_kind(tmp_path: Path, fails: int) -> Path:
    """A fake `kind`: `delete` fails `fails` times (then the cluster is gone), `get clusters` lists it until then."""
    state = tmp_path / "deletes"
    state.write_text("0")
    script = tmp_path / "kind"
    script.write_text(
        f"""#!/bin/sh
n=$(cat {state})
if [ "$1" = delete ]; then
  n=$((n+1)); echo $n > {state}; [ $n -gt {fails} ] && exit 0
  echo "ERROR: failed to delete" >&2; exit 1
fi
[ $n -gt {fails} ] || echo cpup-x
"""
    )
    script.chmod(0o755)
    return script


@pytest.mark.parametrize(
    "fails, survives, timeout, gone, attempts",
    [(0, 0, 60, True, 1), (1, 0, 60, True, 2), (0, 2, 60, True, 3), (5, 0, 0, False, 1)],
)
def test_kind_delete_is_tried_until_the_nodes_are_gone(
    tmp_path, monkeypatch, fails, survives, timeout, gone, attempts
):
    """`survives`: deletes that report success while docker still lists the nodes (a node whose start
    was in flight when kind create was killed). Fakes: kind (a script) and docker's list of nodes."""
    from clusterproof import kind_clusters
    from clusterproof.upgrade import __main__ as driver

    kind = fake_kind(tmp_path, fails)
    deletes = tmp_path / "deletes"
    monkeypatch.setattr(driver.shutil, "which", lambda name: str(kind))
    monkeypatch.setattr(driver.capabilities, "kind_command", lambda path, work: path)
    monkeypatch.setattr(
        kind_clusters, "node_containers",
        lambda name: {} if int(deletes.read_text()) > fails + survives else {"cid": 0.0},
    )  # fmt: skip
    monkeypatch.setenv("CLUSTERPROOF_RUNS_REGISTRY", str(tmp_path / "registry"))
    said: list[str] = []
    assert driver.delete_cluster("cpup-x", tmp_path, said.append, timeout) is gone
    assert deletes.read_text().strip() == str(attempts)
    if not gone:
        assert said[-1] == "kind cluster cpup-x is still there: delete it with `kind delete cluster --name cpup-x`"
    elif attempts > 1:
        assert said[-1] == f"kind cluster cpup-x deleted at attempt {attempts}"


def test_a_stop_during_a_stage_unwinds_to_the_cleanup_and_a_second_stop_does_not_interrupt_it(tmp_path, monkeypatch):
    """SIGTERM to this process while a (fake) stage runs: Stopped reaches the cleanup; a SIGTERM
    during the cleanup is counted, not raised."""
    from clusterproof.upgrade import __main__ as driver

    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        stops = driver.Stops(tmp_path)
        with pytest.raises(driver.Stopped) as stopped:
            os.kill(os.getpid(), signal.SIGTERM)
            for _ in range(100):  # the handler runs between bytecodes
                time_passes()
        assert stopped.value.signum == signal.SIGTERM
        stops.cleaning = True
        os.kill(os.getpid(), signal.SIGTERM)
        time_passes()
        assert stops.received == [signal.SIGTERM, signal.SIGTERM]
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def time_passes() -> None:
    time.sleep(0.01)


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
            Path(argv[argv.index("--out") + 1]).touch()  # "every target answered"

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
    deleted = lambda name, work, say, **how: calls.append("delete cluster") or True  # noqa: E731
    monkeypatch.setattr(upgrade_main, "delete_cluster", deleted)
    monkeypatch.setattr(upgrade_main, "take_over", lambda *args: SimpleNamespace(close=lambda: None))
    monkeypatch.setattr(kind_upgrade, "KindUpgrade", FakeUpgrade)

    assert upgrade_main.main([]) == 0
    out = capsys.readouterr().out.splitlines()
    assert calls == ["build 1.36", "build 1.37", "pytest --phase before", "upgrade", "pytest --phase after",
                     "delete cluster"]
    stages = ["node images v1.36.3, v1.37.2 (build or cache check)", "boot v1.36.3 and --phase before",
              "hop 1: in-place upgrade to v1.37.2 (monitored)", "hop 1: --phase after and the suites on v1.37.2"]
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


def test_the_driver_takes_the_kept_cluster_over_so_a_sweep_deletes_it_once_the_driver_is_gone(tmp_path, monkeypatch):
    """The before run keeps its kind cluster (the after phase needs it): its claim is rewritten to
    name the driver, not kept, and the driver records itself. Registry in tmp_path; the sweep's
    decision is made on fakes (containers, delete)."""
    from clusterproof import liveness, sweep
    from clusterproof.kind_clusters import Claim, Claims
    from clusterproof.run_records import HostRegistry
    from clusterproof.upgrade import __main__ as driver

    monkeypatch.setenv("CLUSTERPROOF_RUNS_REGISTRY", str(tmp_path))
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    claims = Claims(tmp_path)
    claims.write(Claim("cpup-x", "r-before-0a1b2c", "", 1.0, ("c1",), kept=True))
    recorder = driver.take_over("cpup-x", "r-before", "r", keep=False)
    claim = claims.read("")["cpup-x"]
    assert (claim.run_id, claim.kept, claim.containers) == ("r", False, ("c1",))

    def decided():
        (decision,) = sweep.decide_kind(
            ["cpup-x"], claims.read(""), HostRegistry(tmp_path).records(), liveness.this_machine(),
            containers=lambda name: {"c1": 1.0}, delete=lambda name: lambda: None,
        )  # fmt: skip
        return decision.remove, decision.why

    assert decided() == (False, f"alive: pid {os.getpid()} on {liveness.this_machine().host} is running")
    recorder.close()  # the driver is gone
    assert decided()[0] is True


def test_the_monitor_closes_its_targets_at_the_stop_not_after_reading_the_probers_logs(tmp_path):
    """Reading the probers' complete logs after the stop took 11 s on a loaded host: that is no
    stretch without samples. FAKE probes and times."""
    m = fake_monitor(tmp_path, {"control": lambda: (True, "")})
    m.read_prober_logs_at_stop = lambda: set()
    m.started = 990.0
    m.targets["control"].observe(1000.0, True)
    with (tmp_path / "m.jsonl").open("a") as m.file:
        summary = m.finish("SIGTERM", now=1001.0)  # the wall clock is far later
    assert summary["stopped"] == 1001.0 and summary["summary"]["control"]["not_observed_seconds"] == 0


def test_the_in_place_upgrade_repeats_a_kubectl_step_while_the_api_server_is_away():
    """kubectl says "The connection to the server HOST:6443 was refused" too (a drain failed on it).
    FAKE node commands."""
    from clusterproof.offline import kind_upgrade, releases

    upgrade = kind_upgrade.KindUpgrade("c", releases.release("1.37"), log=lambda m: None)
    answers = [
        kind_upgrade.UpgradeError(
            "c-control-plane: drain c-worker failed (exit 1): The connection to the server "
            "c-control-plane:6443 was refused - did you specify the right host or port?"
        ),
        "node/c-worker drained",
    ]

    def run(node, *argv, **kwargs):
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    upgrade.run = run
    upgrade.wait_api_ready = lambda node: None
    assert upgrade.kubectl("c-control-plane", "drain", "c-worker", what="drain c-worker") == "node/c-worker drained"


def test_a_failed_copy_into_a_node_is_an_upgrade_error_with_dockers_words(tmp_path):
    """Seen: `docker cp` of the kubelet failed half-way (exit 1) and the driver died in a traceback
    without docker's reason. FAKE docker: a script that fails as docker does on a full disk."""
    from clusterproof.offline import kind_upgrade, releases

    docker = tmp_path / "docker"
    docker.write_text("#!/bin/sh\necho 'Error response from daemon: no space left on device' >&2\nexit 1\n")
    docker.chmod(0o755)
    upgrade = kind_upgrade.KindUpgrade("c", releases.release("1.37"), log=lambda m: None, docker=str(docker))
    said = r"docker cp .*kubelet to /usr/bin/kubelet failed \(exit 1\): Error response from daemon: no space left"
    with pytest.raises(kind_upgrade.UpgradeError, match=said):
        upgrade.copy_in("c-worker", tmp_path / "kubelet", "/usr/bin/kubelet")
