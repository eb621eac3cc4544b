"""Which kind clusters a run made (clusterproof.kind_clusters): claims, and a cluster's identity by
its node containers. docker is a FAKE (recorded argv, canned answers)."""

import subprocess
import threading

import pytest

from clusterproof import kind_clusters
from clusterproof.errors import WaitTimeout
from clusterproof.kind_clusters import Claim, Claims, _docker_time, identify, node_containers, recording

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
    claim = Claim("dev", "r", "", T - 3600, ("c1", "c2"))
    assert identify(claim, {"c1": T, "c2": T}).ours
    assert identify(claim, {"c1": T}).ours  # a delete that was under way removed the other
    assert not identify(claim, {"c1": T, "x9": T}).ours  # made again, partly
    assert not identify(claim, {"n1": T}).ours
    assert not identify(claim, {}).ours


def test_containers_docker_had_not_shown_yet_are_its_only_if_made_during_its_create():
    """Killed during `kind create`, before the claim named every node container: one made in the
    create's first minutes is its; one made later (a user's cluster of that name) is not."""
    claim = Claim("dev", "r", "", T, ("c1",))
    assert identify(claim, {"c1": T + 2, "c2": T + 3}).ours
    assert identify(Claim("dev", "r", "", T, ()), {"c1": T + 2}).ours
    assert not identify(claim, {"c1": T + 2, "u1": T + 600}).ours
    assert not identify(claim, {"u1": T - 3600}).ours
    assert not identify(claim, {"u1": T + 40}).ours  # the user's, made in that minute: none recorded is there


def test_the_claim_names_the_containers_while_kind_create_runs(tmp_path):
    """FAKE docker: the containers appear one by one during the create; the claim follows."""
    written = threading.Event()

    class Watched(Claims):
        def write(self, claim):
            super().write(claim)
            written.set()

    claims = Watched(tmp_path)
    claim = Claim("dev", "r", "", T)
    present: dict[str, float] = {}
    seen_during = []
    with recording(claims, claim, every=0.01, containers=lambda name: dict(present)):
        present["c1"] = T
        assert written.wait(10)
        seen_during.append(claims.read("")["dev"].containers)
        present["c2"] = T
    assert seen_during == [("c1",)]
    assert claims.read("")["dev"].containers == ("c1", "c2")


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


def test_a_cluster_is_deleted_again_until_docker_lists_none_of_its_nodes_for_the_settle_time(monkeypatch):
    """Fake docker's list: the nodes survive the first delete (a start in flight), then one appears
    again after a delete found none (a create docker finished late): each time, deleted again."""
    listed = iter([["n1"], [], ["n2"], [], [], [], []])  # docker's list after each attempt
    deletes = []
    monkeypatch.setattr(kind_clusters, "node_containers", lambda name: next(listed, []))
    kind_clusters.delete_until_gone("cp-x", lambda: deletes.append(1), settle=1.5)
    assert len(deletes) == 3


def test_a_cluster_whose_nodes_stay_is_a_timeout(monkeypatch):
    monkeypatch.setattr(kind_clusters, "node_containers", lambda name: ["n1"])
    with pytest.raises(WaitTimeout, match="kind cluster cp-x deleted: no node container of it left for 0s"):
        kind_clusters.delete_until_gone("cp-x", lambda: None, timeout=0)
