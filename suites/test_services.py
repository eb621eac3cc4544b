"""Services: ClusterIP, NodePort, LoadBalancer, externalIPs, hand-made Endpoints, kube-proxy's
rules, and what the API server does with the notes' broken Service manifests.

Traffic from the test host goes only to node InternalIPs; everything else is requested from a
client pod inside the cluster. nodePort 30000 is used by two of the notes' Services ([002]
np-svc, [003] NodePort practice): the jig waits for it to be free and releases it after each test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import yaml
from kubernetes.client import V1Service

from clusterproof import wait
from clusterproof.api_answers import ApiAnswer, post_yaml_as_written
from clusterproof.cluster import Cluster
from clusterproof.jigs.service import (
    NOTES_NODE_PORT_RANGE,
    Backends,
    ServiceJig,
    cluster_ip_url,
    endpoint_target_uids,
    in_notes_range,
    is_ip,
    kubectl_row,
    nat_rules,
    node_port_range_setting,
    node_url,
    service_rules,
    spread_problem,
)
from clusterproof.manifests import Manifests
from clusterproof.probe import ClientPod, HttpAnswer

APP_PODS = "claims/services/app-pods.yaml"  # pod-1, pod-2 (app: pod), serve-hostname on 8080
NP_PODS = "claims/services/np-pods.yaml"  # Deployment np-pods, 2 replicas, serve-hostname on 80
SAMPLE_APP = "claims/services/sample-app.yaml"  # Deployment sample-app: porter on 80 and 443
LB_OBSERVATION_WINDOW = 15.0  # seconds a LoadBalancer implementation gets to assign an address
LOW, HIGH = NOTES_NODE_PORT_RANGE
NOTES_RANGE = f"{LOW}-{HIGH}"

ClientFactory = Callable[..., ClientPod]


@pytest.fixture
def jig(cluster: Cluster, manifests: Manifests) -> Iterator[ServiceJig]:
    jig = ServiceJig(cluster, manifests)
    yield jig
    jig.release()


def port_and_pod(answer: HttpAnswer) -> str:
    """agnhost porter answers "port-80 <pod>": which container port answered, and which pod."""
    return answer.body.strip()


def start_app_pods(jig: ServiceJig, client_pod: ClientFactory) -> tuple[ClientPod, Backends]:
    jig.add_backends(APP_PODS)
    client = client_pod()  # starts while the backends start
    return client, jig.ready_backends("app=pod", 2)


# --- ClusterIP -----------------------------------------------------------------------------


@pytest.mark.claim("SVC-01")
def test_service_without_type_is_clusterip_and_answers_inside(jig: ServiceJig, client_pod: ClientFactory) -> None:
    client, pods = start_app_pods(jig, client_pod)
    service = jig.create_service("claims/services/svc-default.yaml", backends=pods)

    assert service.spec.type == "ClusterIP", f"svc-default was created without type; stored type {service.spec.type}"
    assert is_ip(service.spec.cluster_ip), f"svc-default got no ClusterIP: {service.spec.cluster_ip!r}"
    what = f"ClusterIP {service.spec.cluster_ip}:8080 of svc-default"
    result = jig.sample_inside(client, cluster_ip_url(service), what, pods.names)
    problem = spread_problem(what, result, pods.names)
    assert problem is None, problem


@pytest.mark.claim("SVC-02")
def test_recreated_pods_get_new_ips_but_the_clusterip_stays_and_reaches_them(
    jig: ServiceJig, client_pod: ClientFactory
) -> None:
    client, old = start_app_pods(jig, client_pod)
    service = jig.create_service("notes/services/svc-1-clusterip.yaml", backends=old)
    what = f"ClusterIP {service.spec.cluster_ip}:9000 of svc-1"
    problem = spread_problem(what, jig.sample_inside(client, cluster_ip_url(service), what, old.names), old.names)
    assert problem is None, f"before re-creating the pods: {problem}"

    jig.delete_pods(old)
    new = jig.start_backends(APP_PODS, "app=pod", 2)

    assert not new.ips & old.ips, f"re-created pods kept pod IPs: before {old}, after {new}"
    kept = jig.read("svc-1").spec.cluster_ip
    assert kept == service.spec.cluster_ip, f"svc-1's ClusterIP changed from {service.spec.cluster_ip} to {kept}"
    endpoints = jig.wait_endpoints("svc-1", new.ips)
    assert endpoint_target_uids(endpoints) == new.uids, f"svc-1's endpoints do not point at the new pods {new}"
    # the old pods are gone, so every answer below comes from a re-created pod
    what = f"{what} after re-creating the pods ({new})"
    problem = spread_problem(what, jig.sample_inside(client, cluster_ip_url(service), what, new.names), new.names)
    assert problem is None, problem


@pytest.mark.claim("SVC-03")
def test_clusterip_spreads_requests_over_exactly_the_ready_pods_from_every_node(
    jig: ServiceJig, cluster: Cluster, client_pod: ClientFactory
) -> None:
    jig.add_backends(APP_PODS, extra=[jig.never_ready_copy(APP_PODS, "pod-not-ready")])
    clients = [client_pod(f"client-{i}", node_name=node.name) for i, node in enumerate(cluster.nodes)]
    ready = jig.ready_backends("app=pod", 2)
    not_ready = jig.wait_running("pod-not-ready")
    service = jig.create_service("notes/services/svc-1-clusterip.yaml")
    jig.wait_endpoints("svc-1", ready.ips, {not_ready.status.pod_ip})

    problems = []
    for client in clients:
        what = (
            f"ClusterIP {service.spec.cluster_ip}:9000 of svc-1 from a pod on node {client.node_name} "
            "(pod-not-ready selected but never ready)"
        )
        result = jig.sample_inside(client, cluster_ip_url(service), what, ready.names, never={"pod-not-ready"})
        problems.append(spread_problem(what, result, ready.names))
    assert not any(problems), "; ".join(p for p in problems if p)


# --- ports -----------------------------------------------------------------------------------


def check_ports_reach_their_container_ports(
    jig: ServiceJig, client: ClientPod, service: V1Service, pods: set[str]
) -> list[str]:
    """Port 8080 must be answered by container port 80 of every pod, 8443 by container port 443."""
    problems = []
    for port, container_port in ((8080, 80), (8443, 443)):
        what = f"port {port} of Service {service.metadata.name} ({service.spec.cluster_ip})"
        expected = {f"port-{container_port} {pod}" for pod in pods}
        result = jig.sample_inside(client, cluster_ip_url(service, port), what, expected, backend_of=port_and_pod)
        problem = spread_problem(what, result, expected)
        if problem:
            problems.append(problem)
    return problems


def start_sample_app(jig: ServiceJig, client_pod: ClientFactory) -> tuple[ClientPod, Backends]:
    jig.add_backends(SAMPLE_APP)
    client = client_pod()
    return client, jig.ready_backends("app=sample-app", 2)


@pytest.mark.claim("SVC-04")
def test_each_port_of_the_multiport_service_reaches_its_own_container_port(
    jig: ServiceJig, client_pod: ClientFactory
) -> None:
    client, pods = start_sample_app(jig, client_pod)
    service = jig.create_service("notes/services/sample-multiport.yaml", backends=pods)

    problems = check_ports_reach_their_container_ports(jig, client, service, pods.names)
    assert not problems, "; ".join(problems)


@pytest.mark.claim("SVC-05")
def test_target_port_by_name_reaches_the_container_port_with_that_name(
    jig: ServiceJig, client_pod: ClientFactory
) -> None:
    client, pods = start_sample_app(jig, client_pod)
    service = jig.create_service("claims/services/sample-named-targetport.yaml", backends=pods)

    targets = {p.port: p.target_port for p in service.spec.ports}
    assert targets == {8080: "http", 8443: "https"}, f"sample-named stored targetPorts {targets}"
    problems = check_ports_reach_their_container_ports(jig, client, service, pods.names)
    assert not problems, "; ".join(problems)


@pytest.mark.claim("SVC-06")
def test_target_port_left_out_defaults_to_the_service_port(jig: ServiceJig, client_pod: ClientFactory) -> None:
    client, pods = start_app_pods(jig, client_pod)
    service = jig.create_service("claims/services/svc-default.yaml", backends=pods)

    port = service.spec.ports[0]
    assert port.target_port == port.port == 8080, (
        f"svc-default has port {port.port} and no targetPort; stored targetPort {port.target_port!r}"
    )
    what = f"ClusterIP {service.spec.cluster_ip}:8080 of svc-default (pods listen on 8080 only)"
    result = jig.sample_inside(client, cluster_ip_url(service), what, pods.names)
    problem = spread_problem(what, result, pods.names)
    assert problem is None, problem


# --- NodePort --------------------------------------------------------------------------------


@pytest.mark.claim("SVC-07")
def test_nodeport_30000_answers_on_every_node_and_spreads_over_the_pods(jig: ServiceJig) -> None:
    pods = jig.start_backends(APP_PODS, "app=pod", 2)
    service = jig.create_service("notes/services/svc-nodeport.yaml", backends=pods)

    assert service.spec.ports[0].node_port == 30000, f"svc-nodeport asked for 30000, got {service.spec.ports[0]}"
    problems = jig.node_port_problems(30000, pods.names)
    assert not problems, "; ".join(problems)


@pytest.mark.claim("SVC-08")
def test_nodeport_service_also_answers_on_its_clusterip(jig: ServiceJig, client_pod: ClientFactory) -> None:
    jig.add_backends(NP_PODS)
    client = client_pod()
    pods = jig.ready_backends("app=np-pods", 2)
    service = jig.create_service("notes/services/np-svc.yaml", backends=pods)

    assert service.spec.type == "NodePort" and is_ip(service.spec.cluster_ip), (
        f"np-svc: type {service.spec.type}, ClusterIP {service.spec.cluster_ip!r}"
    )
    what = f"ClusterIP {service.spec.cluster_ip}:80 of NodePort Service np-svc"
    result = jig.sample_inside(client, cluster_ip_url(service), what, pods.names)
    problem = spread_problem(what, result, pods.names)
    assert problem is None, problem


def create_np_svc_v2(jig: ServiceJig, how: str) -> V1Service:
    if how == "manifest":
        return jig.create_service("claims/services/np-svc-v2.yaml")
    # [002] as printed: kubectl expose deployment np-pods --type=NodePort --name=np-svc-v2 --port=80
    return jig.expose("deployment", "np-pods", "--type=NodePort", "--name=np-svc-v2", "--port=80")


@pytest.mark.claim("SVC-09")
@pytest.mark.parametrize("how", ["manifest", "kubectl-expose"])
def test_nodeport_left_out_is_picked_from_30000_32767(jig: ServiceJig, cluster: Cluster, how: str) -> None:
    jig.add_backends(NP_PODS)  # `kubectl expose deployment` reads the Deployment's selector
    service = create_np_svc_v2(jig, how)

    port = service.spec.ports[0].node_port
    assert in_notes_range(port), (
        f"np-svc-v2 ({how}) got nodePort {port}, outside {NOTES_RANGE}; {node_port_range_setting(cluster)}"
    )


@pytest.mark.claim("SVC-09")
@pytest.mark.parametrize("node_port", [LOW - 1, HIGH + 1])
def test_nodeport_outside_30000_32767_is_refused(
    jig: ServiceJig, manifests: Manifests, cluster: Cluster, node_port: int
) -> None:
    docs = manifests.render(f"claims/services/np-svc-nodeport-{node_port}.yaml")
    answer = jig.try_create_service(docs)

    expected = f"refused with 422 Invalid on spec.ports[0].nodePort naming the range {NOTES_RANGE}"
    setting = node_port_range_setting(cluster)
    assert not answer.accepted, f"nodePort {node_port} was accepted; expected it {expected}; {setting}"
    cause = answer.cause_for("spec.ports[0].nodePort")
    assert answer.status == 422 and answer.reason == "Invalid" and cause is not None, (
        f"nodePort {node_port}: {answer}; expected {expected}"
    )
    assert "valid range" in cause.message and NOTES_RANGE in cause.message, (
        f"nodePort {node_port} refused as {cause.message!r}; expected the valid range {NOTES_RANGE}; {setting}"
    )


@pytest.mark.claim("SVC-09")
@pytest.mark.parametrize("node_port", [LOW, HIGH])
def test_nodeport_at_the_edges_of_30000_32767_is_accepted(
    jig: ServiceJig, manifests: Manifests, cluster: Cluster, node_port: int
) -> None:
    service = manifests.render("claims/services/np-svc-nodeport-29999.yaml")[0]
    service["metadata"]["name"] = f"np-svc-{node_port}"
    service["spec"]["ports"][0]["nodePort"] = node_port
    answer = jig.try_create_service([service])

    cause = answer.cause_for("spec.ports[0].nodePort")
    # "already allocated" is checked after the range: a port someone else holds is in range
    in_range = answer.accepted or (cause is not None and "already allocated" in cause.message)
    assert in_range, f"nodePort {node_port} (edge of {NOTES_RANGE}): {answer}; {node_port_range_setting(cluster)}"


# --- LoadBalancer, externalIPs -------------------------------------------------------------------


@pytest.mark.claim("SVC-10")
def test_loadbalancer_without_implementation_stays_pending_but_answers_on_its_node_port(
    jig: ServiceJig, cluster: Cluster, namespace: str
) -> None:
    pods = jig.start_backends(APP_PODS, "app=pod", 2)
    service = jig.create_service("notes/services/svc-2-loadbalancer.yaml", backends=pods)

    ingress = jig.load_balancer_ingress("svc-2", LB_OBSERVATION_WINDOW)
    cluster.require(
        not ingress,
        f"the cluster has a load-balancer implementation: svc-2 got ingress {ingress} "
        f"within {LB_OBSERVATION_WINDOW:g}s",
    )
    external = kubectl_row(cluster, namespace, "service", "svc-2")["EXTERNAL-IP"]
    assert external == "<pending>", f"kubectl get service svc-2 shows EXTERNAL-IP {external!r}, expected <pending>"
    problems = jig.node_port_problems(service.spec.ports[0].node_port, pods.names)
    assert not problems, "; ".join(problems)


@pytest.mark.claim("SVC-11")
def test_external_ip_shows_in_kubectl_and_answers_with_the_pods(
    jig: ServiceJig, cluster: Cluster, namespace: str
) -> None:
    node = (cluster.workers or cluster.nodes)[0]
    pods = jig.start_backends(APP_PODS, "app=pod", 2)
    jig.create_service("claims/services/svc-externalips.yaml", values={"EXTERNAL_IP": node.internal_ip}, backends=pods)

    external = kubectl_row(cluster, namespace, "service", "svc-externalips")["EXTERNAL-IP"]
    assert external == node.internal_ip, f"kubectl get service shows EXTERNAL-IP {external!r}, set {node.internal_ip}"
    what = f"externalIP {node.internal_ip}:9000 (node {node.name}) of svc-externalips"
    result = jig.sample_from_host(node_url(node, 9000), what, pods.names)
    problem = spread_problem(what, result, pods.names)
    assert problem is None, problem


# --- Endpoints by hand, kube-proxy ---------------------------------------------------------------


@pytest.mark.claim("SVC-17")
def test_service_without_selector_routes_to_its_hand_made_endpoints(jig: ServiceJig, client_pod: ClientFactory) -> None:
    jig.add_backends("claims/services/legacy-backend.yaml")
    client = client_pod()
    backend = jig.ready_backends("role=legacy-backend", 1)
    (backend_ip,) = backend.ips
    service = jig.create_service("claims/services/svc-without-selector.yaml", values={"BACKEND_IP": backend_ip})

    assert not service.spec.selector, f"external-backend has a selector: {service.spec.selector}"
    jig.wait_endpoints("external-backend", {backend_ip})  # the hand-made list, left as written
    what = f"ClusterIP {service.spec.cluster_ip}:80 of external-backend (Endpoints -> {backend_ip}:8080)"
    result = jig.sample_inside(client, cluster_ip_url(service, path="/hostname"), what, backend.names)
    problem = spread_problem(what, result, backend.names)
    assert problem is None, problem


def rules_on_every_node(cluster: Cluster, expected: str, wanted: Callable[[str], str | None]) -> None:
    """Poll every node's nat table until `wanted(rules)` finds nothing wrong (None) on all of them."""
    states: dict[str, str | None] = {}

    def check() -> bool:
        for node in cluster.nodes:
            states[node.name] = wanted(nat_rules(cluster, node.name))
        return not any(states.values())

    def describe(_: object) -> str:
        return "; ".join(f"{node}: {state}" for node, state in sorted(states.items()) if state) or "-"

    wait.until(check, expected, 60, describe=describe, interval=2)


@pytest.mark.claim("SVC-18")
@pytest.mark.needs_node_exec
def test_kube_proxy_writes_the_clusterip_into_every_nodes_nat_rules_and_removes_it(
    jig: ServiceJig, cluster: Cluster, namespace: str
) -> None:
    pods = jig.start_backends(APP_PODS, "app=pod", 2)
    before = {n.name: nat_rules(cluster, n.name) for n in cluster.nodes}
    cluster.require(
        any("-j KUBE-SVC-" in rules for rules in before.values()),
        "kube-proxy is not in iptables mode: no KUBE-SVC- chains in any node's nat table",
    )
    assert not any(f"{namespace}/svc-1" in r for r in before.values()), "rules for svc-1 before it exists"

    service = jig.create_service("notes/services/svc-1-clusterip.yaml", backends=pods)
    ip = service.spec.cluster_ip
    destinations = {f"{pod_ip}:8080" for pod_ip in pods.ips}

    def present(rules: str) -> str | None:
        found = service_rules(rules, namespace, "svc-1", ip, 9000)
        if not found.present:
            return f"no KUBE-SERVICES rule for svc-1's ClusterIP {ip}:9000"
        if found.destinations != destinations:
            return f"svc-1 DNATs to {sorted(found.destinations)}, pods are {sorted(destinations)}"
        return None

    def absent(rules: str) -> str | None:
        found = service_rules(rules, namespace, "svc-1", ip, 9000)
        if found.present or found.destinations:
            return f"rules for deleted svc-1 ({ip}:9000) still there: {found.portal[:1]}"
        return None

    rules_on_every_node(cluster, f"kube-proxy to write svc-1 ({ip}:9000) into every node's nat table", present)
    jig.delete_service("svc-1")
    rules_on_every_node(cluster, f"kube-proxy to remove svc-1 ({ip}:9000) from every node's nat table", absent)


# --- the notes' Service manifests as written -------------------------------------------------


@pytest.mark.claim("ERR-01")
def test_notes_multiport_service_as_written_loses_protocal_and_defaults_to_tcp(
    cluster: Cluster, manifests: Manifests, namespace: str, record_property
) -> None:
    text = manifests.load_raw("notes-as-written/001-sample-multiport-protocal.yaml").text
    answer = post_yaml_as_written(cluster, f"/api/v1/namespaces/{namespace}/services", text)
    record_property("api_server_answer", answer)

    assert answer.accepted, f"the notes' multi-port Service as written: {answer}"
    sent = [dict(p) for p in yaml.safe_load(text)["spec"]["ports"]]
    stored_service = cluster.core.read_namespaced_service("sample", namespace)
    stored = cluster.api.sanitize_for_serialization(stored_service)["spec"]["ports"]
    record_property("sent_ports", sent)
    record_property("stored_ports", stored)
    assert all("protocal" in p for p in sent)
    assert not any("protocal" in p for p in stored), f"stored ports kept the typo: {stored}"
    assert [p.get("protocol") for p in stored] == ["TCP", "TCP"], f"sent {sent}, stored {stored}"
    mentions_typo = any("protocal" in w for w in answer.warnings)
    if cluster.server_version >= (1, 25):  # server-side field validation warns by default
        assert mentions_typo, f"no warning about the unknown field protocal: {answer}"
    else:
        assert not answer.warnings, f"{cluster.git_version} warned: {answer.warnings}"


def assert_refused_as_bad_yaml(answer: ApiAnswer, what: str) -> None:
    assert answer.status == 400 and answer.reason == "BadRequest" and "yaml" in answer.message.lower(), (
        f"{what}: {answer}; expected 400 BadRequest with the YAML error"
    )


@pytest.mark.claim("ERR-02")
def test_notes_nodeport_service_as_written_is_refused_and_each_mistake_matters(
    cluster: Cluster, manifests: Manifests, namespace: str, record_property
) -> None:
    text = manifests.load_raw("notes-as-written/001-sample-nodeport-ports-targetport-selector.yaml").text
    answer = post_yaml_as_written(cluster, f"/api/v1/namespaces/{namespace}/services", text)
    record_property("api_server_answer", answer)

    assert_refused_as_bad_yaml(answer, "the notes' NodePort Service as written")
    assert not cluster.core.list_namespaced_service(namespace).items, "a Service was created from it"

    # with only the misplaced selector taken out it parses, and `ports: 8080` / `targetport` are
    # dropped as unknown fields: the port is missing
    nested_selector = "    selector:\n      app: sample-app\n"
    assert nested_selector in text
    services = f"/api/v1/namespaces/{namespace}/services"
    parsed = post_yaml_as_written(cluster, services, text.replace(nested_selector, ""))
    record_property("api_server_answer_selector_removed", parsed)
    missing = [f for f in ("spec.ports[0].port", "spec.ports[0].targetPort") if parsed.cause_for(f) is None]
    assert parsed.status == 422 and not missing, (
        f"the notes' NodePort Service without its nested selector: {parsed}; "
        "expected 422 on spec.ports[0].port and spec.ports[0].targetPort (both dropped, so 0)"
    )
