"""Jig verbs that need no cluster: how checks describe what they saw, the PV names of a test, and
waits that end early on a broken shared precondition. FAKE client pods stand in for exec into a
cluster (they return scripted samples); FAKE health causes, watches and clusters are
monkeypatched in where a test needs them."""

import subprocess
from collections import Counter
from types import SimpleNamespace

import pytest
from kubernetes import client

from clusterproof import causes, health, wait
from clusterproof.cluster import Cluster, Node
from clusterproof.errors import Broken, SetupFailed, WaitGaveUp, WaitTimeout
from clusterproof.jigs import dns
from clusterproof.jigs import kubelet as kubelet_jig
from clusterproof.jigs import pods as pods_jig
from clusterproof.jigs import service as service_jig
from clusterproof.jigs import volume as volume_jig
from clusterproof.jigs import workload as workload_jig
from clusterproof.jigs.pv_names import PV_SET_LABEL, PVNames, host_paths
from clusterproof.jigs.service import ServiceJig, answer_mismatch
from clusterproof.jigs.service_backends import Backends
from clusterproof.probe import ClientPod, SampleResult
from clusterproof.run import short_id


def ready_pod(name, ip):
    return client.V1Pod(
        metadata=client.V1ObjectMeta(name=name, uid=f"uid-{name}"), status=client.V1PodStatus(pod_ip=ip)
    )


def service(name="svc-1", ip="10.96.0.10", port=9000, type_="ClusterIP"):
    return client.V1Service(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1ServiceSpec(type=type_, cluster_ip=ip, ports=[client.V1ServicePort(port=port)]),
    )


class FakeClientPod(ClientPod):
    """FAKE ClientPod: answers at once and samples what it is told (no exec, no cluster)."""

    def __init__(self, seen, node_name=None, answers=True):
        self.name, self.node_name, self.seen, self.answers = "client", node_name, seen, answers
        self.asked = []

    def await_answer(self, url, what, timeout=60):
        self.asked.append(url)
        if not self.answers:
            raise WaitTimeout(f"an HTTP answer from {what} ({url})", "ProbeError: connection refused", timeout)
        return SimpleNamespace(body="pod-1\n")

    def sample_backends(self, url, expected, *, never=(), backend_of=None, **kwargs):
        return SampleResult(url, frozenset(expected), Counter(self.seen), requests=40, seconds=3)


PODS = Backends((ready_pod("pod-1", "10.244.1.5"), ready_pod("pod-2", "10.244.2.7")))


@pytest.fixture(autouse=True)
def healthy_routing(monkeypatch):
    """FAKE causes: kube-proxy runs (the jig asks before waiting for a first answer)."""
    monkeypatch.setattr(causes, "routing_cause", lambda cluster: None)
    monkeypatch.setattr(causes, "slices_cause", lambda cluster: None)


def test_answer_mismatch_names_who_never_answered_and_who_answered_instead():
    result = SampleResult(
        "http://x/", frozenset({"pod-1", "pod-2"}), Counter({"pod-1": 30, "old-pod": 10}), requests=40
    )
    text = answer_mismatch("ClusterIP 10.96.0.10:9000 of Service svc-1", result, {"pod-1", "pod-2"})
    assert text.startswith(
        "ClusterIP 10.96.0.10:9000 of Service svc-1 answered from {old-pod, pod-1}; ready pods {pod-1, pod-2}; "
        "never answered: {pod-2}; answered by something else: {old-pod} (http://x/: 40 requests"
    )
    exact = SampleResult("http://x/", frozenset({"pod-1"}), Counter({"pod-1": 3}))
    assert answer_mismatch("v", exact, {"pod-1"}) is None


def test_answer_mismatch_counts_requests_failing_once_every_pod_answered_past_the_tolerance():
    def result(failed: int) -> SampleResult:
        return SampleResult(
            "http://x/", frozenset({"pod-1", "pod-2"}), Counter({"pod-1": 15, "pod-2": 12}), requests=40,
            errors=["no HTTP answer (curl: (28) Connection timed out after 3001 ms)"] * failed,
            requests_after=38, failed_after=["no HTTP answer (curl: (28) Connection timed out after 3001 ms)"] * failed,
        )

    via = "ClusterIP 10.96.0.10:9000 of Service svc-1 from a pod on node kind-worker"
    assert answer_mismatch(via, result(1), {"pod-1", "pod-2"}) is None  # one in 20 is tolerated
    text = answer_mismatch(via, result(13), {"pod-1", "pod-2"})
    assert text.startswith(
        f"{via}: 13 of 38 requests failed once every backend had answered (tolerated: 1, one in 20): "
        "13x no HTTP answer (curl: (28) Connection timed out after N ms); answered by {pod-1, pod-2} (http://x/"
    )


def test_assert_answered_by_builds_its_description_from_the_service_and_the_clients():
    jig = ServiceJig(cluster=None, manifests=None)
    jig.assert_answered_by(FakeClientPod({"pod-1": 20, "pod-2": 20}), service(), PODS)  # exact: passes

    clients = [FakeClientPod({"pod-1": 40}, node_name="worker"), FakeClientPod({}, node_name="worker2", answers=False)]
    with pytest.raises(AssertionError) as info:
        jig.assert_answered_by(clients, service(), PODS, note="pod-not-ready selected but never ready")
    text = str(info.value)
    assert text.startswith(
        "ClusterIP 10.96.0.10:9000 of Service svc-1 from a pod on node worker (pod-not-ready selected but never "
        "ready) answered from {pod-1}; ready pods {pod-1, pod-2}; never answered: {pod-2}"
    )
    assert "; ClusterIP 10.96.0.10:9000 of Service svc-1 from a pod on node worker2 (pod-not-ready" in text
    assert "did not answer; ready pods {pod-1, pod-2}" in text and "connection refused" in text
    assert clients[0].asked == ["http://10.96.0.10:9000/"]


def test_pv_names_keep_tests_apart():
    names = PVNames.for_test("20261122-163000-ab12", "cp-163000ab12-pv-01-3f2a")
    docs = [
        {"kind": "StorageClass", "metadata": {"name": "manual"}},
        {
            "kind": "PersistentVolume",
            "metadata": {"name": "pv-01"},
            "spec": {"storageClassName": "manual", "local": {"path": "/node-v"}},
        },
        {"kind": "PersistentVolumeClaim", "metadata": {"name": "pvc-01"}, "spec": {"storageClassName": "manual"}},
    ]
    storage_class, pv, claim = names.isolate(docs)

    suffix = names.suffix
    assert suffix.startswith(short_id("20261122-163000-ab12") + "-")
    assert storage_class["metadata"]["name"] == f"manual-{suffix}" == pv["spec"]["storageClassName"]
    assert pv["metadata"]["name"] == f"pv-01-{suffix}" and pv["metadata"]["labels"] == {PV_SET_LABEL: suffix}
    assert host_paths([pv]) == [f"/tmp/clusterproof-20261122-163000-ab12/pv-01-{suffix}"]
    assert claim["spec"]["selector"]["matchLabels"] == {PV_SET_LABEL: suffix}
    assert names.notes_name(f"pv-01-{suffix}") == "pv-01" and docs[1]["metadata"]["name"] == "pv-01"  # copies

    (dynamic,) = names.isolate(docs[2:], dynamic=True)
    assert "selector" not in dynamic["spec"]  # a claim with a selector is never provisioned


# --- fail fast on a broken shared precondition, set-up vs observable ---------------------------


def test_traffic_through_a_service_gives_up_after_the_grace_when_kube_proxy_runs_nowhere(monkeypatch):
    cause = "kube-proxy runs on no node (no DaemonSet or pod kube-system/kube-proxy): nothing writes Services' rules"
    monkeypatch.setattr(causes, "routing_cause", lambda cluster: cause)
    timeouts = []

    class Silent(FakeClientPod):
        def await_answer(self, url, what, timeout=60):
            timeouts.append(timeout)
            return super().await_answer(url, what, timeout)

    fake = SimpleNamespace(name="fake-no-kube-proxy")  # FAKE cluster: only its name (causes are faked)
    causes.forget(fake)
    jig = ServiceJig(cluster=fake, manifests=None)
    with pytest.raises(AssertionError) as info:
        jig.assert_answered_by(Silent({}, answers=False), service(), PODS)
    assert timeouts == [service_jig.BROKEN_GRACE]  # not ANSWER_TIMEOUT
    assert "gave up after 5s waiting for an HTTP answer from ClusterIP 10.96.0.10:9000 of Service svc-1" in str(
        info.value
    )
    assert f"final state {cause}" in str(info.value)
    with pytest.raises(AssertionError):  # the next check: the cause is confirmed, no grace again
        jig.assert_answered_by(Silent({}, answers=False), service(), PODS)
    assert timeouts == [service_jig.BROKEN_GRACE, 0.0]


def test_endpoints_wait_gives_up_when_the_endpoints_controller_is_known_to_be_off(monkeypatch):
    watched = []

    def no_endpoints(list_fn, done, expected, describe, timeout, **kwargs):
        watched.append(timeout)
        raise WaitTimeout(expected, "no Endpoints object", timeout)

    monkeypatch.setattr(wait, "watch_until", no_endpoints)
    cause = "no Endpoints object for Service kube-system/kube-dns (9 min old): is the endpoints controller running?"
    monkeypatch.setattr(causes, "endpoints_cause", lambda cluster: cause)
    jig = ServiceJig(cluster=SimpleNamespace(core=SimpleNamespace(list_namespaced_endpoints=None)), manifests=None)
    jig.manifests = SimpleNamespace(namespace="ns")
    with pytest.raises(WaitGaveUp) as info:
        jig.wait_endpoints("svc-1", {"10.244.1.5"})
    assert watched == [service_jig.BROKEN_GRACE]
    assert str(info.value).startswith(
        "gave up after 5s waiting for Endpoints ns/svc-1 listing the ready pods {10.244.1.5} as ready: final state "
        "no Endpoints object for Service kube-system/kube-dns"
    )

    # nothing known against the controller: the whole timeout, and the message says the whole of it
    watched.clear()
    monkeypatch.setattr(causes, "endpoints_cause", lambda cluster: None)
    with pytest.raises(WaitTimeout) as info:
        jig.wait_endpoints("svc-1", {"10.244.1.5"})
    assert watched == [service_jig.BROKEN_GRACE, service_jig.ENDPOINTS_TIMEOUT - service_jig.BROKEN_GRACE]
    assert str(info.value).startswith("timed out after 90s waiting for Endpoints ns/svc-1")


def v1_pod(name="p", scheduled=None, waiting=None, running=False):
    conditions = [client.V1PodCondition(type="PodScheduled", **scheduled)] if scheduled else []
    state = client.V1ContainerState(
        waiting=client.V1ContainerStateWaiting(reason=waiting, message="pull access denied") if waiting else None,
        running=client.V1ContainerStateRunning() if running else None,
    )
    status = client.V1ContainerStatus(name="c", image="i", image_id="", ready=False, restart_count=0, state=state)
    return client.V1Pod(
        metadata=client.V1ObjectMeta(name=name),
        status=client.V1PodStatus(phase="Pending", conditions=conditions, container_statuses=[status]),
    )


def event(reason, message):
    return SimpleNamespace(reason=reason, message=message)


def test_a_pod_that_did_not_start_for_reasons_most_claims_do_not_observe_is_a_start_failure_of_its_kind():
    unscheduled = v1_pod(scheduled={"status": "False", "reason": "Unschedulable", "message": "0/3 nodes are available"})
    found = pods_jig.start_failure_of(unscheduled, [])
    assert found.kind == pods_jig.UNSCHEDULED
    assert str(found) == "pod p not scheduled: Unschedulable: 0/3 nodes are available"
    no_image = pods_jig.start_failure_of(v1_pod(waiting="ImagePullBackOff"), [])
    assert no_image.kind == pods_jig.NO_IMAGE
    assert str(no_image) == "pod p: container c ImagePullBackOff: pull access denied"
    sandbox = [event("FailedCreatePodSandBox", 'plugin type="ptp" failed: no IP addresses available')]
    no_sandbox = pods_jig.start_failure_of(v1_pod(), sandbox)
    assert no_sandbox.kind == pods_jig.NO_SANDBOX and str(no_sandbox).startswith("pod p: no sandbox (Failed")
    # no CNI config on the node: the kubelet does not even try
    not_ready = [event("NetworkNotReady", "network is not ready: container runtime network not ready")]
    assert pods_jig.start_failure_of(v1_pod(), not_ready).kind == pods_jig.NO_SANDBOX
    # a mount that fails or a crashing container is the claim's own business
    assert pods_jig.start_failure_of(v1_pod(), [event("FailedMount", "hostPath type check failed")]) is None
    assert pods_jig.start_failure_of(v1_pod(waiting="CrashLoopBackOff"), []) is None


def test_a_pod_bound_to_a_node_that_is_down_did_not_start_for_that_reason():
    down = client.V1Node(
        metadata=client.V1ObjectMeta(name="w2"),
        spec=client.V1NodeSpec(),
        status=client.V1NodeStatus(
            conditions=[
                client.V1NodeCondition(
                    type="Ready",
                    status="Unknown",
                    reason="NodeStatusUnknown",
                    message="Kubelet stopped posting node status.",
                )
            ]
        ),
    )
    found = pods_jig.start_failure_of(v1_pod(), [], down)
    assert found.kind == pods_jig.NODE_DOWN and found.final
    assert str(found) == "pod p: node w2 is not Ready (NodeStatusUnknown: Kubelet stopped posting node status.)"
    up = client.V1Node(
        metadata=client.V1ObjectMeta(name="w1"),
        spec=client.V1NodeSpec(),
        status=client.V1NodeStatus(conditions=[client.V1NodeCondition(type="Ready", status="True")]),
    )
    assert pods_jig.start_failure_of(v1_pod(), [], up) is None
    no_cni = "container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady"
    down.status.conditions[0] = client.V1NodeCondition(
        type="Ready", status="False", reason="KubeletNotReady", message=no_cni
    )
    found = pods_jig.start_failure_of(v1_pod(), [], down)
    assert found.kind == pods_jig.NO_SANDBOX and found.final  # the pod network's fault: SVC-19/20 observe it
    assert str(found) == f"pod p: node w2 is not Ready (KubeletNotReady: {no_cni})"


def test_a_pod_kept_off_every_node_for_want_of_a_pod_network_has_no_sandbox_at_once():
    no_cni = "container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady"

    def node(name, ready, message="", taint=None):
        condition = client.V1NodeCondition(type="Ready", status=ready, reason="KubeletNotReady", message=message)
        taints = [client.V1Taint(key=taint, effect="NoSchedule")] if taint else None
        return client.V1Node(
            metadata=client.V1ObjectMeta(name=name),
            spec=client.V1NodeSpec(taints=taints),
            status=client.V1NodeStatus(conditions=[condition]),
        )

    # the scheduler of 1.37 no longer names the taints
    held_off = "0/3 nodes are available: 3 node(s) had untolerated taint(s). preemption: 0/3 nodes are available"
    unscheduled = v1_pod(scheduled={"status": "False", "reason": "Unschedulable", "message": held_off})
    control_plane = node("cp", "True", taint="node-role.kubernetes.io/control-plane")
    nodes = [control_plane, node("w1", "False", no_cni), node("w2", "False", no_cni)]
    found = pods_jig.start_failure_of(unscheduled, [], None, nodes)
    assert found.kind == pods_jig.NO_SANDBOX and found.final
    assert "no pod network: node w1 is not Ready (KubeletNotReady: container runtime network" in str(found)
    assert "; node w2 is not Ready" in str(found)
    # nodes down for another reason: still only unscheduled, for the claims that observe it
    stopped = [control_plane, node("w1", "Unknown", "Kubelet stopped posting node status.")]
    assert pods_jig.start_failure_of(unscheduled, [], None, stopped).kind == pods_jig.UNSCHEDULED
    # an untainted Ready node the pod could have had: something else keeps it off
    healthy = [*nodes, node("w3", "True")]
    assert pods_jig.start_failure_of(unscheduled, [], None, healthy).kind == pods_jig.UNSCHEDULED
    # a scheduler answer about something else (affinity) is not the pod network's, whatever the nodes
    conflict = v1_pod(scheduled={"status": "False", "reason": "Unschedulable", "message": "3 node(s) had volume"})
    assert pods_jig.start_failure_of(conflict, [], None, nodes).kind == pods_jig.UNSCHEDULED


def test_a_start_failure_a_claim_observes_fails_it_and_any_other_is_a_set_up_failure(monkeypatch):
    conflict = "0/3 nodes are available: 3 node(s) had volume node affinity conflict"
    unscheduled = v1_pod(scheduled={"status": "False", "reason": "Unschedulable", "message": conflict})
    found = pods_jig.start_failure_of(unscheduled, [])
    monkeypatch.setattr(pods_jig, "start_failure", lambda cluster, namespace, name: found)
    waited = WaitTimeout("pod ns/p Ready", "Pending", 120)
    set_up = pods_jig.not_started(None, "ns", "p", waited)
    assert isinstance(set_up, SetupFailed)
    assert str(set_up).startswith("could not evaluate (set-up: start pod p): pod p not scheduled")
    observed = pods_jig.not_started(None, "ns", "p", waited, observes={pods_jig.UNSCHEDULED})
    assert type(observed) is AssertionError
    assert str(observed).startswith(f"pod p not scheduled: Unschedulable: {conflict} (timed out after 120s")
    gave_up = WaitGaveUp("pod ns/p Ready", str(found), 5)  # the wait stopped on that very failure
    said_once = pods_jig.not_started(None, "ns", "p", gave_up, observes={pods_jig.UNSCHEDULED})
    assert str(said_once) == f"{found} (gave up after 5s waiting for pod ns/p Ready)"
    monkeypatch.setattr(pods_jig, "start_failure", lambda cluster, namespace, name: None)
    assert pods_jig.not_started(None, "ns", "p", waited, observes={pods_jig.UNSCHEDULED}) is None  # the wait's own


def skipping_cluster():
    """FAKE Cluster: only require(), as the real one (skip unless the condition holds)."""
    return SimpleNamespace(require=lambda condition, reason: None if condition else pytest.skip(reason))


def test_gitrepo_skips_at_once_when_the_kubelets_git_repo_plugin_is_disabled(monkeypatch):
    message = (
        'MountVolume.SetUp failed for volume "git-volume" : git-repo volume plugin has been disabled; if necessary, '
        "it may be re-enabled by enabling the feature-gate `GitRepoVolumeDriver`"
    )
    reads = []
    monkeypatch.setattr(volume_jig, "read_pod", lambda c, ns, name: reads.append(name) or v1_pod(name))
    monkeypatch.setattr(volume_jig, "failed_mounts", lambda c, ns, name: pods_jig.MountFailures([message]))
    with pytest.raises(pytest.skip.Exception) as info:
        volume_jig.wait_cloned(skipping_cluster(), "ns", "gitrepo-pod", "worker", timeout=120)
    assert len(reads) == 1  # at once, not after 120 s
    assert str(info.value).startswith(
        "the kubelet on node worker refuses gitRepo volumes: the git-repo volume plugin is disabled (re-enabled "
        "only by the feature gate GitRepoVolumeDriver); FailedMount: MountVolume.SetUp failed"
    )


def test_cluster_dns_skips_only_when_not_installed_and_fails_naming_why_when_broken(monkeypatch):
    cluster = SimpleNamespace(name="c", core=None)
    monkeypatch.setattr(health, "Look", lambda c: None)
    monkeypatch.setattr(health, "dns_state", lambda look: health.DnsState(installed=False))
    with pytest.raises(pytest.skip.Exception, match="cluster DNS is not installed: no CoreDNS/kube-dns Deployment"):
        dns.require_cluster_dns(cluster, None)

    scaled = "CoreDNS: Deployment kube-system/coredns scaled to 0 replicas: no DNS pods"
    monkeypatch.setattr(health, "dns_state", lambda look: health.DnsState(True, scaled, final=True))
    with pytest.raises(Broken, match="cluster DNS cannot answer: CoreDNS: Deployment kube-system/coredns scaled"):
        dns.require_cluster_dns(cluster, None)

    def crashing(core, namespace, selector, count, timeout):
        raise WaitGaveUp("1 ready pod(s)", "pod coredns-1: container coredns CrashLoopBackOff", 3)

    monkeypatch.setattr(health, "dns_state", lambda look: health.DnsState(True, "CoreDNS pods not ready: ..."))
    monkeypatch.setattr(wait, "pods_ready", crashing)
    with pytest.raises(Broken) as info:
        dns.require_cluster_dns(cluster, None)
    assert str(info.value) == (
        "cluster DNS cannot answer: no CoreDNS pod became ready: pod coredns-1: container coredns CrashLoopBackOff"
    )


def test_daemonset_wait_gives_up_when_no_controller_processes_daemonsets(monkeypatch):
    unprocessed = client.V1DaemonSet(
        metadata=client.V1ObjectMeta(name="fluentd-elasticsearch"),
        spec=client.V1DaemonSetSpec(selector=client.V1LabelSelector(), template=client.V1PodTemplateSpec()),
        status=client.V1DaemonSetStatus(
            current_number_scheduled=0, desired_number_scheduled=0, number_misscheduled=0, number_ready=0
        ),
    )
    fake = SimpleNamespace(
        name="fake",
        apps=SimpleNamespace(read_namespaced_daemon_set=lambda name, ns: unprocessed),
        core=SimpleNamespace(
            list_namespaced_pod=lambda ns, label_selector: SimpleNamespace(items=[]),
            list_namespaced_event=lambda ns, **_: SimpleNamespace(items=[]),
        ),
    )
    cause = "no DaemonSet has been processed (kindnet, kube-proxy): is the DaemonSet controller running?"
    monkeypatch.setattr(causes, "CONTROLLER_GRACE", 0.0)
    monkeypatch.setattr(causes, "daemonset_controller_cause", lambda cluster: cause)
    with pytest.raises(WaitGaveUp) as info:
        workload_jig.daemonset_settled(fake, "ns", "fluentd-elasticsearch", "name=fluentd", timeout=240)
    assert f"final state {cause}" in str(info.value)
    assert "the DaemonSet controller has not processed it" in str(info.value)  # last seen


def test_the_node_port_range_setting_is_read_from_the_apiserver_flags_health_reads():
    """One reading of kube-apiserver's flags (health.Look.apiserver_args), on FAKE mirror pods."""
    from types import SimpleNamespace as N

    def cluster(*command: str):
        container = N(command=list(command), args=None)
        pod = N(metadata=N(labels={"component": "kube-apiserver"}), spec=N(containers=[container]))
        return N(name="fake", core=N(list_namespaced_pod=lambda ns, **_: N(items=[pod] if command else [])))

    assert service_jig.node_port_range_setting(cluster("kube-apiserver", "--service-node-port-range=30000-32767")) == (
        "kube-apiserver runs with --service-node-port-range=30000-32767"
    )
    assert service_jig.node_port_range_setting(cluster("kube-apiserver")).endswith("(default 30000-32767)")
    assert "not readable" in service_jig.node_port_range_setting(cluster())


# --- nodes that run ordinary pods: single-node clusters ----------------------------------------


class NodesOnly:
    """FAKE cluster: only its nodes (Cluster.require_workers reads nothing else)."""

    require_workers = Cluster.require_workers

    def __init__(self, *nodes):
        self.nodes = list(nodes)


def a_node(name, control_plane=False, taints=()):
    labels = {"node-role.kubernetes.io/control-plane": ""} if control_plane else {}
    return Node(name, "10.0.0.1", labels, tuple({"key": k, "value": "", "effect": e} for k, e in taints), control_plane)


CP_TAINT = ("node-role.kubernetes.io/control-plane", "NoSchedule")


def test_a_single_node_clusters_untainted_control_plane_runs_the_one_worker_claims():
    single = NodesOnly(a_node("kind-control-plane", control_plane=True))
    assert workload_jig.pick_workers(single, 1) == ["kind-control-plane"]
    with pytest.raises(pytest.skip.Exception) as skipped:
        workload_jig.pick_workers(single, 2)
    assert str(skipped.value) == (
        "needs 2 nodes that run ordinary pods (workers, or a control plane without a NoSchedule taint); "
        "the cluster has 1 (kind-control-plane) of 1 node(s)"
    )


def test_the_default_cluster_picks_its_untainted_workers_and_never_its_tainted_control_plane():
    default = NodesOnly(
        a_node("kind-control-plane", control_plane=True, taints=[CP_TAINT]),
        a_node("kind-worker2"),
        a_node("kind-worker", taints=[("node.kubernetes.io/unreachable", "NoExecute")]),
    )
    assert workload_jig.pick_workers(default, 1) == ["kind-worker2"]  # the NotReady one last
    assert workload_jig.pick_workers(default, 2) == ["kind-worker2", "kind-worker"]
    one_worker = NodesOnly(a_node("cp", control_plane=True, taints=[CP_TAINT]), a_node("w1"))
    with pytest.raises(pytest.skip.Exception, match="the cluster has 1 \\(w1\\) of 2 node"):
        one_worker.require_workers(2)


def test_the_recycle_deprecation_is_read_from_the_api_servers_warnings_and_events():
    from clusterproof.jigs import pv as pv_jig

    warned = [
        "metadata.annotations[volume.beta.kubernetes.io/storage-class]: deprecated since v1.8",
        "spec.persistentVolumeReclaimPolicy: The Recycle reclaim policy is deprecated. Instead, the recommended "
        "approach is to use dynamic provisioning.",
    ]
    assert pv_jig.recycle_deprecation(warned, []) == [warned[1]]
    recycled = [event("RecyclerPod", "Recycler pod: Successfully assigned default/recycler-for-pv-recycle")]
    assert pv_jig.recycle_deprecation([], recycled) == []  # Available again, or Failed, says nothing of it
    deprecated = [event("VolumeRecycle", "the Recycle reclaim policy is deprecated")]
    assert pv_jig.recycle_deprecation([], deprecated) == ["VolumeRecycle: the Recycle reclaim policy is deprecated"]


# --- VOL-02: the emptyDir found on its node, then watched until removed ---------------------------


class FakeNode:
    """FAKE node exec: a set of directories with their entries (`ls -A` in one)."""

    can_node_exec = True

    def __init__(self, dirs):
        self.dirs = dirs

    def node_exec(self, node, *argv, check=True, timeout=60, input=None):
        entries = self.dirs.get(argv[4])
        if entries is None:
            return subprocess.CompletedProcess(argv, 1, "", "")
        return subprocess.CompletedProcess(argv, 0, "\n".join(entries), "")


@pytest.fixture
def kubelet_root(monkeypatch):
    """FAKE kubelet setup: the root dir its flags name (jigs.kubelet reads it on a cluster)."""
    read_from = "root dir: kubelet flag --root-dir"
    setup = kubelet_jig.KubeletSetup(kubelet_jig.DEFAULT_RUNTIME_ENDPOINT, "/data/kubelet", read_from)
    monkeypatch.setattr(kubelet_jig, "setup_of", lambda cluster, node: setup)


def running_pod(uid="u-1", node="kind-worker"):
    return client.V1Pod(
        metadata=client.V1ObjectMeta(name="pod-volume-1", uid=uid), spec=client.V1PodSpec(containers=[], node_name=node)
    )


def test_the_emptydir_is_found_under_the_kubelets_real_root_and_its_removal_watched(kubelet_root):
    where = "/data/kubelet/pods/u-1/volumes/kubernetes.io~empty-dir/empty-dir"
    node = FakeNode({where: ["left-behind"]})
    found = volume_jig.EmptyDirOnNode.find(SimpleNamespace(cluster=node), running_pod(), "empty-dir", "left-behind")
    assert (found.node, found.path) == ("kind-worker", where)

    with pytest.raises(WaitTimeout, match=r"removed from node kind-worker.*still there, holding \['left-behind'\]"):
        found.wait_removed(timeout=0)
    del node.dirs[where]
    found.wait_removed(timeout=0)


def test_an_emptydir_not_found_where_looked_is_no_proof_of_removal_but_could_not_evaluate(kubelet_root):
    # the old check read /var/lib/kubelet whatever the kubelet's root: "not there" passed as removed
    node = FakeNode({})
    with pytest.raises(SetupFailed) as refused:
        volume_jig.EmptyDirOnNode.find(SimpleNamespace(cluster=node), running_pod(), "empty-dir", "left-behind")
    assert str(refused.value) == (
        "could not evaluate (set-up: find the emptyDir empty-dir of pod pod-volume-1 on node kind-worker): "
        "/data/kubelet/pods/u-1/volumes/kubernetes.io~empty-dir/empty-dir on node kind-worker: no such directory, "
        "not the file left-behind the pod wrote (the kubelet's root dir: kubelet flag --root-dir)"
    )
