"""clusterproof.health (and clusterproof.causes, health_cli) on a FAKE cluster: canned API objects
from fake clients (no API server), one broken component at a time, and what the probe and the
wait causes say about it."""

import datetime
import time
from types import SimpleNamespace

import pytest
from kubernetes import client

from clusterproof import causes, health, health_cli, system_look, wait
from clusterproof.errors import WaitGaveUp

NOW = time.time()
OLD = datetime.datetime.fromtimestamp(NOW - 600, datetime.UTC)  # 10 min: settled


def made_5s_ago() -> datetime.datetime:
    """Made 5 s ago, now (not at import: on a loaded host the module's tests take half a minute)."""
    return datetime.datetime.fromtimestamp(time.time() - 5, datetime.UTC)


def meta(name, namespace="kube-system", labels=None, created=OLD):
    return client.V1ObjectMeta(name=name, namespace=namespace, labels=labels or {}, creation_timestamp=created)


def node(name, ready=True, kubelet="v1.37.2"):
    return client.V1Node(
        metadata=meta(name, None),
        status=client.V1NodeStatus(
            conditions=[
                client.V1NodeCondition(
                    type="Ready",
                    status="True" if ready else "False",
                    reason=None if ready else "KubeletNotReady",
                    message=None if ready else "container runtime network not ready",
                )
            ],
            node_info=client.V1NodeSystemInfo(
                kubelet_version=kubelet, architecture="amd64", boot_id="", container_runtime_version="",
                kernel_version="", kube_proxy_version="", machine_id="", operating_system="linux", os_image="",
                system_uuid="",
            ),
        ),
    )


def daemonset(name, desired=3, ready=3, processed=True, created=OLD):
    status = client.V1DaemonSetStatus(
        current_number_scheduled=desired if processed else 0,
        desired_number_scheduled=desired if processed else 0,
        number_misscheduled=0,
        number_ready=ready if processed else 0,
        observed_generation=1 if processed else None,
    )
    return client.V1DaemonSet(
        metadata=meta(name, labels={"k8s-app": name}, created=created),
        spec=client.V1DaemonSetSpec(
            selector=client.V1LabelSelector(match_labels={"k8s-app": name}), template=client.V1PodTemplateSpec()
        ),
        status=status,
    )


def pod(name, labels, ready=True, waiting=None):
    statuses = [
        client.V1ContainerStatus(
            name="c",
            image="i",
            image_id="",
            ready=ready,
            restart_count=3 if waiting else 0,
            state=client.V1ContainerState(waiting=client.V1ContainerStateWaiting(reason=waiting) if waiting else None),
        )
    ]
    return client.V1Pod(
        metadata=meta(name, labels=labels),
        status=client.V1PodStatus(
            phase="Running",
            conditions=[client.V1PodCondition(type="Ready", status="True" if ready else "False")],
            container_statuses=statuses,
        ),
    )


def deployment(name, namespace="kube-system", replicas=2, available=2, labels=None):
    return client.V1Deployment(
        metadata=meta(name, namespace, labels=labels),
        spec=client.V1DeploymentSpec(
            replicas=replicas,
            selector=client.V1LabelSelector(match_labels=labels or {"app": name}),
            template=client.V1PodTemplateSpec(),
        ),
        status=client.V1DeploymentStatus(available_replicas=available),
    )


def service(name, namespace="kube-system", selector=None, created=OLD):
    return client.V1Service(
        metadata=meta(name, namespace, created=created),
        spec=client.V1ServiceSpec(selector=selector, cluster_ip="10.96.0.10"),
    )


DNS_LABELS = {"k8s-app": "kube-dns"}


def endpoints(name, namespace, created=OLD):
    ready = [client.V1EndpointAddress(ip="10.244.0.2")] if name == "kube-dns" else None
    return client.V1Endpoints(metadata=meta(name, namespace, created=created), subsets=[
        client.V1EndpointSubset(addresses=ready)
    ])


def items(objects):
    return SimpleNamespace(items=list(objects))


class FakeCluster:
    """FAKE Cluster: a healthy kind cluster unless told otherwise; each list answers from these lists."""

    count = 0

    def __init__(self, **broken):
        FakeCluster.count += 1
        self.name = f"fake-{FakeCluster.count}"  # a name of its own: health caches per cluster name
        self.nodes = [node("cp"), node("w1"), node("w2")]
        self.daemonsets = [daemonset("kube-proxy"), daemonset("kindnet")]
        self.pods = [pod(f"kube-proxy-{n}", {"k8s-app": "kube-proxy"}) for n in "abc"] + [
            pod("coredns-1", DNS_LABELS),
            pod("coredns-2", DNS_LABELS),
        ]
        self.deployments = [
            deployment("coredns", labels=DNS_LABELS),
            deployment("local-path-provisioner", "local-path-storage", 1, 1),
        ]
        self.services = [service("kube-dns", selector=DNS_LABELS), service("kubernetes", "default")]
        self.endpoints = {("kube-system", "kube-dns"), ("default", "kubernetes")}
        self.slices = {("kube-system", "kube-dns"), ("default", "kubernetes")}
        self.endpoints_created = OLD
        self.apiserver_args = ["kube-apiserver", "--enable-admission-plugins=NodeRestriction"]
        self.controller_manager_args = ["kube-controller-manager", "--controllers=*,bootstrapsigner,tokencleaner"]
        for key, value in broken.items():
            setattr(self, key, value)
        me = self
        self.core = SimpleNamespace(
            list_node=lambda **_: items(me.nodes),
            list_namespaced_pod=lambda ns, **_: items(
                [p for p in me.pods + me.apiserver_pods() if p.metadata.namespace == ns]
            ),
            list_namespaced_service=lambda ns, **_: items(s for s in me.services if s.metadata.namespace == ns),
            list_namespaced_endpoints=lambda ns, **_: items(
                endpoints(n, n_ns, me.endpoints_created) for n_ns, n in me.endpoints if n_ns == ns
            ),
        )
        self.apps = SimpleNamespace(
            list_namespaced_daemon_set=lambda ns, **_: items(me.daemonsets),
            list_daemon_set_for_all_namespaces=lambda **_: items(me.daemonsets),
            list_namespaced_deployment=lambda ns, **_: items(d for d in me.deployments if d.metadata.namespace == ns),
            list_deployment_for_all_namespaces=lambda field_selector, **_: items(
                d for d in me.deployments if field_selector == f"metadata.name={d.metadata.name}"
            ),
        )
        self.api = None

    def apiserver_pods(self):
        """The control plane's mirror pods, with their flags."""
        return [
            client.V1Pod(
                metadata=meta(f"{name}-cp", labels={"component": name}),
                spec=client.V1PodSpec(containers=[client.V1Container(name=name, command=args)]),
            )
            for name, args in (
                ("kube-apiserver", self.apiserver_args),
                ("kube-controller-manager", self.controller_manager_args),
            )
        ]


@pytest.fixture(autouse=True)
def fake_discovery_and_leases(monkeypatch):
    """FAKE DiscoveryV1Api / CoordinationV1Api: EndpointSlices from the cluster's `slices`; the
    controller-manager's lease renewed `lease_age` seconds ago (fresh unless told)."""

    def slices(api, *, cluster_of=lambda: None):
        raise AssertionError

    class Discovery:
        def __init__(self, api):
            pass

        def list_namespaced_endpoint_slice(self, ns, label_selector="", **_):
            wanted = label_selector.partition("kubernetes.io/service-name=")[2]
            return items(
                SimpleNamespace(metadata=SimpleNamespace(labels={"kubernetes.io/service-name": n}))
                for n_ns, n in CURRENT.slices
                if n_ns == ns and (not wanted or n == wanted)
            )

    class Coordination:
        def __init__(self, api):
            pass

        def read_namespaced_lease(self, name, ns, **_):
            if name != "kube-controller-manager":
                raise client.ApiException(status=404)
            renewed = datetime.datetime.fromtimestamp(time.time() - CURRENT.lease_age, datetime.UTC)
            spec = client.V1LeaseSpec(renew_time=renewed, lease_duration_seconds=15, holder_identity="cp_1234")
            return client.V1Lease(spec=spec)

    monkeypatch.setattr(health.client, "DiscoveryV1Api", Discovery)
    monkeypatch.setattr(health.client, "CoordinationV1Api", Coordination)


CURRENT = SimpleNamespace(slices=set(), lease_age=2)


def cluster(**broken):
    c = FakeCluster(**{k: v for k, v in broken.items() if k != "lease_age"})
    CURRENT.slices = c.slices
    CURRENT.lease_age = broken.get("lease_age", 2)
    return c


def texts(c):
    return [str(f) for f in health.probe(c)]


def test_a_healthy_cluster_has_no_findings_and_no_causes():
    c = cluster()
    assert texts(c) == []
    assert causes.routing_cause(c) is None and causes.endpoints_cause(c) is None
    assert causes.daemonset_controller_cause(c) is None
    assert causes.provisioner_cause(c, "rancher.io/local-path") is None
    assert causes.admission_disabled(c, "ResourceQuota") is None


def test_daemonset_controller_off():
    c = cluster(
        daemonsets=[daemonset("kindnet", processed=False), daemonset("kube-proxy", processed=False)],
        pods=[pod("coredns-1", DNS_LABELS)],
    )
    assert texts(c)[:3] == [
        "no DaemonSet has been processed (kindnet, kube-proxy): is the DaemonSet controller running?",
        "kindnet: 0 of 3 nodes ready (the DaemonSet was never processed)",
        "kube-proxy: 0 of 3 nodes ready (the DaemonSet was never processed)",
    ]
    assert causes.daemonset_controller_cause(c).startswith("no DaemonSet has been processed")
    assert causes.routing_cause(c) == (
        "kube-proxy runs on no node (DaemonSet kube-system/kube-proxy never processed: is the DaemonSet "
        "controller running?): nothing writes the Services' rules"
    )


def test_a_young_clusters_unprocessed_daemonsets_are_not_final_yet():
    c = cluster(daemonsets=[daemonset("kube-proxy", processed=False, created=made_5s_ago())])
    found = [f for f in health.probe(c) if f.component == "DaemonSet controller"]
    assert found and not found[0].final
    assert causes.daemonset_controller_cause(c) is None


def test_kube_proxy_removed_from_every_node_and_mode_none():
    removed = cluster(
        daemonsets=[daemonset("kube-proxy", desired=0, ready=0), daemonset("kindnet")],
        pods=[pod("coredns-1", DNS_LABELS)],
    )
    assert "kube-proxy: runs on no node (0 of 3 nodes wanted)" in texts(removed)
    assert causes.routing_cause(removed).startswith("kube-proxy runs on no node (0 of 0 kube-proxy pods ready)")
    mode_none = cluster(daemonsets=[daemonset("kindnet")], pods=[pod("coredns-1", DNS_LABELS)])
    assert texts(mode_none) == [
        "kube-proxy: not running on any node (no DaemonSet or pod kube-system/kube-proxy) and no pod network "
        "that replaces it: nothing implements Services"
    ]
    assert "no DaemonSet or pod kube-system/kube-proxy" in causes.routing_cause(mode_none)


def test_no_kube_proxy_is_fine_where_something_replaces_it():
    cilium = cluster(daemonsets=[daemonset("cilium")], pods=[pod("coredns-1", DNS_LABELS)])
    assert texts(cilium) == [] and causes.routing_cause(cilium) is None
    k3s = cluster(
        daemonsets=[], pods=[pod("coredns-1", DNS_LABELS)], nodes=[node("k3s-1", kubelet="v1.33.1+k3s1")]
    )
    assert texts(k3s) == [] and causes.routing_cause(k3s) is None


def test_a_kube_proxy_pod_that_crashes_is_named_with_its_state():
    pods = [pod("kube-proxy-a", {"k8s-app": "kube-proxy"}, ready=False, waiting="CrashLoopBackOff")]
    c = cluster(daemonsets=[daemonset("kube-proxy", desired=1, ready=0)], pods=pods, nodes=[node("cp")])
    (finding,) = [f for f in health.probe(c) if f.component == "kube-proxy"]
    assert finding.text == "kube-proxy: 0 of 1 nodes ready (pods: kube-proxy-a: Running (CrashLoopBackOff))"
    assert finding.final


def test_coredns_crashing_scaled_to_zero_or_not_installed():
    crashing = cluster(pods=[pod("coredns-1", DNS_LABELS, ready=False, waiting="CrashLoopBackOff")])
    assert "CoreDNS pods not ready: coredns-1: Running (CrashLoopBackOff)" in texts(crashing)
    scaled = cluster(pods=[], deployments=[deployment("coredns", replicas=0, available=0, labels=DNS_LABELS)])
    assert texts(scaled) == ["CoreDNS: Deployment kube-system/coredns scaled to 0 replicas: no DNS pods"]
    state = health.dns_state(health.Look(scaled))
    assert state.installed and state.final
    absent = cluster(pods=[], deployments=[])
    assert not health.dns_state(health.Look(absent)).installed and texts(absent) == []


def test_endpoints_and_endpointslice_controllers_off():
    c = cluster(endpoints={("default", "kubernetes")}, slices=set())
    assert texts(c) == [
        "no Endpoints object for Service kube-system/kube-dns (10 min old): is the endpoints controller running?",
        "no EndpointSlice for Service kube-system/kube-dns (10 min old): is the EndpointSlice controller running?",
    ]
    assert causes.endpoints_cause(c).startswith("no Endpoints object for Service kube-system/kube-dns")
    young = cluster(endpoints=set(), services=[service("kube-dns", selector=DNS_LABELS, created=made_5s_ago())])
    assert causes.endpoints_cause(young) is None  # not yet evidence


def test_local_path_provisioner_scaled_to_zero():
    scaled = deployment("local-path-provisioner", "local-path-storage", 0, 0)
    c = cluster(deployments=[deployment("coredns", labels=DNS_LABELS), scaled])
    assert texts(c) == [
        "local-path-provisioner: Deployment local-path-storage/local-path-provisioner scaled to 0 replicas"
    ]
    assert causes.provisioner_cause(c, "rancher.io/local-path") == (
        "Deployment local-path-storage/local-path-provisioner is scaled to 0 replicas: nothing provisions for "
        "rancher.io/local-path"
    )
    assert causes.provisioner_cause(c, "example.com/unknown") is None


def test_controller_manager_lease_not_renewed():
    c = cluster(lease_age=400)
    assert texts(c) == [
        "kube-controller-manager: leader lease last renewed 6 min ago (holder cp_1234): is it running?"
    ]


def test_resource_quota_admission_disabled_on_the_api_server():
    c = cluster(apiserver_args=["kube-apiserver", "--disable-admission-plugins=ResourceQuota,ServiceAccount"])
    assert causes.admission_disabled(c, "ResourceQuota") == (
        "kube-apiserver runs with --disable-admission-plugins=ResourceQuota,ServiceAccount: the ResourceQuota "
        "admission plugin is off"
    )
    assert texts(c) == [
        "kube-apiserver runs with --disable-admission-plugins=ResourceQuota,ServiceAccount: those admission "
        "plugins are off"
    ]


def test_nodes_not_ready_are_named_with_the_kubelets_reason():
    c = cluster(nodes=[node("cp"), node("w1", ready=False)])
    assert "nodes not Ready: w1 (KubeletNotReady: container runtime network not ready)" in texts(c)


def test_what_cannot_be_read_is_left_out_never_raised():
    c = cluster()
    c.core.list_node = lambda **_: (_ for _ in ()).throw(client.ApiException(status=403))
    assert health.probe(c) == []  # the nodes' findings are left out, the rest still looked at
    look = health.Look(c)
    assert look.nodes == [] and look.unread == ["nodes: ApiException 403"]


def test_settle_waits_for_a_young_cluster_and_stops_early_when_every_finding_is_final(monkeypatch):
    answers = iter([[health.Finding("CoreDNS", "CoreDNS pods not ready: coredns-1: Pending")], []])
    monkeypatch.setattr(health, "probe", lambda c: next(answers))
    slept = []
    assert health.settle(SimpleNamespace(name="x"), 60, clock=lambda: 0.0, sleep=slept.append) == []
    assert slept == [health.SETTLE_INTERVAL]
    final = [health.Finding("kube-proxy", "kube-proxy: runs on no node", final=True)]
    monkeypatch.setattr(health, "probe", lambda c: final)
    assert health.settle(SimpleNamespace(name="x"), 60, clock=lambda: 0.0, sleep=slept.append) == final
    assert len(slept) == 1


def test_give_up_after_waits_out_the_grace_first():
    now = [0.0]
    final = causes.give_up_after(15, lambda: "kube-proxy runs on no node", clock=lambda: now[0])
    assert final(None) is None
    now[0] = 15.0
    assert final(None) == "kube-proxy runs on no node"


def test_the_boot_gate_gives_up_once_no_daemonset_was_processed_within_the_grace():
    now = [0.0]

    def tick(seconds):
        now[0] += seconds

    unprocessed = [daemonset("kube-proxy", processed=False), daemonset("kindnet", processed=False)]
    apps = SimpleNamespace(list_namespaced_daemon_set=lambda ns, **_: items(unprocessed))
    with pytest.raises(WaitGaveUp) as info:
        wait.daemonsets_ready(apps, "kube-system", 300, grace=30, clock=lambda: now[0], sleep=tick)
    assert now[0] == 30.0  # not the whole 300 s
    assert "no DaemonSet has been processed (kindnet, kube-proxy): is the DaemonSet controller running?" in str(
        info.value
    )


def test_settle_stops_when_the_findings_do_not_change(monkeypatch):
    now = [0.0]
    stuck = [health.Finding("metrics-server", "metrics-server: 0 of 1 replicas available (pods: m-1: Pending)")]
    monkeypatch.setattr(health, "probe", lambda c: stuck)

    def tick(seconds):
        now[0] += seconds

    assert health.settle(SimpleNamespace(name="x"), 60, clock=lambda: now[0], sleep=tick) == stuck
    assert now[0] == health.SETTLE_STABLE  # not the whole window


def test_the_command_line_probe_says_when_the_api_server_does_not_answer(tmp_path, capsys):
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: dead\n"
        "clusters: [{name: dead, cluster: {server: 'https://127.0.0.1:9'}}]\n"
        "contexts: [{name: dead, context: {cluster: dead, user: u}}]\n"
        "users: [{name: u, user: {token: not-a-secret}}]\n"
    )
    assert health_cli.main(["--kubeconfig", str(kubeconfig)]) == 2
    assert "the API server of cluster dead does not answer" in capsys.readouterr().out
    assert health_cli.main(["--kubeconfig", str(tmp_path / "missing")]) == 2


def test_the_nodes_gate_gives_up_when_their_pod_network_daemonset_can_never_run():
    """kindnet is a DaemonSet: with no DaemonSet controller the nodes are never Ready. A NotReady
    node posts no change a watch would see, so the gate asks the cause between watch slices."""
    now = [0.0]
    slices = []

    def no_events(list_fn, **kwargs):  # FAKE watch: nothing happens within the slice
        now[0] += kwargs["timeout_seconds"]
        slices.append(kwargs["timeout_seconds"])
        return iter(())

    causes = iter([None, "no DaemonSet has been processed (kindnet, kube-proxy): is the DaemonSet controller running?"])
    core = SimpleNamespace(list_node=lambda **_: items([]))
    with pytest.raises(WaitGaveUp) as info:
        wait.nodes_ready(
            core,
            180,
            count=3,
            give_up=lambda: next(causes),
            clock=lambda: now[0],
            sleep=lambda s: now.__setitem__(0, now[0] + s),
            watcher=lambda: SimpleNamespace(stream=no_events, stop=lambda: None),
        )
    assert now[0] < 60  # two slices of 15 s (and the watch's own retries), not 180 s
    assert "is the DaemonSet controller running?" in str(info.value)


def test_services_with_endpoints_but_no_endpointslices_name_the_endpointslice_controller():
    """#24 5b: Endpoints made, slices not (the EndpointSlice controller off): kube-proxy and
    CoreDNS read only slices, so every Service and DNS claim failed by its symptom while the
    health section said nothing. The Endpoints object proves the Service was seen: its slice is
    due SLICE_LAG seconds later, whatever the Service's age (a young cluster's kube-dns)."""
    young_service = [service("kube-dns", selector=DNS_LABELS, created=made_5s_ago()), service("kubernetes", "default")]
    c = cluster(slices={("default", "kubernetes")}, services=young_service)
    expected = (
        "Services have Endpoints but no EndpointSlices (kube-system/kube-dns: ready 10.244.0.2): is the "
        "EndpointSlice controller running? (kube-proxy and CoreDNS read only EndpointSlices)"
    )
    assert texts(c) == [expected]
    assert causes.slices_cause(c) == expected
    now = datetime.datetime.fromtimestamp(time.time() - 1, datetime.UTC)
    just_made = cluster(slices=set(), services=young_service, endpoints_created=now)
    assert texts(just_made) == [] and causes.slices_cause(just_made) is None  # the slice may be on its way


def test_a_controller_turned_off_by_the_controller_managers_flags_is_named():
    """--controllers=*,-statefulset-controller (or the old alias, or a list leaving it out)."""
    c = cluster(controller_manager_args=["kube-controller-manager", "--controllers=*,-statefulset,-resourcequota"])
    assert texts(c) == [
        "kube-controller-manager runs with --controllers=*,-statefulset,-resourcequota: the StatefulSet controller "
        "is off",
        "kube-controller-manager runs with --controllers=*,-statefulset,-resourcequota: the resourcequota "
        "controller is off",
    ]
    assert causes.controller_cause(c, "statefulset-controller").endswith("the StatefulSet controller is off")
    assert causes.controller_cause(c, "job-controller") is None
    listed = ["kube-controller-manager", "--controllers=endpoints-controller,daemonset-controller"]
    assert health.controller_off(listed, "endpointslice-controller") == (
        "kube-controller-manager runs with --controllers=endpoints-controller,daemonset-controller: the "
        "EndpointSlice controller is off"
    )
    assert health.controller_off(listed, "daemonset-controller") is None
    assert health.controller_off(["kube-controller-manager"], "statefulset-controller") is None  # default: all on
    slices_off = cluster(controller_manager_args=["kcm", "--controllers=*,-endpointslice-controller"])
    assert causes.slices_cause(slices_off).endswith("the EndpointSlice controller is off")


def test_a_service_without_endpointslices_cannot_route_while_their_controller_is_off():
    """The Service waits give up on it (service_cause), except for a Service whose slices are
    there: SVC-17's hand-made Endpoints are mirrored into slices by another controller."""
    c = cluster(
        slices={("default", "kubernetes"), ("ns1", "external-backend")},
        controller_manager_args=["kcm", "--controllers=*,-endpointslice-controller"],
    )
    assert causes.service_cause(c, "ns1", "svc-1").endswith("the EndpointSlice controller is off")
    assert causes.service_cause(c, "ns1", "external-backend") is None
    assert causes.service_cause(cluster(), "ns1", "svc-1") is None  # healthy: the Service's own slices not even read


def test_kube_proxy_running_but_not_syncing_its_rules_is_named(monkeypatch):
    """kube-proxy's /healthz (through the API server's node proxy) answers 503 once a change has
    waited past its health timeout: its pods look Ready, the rules are stale."""
    from clusterproof.api_answers import ApiAnswer

    pods = [pod(f"kube-proxy-{n}", {"k8s-app": "kube-proxy"}) for n in ("cp", "w1")]
    for p, n in zip(pods, ("cp", "w1"), strict=True):
        p.spec = client.V1PodSpec(node_name=n, containers=[])
    asked = []

    def healthz(cluster, method, path, timeout):
        asked.append(path)
        stale = {"lastUpdated": "2026-12-01T10:00:00Z", "currentTime": "2026-12-01T10:05:00Z"}
        return ApiAnswer(503, stale) if "/w1:" in path else ApiAnswer(200, {})

    monkeypatch.setattr(system_look, "raw_request", healthz)
    c = cluster(pods=pods + [pod("coredns-1", DNS_LABELS)])
    assert texts(c) == [
        "kube-proxy: not syncing its rules (healthz 503) on w1 (last synced 2026-12-01T10:00:00Z)"
    ]
    assert asked[0] == "/api/v1/nodes/cp:10256/proxy/healthz"
    assert causes.routing_cause(c) is None  # it syncs on cp
    monkeypatch.setattr(system_look, "raw_request", lambda cluster, method, path, timeout: ApiAnswer(503, {}))
    nowhere = cluster(pods=pods + [pod("coredns-1", DNS_LABELS)])
    assert causes.routing_cause(nowhere) == (
        "kube-proxy: not syncing its rules (healthz 503) on cp, w1: the Services' rules are stale"
    )
