"""Node access (clusterproof.node_exec, clusterproof.hostexec, clusterproof.plugin.node_access):
choosing the mechanism, the host exec pod and its commands, refusals and chosen exclusions as skip, nodes down as error
reasons, cleanup through the tracker.

No cluster and no docker: the API server is a FAKE CoreV1Api (FakeCore, below) that keeps nodes,
namespaces and pods in dicts, and the API's exec is a FAKE function (FakeExec) that records what it
was asked to run and answers with a programmed exit code and output."""

from __future__ import annotations

import json
import logging
import subprocess
from types import SimpleNamespace

import pytest
from kubernetes import client
from kubernetes.client import ApiException

from clusterproof.cluster import Cluster
from clusterproof.errors import ExecTimeout, NodeDown, NodeExecUnavailable
from clusterproof.hostexec import (
    DEADLINE_MARGIN,
    NONE_CHOSEN,
    NOT_ASKED,
    NSENTER,
    POD_DEADLINE,
    HostExecPods,
    choose,
    hostexec_pod,
    nsenter_argv,
    why_unreachable,
    with_input,
)
from clusterproof.node_exec import (
    MODES,
    NOT_KIND,
    Container,
    DockerNodeExec,
    NoNodeExec,
    TimedNodeExec,
    docker_containers,
    kind_node_exec,
    prove_kind_nodes,
)
from clusterproof.plugin import node_access
from clusterproof.pod_exec import ExecResult, exit_status
from clusterproof.timings import Stopwatch
from clusterproof.tracker import ResourceTracker

PSA_REFUSAL = (
    'pods "hostexec-w1" is forbidden: violates PodSecurity "restricted:latest": privileged (container '
    '"hostexec" must not set securityContext.privileged=true), host namespaces (hostNetwork=true, hostPID=true)'
)
WEBHOOK_REFUSAL = (
    'admission webhook "validate.kyverno.svc-fail" denied the request: policy Namespace/cp-x for resource '
    "violation: disallow-privileged-namespaces"
)


def status_error(status: int, reason: str, message: str) -> ApiException:
    e = ApiException(status=status, reason=reason)
    e.body = json.dumps({"kind": "Status", "status": "Failure", "reason": reason, "message": message})
    return e


def node(name, *, unschedulable=False, taints=(), ready="True", provider_id=None):
    return client.V1Node(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1NodeSpec(
            unschedulable=unschedulable,
            provider_id=provider_id,
            taints=[client.V1Taint(key=k, value=v, effect=e) for k, v, e in taints] or None,
        ),
        status=client.V1NodeStatus(
            conditions=[
                client.V1NodeCondition(type="Ready", status=ready, reason="KubeletReady")
                if ready == "True"
                else client.V1NodeCondition(
                    type="Ready", status=ready, reason="NodeStatusUnknown",
                    message="Kubelet stopped posting node status.",
                )
            ]
        ),
    )


class FakeCore:
    """FAKE CoreV1Api: nodes, namespaces and pods in dicts; pods are Ready as soon as made unless
    their node is in `pending` (then they stay Pending, unschedulable). `refuse_pods` /
    `refuse_namespaces`: the ApiException admission answers with (dry runs included)."""

    def __init__(self, nodes, *, pending=(), refuse_pods=None, refuse_namespaces=None):
        self.nodes = {n.metadata.name: n for n in nodes}
        self.pending = set(pending)
        self.refuse_pods = refuse_pods
        self.refuse_namespaces = refuse_namespaces
        self.namespaces: dict[str, dict] = {}
        self.pods: dict[tuple[str, str], dict] = {}
        self.created: list[dict] = []  # pods really made (not dry runs)
        self.dry_runs: list[dict] = []
        self.calls: list[tuple] = []

    def create_namespace(self, body):
        self.calls.append(("create namespace", body.metadata.name))
        if self.refuse_namespaces:
            raise self.refuse_namespaces
        self.namespaces[body.metadata.name] = dict(body.metadata.labels)
        return body

    def read_namespaced_service_account(self, name, namespace):
        if namespace not in self.namespaces:
            raise ApiException(status=404)
        return SimpleNamespace(secrets=[])

    def list_node(self):
        return SimpleNamespace(items=list(self.nodes.values()))

    def read_node(self, name):
        if name not in self.nodes:
            raise ApiException(status=404, reason="Not Found")
        return self.nodes[name]

    def create_namespaced_pod(self, namespace, body, dry_run=None):
        if self.refuse_pods:
            raise self.refuse_pods
        if dry_run:
            self.dry_runs.append(body)
            return body
        self.created.append(body)
        self.pods[(namespace, body["metadata"]["name"])] = body
        return body

    def read_namespaced_pod(self, name, namespace):
        body = self.pods.get((namespace, name))
        if body is None:
            raise ApiException(status=404)
        if body["spec"]["nodeName"] in self.pending:
            condition = client.V1PodCondition(
                type="PodScheduled", status="False", message="0/3 nodes are available: node(s) were unschedulable"
            )
            status = client.V1PodStatus(phase="Pending", conditions=[condition])
        else:
            ready = client.V1PodCondition(type="Ready", status="True")
            status = client.V1PodStatus(phase="Running", conditions=[ready])
        return client.V1Pod(metadata=client.V1ObjectMeta(name=name, namespace=namespace), status=status)

    def delete_namespaced_pod(self, name, namespace, **kwargs):
        self.calls.append(("delete pod", namespace, name))
        self.pods.pop((namespace, name), None)

    def delete_collection_namespaced_pod(self, namespace, **kwargs):
        self.calls.append(("delete pods", namespace))

    def delete_namespace(self, name, **kwargs):
        self.calls.append(("delete namespace", name))

    def list_namespace(self, label_selector=None, _request_timeout=None):
        return SimpleNamespace(items=[])


class FakeCluster:
    """FAKE Cluster: a name, a FakeCore, a provider; what HostExecPods and the tracker use."""

    def __init__(self, core, provider="existing", name="c1"):
        self.name = name
        self.core = core
        self.provider = provider
        self.api = object()
        self.offline = False
        self.server_version = (1, 37)


class FakeExec:
    """FAKE exec_in_pod: records (namespace, pod, argv, stdin, timeout), answers `answer(argv)`."""

    def __init__(self, answer=lambda argv: ExecResult(0, "", "")):
        self.answer = answer
        self.calls = []

    def __call__(self, core, namespace, pod, argv, *, stdin=None, timeout=60):
        self.calls.append(SimpleNamespace(namespace=namespace, pod=pod, argv=argv, stdin=stdin, timeout=timeout))
        return self.answer(argv)


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


def host_exec_pods(core, *, answer=None, tracker=None, stopwatch=None):
    cluster = FakeCluster(core)
    tracker = tracker or ResourceTracker("run-1", owner="main")
    clock = FakeClock()
    pods = HostExecPods(
        cluster,
        tracker,
        namespace="cp-run-1-hostexec-abc123",
        image="registry.k8s.io/e2e-test-images/agnhost:2.66.1",
        labels={"clusterproof.io/run-id": "run-1", "clusterproof.io/owner": "main"},
        exec=FakeExec(answer) if answer else FakeExec(),
        stopwatch=stopwatch,
        sleep=clock.sleep,
        clock=clock,
        start_timeout=30,
    )
    return pods, cluster, tracker


# --- choosing ------------------------------------------------------------------------------


def make_choice(mode, *, provider="existing", allow_privileged=False, docker=NOT_KIND):
    """docker: what the proof of the nodes found: None (proven), else its refusal."""
    cluster = FakeCluster(FakeCore([node("w1")]), provider=provider)
    made = []

    def pods():
        made.append("pod")
        return SimpleNamespace(mechanism="pod", unavailable=lambda: None)

    chosen = choose(
        mode,
        cluster,
        allow_privileged=allow_privileged,
        host_exec_pods=pods,
        detect_kind=lambda api: DockerNodeExec(containers={"w1": "c0ffee"}) if docker is None else NoNodeExec(docker),
    )
    return chosen, made


REFUSED = "docker access refused: node w1 (InternalIP 10.0.0.9) is not container w1 here (its addresses: ...)"


def test_auto_uses_docker_only_for_nodes_proven_to_be_containers_here_whoever_made_the_cluster():
    assert make_choice("auto", docker=None)[0].mechanism == "docker"
    # docker wins even where privileged pods are allowed: it needs nothing on the cluster
    chosen, made = make_choice("auto", docker=None, allow_privileged=True)
    assert chosen.mechanism == "docker" and made == []
    # the kind provider's own cluster gets no docker access on its name alone
    chosen, _ = make_choice("auto", provider="kind", docker=REFUSED)
    assert chosen.mechanism == "none" and REFUSED in chosen.unavailable()


def test_auto_uses_a_host_exec_pod_elsewhere_only_when_privileged_pods_are_allowed():
    chosen, made = make_choice("auto", allow_privileged=True)
    assert chosen.mechanism == "pod" and made == ["pod"]
    chosen, made = make_choice("auto", allow_privileged=True, docker=REFUSED)
    assert chosen.mechanism == "pod" and made == ["pod"]

    chosen, made = make_choice("auto")
    assert chosen.mechanism == "none" and made == []
    assert "--allow-privileged" in chosen.unavailable()
    assert "not kind containers on this host" in chosen.unavailable()
    # a kind cluster refused: the refusal is the reason, with what would reach the nodes instead
    chosen, _ = make_choice("auto", docker=REFUSED)
    assert chosen.unavailable() == f"no shell on the nodes: {REFUSED}; {NOT_ASKED}"


def test_explicit_modes():
    assert make_choice("pod", provider="kind", allow_privileged=True)[0].mechanism == "pod"
    assert make_choice("none", provider="kind", docker=None)[0].unavailable() == NONE_CHOSEN
    assert make_choice("docker")[0].unavailable() == f"no shell on the nodes: --node-access docker: {NOT_KIND}"
    refused = make_choice("docker", docker=REFUSED)[0].unavailable()
    assert refused == f"no shell on the nodes: --node-access docker: {REFUSED}" and "\n" not in refused
    assert make_choice("docker", docker=None)[0].mechanism == "docker"


# --- docker: is the node that container? ---------------------------------------------------------

HOST_BOOT = "3b1e0a6c-aaaa-4bbb-8ccc-000000000001"
OTHER_BOOT = "9f2d7c11-dddd-4eee-8fff-000000000002"


def kind_node(name, ip, *, boot=HOST_BOOT, provider_id=None):
    found = node(name, provider_id=provider_id or f"kind://docker/kind/{name}")
    found.status.addresses = [client.V1NodeAddress(type="InternalIP", address=ip)]
    found.status.node_info = client.V1NodeSystemInfo(
        architecture="amd64", boot_id=boot, container_runtime_version="containerd://2.3.4", kernel_version="6.1.0",
        kube_proxy_version="", kubelet_version="v1.37.2", machine_id="m", operating_system="linux",
        os_image="Debian GNU/Linux 12", system_uuid="u",
    )  # fmt: skip
    return found


def inspected(name, ip, *, running=True, network="kind", container_id=None):
    """What `docker inspect` prints for one container (the fields read)."""
    return {
        "Id": container_id or f"id-{name}",
        "Name": f"/{name}",
        "State": {"Running": running},
        "NetworkSettings": {"Networks": {network: {"IPAddress": ip, "GlobalIPv6Address": ""}}},
    }


def containers(*items):
    return {c.name: c for c in (Container.from_inspect(i) for i in items)}


def test_nodes_are_proven_by_this_hosts_kernel_and_their_internal_ip_on_the_container():
    nodes = [kind_node("kind-control-plane", "172.18.0.2"), kind_node("kind-worker", "172.18.0.3")]
    here = containers(inspected("kind-control-plane", "172.18.0.2"), inspected("kind-worker", "172.18.0.3"))
    assert prove_kind_nodes(nodes, here, HOST_BOOT) == {
        "kind-control-plane": "id-kind-control-plane",
        "kind-worker": "id-kind-worker",
    }


def test_a_remote_kind_cluster_with_the_default_names_is_not_this_hosts():
    """The same names, even the same addresses (a second machine's kind network numbers its
    nodes alike): its kubelets run on another kernel."""
    remote = [kind_node("kind-control-plane", "172.18.0.2", boot=OTHER_BOOT)]
    here = containers(inspected("kind-control-plane", "172.18.0.2"))
    reason = prove_kind_nodes(remote, here, HOST_BOOT)
    assert reason == (
        f"node kind-control-plane runs on another machine than this host's docker (its bootID {OTHER_BOOT}, "
        f"this host's {HOST_BOOT}): container kind-control-plane here is another cluster's"
    )


def test_another_local_clusters_container_of_the_same_name_is_not_the_node():
    nodes = [kind_node("kind-control-plane", "172.18.0.2")]
    here = containers(inspected("kind-control-plane", "172.18.0.7"))
    assert prove_kind_nodes(nodes, here, HOST_BOOT) == (
        "node kind-control-plane (InternalIP 172.18.0.2) is not container kind-control-plane here "
        "(its addresses: 172.18.0.7 on kind): another cluster's node of the same name"
    )


def test_missing_or_stopped_containers_and_nodes_that_are_not_kind_are_refused_by_name():
    nodes = [kind_node("kind-control-plane", "172.18.0.2")]
    assert prove_kind_nodes(nodes, {}, HOST_BOOT) == (
        "node kind-control-plane: this host's docker has no container kind-control-plane"
    )
    stopped = containers(inspected("kind-control-plane", "172.18.0.2", running=False))
    assert "is not running" in prove_kind_nodes(nodes, stopped, HOST_BOOT)
    gce = [kind_node("n1", "10.0.0.2", provider_id="gce://project/zone/n1")]
    assert prove_kind_nodes(gce, {}, HOST_BOOT).startswith(NOT_KIND)
    no_ip = kind_node("kind-worker", "172.18.0.3")
    no_ip.status.addresses = []
    assert "InternalIP none" in prove_kind_nodes([no_ip], containers(inspected("kind-worker", "172.18.0.3")), HOST_BOOT)


def test_kind_node_exec_execs_into_the_proven_container_by_its_id(monkeypatch):
    nodes = [kind_node("kind-control-plane", "172.18.0.2")]
    api = SimpleNamespace()
    listed = SimpleNamespace(list_node=lambda: SimpleNamespace(items=nodes))
    monkeypatch.setattr(client, "CoreV1Api", lambda api: listed)
    here = containers(inspected("kind-control-plane", "172.18.0.2", container_id="c0ffee"))
    proven = kind_node_exec(api, inspect=lambda names, docker: here, boot_id=lambda: HOST_BOOT)
    assert proven.mechanism == "docker" and proven.containers == {"kind-control-plane": "c0ffee"}

    ran = []
    monkeypatch.setattr(subprocess, "run", lambda argv, **kw: ran.append(argv) or subprocess.CompletedProcess(argv, 0))
    proven("kind-control-plane", ["true"], input=None, check=True, timeout=5)
    assert ran == [["docker", "exec", "c0ffee", "true"]]
    with pytest.raises(NodeExecUnavailable, match="not among the nodes proven"):
        proven("kind-worker", ["true"], input=None, check=True, timeout=5)

    refused = kind_node_exec(api, inspect=lambda names, docker: here, boot_id=lambda: OTHER_BOOT)
    assert refused.mechanism == "none" and refused.unavailable().startswith("docker access refused: node kind-control")
    broken = kind_node_exec(api, inspect=lambda names, docker: "docker inspect exited 1: Cannot connect", boot_id=str)
    assert broken.unavailable() == "docker access refused: docker inspect exited 1: Cannot connect"


def test_docker_inspect_output_is_read_also_when_some_names_are_missing(monkeypatch):
    out = json.dumps([inspected("a", "172.18.0.2")])
    answer = subprocess.CompletedProcess([], 1, stdout=out, stderr="Error: No such container: b")
    monkeypatch.setattr(subprocess, "run", lambda argv, **kw: answer)
    assert set(docker_containers(["a", "b"])) == {"a"}
    none = subprocess.CompletedProcess([], 1, stdout="[]", stderr="Cannot connect to the Docker daemon\n")
    monkeypatch.setattr(subprocess, "run", lambda argv, **kw: none)
    assert docker_containers(["a"]) == "docker inspect exited 1: Cannot connect to the Docker daemon"


def test_no_node_exec_says_why_in_the_skip_and_the_error():
    none = NoNodeExec("no shell on the nodes: because")
    cluster = Cluster(
        name="c", kubeconfig=None, context="c", provider="existing", api=client.ApiClient(), node_exec=none
    )
    assert not cluster.can_node_exec and cluster.node_access == "none"
    with pytest.raises(pytest.skip.Exception, match="no shell on the nodes: because"):
        cluster.require_node_exec()
    with pytest.raises(NodeExecUnavailable, match="because"):
        cluster.node_exec("w1", "true")


# --- the host exec pod ---------------------------------------------------------------------------


def test_commands_run_in_the_hosts_namespaces_through_nsenter():
    assert nsenter_argv(["iptables-save", "-t", "nat"]) == [
        "nsenter", "--target", "1", "--mount", "--uts", "--ipc", "--net", "--pid", "--",
        "iptables-save", "-t", "nat",
    ]  # fmt: skip
    # input: the container's head reads exactly that many bytes, then the command sees end of file
    assert with_input(["nsenter", "--", "sh"], 5) == ["sh", "-c", 'head -c "$0" | "$@"', "5", "nsenter", "--", "sh"]


def test_the_pod_is_privileged_in_the_hosts_namespaces_pinned_to_its_node_and_labelled():
    pod = hostexec_pod("hostexec-w1", "ns", "w1", "agnhost:1", {"clusterproof.io/run-id": "r1"})
    spec = pod["spec"]
    assert spec["nodeName"] == "w1"
    assert spec["hostPID"] is True and spec["hostNetwork"] is True
    assert spec["containers"][0]["securityContext"] == {"privileged": True}
    assert spec["containers"][0]["image"] == "agnhost:1" and spec["containers"][0]["args"] == ["pause"]
    assert spec["tolerations"] == [{"operator": "Exists", "effect": "NoSchedule"}]  # not NoExecute
    assert spec["automountServiceAccountToken"] is False
    # it ends by itself (the kubelet's deadline), also when the run that made it was killed; never restarted
    assert spec["activeDeadlineSeconds"] == POD_DEADLINE and spec["restartPolicy"] == "Never"
    labels = pod["metadata"]["labels"]
    assert labels == {"clusterproof.io/run-id": "r1", "app.kubernetes.io/name": "clusterproof-hostexec"}


def test_one_pod_per_node_made_on_first_use_and_reused():
    core = FakeCore([node("w1"), node("w2")])
    pods, cluster, _ = host_exec_pods(core)
    assert core.created == [] and core.namespaces == {}  # nothing before it is needed

    for _ in range(3):
        pods("w1", ["iptables-save", "-t", "nat"], input=None, check=True, timeout=60)
    pods("w2", ["cat", "/etc/hostname"], input=None, check=True, timeout=60)

    assert [p["spec"]["nodeName"] for p in core.created] == ["w1", "w2"]
    ns_labels = core.namespaces["cp-run-1-hostexec-abc123"]
    assert ns_labels["clusterproof.io/run-id"] == "run-1" and ns_labels["clusterproof.io/owner"] == "main"
    assert ns_labels["pod-security.kubernetes.io/enforce"] == "privileged"
    commands = [c.argv for c in pods.exec.calls]
    # each pod: its entry checked once (nsenter ... true), then the commands
    assert commands.count(nsenter_argv(["true"])) == 2
    assert commands.count(nsenter_argv(["iptables-save", "-t", "nat"])) == 3
    assert {c.pod for c in pods.exec.calls} == {p["metadata"]["name"] for p in core.created}


def test_a_pod_too_near_its_deadline_for_the_command_is_replaced_by_a_new_one():
    core = FakeCore([node("w1")])
    pods, _, _ = host_exec_pods(core)
    pods("w1", ["true"], input=None, check=True, timeout=60)
    first = core.created[-1]["metadata"]["name"]
    assert core.created[-1]["spec"]["activeDeadlineSeconds"] == POD_DEADLINE

    # enough left for a 60 s command and the margin: the same pod
    pods.clock.now += POD_DEADLINE - 60 - DEADLINE_MARGIN - 1
    pods("w1", ["true"], input=None, check=True, timeout=60)
    assert len(core.created) == 1 and pods.exec.calls[-1].pod == first

    # not enough for this command: the old pod is deleted, the command runs in a new one
    pods.clock.now += 2
    pods("w1", ["true"], input=None, check=True, timeout=60)
    second = core.created[-1]["metadata"]["name"]
    assert second == f"{first}-2" and pods.exec.calls[-1].pod == second
    assert ("delete pod", pods.namespace, first) in core.calls

    # a short command still fits in the new pod's life much later
    pods.clock.now += POD_DEADLINE - 5 - DEADLINE_MARGIN - 1
    pods("w1", ["true"], input=None, check=True, timeout=5)
    assert len(core.created) == 2


def test_exit_code_output_check_and_input_come_back_like_subprocess():
    def answer(argv):
        return ExecResult(3, "out\n", "err\n") if "false" in argv else ExecResult(0, "", "")

    pods, _, _ = host_exec_pods(FakeCore([node("w1")]), answer=answer)

    done = pods("w1", ["false"], input=None, check=False, timeout=60)
    assert isinstance(done, subprocess.CompletedProcess)
    assert (done.returncode, done.stdout, done.stderr) == (3, "out\n", "err\n")
    assert done.args == nsenter_argv(["false"])
    with pytest.raises(subprocess.CalledProcessError) as raised:
        pods("w1", ["false"], input=None, check=True, timeout=60)
    assert raised.value.returncode == 3 and raised.value.stderr == "err\n"

    pods("w1", ["sh", "-c", "cat > /etc/cni/net.d/10-ptp.conflist"], input="{\"é\": 1}", check=True, timeout=60)
    last = pods.exec.calls[-1]
    assert last.stdin == '{"é": 1}'.encode()
    assert last.argv == with_input(nsenter_argv(["sh", "-c", "cat > /etc/cni/net.d/10-ptp.conflist"]), 9)


def test_a_command_that_does_not_end_is_a_timeout_expired():
    def answer(argv):
        if argv == nsenter_argv(["true"]):
            return ExecResult(0, "", "")
        raise ExecTimeout("exec in ns/pod: no exit within 5s")

    pods, _, _ = host_exec_pods(FakeCore([node("w1")]), answer=answer)
    with pytest.raises(subprocess.TimeoutExpired):
        pods("w1", ["sleep", "60"], input=None, check=True, timeout=5)


@pytest.mark.parametrize(
    ("refuse", "expected"),
    [
        ({"refuse_pods": status_error(403, "Forbidden", PSA_REFUSAL)}, 'violates PodSecurity "restricted:latest"'),
        ({"refuse_namespaces": status_error(400, "BadRequest", WEBHOOK_REFUSAL)}, 'webhook "validate.kyverno'),
    ],
)
def test_an_admission_refusal_is_one_skip_reason_in_the_servers_words(refuse, expected):
    core = FakeCore([node("w1"), node("w2")], **refuse)
    pods, _, _ = host_exec_pods(core)

    reason = pods.unavailable()
    assert reason.startswith("node access through a privileged pod refused: ")
    assert expected in reason and "\n" not in reason
    for name in ("w1", "w2"):
        with pytest.raises(NodeExecUnavailable) as raised:
            pods(name, ["true"], input=None, check=True, timeout=60)
        assert str(raised.value) == reason
    assert core.created == [] and pods.exec.calls == []


def test_an_api_error_while_preparing_is_the_reason_too():
    core = FakeCore([node("w1")])
    core.list_node = lambda: (_ for _ in ()).throw(status_error(403, "Forbidden", 'nodes is forbidden: User "ci"'))
    pods, _, _ = host_exec_pods(core)
    assert pods.unavailable() == (
        'node access through a privileged pod refused: preparing host exec pods: HTTP 403 Forbidden: '
        'nodes is forbidden: User "ci"'
    )
    assert pods._namespace_made  # made before: removed by the cleanup step


def test_admission_is_asked_by_a_dry_run_before_any_pod_is_made():
    core = FakeCore([node("w1")])
    pods, _, _ = host_exec_pods(core)
    assert pods.unavailable() is None
    assert len(core.dry_runs) == 1 and core.created == []


def test_a_cordoned_node_is_not_reached_and_a_pod_never_ready_is_a_node_down_naming_it():
    core = FakeCore([node("w1", unschedulable=True), node("w2"), node("w3")], pending={"w3"})
    pods, _, _ = host_exec_pods(core)

    with pytest.raises(NodeExecUnavailable, match="node w1 is cordoned") as cordoned:
        pods("w1", ["true"], input=None, check=True, timeout=60)
    assert not isinstance(cordoned.value, NodeDown)  # the admin's choice: its checks skip
    assert pods("w2", ["true"], input=None, check=True, timeout=60).returncode == 0
    with pytest.raises(NodeDown) as pending:
        pods("w3", ["true"], input=None, check=True, timeout=60)
    message = str(pending.value)
    assert message.startswith("could not evaluate (set-up: reach node w3): its host exec pod never got Ready:")
    assert "Pending" in message and "unschedulable" in message and pending.value.node == "w3"
    assert ("delete pod", pods.namespace, core.created[-1]["metadata"]["name"]) in core.calls

    # remembered: asking again makes nothing new, and says the same
    made = len(core.created)
    with pytest.raises(NodeDown, match="reach node w3"):
        pods("w3", ["true"], input=None, check=True, timeout=60)
    with pytest.raises(NodeExecUnavailable, match="node w1 is cordoned"):
        pods("w1", ["true"], input=None, check=True, timeout=60)
    assert len(core.created) == made
    assert [p["spec"]["nodeName"] for p in core.created] == ["w2", "w3"]  # none on the cordoned w1


def test_what_keeps_a_pod_off_a_node_is_read_from_the_node_a_choice_or_the_node_down():
    assert why_unreachable(node("w1")) is None
    cordoned = why_unreachable(node("w1", unschedulable=True))
    assert type(cordoned) is NodeExecUnavailable and "cordoned" in str(cordoned)
    tainted = why_unreachable(node("w1", taints=[("maintenance", "now", "NoExecute"), ("gpu", "", "NoSchedule")]))
    assert type(tainted) is NodeExecUnavailable
    assert str(tainted) == "node w1 has taint maintenance=now:NoExecute, which the host exec pod does not tolerate"
    windows = node("win1")
    windows.metadata.labels = {"kubernetes.io/os": "windows"}
    assert str(why_unreachable(windows)) == "node win1 runs windows: the host exec pod (nsenter) is for Linux nodes"
    # a node that stopped answering is down, not a choice: the lifecycle controller's NoExecute taint
    # says so too, and is no reason to skip
    stopped = node("w2", ready="Unknown", taints=[("node.kubernetes.io/unreachable", "", "NoExecute")])
    down = why_unreachable(stopped)
    assert isinstance(down, NodeDown) and down.node == "w2"
    assert str(down) == (
        "could not evaluate (set-up: reach node w2): "
        "node w2 is not Ready (NodeStatusUnknown: Kubelet stopped posting node status.)"
    )
    tainted_only = why_unreachable(node("w3", taints=[("node.kubernetes.io/not-ready", "", "NoExecute")]))
    assert isinstance(tainted_only, NodeDown) and "node.kubernetes.io/not-ready" in str(tainted_only)


def test_an_image_without_nsenter_is_the_nodes_skip_reason():
    answer = lambda argv: ExecResult(-1, "", 'exec: "nsenter": executable file not found in $PATH')  # noqa: E731
    pods, _, _ = host_exec_pods(FakeCore([node("w1")]), answer=answer)
    with pytest.raises(NodeExecUnavailable, match="cannot enter the host's namespaces.*nsenter.*not found"):
        pods("w1", ["true"], input=None, check=True, timeout=60)


def test_cleanup_is_a_tracker_step_of_the_clusters_scope_and_nothing_is_made_after_it():
    core = FakeCore([node("w1")])
    tracker = ResourceTracker("run-1", owner="main")
    pods, cluster, _ = host_exec_pods(core, tracker=tracker)
    with tracker.test_scope(cluster, "t::test_one"):
        pods("w1", ["true"], input=None, check=True, timeout=60)
    assert ("delete namespace", pods.namespace) not in core.calls  # the test's end leaves it for the next

    assert tracker.cleanup(cluster) == []
    assert core.calls[-2:] == [("delete pods", pods.namespace), ("delete namespace", pods.namespace)]
    with pytest.raises(NodeExecUnavailable, match="already removed"):
        pods("w1", ["true"], input=None, check=True, timeout=60)
    assert len(core.created) == 1
    pods.close()  # idempotent
    assert core.calls.count(("delete namespace", pods.namespace)) == 1


def test_nothing_to_remove_when_nothing_was_made():
    core = FakeCore([node("w1")], refuse_namespaces=status_error(403, "Forbidden", "namespaces is forbidden"))
    pods, cluster, tracker = host_exec_pods(core)
    assert pods.unavailable()
    tracker.cleanup(cluster)
    assert ("delete namespace", pods.namespace) not in core.calls


def test_each_pods_start_is_a_timings_row():
    stopwatch = Stopwatch()
    pods, _, _ = host_exec_pods(FakeCore([node("w1")]), stopwatch=stopwatch)
    pods("w1", ["true"], input=None, check=True, timeout=60)
    assert [what for what, _, _ in stopwatch.phases] == ["cluster c1: host exec pod on w1 Ready"]


def test_installed_gives_the_cluster_its_access_and_its_commands_cost_to_the_timings(tmp_path):
    from clusterproof.images import ImageCatalogue
    from clusterproof.run import RunContext

    run = RunContext("20260101-120000-ab12", tmp_path, tmp_path / "art")
    tracker = ResourceTracker(run.run_id, owner="gw1")
    stopwatch, notes = Stopwatch(), []
    kind = Cluster(name="c", kubeconfig=None, context="c", provider="kind", api=client.ApiClient(), node_exec=None)
    settings = SimpleNamespace(node_access="pod", allow_privileged=True)

    with node_access.installed(
        kind, settings, tracker=tracker, run=run, images=ImageCatalogue.load(), note=notes.append, stopwatch=stopwatch
    ) as timed:
        assert kind.node_access == "pod" and isinstance(timed.inner, HostExecPods)
        pods = timed.inner
        assert pods.namespace.startswith(f"cp-{run.short_id}-hostexec-")
        assert pods.image == "registry.k8s.io/e2e-test-images/agnhost:2.66.1"
        assert pods.labels == {"clusterproof.io/run-id": run.run_id, "clusterproof.io/owner": "gw1"}
        timed.inner = FakeMechanism()  # a command, without a cluster
        timed("w1", ["true"], input=None, check=True, timeout=5)
    assert len(notes) == 1
    assert notes[0].startswith("node access on c: pod (a privileged host exec pod") and pods.namespace in notes[0]
    assert [what.split(" (")[0] for what, _, _ in stopwatch.phases] == ["cluster c: node commands via pod"]


# --- timing ----------------------------------------------------------------------------------------


class FakeMechanism:
    """FAKE mechanism: `false` exits 1, anything else 0."""

    mechanism = "pod"

    def unavailable(self):
        return None

    def __call__(self, node, argv, *, input, check, timeout):
        return subprocess.CompletedProcess(list(argv), 1 if argv[0] == "false" else 0, "", "")


def test_every_command_is_timed_and_logged(caplog):
    ticks = iter([0.0, 0.25, 1.0, 1.5])
    timed = TimedNodeExec(FakeMechanism(), clock=lambda: next(ticks))
    with caplog.at_level(logging.DEBUG, logger="clusterproof.node_access"):
        assert timed("w1", ["true"], input=None, check=True, timeout=5).returncode == 0
        with pytest.raises(subprocess.CalledProcessError):
            timed("w1", ["false"], input=None, check=True, timeout=5)
    assert timed.mechanism == "pod" and timed.unavailable() is None
    assert timed.seconds == [0.25, 0.5]
    assert timed.summary() == "2 commands, median 0.375s, max 0.500s"
    assert "node exec via pod on w1: true -> rc 0 in 0.250s" in caplog.text


# --- the plugin: nodes left out skip, nodes down error, bad options stop ---------------------------


@pytest.fixture
def project(plugin_project) -> pytest.Pytester:
    return plugin_project("## SVC\n| ID | claim | observable |\n|---|---|---|\n| SVC-18 | rules | r |\n")


def test_a_node_check_meeting_a_node_not_to_be_reached_skips_and_one_meeting_a_node_down_errors(project):
    project.makepyfile(
        """
        import pytest
        from clusterproof.errors import NodeDown, NodeExecUnavailable

        @pytest.fixture
        def needs_w9():
            raise NodeExecUnavailable("node w9 is cordoned: no host exec pod is placed on it")

        @pytest.mark.claim("SVC-18")
        def test_rules_on_w1():
            raise NodeExecUnavailable("node w1 is cordoned: no host exec pod is placed on it")

        def test_fixture_on_w9(needs_w9):
            pass

        def test_wrapped_by_a_set_up_step():
            try:
                raise NodeExecUnavailable("node w5 has taint maintenance=now:NoExecute")
            except NodeExecUnavailable as e:
                raise RuntimeError("could not evaluate (set-up: write the file on w5)") from e

        @pytest.mark.claim("SVC-18")
        def test_rules_on_a_node_down():
            raise NodeDown("w2", "node w2 is not Ready (NodeStatusUnknown: Kubelet stopped posting node status.)")

        def test_a_node_down_behind_a_jigs_error():
            try:
                raise NodeDown("w3", "its host exec pod never got Ready: timed out after 120s")
            except NodeDown as e:
                raise AssertionError("could not read the file on w3") from e

        def test_a_handled_refusal_does_not_hide_a_failure():
            try:
                raise NodeExecUnavailable("node w6 is cordoned")
            except NodeExecUnavailable:
                assert False, "the fallback failed"

        def test_other_nodes_run():
            pass
        """
    )
    art = project.path / "art"
    result = project.runpytest(
        "--claims-file", str(project.path / "CLAIMS.md"), "--artifacts-dir", str(art), "-rsfE"
    )
    result.assert_outcomes(passed=1, skipped=3, failed=1, errors=2)
    result.stdout.fnmatch_lines(["*SKIPPED*node w1 is cordoned: no host exec pod is placed on it*"])
    result.stdout.fnmatch_lines(["*SKIPPED*node w9 is cordoned*"])
    result.stdout.fnmatch_lines(["*SKIPPED*node w5 has taint maintenance=now:NoExecute*"])
    result.stdout.fnmatch_lines(["FAILED *test_a_handled_refusal_does_not_hide_a_failure*"])
    # a node down is no skip: the test errors naming the node and its condition
    # the reason follows the name unless pytest cut the line to a terminal's width (not under CI=true)
    result.stdout.re_match_lines(
        [r"ERROR .*::test_rules_on_a_node_down( - .*)?$", r"ERROR .*::test_a_node_down_behind_a_jigs_error( - .*)?$"]
    )
    result.stdout.fnmatch_lines(["E * clusterproof.errors.NodeDown: could not evaluate (set-up: reach node w3): *"])
    claims = json.loads((art / "claims.json").read_text())["claims"]
    assert claims[0]["verdict"] == "error"
    assert claims[0]["reason"].startswith(
        "could not evaluate (set-up: reach node w2): node w2 is not Ready (NodeStatusUnknown"
    )
    assert "node w1 is cordoned" in claims[0]["reason"] or claims[0]["tests"][0]["outcome"] == "skipped"


def test_pod_access_without_allow_privileged_is_a_one_line_usage_error(project):
    project.makepyfile("def test_x():\n    pass\n")
    result = project.runpytest("--claims-file", str(project.path / "CLAIMS.md"), "--node-access", "pod")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --node-access pod makes a privileged pod *: pass --allow-privileged *"])
    assert "pod" in MODES


# --- the exec's status -------------------------------------------------------------------------------


def test_exit_status_of_an_exec():
    assert exit_status('{"metadata":{},"status":"Success"}') == (0, "")
    nonzero = {
        "status": "Failure",
        "reason": "NonZeroExitCode",
        "message": "command terminated with non-zero exit code: exit status 2",
        "details": {"causes": [{"reason": "ExitCode", "message": "2"}]},
    }
    assert exit_status(json.dumps(nonzero)) == (2, "")
    failed = {"status": "Failure", "reason": "InternalError", "message": 'exec: "nsenter": not found'}
    assert exit_status(json.dumps(failed).encode()) == (-1, 'exec: "nsenter": not found')
    assert exit_status("")[0] == -1
    assert NSENTER[-1] == "--"
