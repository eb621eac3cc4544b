"""Run ids, names derived from them, and the run dir's permissions."""

import re
import stat
from datetime import datetime

from clusterproof import run
from clusterproof.run import RunContext


def test_run_id_is_time_and_random():
    assert run.new_run_id(datetime(2026, 11, 22, 16, 30, 0), "ab12cd") == "20261122-163000-ab12cd"
    assert re.fullmatch(r"\d{8}-\d{6}-[0-9a-f]{6}", run.new_run_id())


def test_a_given_run_id_is_the_start_of_a_run_id_unique_per_run():
    """Two CI jobs given one --run-id (a pipeline id shared by a matrix) are two runs."""
    assert run.run_id_from("pipeline-42", "0a1b2c") == "pipeline-42-0a1b2c"
    assert re.fullmatch(r"pipeline-42-[0-9a-f]{6}", run.run_id_from("pipeline-42"))
    assert len({run.run_id_from("pipeline-42") for _ in range(20)}) == 20
    assert run.is_valid_run_id(run.run_id_from("a" * run.GIVEN_MAX))


def test_the_run_dirs_of_a_given_id_are_found_and_only_theirs(tmp_path):
    runs = tmp_path / "runs"
    for name in ("p-0a1b2c", "p-1-0a1b2c", "p-x", "q-0a1b2c"):
        (runs / name).mkdir(parents=True)
    assert [d.name for d in run.run_dirs_of(runs, "p")] == ["p-0a1b2c"]
    assert [d.name for d in run.run_dirs_of(runs, "p-1")] == ["p-1-0a1b2c"]


def test_run_id_is_a_valid_label_value():
    assert run.is_valid_run_id("20261122-163000-ab12")
    assert run.is_valid_run_id("ci.42_nightly")
    assert not run.is_valid_run_id("-x")
    assert not run.is_valid_run_id("a" * 64)
    assert not run.is_valid_run_id("with space")


def test_short_id_is_a_hash_of_the_whole_id_never_a_part_of_it():
    """alice-e2e-staging and bob-e2e-staging end alike: their names must not."""
    assert re.fullmatch(r"[0-9a-f]{10}", run.short_id("20261122-163000-ab12cd"))
    assert run.short_id("alice-e2e-staging-0a1b2c") != run.short_id("bob-e2e-staging-0a1b2c")
    alice = run.cluster_name("alice-e2e-staging-0a1b2c", "suites.test_quota")
    bob = run.cluster_name("bob-e2e-staging-0a1b2c", "suites.test_quota")
    assert alice != bob
    assert run.namespace_name("alice-e2e-staging-0a1b2c", "test_x", "n") != run.namespace_name(
        "bob-e2e-staging-0a1b2c", "test_x", "n"
    )


def test_kind_cluster_names_are_short_lowercase_and_per_module():
    short = run.short_id("20261122-163000-ab12cd")
    name = run.cluster_name("20261122-163000-ab12cd", "suites.test_persistent_volumes")
    assert name == f"cp-{short}-persistent-volumes"
    long = run.cluster_name("20261122-163000-ab12cd", "suites.test_" + "very_long_module_name_" * 4)
    assert len(long) <= 50 and re.fullmatch(r"[a-z0-9][a-z0-9-]*[a-z0-9]", long)
    assert run.cluster_name("20261122-163000-ab12cd", "session") == f"cp-{short}-session"


def test_namespace_names_are_dns_labels_unique_per_test():
    a = run.namespace_name(
        "20261122-163000-ab12cd", "test_nodeport_rotates[ipv4]", "suites/a.py::test_nodeport_rotates[ipv4]"
    )
    b = run.namespace_name(
        "20261122-163000-ab12cd", "test_nodeport_rotates[ipv4]", "suites/b.py::test_nodeport_rotates[ipv4]"
    )
    assert a.startswith(f"cp-{run.short_id('20261122-163000-ab12cd')}-nodeport-rotates-ipv4-")
    assert a != b
    long = run.namespace_name("r", "test_" + "x" * 200, "n", index=3)
    assert len(long) <= 63 and long.endswith("-3")
    assert re.fullmatch(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?", long)


def test_run_dir_is_private_and_kubeconfig_0600(tmp_path):
    ctx = RunContext(
        "r1", tmp_path / ".clusterproof" / "runs" / "r1", tmp_path / ".clusterproof" / "runs" / "r1" / "artifacts"
    )
    assert not ctx.run_dir.exists()  # nothing is made until used
    cluster_dir = ctx.private_dir("clusters", "cp-x")
    kubeconfig = ctx.private_file(cluster_dir / "kubeconfig")
    assert stat.S_IMODE(ctx.run_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE(cluster_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE(kubeconfig.stat().st_mode) == 0o600


def test_artifacts_under_the_run_dir_keep_it_private(tmp_path):
    ctx = RunContext("r1", tmp_path / "r1", tmp_path / "r1" / "artifacts")
    path = ctx.artifacts_for("suites/test_services.py::test_nodeport[a]")
    assert path.parent == tmp_path / "r1" / "artifacts"
    assert path.name.startswith("suites-test-services-py-test-nodeport-a-")
    assert stat.S_IMODE((tmp_path / "r1").stat().st_mode) == 0o700


def test_labels():
    assert RunContext("r1", None, None).labels == {"clusterproof.io/run-id": "r1"}


def test_latest_points_at_the_newest_run_dir(tmp_path):
    runs = tmp_path / ".clusterproof" / "runs"
    for run_id in ("r1", "r2"):
        RunContext(run_id, runs / run_id, runs / run_id / "artifacts").ensure_run_dir()
    latest = tmp_path / ".clusterproof" / "latest"
    assert latest.resolve() == (runs / "r2").resolve()
