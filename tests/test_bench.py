"""The benchmark's soak mode with FAKE probes: pytest is not run, each run's claims.json is
written by the fake, kind/docker/namespace listings are scripted. No cluster, no docker."""

import json
import signal

from clusterproof import bench


class FakeProbes:
    """FAKE machine. Each pytest run writes the claims.json its script says, then the listings
    answer what the script says is left behind."""

    def __init__(self, runs, script):
        self.runs = runs
        self.script = list(script)
        self.clusters = ["cpup-23001870bb"]  # there before the soak: never a leftover
        self.containers = ["cpup-23001870bb-control-plane"]
        self.networks = ["bridge", "kind"]
        self.namespaces = {}
        self.args = []

    def pytest(self, args):
        self.args.append(args)
        run_id = args[args.index("--run-id") + 1]
        step = self.script.pop(0)
        if step.get("tests") is not None:
            claims = [
                {"id": claim, "tests": [t for t in step["tests"] if claim in t["claims"]]}
                for claim in sorted({c for t in step["tests"] for c in t["claims"]})
            ]
            out = self.runs / run_id / "artifacts" / "claims.json"
            out.parent.mkdir(parents=True)
            out.write_text(json.dumps({"run_id": run_id, "claims": claims}))
        self.clusters += step.get("clusters", [])
        self.containers += [f"{c}-control-plane" for c in step.get("clusters", [])]
        self.namespaces[run_id] = step.get("namespaces", [])
        return step.get("rc", 0), step.get("stop")

    def kind_clusters(self):
        return list(self.clusters)

    def kind_containers(self):
        return list(self.containers)

    def docker_networks(self):
        return list(self.networks)

    def run_namespaces(self, run_id):
        return self.namespaces.get(run_id, [])


def outcome(nodeid, result, *claims, message=None):
    found = {"nodeid": nodeid, "outcome": result, "reason": (message or "").split("\n")[0], "claims": list(claims)}
    if message:
        found["message"] = message
    return found


def test_a_soak_counts_passes_failures_and_leftovers_per_run(tmp_path):
    runs = tmp_path / "runs"
    probes = FakeProbes(
        runs,
        [
            {"tests": [outcome("q.py::a", "passed", "NS-01"), outcome("q.py::b", "passed", "NS-02", "NS-03")]},
            {
                "rc": 1,
                "tests": [
                    outcome("q.py::a", "passed", "NS-01"),
                    outcome("q.py::b", "failed", "NS-02", "NS-03", message="quota not counted\nlast seen: ..."),
                ],
                "clusters": ["cp-1200003f2a-quota"],
                "namespaces": ["cp-1200003f2a-b-1a2b"],
            },
            {"tests": [outcome("q.py::a", "passed", "NS-01"), outcome("q.py::b", "skipped", "NS-02", "NS-03")]},
        ],
    )
    lines = []
    iterations = bench.soak(3, ["suites/test_quota.py"], probes, say=lines.append, runs=runs)
    assert [i.passed for i in iterations] == [2, 1, 1] and [i.skipped for i in iterations] == [0, 0, 1]
    assert [f.nodeid for f in iterations[1].failures] == ["q.py::b"]
    assert iterations[1].failures[0].claims == ["NS-02", "NS-03"]
    assert iterations[1].leftovers == {
        "kind cluster": ["cp-1200003f2a-quota"],
        "kind container": ["cp-1200003f2a-quota-control-plane"],
        "namespace": ["cp-1200003f2a-b-1a2b"],
    }
    # the leftover cluster stays a leftover of the second run, not of the third
    assert iterations[2].leftovers == {"kind cluster": ["cp-1200003f2a-quota"], "kind container": [
        "cp-1200003f2a-quota-control-plane"]}
    run_ids = [a[a.index("--run-id") + 1] for a in probes.args]
    assert len(set(run_ids)) == 3 and all(a[0] == "suites/test_quota.py" for a in probes.args)
    text = "\n".join(lines)
    assert "  FAILED q.py::b [NS-02, NS-03]: quota not counted" in text
    assert "  LEFTOVER namespace cp-1200003f2a-b-1a2b" in text
    assert (
        "soak: 3 of 3 runs done; 4 tests passed, 1 failed; runs with a failure: 1/3; runs with leftovers: 2/3" in text
    )
    assert "  1x q.py::b [NS-02, NS-03]: quota not counted" in text
    saved = json.loads((tmp_path / f"soak-{run_ids[0]}.json").read_text())
    assert saved["iterations"][1]["failures"][0]["message"] == "quota not counted\nlast seen: ..."


def test_a_stop_ends_the_soak_after_that_run(tmp_path):
    runs = tmp_path / "runs"
    probes = FakeProbes(runs, [{"tests": [outcome("q.py::a", "passed", "NS-01")]}, {"rc": 130, "stop": signal.SIGINT}])
    lines = []
    iterations = bench.soak(5, [], probes, say=lines.append, runs=runs)
    assert len(iterations) == 2 and iterations[1].stopped_by == "SIGINT"
    assert "no claims.json" in iterations[1].note
    assert any(line.startswith("soak: 2 of 5 runs done") for line in lines)


def test_soak_refuses_a_run_id_of_its_own(capsys):
    assert bench.main(["--soak", "2", "--run-id", "x"]) == 2
    assert "each run its own --run-id" in capsys.readouterr().err


def test_two_strategies_are_compared_per_module_with_their_ratio():
    from clusterproof import bench

    a = bench.module_rows([{"what": "module suites/test_quota.py", "seconds": 60.0},
                           {"what": "cluster cp-1-quota: kind create", "seconds": 20.0},
                           {"what": "cluster cp-1-pod: kind create", "seconds": 22.0},
                           {"what": "cluster cp-1-pod: node commands via docker (9 commands)", "seconds": 1.0},
                           {"what": "cluster cp-1-quota: node commands via docker (3 commands)", "seconds": 0.5},
                           {"what": "whole run", "seconds": 100.0}])
    assert a == {
        "module suites/test_quota.py": 60.0,
        "clusters: kind create (sum)": 42.0,
        "clusters: node commands via docker (sum)": 1.5,
        "whole run": 100.0,
    }
    table = bench.side_by_side([("A way", a, 0), ("B way", {**a, "whole run": 50.0}, 0)])
    assert "whole run" in table and "0.50" in table and "A: A way (exit 0)" in table
