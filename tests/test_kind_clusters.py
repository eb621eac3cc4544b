"""Which kind clusters a run made (clusterproof.kind_clusters): claims, and a cluster's identity by
its node containers. docker is a FAKE (recorded argv, canned answers)."""

import subprocess

from clusterproof.kind_clusters import Claim, Claims, _docker_time, identify, node_containers

T = 1_800_000_000.0


def test_a_claim_survives_json_and_its_file_is_per_docker_daemon(tmp_path):
    claims = Claims(tmp_path)
    claim = Claim("dev", "r-0a1b2c", "", T, ("c1", "c2"), kept=True, kubeconfig="/k")
    claims.write(claim)
    claims.write(Claim("dev", "other-0a1b2c", "tcp://remote:2376", T, ()))
    assert claims.read("") == {"dev": claim}
    assert claims.read("tcp://remote:2376")["dev"].run_id == "other-0a1b2c"
    (tmp_path / "kind" / "junk.json").write_text("{not json")
    claims.remove("dev", "")
    assert claims.read("") == {} and "dev" in claims.read("tcp://remote:2376")


def test_the_cluster_is_the_claims_only_with_the_containers_it_recorded():
    claim = Claim("dev", "r", "", T, ("c1", "c2"))
    assert identify(claim, {"c1": T, "c2": T}, T).ours
    assert identify(claim, {"c1": T}, T).ours  # a delete that was under way removed the other
    assert not identify(claim, {"c1": T, "x9": T + 99}, T).ours  # made again, partly
    assert not identify(claim, {"n1": T + 99}, T).ours
    assert not identify(claim, {}, T).ours


def test_without_recorded_containers_only_those_made_during_the_runs_create_are_its():
    claim = Claim("dev", "r", "", T, ())
    assert identify(claim, {"c1": T + 20, "c2": T + 25}, last_alive=T + 10).ours  # the create went on after the kill
    assert not identify(claim, {"c1": T - 3600}, last_alive=T + 10).ours  # older: someone else's
    assert not identify(claim, {"c1": T + 3600}, last_alive=T + 10).ours  # made long after the run died


def test_node_containers_asks_docker_by_kinds_label():
    calls = []

    def docker(argv, **kw):
        calls.append(argv)
        if argv[1] == "ps":
            return subprocess.CompletedProcess(argv, 0, "aaa\nbbb\n", "")
        inspected = "aaa 2027-01-15T08:00:00.123456789Z\nbbb 2027-01-15T08:00:01Z\n"
        return subprocess.CompletedProcess(argv, 0, inspected, "")

    found = node_containers("dev", docker)
    assert "label=io.x-k8s.kind.cluster=dev" in calls[0] and "--no-trunc" in calls[0]
    assert found == {"aaa": _docker_time("2027-01-15T08:00:00.123456Z"), "bbb": _docker_time("2027-01-15T08:00:01Z")}


def test_docker_times():
    assert _docker_time("2027-01-15T08:00:00.123456789Z") == T + 0.123456 and _docker_time("2027-01-15T08:00:00Z") == T
    assert _docker_time("2027-01-15T09:00:00+01:00") == _docker_time("2027-01-15T08:00:00Z")
    assert _docker_time("junk") == 0.0
