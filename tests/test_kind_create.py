"""A failed `kind create` names its cause: the nodes' kubelet errors and container logs are read
before the cluster is deleted. docker is faked (canned outputs of the commands the nodes answered)."""

from __future__ import annotations

import subprocess

from clusterproof.providers import kind_create

SANDBOX = ('"Failed to create sandbox for pod" err="rpc error: code = Unknown desc = failed to pull image '
           '\\"registry.k8s.io/pause:3.10.2\\""')
MIRROR = '"No need to create a mirror pod, since failed to get node info from the cluster" node="c1-control-plane"'
# seen on a 1.35 node without its sandbox image: the errors about the node (no API server) outnumber the cause
JOURNAL = "\n".join(
    [f'E1206 05:27:{s:02d}.772963     179 kuberuntime_sandbox.go:71] {SANDBOX} pod="kube-system/{pod}"'
     for s, pod in enumerate(("etcd-c1", "kube-apiserver-c1", "etcd-c1"))]
    + [f'E1206 05:28:{s:02d}.605577     179 kubelet.go:3344] {MIRROR}' for s in range(5)]
    + ['E1206 05:27:41.649963     179 eviction_manager.go:297] "Eviction manager: failed to get summary stats"']
)


def fake_docker(nodes: str, journal: str = JOURNAL):
    """FAKE docker: `ps` lists `nodes`; on each, the kubelet's journal and one container log."""

    def run(argv, **kw):
        if argv[1] == "ps":
            return subprocess.CompletedProcess(argv, 0, nodes, "")
        said = journal if argv[-1] == kind_create.KUBELET_ERRORS else "== /var/log/pods/etcd/etcd/0.log\nready\n"
        return subprocess.CompletedProcess(argv, 0, said, "")

    return run


def failure() -> subprocess.CalledProcessError:
    return subprocess.CalledProcessError(1, ["kind", "create", "cluster"])


def test_the_kubelets_most_repeated_error_names_the_failure_and_the_logs_are_kept(tmp_path):
    into = tmp_path / "kind-create-c1.txt"
    error = kind_create.explain("c1", failure(), into, run=fake_docker("c1-control-plane\nc1-worker\n"))
    assert str(error).startswith("kind create cluster c1 failed (exit 1); the kubelet said 6 times: "
                                 '"Failed to create sandbox for pod"')
    assert "pause:3.10.2" in str(error) and str(into) in str(error)
    text = into.read_text()
    assert "### c1-control-plane: the kubelet's last errors" in text and "### c1-worker: the end of" in text
    assert "Eviction manager" in text and "/var/log/pods/etcd/etcd/0.log" in text


def test_nodes_that_cannot_be_read_leave_the_create_failure_as_it_was(tmp_path):
    def docker_gone(argv, **kw):
        raise FileNotFoundError("docker")

    error = kind_create.explain("c1", failure(), tmp_path / "x.txt", run=docker_gone)
    assert str(error) == "kind create cluster c1 failed (exit 1); its nodes could not be read: docker"
    quiet = kind_create.explain("c1", failure(), tmp_path / "y.txt", run=fake_docker("c1-control-plane\n", journal=""))
    assert "no kubelet error on its nodes" in str(quiet)
