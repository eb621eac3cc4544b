"""Ingress and the bare-metal ingress controller install [000, 002], the notes' broken Ingress examples,
and beyond the notes the same Ingress examples as Gateway API routes (GW).

The module tests one ingress controller: the one of `--ingress-class` (an existing cluster), of the
cluster's default IngressClass, or the one it installs itself the bare-metal way, as the notes do, when
nothing implements a class (a kind cluster of the run: always; an existing cluster: with
--allow-disruptive): ingress-nginx v1.15.1, its final release, where a registry answers; offline, where
no ingress-nginx image can be had, Traefik v3.7 (built from its Go module), which serves the notes'
class `nginx` through its Kubernetes Ingress NGINX provider, reading their annotations, and Gateways of
its GatewayClass `traefik`. The install is timed, made once per module and removed when the module ends;
the claims table names the controller and version each verdict was observed on ("observed on").

ING-02..05 are Ingress behaviour and run on the notes' Ingresses as written (class nginx, annotations
untouched) wherever the controller serves the ingress-nginx class; ING-01 (ingress-nginx's own install)
skips on another controller, naming it. ING-06 and the ERR checks need no controller. The GW checks run
on the GatewayClass under test (`--gateway-class`, else the install's, else one a controller accepted).
HTTP(S) from the test host goes to node InternalIPs and Gateway addresses only.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator

import pytest

from clusterproof import pod_states, urls, wait
from clusterproof.api_answers import answer_to
from clusterproof.claims import OBSERVED_ON_PROPERTY
from clusterproof.cluster import Cluster
from clusterproof.errors import ProbeError
from clusterproof.images import ImageCatalogue
from clusterproof.jigs import ingress
from clusterproof.manifests import Manifests
from clusterproof.run import RunContext
from clusterproof.settings import Settings
from clusterproof.timings import Stopwatch
from clusterproof.tracker import ResourceTracker
from clusterproof.verdicts import setup_step

MINIMAL = "notes/ingress/minimal-ingress.yaml"
BACKENDS = "claims/ingress/ingress-backends.yaml"
PATH_BACKENDS = "claims/ingress/path-backends.yaml"
REWRITE = "claims/ingress/rewrite-ingress.yaml"
TLS = "claims/ingress/tls-ingress.yaml"
NO_CONTROLLER_CLASS = "claims/ingress/no-controller-class.yaml"
GATEWAY = "claims/gateway/gateway.yaml"
MINIMAL_ROUTE = "claims/gateway/minimal-route.yaml"
REWRITE_ROUTE = "claims/gateway/rewrite-route.yaml"
TLS_GATEWAY = "claims/gateway/tls-gateway.yaml"
GATEWAY_NO_CONTROLLER = "claims/gateway/no-controller.yaml"
EXTERNAL_IPS_PATCH = "notes/ingress/ingress-nginx-controller-externalips.patch.yaml"
AS_WRITTEN = "notes-as-written/002-minimal-ingress-rootSvc.yaml"
V047_RECORD = "notes-as-written/000-ingress-nginx-controller-v0.47.0.yaml"
NO_CONTROLLER_WINDOW = 15.0  # a controller writes an address (a status) within seconds of syncing
# the rules a refusal of the backend Service name 'rootSvc' cites: DNS-1035 label (up to 1.36),
# "a lowercase RFC 1123 label" (1.37's API server)
NAME_RULES = ("DNS-1035", "RFC 1123")


# --- the controller under test -----------------------------------------------------------------


@pytest.fixture(scope="module")
def controller_under_test(
    cluster: Cluster,
    tracker: ResourceTracker,
    run: RunContext,
    images: ImageCatalogue,
    settings: Settings,
    ingress_class: str | None,
    stopwatch: Stopwatch,
    cluster_fact: Callable[[Cluster, str, object], None],
) -> Iterator[ingress.UnderTest]:
    """Chosen, and installed when nothing implements a class, once per module. What the install
    creates is registered in a cleanup scope of its own that ends with the module (its namespace
    first: deleted last, taking the cluster-scoped objects it owns along). A failed install is
    kept until then too, so each test that needs it reports it with the install's namespace in
    its diagnostics."""
    with tracker.test_scope(cluster, "ingress controller install"):
        install = ingress.install_for(cluster.offline)
        manifests = Manifests(
            cluster,
            install.namespace,
            catalogue=images,
            labels=run.labels,
            tracker=tracker,
            fixtures_dir=settings.fixtures_dir,
        )
        under_test = ingress.controller_under_test(
            cluster, ingress_class, manifests, stopwatch, run_id=run.run_id, allow_disruptive=settings.allow_disruptive
        )
        cluster_fact(cluster, "ingress_controller", under_test.fact())  # the report's cluster panel
        yield under_test


@pytest.fixture
def controller(
    request: pytest.FixtureRequest,
    cluster: Cluster,
    controller_under_test: ingress.UnderTest,
    diagnose_namespace: Callable[[str], None],
    record_property: Callable[[str, object], None],
) -> ingress.Controller:
    """The ingress controller under test (skips when there is none to test, and for an
    ingress-nginx claim (marker `ingress_nginx`) when it is another one, ready or not; a failed
    install fails the test). Its namespace goes into the test's failure diagnostics, and what it
    is into the claims table (for ingress-nginx: beside the Kubernetes releases it supports)."""
    nginx_only = request.node.get_closest_marker("ingress_nginx")
    if nginx_only:
        controller_under_test.require_ingress_nginx(
            nginx_only.args[0], offline=cluster.offline, annotations=nginx_only.kwargs.get("annotations", False)
        )
    if controller_under_test.namespace:
        diagnose_namespace(controller_under_test.namespace)
    found = controller_under_test.get()
    record_property(OBSERVED_ON_PROPERTY, found.observed_on())
    return found


@pytest.fixture(scope="module")
def gateway_under_test(
    cluster: Cluster, controller_under_test: ingress.UnderTest, gateway_class: str | None, run: RunContext
) -> ingress.GatewayUnderTest:
    """The GatewayClass the GW checks test, chosen once per module (after the ingress install, which
    may make one)."""
    return ingress.gateway_under_test(cluster, gateway_class, controller_under_test.controller, run_id=run.run_id)


@pytest.fixture
def gateway(
    gateway_under_test: ingress.GatewayUnderTest,
    controller_under_test: ingress.UnderTest,
    diagnose_namespace: Callable[[str], None],
    record_property: Callable[[str, object], None],
) -> ingress.GatewayJig:
    """The Gateway API implementation under test (skips when there is none); when it is this run's
    install, its namespace goes into the diagnostics (and a failed install fails the test)."""
    install = controller_under_test.plan.install
    if install is not None and install.gateway_class:
        controller_under_test.get()  # its install makes the GatewayClass: a failed install fails this test too
    found = gateway_under_test.get()
    if found.implementation is not None and controller_under_test.namespace:
        diagnose_namespace(controller_under_test.namespace)
    record_property(OBSERVED_ON_PROPERTY, found.describe())
    return found


def start_backends(cluster: Cluster, namespace: str, manifests: Manifests, source: str = BACKENDS) -> dict[str, str]:
    """Services root-svc and test with one ready pod each (Deployments of 1); returns
    {"root": pod, "test": pod}."""
    manifests.apply(source)
    with setup_step("start the Ingress backends root-backend and test-backend"):
        return {
            key: wait.pods_ready(cluster.core, namespace, f"app={app}", 1)[0].metadata.name
            for key, app in (("root", "root-backend"), ("test", "test-backend"))
        }


def host_for(namespace: str, prefix: str = "") -> str:
    return f"{prefix}{namespace}.clusterproof.test"


def cluster_ip(cluster: Cluster, namespace: str, service: str) -> str:
    return cluster.core.read_namespaced_service(service, namespace).spec.cluster_ip


def assert_unknown_to_backends(cluster: Cluster, namespace: str, client, asked: tuple[tuple[str, str], ...]) -> None:
    """Asked directly, the backends do not know these paths (Service, path): only a rewritten request
    can succeed. A sanity check of the set-up (a backend that cannot be asked leaves the claim
    unevaluated); a Service's rules may lag behind its pods: its first answer is waited for."""
    for service, path in asked:
        url = urls.url(cluster_ip(cluster, namespace, service), 80, path)
        with setup_step(f"ask Service {service} for {path} directly (expected: its 404)"):
            direct = wait.until(lambda url=url: client.http(url), f"an answer of Service {service}", 30, describe=str)
            assert direct.status == 404, f"Service {service} asked for {path} directly: HTTP {direct.status}"


def for_controller(docs: list[dict], controller: ingress.Controller, host: str) -> list[dict]:
    """The notes' Ingresses for the class under test, with one host per test (apart on a shared controller)."""
    return ingress.set_host(ingress.set_class(docs, controller.class_name), host)


# --- ING-01 / ING-02: the install --------------------------------------------------------------


@pytest.mark.claim("ING-01")
@pytest.mark.ingress_nginx("ING-01 (the bare-metal ingress-nginx install)")
def test_bare_metal_ingress_nginx_runs_a_controller_behind_a_node_port_service(
    cluster: Cluster, controller: ingress.Controller
) -> None:
    """The bare-metal ingress-nginx install MUST give a Running controller, Completed admission
    Jobs, a NodePort controller Service (80, 443) and a ClusterIP admission Service (443) in
    `ingress-nginx` [000]. Skipped on another controller, naming it.

    Observed: those objects and their states; nginx's 404 for an unknown host on the
    controller's node port of every node that serves it."""
    ns = controller.namespace
    pods = controller.pods()
    running = [p.metadata.name for p in pods if pod_states.pod_is_ready(p) and p.status.phase == "Running"]
    assert running, f"no Running, Ready controller pod in {ns}: {pod_states.describe_pods(pods)}"

    for job_name in ingress.ADMISSION_JOBS:
        job = ingress.read_job(cluster, ns, job_name)
        assert job is not None, f"no admission Job {ns}/{job_name} (a Helm install deletes its hook Jobs)"
        job_pods = cluster.core.list_namespaced_pod(ns, label_selector=f"job-name={job_name}").items
        phases = {p.metadata.name: p.status.phase for p in job_pods}
        completed = (job.status.succeeded or 0) >= 1 and "Succeeded" in phases.values()
        assert completed, (
            f"admission Job {ns}/{job_name} should have Completed: succeeded={job.status.succeeded}, pods {phases}"
        )

    service = controller.service
    assert service is not None, f"no Service {ns}/{ingress.CONTROLLER_SERVICE}"
    ports = {p.port: p.node_port for p in service.spec.ports or []}
    assert service.spec.type == "NodePort" and {80, 443} <= set(ports) and all(ports[p] for p in (80, 443)), (
        f"{ingress.CONTROLLER_SERVICE} should be a NodePort Service with 80 and 443: type {service.spec.type}, "
        f"ports {ports}"
    )
    admission = cluster.core.read_namespaced_service(ingress.ADMISSION_SERVICE, ns)
    admission_ports = [p.port for p in admission.spec.ports or []]
    assert admission.spec.type == "ClusterIP" and admission_ports == [443], (
        f"{ingress.ADMISSION_SERVICE} should be ClusterIP on 443: type {admission.spec.type}, ports {admission_ports}"
    )

    # the node port is served by nginx on every node (an unknown host gets nginx's 404)
    for node, ip in controller.node_ips():
        try:
            answer = ingress.get(ip, ports[80], "/", "no-such-host.clusterproof.test")
        except ProbeError as e:
            raise AssertionError(f"controller node port {ports[80]} on {node} ({ip}): {e}") from None
        assert answer.status == 404, f"{node} {ip}:{ports[80]} answered HTTP {answer.status}, expected nginx's 404"


@pytest.mark.claim("ING-02")
@pytest.mark.disruptive
def test_controller_service_lists_external_ips_only_once_they_are_set_to_node_ips(
    cluster: Cluster, controller: ingress.Controller, manifests: Manifests, tracker: ResourceTracker, run: RunContext
) -> None:
    """The controller Service MUST show no EXTERNAL-IP until `externalIPs` is set to node IPs,
    and then list them [000], whatever the controller. (A LoadBalancer Service, the usual cloud
    install, shows its load balancer's addresses before and beside them: kubectl's own rule.)

    Observed: `kubectl get service -o wide`'s EXTERNAL-IP column with externalIPs removed and then
    set to the node IPs (as the notes' patch does); the controller's 404 for an unknown host on port
    80 of each external IP. The Service is not the run's: disruptive (an existing cluster's only with
    --allow-disruptive); its spec is journaled on the cluster first and put back when the test ends
    (or by the sweep after a kill); a Service another run is changing is left alone (skipped)."""
    service = controller.hold_service(tracker, run.run_id)
    ns, name = controller.namespace, controller.service_name

    with setup_step(f"remove the externalIPs of Service {ns}/{name}"):
        ingress.patch_service_spec(cluster, ns, name, {"externalIPs": None})
    before, expected = ingress.external_ip_column(cluster, ns, name), ingress.expected_external_ip_column(service, [])
    assert before == expected, (
        f"{name} ({service.spec.type}) without externalIPs shows EXTERNAL-IP {before!r}, expected {expected!r}"
    )

    node_ips = [n.internal_ip for n in cluster.nodes if n.internal_ip]
    values = {f"NODE_IP_{i + 1}": node_ips[i % len(node_ips)] for i in range(3)}
    patch = manifests.render(EXTERNAL_IPS_PATCH, values)[0]["spec"]
    patch["externalIPs"] = list(dict.fromkeys(patch["externalIPs"]))
    with setup_step(f"patch Service {ns}/{name} with the notes' externalIPs {patch['externalIPs']}"):
        ingress.patch_service_spec(cluster, ns, name, patch)
    after = ingress.external_ip_column(cluster, ns, name)
    expected = ingress.expected_external_ip_column(controller.service or service, patch["externalIPs"])
    assert set(after.split(",")) == set(expected.split(",")), (
        f"after setting externalIPs {patch['externalIPs']}, {name} ({service.spec.type}) shows EXTERNAL-IP "
        f"{after!r}, expected {expected!r}"
    )

    # port 80 of each external IP now leads to the controller (its 404 for an unknown host)
    controller.assert_serving()
    for ip in patch["externalIPs"]:
        controller.assert_unknown_host_not_found(ip, 80, "external IP")


# --- ING-03..05: routing through the controller --------------------------------------------------


@pytest.mark.claim("ING-03")
def test_one_ingress_routes_each_path_prefix_to_its_own_service(
    cluster: Cluster,
    controller: ingress.Controller,
    namespace: str,
    manifests: Manifests,
    record_property: Callable[[str, object], None],
) -> None:
    """One Ingress MUST route each path prefix (`/` and `/testpath`, pathType Prefix) to its own
    Service [000, 002], whatever the controller.

    Observed: a ready controller pod; through the controller's node port on every serving node,
    with the notes' Ingress as written (its rewrite-target too) on the test's host, /, /other/page
    and /testpath each answered by a pod of the Service the Ingress's rule names for it (both
    backends answer their name on every path); /testpath/x as well on ingress-nginx (and on a
    controller ignoring its annotations); on another implementation of the ingress-nginx class an
    answer other than ingress-nginx's is recorded in the reason, one from the other Service fails."""
    controller.require_service()
    controller.assert_serving()
    backends = start_backends(cluster, namespace, manifests, PATH_BACKENDS)
    host = host_for(namespace)
    (created,) = manifests.create(for_controller(manifests.load(MINIMAL), controller, host))
    routes = ingress.path_services(created)

    for path in ("/testpath", "/", "/other/page"):
        controller.assert_path_routed(namespace, host, path, ingress.service_for(routes, path))
    deeper = ingress.AsIngressNginx(
        "/testpath/x",
        frozenset({backends["test"]}),
        frozenset({backends["root"]}),
        "ingress-nginx routes it to Service test (the notes' rewrite-target / sends it there as /)",
    )
    record_differences(record_property, controller, controller.assert_as_ingress_nginx(host, [deeper]))


def record_differences(
    record_property: Callable[[str, object], None], controller: ingress.Controller, differences: list[str]
) -> None:
    """Where the controller under test answered otherwise than ingress-nginx: said in the claim's reason."""
    if differences:
        where = "; ".join(differences)
        record_property(
            OBSERVED_ON_PROPERTY, f"{controller.observed_on()}; where it differs from ingress-nginx: {where}"
        )


@pytest.mark.claim("ING-04")
@pytest.mark.ingress_nginx("ING-04 (the nginx.ingress.kubernetes.io/rewrite-target annotation)", annotations=True)
def test_rewrite_target_changes_the_path_the_backend_sees(
    cluster: Cluster,
    controller: ingress.Controller,
    namespace: str,
    manifests: Manifests,
    client_pod,
    record_property: Callable[[str, object], None],
) -> None:
    """The `rewrite-target` annotation MUST rewrite the path the backend sees [002]. An
    ingress-nginx annotation: on a controller serving the ingress-nginx class (ingress-nginx, or
    Traefik's ingress-nginx provider offline), skipped on another, naming it.

    Observed: the backends answering 404 for the paths asked directly (only a rewritten request
    can succeed), then, through the controller, those paths answered by the backends: the notes'
    `rewrite-target: /` on /testpath (the backend sees /) and a capture-group form `/$2`
    (/rewrite/podinfo/name -> /podinfo/name). Paths where successors are documented to differ
    (a trailing slash, a deeper path under the regex /testpath) MUST be answered as ingress-nginx
    does on ingress-nginx itself; on another implementation a different answer is recorded in the
    reason."""
    controller.assert_serving()
    pods = start_backends(cluster, namespace, manifests)
    minimal_host, rewrite_host = host_for(namespace), host_for(namespace, "rewrite.")
    manifests.create(for_controller(manifests.load(MINIMAL), controller, minimal_host))
    manifests.create(for_controller(manifests.load(REWRITE), controller, rewrite_host))
    rewrite_pod = wait.pod_ready(cluster.core, namespace, "rewrite-backend").metadata.name
    port = controller.node_port(80)
    node, ip = controller.node_ips()[0]

    asked = (("test", "/testpath"), ("test", "/testpath/deeper/page"), ("rewrite-backend", "/rewrite/podinfo/name"))
    assert_unknown_to_backends(cluster, namespace, client_pod(), asked)

    cases = (
        ("minimal-ingress", minimal_host, "/testpath", pods["test"], "rewrite-target / (the notes' form)"),
        ("rewrite-ingress", rewrite_host, "/rewrite/podinfo/name", rewrite_pod, "rewrite-target /$2 (capture group)"),
    )
    for name, host, path, pod, form in cases:
        ingress.wait_answer(
            lambda host=host, path=path: ingress.get(ip, port, path, host),
            ingress.answers_with(pod),
            f"{form}: {path} (Host {host}) via {node} {ip}:{port} answered by {pod}, the backend seeing "
            f"the rewritten path",
            hint=lambda _, name=name: ingress.ingress_state(cluster, namespace, name),
            never=controller.unreachable,
        )
    nginx = "ingress-nginx's rewrite-target / sends the backend / for every path under /testpath"
    test, root = frozenset({pods["test"]}), frozenset({pods["root"]})
    documented = [
        ingress.AsIngressNginx("/testpath/", test, root, f"{nginx} (a trailing slash too)"),
        ingress.AsIngressNginx("/testpath/deeper/page", test, root, nginx),
    ]
    record_differences(record_property, controller, controller.assert_as_ingress_nginx(minimal_host, documented))


@pytest.mark.claim("ING-05")
def test_ingress_terminates_https_with_the_tls_secret_for_its_host(
    cluster: Cluster, controller: ingress.Controller, namespace: str, manifests: Manifests
) -> None:
    """An Ingress MUST terminate HTTPS with its TLS Secret for its host [000], whatever the
    controller. Skipped without the `cryptography` package (to make the certificate).

    Observed: a ready controller pod; HTTPS with SNI of the Ingress's host on the controller's 443
    node port of every serving node: the Secret's self-signed certificate (another one is named
    by its subject, and so is the certificate the Secret holds), verified, and the backend's
    answer; for another name, a different certificate (the controller's default)."""
    ingress.require_cryptography()
    controller.require_service()
    controller.assert_serving()
    pods = start_backends(cluster, namespace, manifests)
    host = host_for(namespace, "tls.")
    cert_pem, key_pem = ingress.self_signed_certificate(host)
    values = {"TLS_CRT_B64": ingress.b64(cert_pem), "TLS_KEY_B64": ingress.b64(key_pem)}
    manifests.create(for_controller(manifests.load(TLS, values=values), controller, host))

    controller.assert_serves_certificate(namespace, "tls-secret", host, cert_pem, pods["root"])

    # the certificate is chosen by SNI: another name gets the controller's default one, not ours
    other_host = host_for(namespace, "other.")
    other = ingress.presented_certificate(controller.node_ips()[0][1], controller.node_port(443), other_host)
    assert other != ingress.der_of(cert_pem), (
        f"{controller.describe()} presented the Secret's certificate for {other_host}, a host the Ingress does not name"
    )


# --- ING-06: a declaration only -----------------------------------------------------------------


@pytest.mark.claim("ING-06")
def test_ingress_without_a_controller_gets_no_address_and_nothing_serves_it(
    cluster: Cluster,
    namespace: str,
    manifests: Manifests,
    client_pod,
    controller_under_test: ingress.UnderTest,
) -> None:
    """An Ingress is only a declaration: without a controller for its class nothing MUST serve
    it [002].

    Observed: the notes' minimal-ingress of an IngressClass of the test's own whose controller
    nothing implements (the class exists; nobody claims it), beside the same Ingress of the class
    under test on another host (the control); the backends answering through their Service
    directly; at every entry point a client has (port 80 and 443 of every node, the node ports of
    the controller under test) the declared host not answered from a backend, while the control is
    served there before and after (so those entry points were serving); no address in the declared
    Ingress's status within 15 s (a watch that fails is no observation)."""
    unclaimed = ingress.unclaimed_class_name(namespace)
    declared_class = manifests.load(NO_CONTROLLER_CLASS, values={"UNCLAIMED_CLASS": unclaimed})
    ingress.create_owned_by_namespace(manifests, declared_class)
    pods = start_backends(cluster, namespace, manifests)
    host, control_host = host_for(namespace), host_for(namespace, "control.")
    manifests.create(ingress.set_host(ingress.set_class(manifests.load(MINIMAL), unclaimed), host))
    backend_names = set(pods.values())
    serving = controller_under_test.controller
    entries = ingress.node_entry_points(cluster)

    # the backends themselves work: what is missing is only something serving the Ingress (a
    # sanity check of the set-up: if Service root-svc does not answer, nothing can be concluded)
    client = client_pod()
    with setup_step("check that Service root-svc answers directly (sanity check)"):
        direct = client.await_answer(urls.url(cluster_ip(cluster, namespace, "root-svc"), 80), "Service root-svc")
        assert direct.body.strip() == pods["root"], f"Service root-svc does not answer directly: {direct.body!r}"

    if serving is not None and serving.service is not None:
        # the control: the same Ingress of the class under test is served where the declared one is probed
        manifests.create(ingress.renamed(for_controller(manifests.load(MINIMAL), serving, control_host), "control"))
        with setup_step(f"the control Ingress (class {serving.class_name}) served through {serving.describe()}"):
            serving.assert_path_routed(namespace, control_host, "/", "root-svc")
        entries += serving.entry_points(80) + serving.entry_points(443, "https")

    ingress.assert_not_served(
        entries, host, ("/", "/testpath"), backend_names, f"Ingress minimal-ingress (class {unclaimed}, no controller)"
    )
    if serving is not None and serving.service is not None:
        with setup_step(f"the control Ingress still served through {serving.describe()} (its entry points were live)"):
            serving.assert_path_routed(namespace, control_host, "/", "root-svc")

    with setup_step(f"watch Ingress minimal-ingress's status for {NO_CONTROLLER_WINDOW:g}s"):
        addresses = ingress.address_within(cluster, namespace, "minimal-ingress", NO_CONTROLLER_WINDOW)
    assert addresses == [], (
        f"Ingress minimal-ingress (class {unclaimed}, whose controller nothing implements) got address {addresses}: "
        "some controller claimed it"
    )


# --- GW-01..05: beyond the notes, their Ingress examples as Gateway API routes ---------------------


def programmed_gateway(gateway: ingress.GatewayJig, namespace: str, manifests: Manifests) -> list[ingress.EntryPoint]:
    """Gateway `gateway` (HTTP on 80) of the class under test, Programmed: its entry points. A set-up
    step of the route claims (GW-01 is its own claim)."""
    manifests.apply(GATEWAY, values={"GATEWAY_CLASS": gateway.class_name})
    with setup_step(f"Gateway {namespace}/gateway Programmed with an address by {gateway.describe()}"):
        gateway.assert_programmed(namespace, "gateway")
    return gateway.entry_points(namespace, "gateway", 80)


@pytest.mark.claim("GW-01")
def test_a_gateway_is_programmed_and_gets_an_address_that_serves(
    gateway: ingress.GatewayJig, namespace: str, manifests: Manifests
) -> None:
    """A Gateway with an HTTP listener MUST be Accepted and Programmed by its GatewayClass's
    controller and get an address where that controller answers (mirrors ING-02: where clients
    reach the controller).

    Observed: the GatewayClass's Accepted condition; the Gateway's Accepted and Programmed
    conditions and status addresses; at each address, on the listener's port 80, the controller's
    404 for a host no route names."""
    gateway.assert_class_accepted()
    manifests.apply(GATEWAY, values={"GATEWAY_CLASS": gateway.class_name})
    gateway.assert_programmed(namespace, "gateway")
    for entry in gateway.entry_points(namespace, "gateway", 80):
        ingress.assert_unknown_host_not_found(entry, gateway.describe(), never=gateway.never)


@pytest.mark.claim("GW-02")
def test_one_httproute_sends_each_path_prefix_to_its_own_service(
    cluster: Cluster, gateway: ingress.GatewayJig, namespace: str, manifests: Manifests
) -> None:
    """One HTTPRoute MUST send each path prefix (`/` and `/testpath`, PathPrefix) to its own Service,
    as the notes' minimal-ingress does (mirrors ING-03).

    Observed: the route Accepted by its Gateway with its references resolved; at the Gateway's
    address, with the route's host, /, /other/page, /testpath and /testpath/x each answered by a pod
    of the Service the route's rule names for it (both backends answer their name on every path)."""
    entries = programmed_gateway(gateway, namespace, manifests)
    start_backends(cluster, namespace, manifests, PATH_BACKENDS)
    host = host_for(namespace)
    (route,) = manifests.apply(MINIMAL_ROUTE, values={"HOST": host})
    gateway.assert_route_accepted(namespace, "minimal-route", "gateway")
    routes = ingress.route_services(route)

    for path in ("/testpath", "/testpath/x", "/", "/other/page"):
        ingress.assert_path_routed(
            cluster, entries, namespace, host, path, ingress.service_for(routes, path), gateway.describe(),
            never=gateway.never,
        )


@pytest.mark.claim("GW-03")
def test_a_urlrewrite_filter_changes_the_path_the_backend_sees(
    cluster: Cluster, gateway: ingress.GatewayJig, namespace: str, manifests: Manifests, client_pod
) -> None:
    """A `URLRewrite` filter with `ReplacePrefixMatch` MUST change the path the backend sees, as the
    notes' `rewrite-target` does (mirrors ING-04).

    Observed: the backends answering 404 for the paths asked directly (only a rewritten request can
    succeed); then at the Gateway's address, with the route's host, /testpath answered by Service
    test's pod (its "/", the notes' rewrite-target "/") and /rewrite/podinfo/name by rewrite-backend
    (its /podinfo/name, the capture-group form); a wrong answer names the route's rules as stored."""
    entries = programmed_gateway(gateway, namespace, manifests)
    pods = start_backends(cluster, namespace, manifests)
    manifests.create([d for d in manifests.load(REWRITE) if d["kind"] != "Ingress"])
    rewrite_pod = wait.pod_ready(cluster.core, namespace, "rewrite-backend").metadata.name
    assert_unknown_to_backends(
        cluster, namespace, client_pod(), (("test", "/testpath"), ("rewrite-backend", "/rewrite/podinfo/name"))
    )

    host = host_for(namespace)
    manifests.apply(REWRITE_ROUTE, values={"HOST": host})
    gateway.assert_route_accepted(namespace, "rewrite-route", "gateway")
    cases = (
        ("/testpath", pods["test"], "ReplacePrefixMatch / on PathPrefix /testpath (the notes' rewrite-target /)"),
        ("/rewrite/podinfo/name", rewrite_pod, "ReplacePrefixMatch / on PathPrefix /rewrite (the capture-group form)"),
    )
    for entry in entries:
        for path, pod, form in cases:
            ingress.wait_answer(
                lambda entry=entry, path=path: ingress.get(entry.ip, entry.port, path, host),
                ingress.answers_with(pod),
                f"{form}: {path} (Host {host}) via {entry.where} answered by {pod}, the backend seeing the "
                f"rewritten path, through {gateway.describe()}",
                hint=lambda _: gateway.route_state(namespace, "rewrite-route", "gateway"),
                never=gateway.rewrite_gone(namespace, "rewrite-route", path),
            )


@pytest.mark.claim("GW-04")
def test_an_https_listener_terminates_tls_with_its_secret_for_its_hostname(
    cluster: Cluster, gateway: ingress.GatewayJig, namespace: str, manifests: Manifests
) -> None:
    """An HTTPS listener MUST terminate TLS with its Secret's certificate for its hostname, as the
    notes' TLS Ingress does (mirrors ING-05). Skipped without the `cryptography` package.

    Observed: the Gateway Programmed and the route Accepted; at the Gateway's address, port 443,
    HTTPS with SNI of the listener's hostname: the Secret's self-signed certificate (another one is
    named by its subject, and so is the one the Secret holds), verified, and the backend's answer;
    for another name, a different certificate."""
    ingress.require_cryptography()
    pods = start_backends(cluster, namespace, manifests)
    host = host_for(namespace, "tls.")
    cert_pem, key_pem = ingress.self_signed_certificate(host)
    values = {
        "GATEWAY_CLASS": gateway.class_name,
        "HOST": host,
        "TLS_CRT_B64": ingress.b64(cert_pem),
        "TLS_KEY_B64": ingress.b64(key_pem),
    }
    manifests.apply(TLS_GATEWAY, values=values)
    gateway.assert_programmed(namespace, "tls-gateway")
    gateway.assert_route_accepted(namespace, "tls-route", "tls-gateway")
    entries = gateway.entry_points(namespace, "tls-gateway", 443, "https")

    ingress.assert_serves_certificate(
        cluster, entries, namespace, "tls-secret", host, cert_pem, pods["root"], gateway.describe(),
        never=gateway.never,
    )
    ingress.assert_another_name_gets_another_certificate(
        entries[0], host_for(namespace, "other."), cert_pem, gateway.describe()
    )


@pytest.mark.claim("GW-05")
def test_a_route_whose_gateway_has_no_controller_is_not_accepted_and_nothing_serves_it(
    cluster: Cluster, gateway: ingress.GatewayJig, namespace: str, manifests: Manifests
) -> None:
    """A route whose Gateway's class has no controller MUST NOT be accepted, and nothing MUST serve
    it, as an Ingress without a controller (mirrors ING-06).

    Observed: a GatewayClass of the test's own whose controllerName nothing implements, a Gateway of
    it and an HTTPRoute to root-svc; beside them the Gateway of the class under test serving the same
    route on another host (the control); at the control Gateway's address and port 80 and 443 of
    every node, the declared host not answered from a backend while the control is served there
    before and after; within 15 s no Accepted or Programmed condition and no address on the declared
    Gateway (a watch that fails is no observation), then the class not Accepted and the route
    without status from its Gateway."""
    unclaimed = ingress.unclaimed_class_name(namespace)
    pods = start_backends(cluster, namespace, manifests)
    host, control_host = host_for(namespace), host_for(namespace, "control.")
    declared = manifests.load(GATEWAY_NO_CONTROLLER, values={"UNCLAIMED_CLASS": unclaimed, "HOST": host})
    ingress.create_owned_by_namespace(manifests, declared)
    what = (
        f"HTTPRoute declared-route (Gateway declared-gateway of GatewayClass {unclaimed}, whose controller nothing "
        "implements)"
    )

    entries = programmed_gateway(gateway, namespace, manifests)
    manifests.apply(MINIMAL_ROUTE, values={"HOST": control_host})
    with setup_step(f"the control route (GatewayClass {gateway.class_name}) served through {gateway.describe()}"):
        gateway.assert_route_accepted(namespace, "minimal-route", "gateway")
        ingress.assert_path_routed(cluster, entries, namespace, control_host, "/", "root-svc", gateway.describe())
    ingress.assert_not_served(entries + ingress.node_entry_points(cluster), host, ("/",), set(pods.values()), what)
    with setup_step(f"the control route still served through {gateway.describe()} (its entry points were live)"):
        ingress.assert_path_routed(cluster, entries, namespace, control_host, "/", "root-svc", gateway.describe())

    with setup_step(f"watch Gateway declared-gateway's status for {NO_CONTROLLER_WINDOW:g}s"):
        claimed = gateway.claimed_within(namespace, "declared-gateway", NO_CONTROLLER_WINDOW)
    assert claimed is None, (
        f"Gateway declared-gateway (GatewayClass {unclaimed}) got {claimed}: some controller took it on"
    )
    declared_class = gateway.read("gatewayclasses", unclaimed)
    assert ingress.condition(declared_class, "Accepted") != "True", (
        f"GatewayClass {unclaimed} (controllerName {ingress.NO_CONTROLLER}) was Accepted: "
        f"{ingress.describe_conditions(ingress.conditions(declared_class))}"
    )
    route = gateway.read("httproutes", "declared-route", namespace)
    assert ingress.route_parent(route, "declared-gateway") is None, (
        f"{what} has a status from its Gateway: {ingress.route_parent(route, 'declared-gateway')}"
    )


# --- ERR-05 / ERR-06: the notes as written ------------------------------------------------------


@pytest.mark.claim("ERR-05")
def test_notes_ingress_with_backend_rootSvc_is_refused_naming_the_service_name_field(
    cluster: Cluster, namespace: str, manifests: Manifests, record_property
) -> None:
    """[002]'s Ingress names its backend Service `rootSvc`, not a valid Service name (upper case):
    refused naming that field (citing the DNS-1035 label rule, or from 1.37 on the RFC 1123 label
    rule: either is the claim; which one is recorded); with the name fixed it is accepted, but
    carries no ingressClassName (the default class is filled in where there is one).

    Observed: the API server's answers to dry-run creates of the manifest as written and fixed."""
    cluster.require(
        ingress.serves_resource(cluster, "networking.k8s.io/v1", "ingresses"),
        "the server does not serve networking.k8s.io/v1 Ingress (before 1.19): the notes' manifest cannot apply",
    )
    doc = manifests.prepare(manifests.load_raw(AS_WRITTEN).documents())[0]
    field = "spec.rules[0].http.paths[0].backend.service.name"

    answer = answer_to(lambda: manifests.create([doc], dry_run=True))
    assert not answer.accepted, "the API server accepted the notes' Ingress with backend Service name 'rootSvc'"
    named = answer.cause_for(field)
    assert answer.status == 422 and named and "rootSvc" in named.message, (
        f"expected 422 Invalid naming {field} ('rootSvc'); got {answer}, causes {answer.causes}"
    )
    cited = [rule for rule in NAME_RULES if rule in named.message]
    record_property("ERR-05 rule cited", f"{', '.join(cited) or 'none'} ({cluster.git_version}): {named.message}")
    assert cited, f"the refusal should cite a name rule ({' or '.join(NAME_RULES)} label): {named.message!r}"

    # the other flaw: with the name fixed it is accepted, but carries no ingressClassName
    fixed = copy.deepcopy(doc)
    fixed["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"] = "root-svc"
    fixed_answer = answer_to(lambda: manifests.create([fixed], dry_run=True))
    assert fixed_answer.accepted, f"the notes' Ingress with backend name root-svc was refused: {fixed_answer}"
    accepted = fixed_answer.body
    class_name = accepted["spec"].get("ingressClassName")
    defaults = ingress.default_classes(ingress.ingress_classes(cluster))
    if defaults:
        assert class_name in defaults, f"default IngressClass {defaults} should be filled in; got {class_name!r}"
    else:
        assert class_name is None, f"no default IngressClass, yet the Ingress got class {class_name!r}"


@pytest.mark.claim("ERR-06")
def test_ingress_nginx_v0_47_needs_v1beta1_ingress_which_kubernetes_1_22_removed(
    cluster: Cluster, namespace: str, manifests: Manifests
) -> None:
    """[000]'s ingress-nginx controller-v0.47.0 lists Ingresses through networking.k8s.io/v1beta1,
    which Kubernetes 1.22 removed: it cannot work on 1.22+; before, the API serves v1beta1 (and
    warns from 1.19 on).

    Observed: the versions of networking.k8s.io the server serves (live discovery) and kubectl's
    answer to listing ingresses.v1beta1.networking.k8s.io."""
    version = manifests.load_raw(V047_RECORD).documents()[0]["version"]
    served = ingress.served_versions(cluster, "networking.k8s.io")
    v1beta1 = "v1beta1" in served and ingress.serves_resource(cluster, "networking.k8s.io/v1beta1", "ingresses")
    # what the controller does first: list Ingresses through networking.k8s.io/v1beta1
    listing = cluster.kubectl("get", "ingresses.v1beta1.networking.k8s.io", "-n", namespace, check=False)
    server = cluster.git_version

    if cluster.server_version < (1, 22):
        assert v1beta1 and listing.returncode == 0, (
            f"Kubernetes {server} should still serve networking.k8s.io/v1beta1 Ingress ({version} needs it): "
            f"served versions {served}, kubectl: {listing.stderr.strip()!r}"
        )
        if cluster.server_version >= (1, 19):
            assert "unavailable in v1.22+" in listing.stderr, (
                f"Kubernetes {server} should warn that v1beta1 Ingress goes away in 1.22: {listing.stderr.strip()!r}"
            )
    else:
        assert not v1beta1 and listing.returncode != 0, (
            f"Kubernetes {server} should no longer serve networking.k8s.io/v1beta1 Ingress, so {version} "
            f"cannot work; served versions {served}, kubectl exit {listing.returncode}"
        )
