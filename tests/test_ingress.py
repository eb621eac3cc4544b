"""The ingress module's controller, without a cluster: the install manifests as rendered from the
fixtures (images through the catalogue, the NodePort Service, the IngressClass, owners), which class
is tested (--ingress-class and its one-line error), the skip reasons per controller, what a
breakage is named by (a controller scaled to zero, a Service without endpoints, a foreign
certificate), and "observed on" in the claims table.

FAKE clusters (SimpleNamespace objects with the few API calls a verb makes, answering kubernetes
client models) and a FAKE Manifests (records what it would create) stand in for a cluster."""

from __future__ import annotations

import base64
import dataclasses
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from kubernetes import client
from kubernetes.client import ApiException
from reports_by_hand import claim_report

from clusterproof import wait
from clusterproof.claims import OBSERVED_ON_PROPERTY, ClaimLedger, parse_claims
from clusterproof.errors import Broken, SetupFailed, WaitGaveUp
from clusterproof.images import ImageCatalogue
from clusterproof.jigs import ingress
from clusterproof.jigs.ingress import installer
from clusterproof.manifests import CLUSTER_SCOPED_KINDS, load
from clusterproof.offline import releases
from clusterproof.probe import HttpAnswer

FIXTURES = Path(__file__).parents[1] / "fixtures"
CATALOGUE = ImageCatalogue.load()


def rendered(install: ingress.Install, offline: bool = False) -> list[dict]:
    return load(install.fixture, install.namespace, catalogue=CATALOGUE, offline=offline, fixtures_dir=FIXTURES)


def of_kind(docs: list[dict], kind: str) -> list[dict]:
    return [d for d in docs if d["kind"] == kind]


# --- the install manifests -----------------------------------------------------------------------


@pytest.mark.parametrize("install", [ingress.INGRESS_NGINX, ingress.TRAEFIK], ids=lambda i: i.name)
def test_install_is_rendered_from_its_fixture_with_images_from_the_catalogue(install):
    docs = rendered(install)
    assert docs[0] == {**docs[0], "kind": "Namespace"} and docs[0]["metadata"]["name"] == install.namespace
    images = {c["image"] for d in docs for c in _containers(d)}
    assert images == {CATALOGUE.ref(name) for name in install.images}
    # the catalogue's tags are the pinned release
    assert CATALOGUE.ref(install.images[0]).endswith(f":{install.version}")
    for doc in docs:
        if doc["kind"] not in CLUSTER_SCOPED_KINDS:
            assert doc["metadata"]["namespace"] == install.namespace, doc["metadata"]["name"]


@pytest.mark.parametrize("install", [ingress.INGRESS_NGINX, ingress.TRAEFIK], ids=lambda i: i.name)
def test_install_has_a_node_port_service_on_80_and_443_in_front_of_its_controller_pods(install):
    docs = rendered(install)
    (service,) = [s for s in of_kind(docs, "Service") if s["metadata"]["name"] == install.service]
    assert service["spec"]["type"] == "NodePort"
    assert {p["port"] for p in service["spec"]["ports"]} == {80, 443}
    (deployment,) = [d for d in of_kind(docs, "Deployment") if d["metadata"]["name"] == install.deployment]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert ingress.selector_labels(install.pod_selector).items() <= pod_labels.items()
    # every target port is a named port of the controller container
    named = {p["name"] for c in _containers(deployment) for p in c.get("ports", [])}
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= named


@pytest.mark.parametrize("install", [ingress.INGRESS_NGINX, ingress.TRAEFIK], ids=lambda i: i.name)
def test_install_has_its_ingress_class_for_its_controller(install):
    (ingress_class,) = of_kind(rendered(install), "IngressClass")
    assert ingress_class["metadata"]["name"] == install.class_name
    assert ingress_class["spec"]["controller"] == install.controller
    # not made the default: the cluster's other Ingresses keep their meaning
    assert ingress.DEFAULT_CLASS_ANNOTATION not in (ingress_class["metadata"].get("annotations") or {})


def test_ingress_nginx_install_is_the_bare_metal_one_with_admission_webhook_and_jobs():
    docs = rendered(ingress.INGRESS_NGINX)
    assert {j["metadata"]["name"] for j in of_kind(docs, "Job")} == set(ingress.ADMISSION_JOBS)
    (admission,) = [s for s in of_kind(docs, "Service") if s["metadata"]["name"] == ingress.ADMISSION_SERVICE]
    assert admission["spec"]["type"] == "ClusterIP" and [p["port"] for p in admission["spec"]["ports"]] == [443]
    (webhook,) = of_kind(docs, "ValidatingWebhookConfiguration")
    assert webhook["webhooks"][0]["clientConfig"]["service"]["name"] == ingress.ADMISSION_SERVICE
    assert of_kind(docs, "ConfigMap") and of_kind(docs, "ClusterRole") and of_kind(docs, "Role")
    (controller,) = _containers(of_kind(docs, "Deployment")[0])
    assert "--controller-class=k8s.io/ingress-nginx" in controller["args"]
    assert controller["image"] == "registry.k8s.io/ingress-nginx/controller:v1.15.1"


def test_traefik_is_the_release_the_offline_build_makes_and_serves_the_nginx_class_and_gateways():
    """Offline, Traefik serves the notes' class nginx (controller k8s.io/ingress-nginx) through its
    Ingress NGINX provider, and Gateways of its GatewayClass; a Gateway's address is the node's IP
    and its listener ports are host ports, so the address serves."""
    assert ingress.TRAEFIK.version == releases.TRAEFIK
    docs = rendered(ingress.TRAEFIK, offline=True)
    (container,) = _containers(of_kind(docs, "Deployment")[0])
    args = container["args"]
    assert container["image"] == f"docker.io/library/traefik:{releases.TRAEFIK}"
    assert ingress.TRAEFIK.provider_arg in args and "--providers.kubernetesingress=true" not in args
    assert "--providers.kubernetesgateway=true" in args
    assert "--providers.kubernetesgateway.statusaddress.ip=$(HOST_IP)" in args
    assert "--entryPoints.websecure.http.tls=true" in args
    assert {(p["containerPort"], p.get("hostPort")) for p in container["ports"]} >= {(80, 80), (443, 443)}
    # host ports are beyond Pod Security baseline: the namespace says what its pods need
    assert docs[0]["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "privileged"
    (gateway_class,) = of_kind(docs, "GatewayClass")
    assert gateway_class["metadata"]["name"] == ingress.TRAEFIK.gateway_class
    assert gateway_class["spec"]["controllerName"] == ingress.TRAEFIK.gateway_controller
    assert not of_kind(docs, "ValidatingWebhookConfiguration") and not of_kind(docs, "Job")


class FakeManifests:
    """FAKE Manifests: loads the real fixtures, records what it would create, gives each a uid."""

    def __init__(self, offline=False):
        self.created: list[dict] = []
        self.offline = offline

    def load(self, path, namespace=None):
        return load(path, namespace, catalogue=CATALOGUE, offline=self.offline, fixtures_dir=FIXTURES)

    def create(self, docs):
        self.created += docs
        return [{**d, "metadata": {**d["metadata"], "uid": f"uid-{d['metadata']['name']}"}} for d in docs]

    def image(self, name):
        return CATALOGUE.ref(name, offline=self.offline)


def test_cluster_scoped_objects_of_an_install_are_owned_by_its_namespace():
    manifests = FakeManifests()
    owner, rest = ingress.rendered(ingress.INGRESS_NGINX, manifests)
    assert [d["kind"] for d in manifests.created] == ["Namespace"]  # created first, alone
    assert owner == {"apiVersion": "v1", "kind": "Namespace", "name": "ingress-nginx", "uid": "uid-ingress-nginx"}
    scoped = [d for d in rest if d["kind"] in CLUSTER_SCOPED_KINDS]
    assert {d["kind"] for d in scoped} == {
        "ClusterRole",
        "ClusterRoleBinding",
        "IngressClass",
        "ValidatingWebhookConfiguration",
    }
    assert all(d["metadata"]["ownerReferences"] == [owner] for d in scoped)
    assert not any("ownerReferences" in d["metadata"] for d in rest if d["kind"] not in CLUSTER_SCOPED_KINDS)


# --- which class is tested -------------------------------------------------------------------------

NGINX = ingress.ClassInfo("nginx", "k8s.io/ingress-nginx")
TRAEFIK = ingress.ClassInfo("traefik", "traefik.io/ingress-controller")
OURS_OFFLINE = ingress.ClassInfo("nginx", "k8s.io/ingress-nginx", run_id="me")
HAPROXY_DEFAULT = ingress.ClassInfo("haproxy", "haproxy.org/ingress-controller/haproxy", default=True)


def test_ingress_class_picks_that_class():
    chosen = ingress.plan([NGINX, TRAEFIK], "traefik", existing=True, offline=False)
    assert chosen.target == TRAEFIK and chosen.install is None and chosen.why == "--ingress-class traefik"


def test_ingress_class_naming_no_class_is_one_line_listing_the_classes():
    with pytest.raises(ingress.IngressClassNotFound) as info:
        ingress.plan([NGINX, HAPROXY_DEFAULT], "contour", existing=True, offline=False)
    assert str(info.value) == (
        "--ingress-class contour: the cluster has no IngressClass 'contour' (IngressClasses: "
        "nginx (k8s.io/ingress-nginx), haproxy (haproxy.org/ingress-controller/haproxy, default))"
    )
    with pytest.raises(ingress.IngressClassNotFound, match=r"\(IngressClasses: none\)$"):
        ingress.check_class("nginx", [])


def test_without_ingress_class_the_default_class_is_tested():
    chosen = ingress.plan([NGINX, HAPROXY_DEFAULT], None, existing=True, offline=False)
    assert chosen.target == HAPROXY_DEFAULT and chosen.why == "the cluster's default IngressClass"


def test_a_cluster_with_the_class_of_our_install_is_not_installed_on_twice():
    chosen = ingress.plan([NGINX], None, existing=False, offline=False)
    assert chosen.target == NGINX and chosen.install is None and "not installed twice" in chosen.why
    offline = ingress.plan([OURS_OFFLINE], None, existing=False, offline=True, run_id="me")
    assert offline.target == OURS_OFFLINE and offline.install is None


def test_a_class_another_run_installed_is_not_tested_it_goes_when_that_run_ends():
    """#20: a second live run must not reuse a controller the first deletes under it."""
    theirs = ingress.ClassInfo("nginx", "k8s.io/ingress-nginx", run_id="other-run")
    for wanted in (None, "nginx"):
        chosen = ingress.plan([theirs], wanted, existing=True, offline=True, run_id="me", may_install=True)
        assert chosen.target is None and chosen.install is None
        assert chosen.skip.startswith("IngressClass nginx (k8s.io/ingress-nginx) was installed by run other-run")


def test_installing_a_controller_on_an_existing_cluster_is_opt_in():
    refused = ingress.plan([], None, existing=True, offline=False, may_install=False)
    assert refused.install is None and refused.skip == (
        "no ingress controller on the cluster, and installing ingress-nginx v1.15.1 (cluster-wide RBAC, an "
        "IngressClass, an admission webhook) on an existing cluster needs --allow-disruptive"
    )
    assert ingress.plan([], None, existing=True, offline=False, may_install=True).install is ingress.INGRESS_NGINX
    assert ingress.plan([], None, existing=False, offline=False, may_install=False).install is ingress.INGRESS_NGINX


def test_an_existing_cluster_with_classes_and_no_default_is_tested_as_it_is_or_asks_to_pick():
    only = ingress.plan([TRAEFIK], None, existing=True, offline=False)
    assert only.target == TRAEFIK and only.why == "the cluster's only IngressClass"
    several = ingress.plan([TRAEFIK, ingress.ClassInfo("haproxy", "haproxy.org/x")], None, existing=True, offline=False)
    assert several.target is None and several.install is None
    assert several.skip.endswith("and none is the default: pick the one to test with --ingress-class NAME")


def test_a_cluster_without_a_controller_gets_ingress_nginx_online_and_traefik_offline():
    online = ingress.plan([], None, existing=False, offline=False)
    assert online.install is ingress.INGRESS_NGINX and online.why == "a kind cluster of this run"
    offline = ingress.plan([], None, existing=True, offline=True)
    assert offline.install is ingress.TRAEFIK
    assert offline.why.startswith("no ingress controller on the cluster; Traefik, not ingress-nginx: no ingress-nginx")


# --- skip reasons per controller -------------------------------------------------------------------


def controller_of(
    install: ingress.Install, *, offline: bool, name: str | None = None, provider: str = ""
) -> ingress.Controller:
    return ingress.Controller(
        SimpleNamespace(offline=offline),  # FAKE cluster: only asked whether it is offline
        class_name=install.class_name,
        controller=install.controller,
        name=name or install.name,
        version=install.version,
        namespace=install.namespace,
        service_name=install.service,
        pod_selector=install.pod_selector,
        installed=install,
        provider=provider,
    )


def test_ing_01_skips_on_traefik_offline_saying_ingress_nginx_is_final_and_cannot_be_had():
    traefik = controller_of(ingress.TRAEFIK, offline=True, provider=ingress.TRAEFIK.provider)
    with pytest.raises(pytest.skip.Exception) as info:
        traefik.require_ingress_nginx("ING-01 (the bare-metal ingress-nginx install)")
    reason = str(info.value)
    assert reason.startswith(
        "ING-01 (the bare-metal ingress-nginx install) is ingress-nginx's own; the controller under test is traefik "
        f"{releases.TRAEFIK} (ingress-nginx provider, IngressClass nginx, installed by this run); ingress-nginx "
        "v1.15.1 is its final release (the project was retired in March 2026), supported on Kubernetes 1.31–1.35, "
        "and cannot be had offline: no ingress-nginx controller image offline: its nginx needs stream-lua-nginx-module"
    )
    assert "lua-resty-balancer" in reason and "controller-v*" in reason


def test_traefiks_ingress_nginx_provider_reads_the_nginx_annotations_and_another_controller_does_not():
    """ING-04 runs where the class is the ingress-nginx one (ingress-nginx, or Traefik's provider)."""
    controller_of(ingress.TRAEFIK, offline=True).require_nginx_annotations("ING-04")  # no skip
    controller_of(ingress.INGRESS_NGINX, offline=False).require_nginx_annotations("ING-04")  # no skip
    haproxy = dataclasses.replace(controller_of(ingress.TRAEFIK, offline=False), controller="haproxy.org/x")
    with pytest.raises(pytest.skip.Exception, match=r"^ING-04 is an ingress-nginx annotation; the controller under"):
        haproxy.require_nginx_annotations("ING-04")


@pytest.mark.parametrize(
    ("server", "git", "words"),
    [
        ((1, 35), "v1.35.4", "on Kubernetes v1.35.4, a supported pairing: ingress-nginx v1.15.1 is its final"),
        ((1, 37), "v1.37.2", "on Kubernetes v1.37.2, an unsupported pairing: ingress-nginx v1.15.1 is its final"),
        ((1, 30), "v1.30.9", "on Kubernetes v1.30.9, an unsupported pairing"),
    ],
)
def test_ingress_nginx_is_observed_beside_the_kubernetes_releases_its_final_release_supports(server, git, words):
    assert ingress.support_of("v1.15.1", server, git).startswith(words)
    assert ingress.support_of("v1.14.0", server, git) == f"on Kubernetes {git}"
    nginx = controller_of(ingress.INGRESS_NGINX, offline=False)
    nginx.cluster = SimpleNamespace(offline=False, server_version=server, git_version=git)  # FAKE cluster
    assert nginx.observed_on().startswith(f"ingress-nginx v1.15.1 (IngressClass nginx, installed by this run) {words}")
    assert nginx.observed_on().endswith("supported on Kubernetes 1.31–1.35")


def test_ingress_nginx_claims_skip_on_another_controller_online_without_the_offline_story():
    other = ingress.Controller(
        SimpleNamespace(offline=False),  # FAKE cluster
        class_name="haproxy",
        controller="haproxy.org/ingress-controller/haproxy",
        name="haproxy.org/ingress-controller/haproxy",
        version="v3.1.0",
        namespace="haproxy",
        service_name="haproxy",
        pod_selector="app=haproxy",
    )
    with pytest.raises(pytest.skip.Exception) as info:
        other.require_ingress_nginx("ING-01 (the bare-metal ingress-nginx install)")
    assert str(info.value) == (
        "ING-01 (the bare-metal ingress-nginx install) is ingress-nginx's own; the controller under test is "
        "haproxy.org/ingress-controller/haproxy v3.1.0 (IngressClass haproxy)"
    )


def test_ingress_nginx_claims_run_on_ingress_nginx():
    controller_of(ingress.INGRESS_NGINX, offline=False).require_ingress_nginx("ING-01")  # no skip


def test_ingress_nginx_claims_stay_skipped_when_the_other_controller_never_gets_ready():
    """#24 5b: ING-01 is ingress-nginx's own (skipped on Traefik); it read *failed* when the installed
    Traefik never became ready. The skip is decided from the plan, before the install's failure is met.
    ING-04 (an ingress-nginx annotation) runs where Traefik's ingress-nginx provider serves the class:
    there the install's failure is its failure."""
    broken = Broken("ingress controller traefik v3.7.13 did not become ready: ...")
    failed = ingress.UnderTest(error=broken, namespace="traefik", plan=ingress.Plan(install=ingress.TRAEFIK))
    with pytest.raises(pytest.skip.Exception) as info:
        failed.require_ingress_nginx("ING-01 (the bare-metal ingress-nginx install)", offline=True)
    assert str(info.value).startswith(
        "ING-01 (the bare-metal ingress-nginx install) is ingress-nginx's own; the controller under test is traefik "
        f"{releases.TRAEFIK} (installed by this run) (it did not become ready); ingress-nginx v1.15.1 is its final "
        "release"
    )
    failed.require_ingress_nginx("ING-04", offline=True, annotations=True)  # no skip
    haproxy = ingress.Plan(target=ingress.ClassInfo("haproxy", "haproxy.org/ingress-controller"))
    with pytest.raises(pytest.skip.Exception, match=r"^ING-04 is an ingress-nginx annotation; the controller under"):
        ingress.UnderTest(error=broken, plan=haproxy).require_ingress_nginx("ING-04", offline=False, annotations=True)
    nginx = ingress.UnderTest(error=broken, namespace="ingress-nginx", plan=ingress.Plan(install=ingress.INGRESS_NGINX))
    nginx.require_ingress_nginx("ING-01", offline=False)  # no skip: its failure is ING-01's
    with pytest.raises(Broken):
        nginx.get()


def test_the_module_outcome_skips_fails_or_gives_the_controller():
    with pytest.raises(pytest.skip.Exception, match="pick the one"):
        ingress.UnderTest(skip="pick the one to test").get()
    broken = Broken("ingress controller traefik v3.7.13 did not become ready: ...")
    with pytest.raises(Broken):
        ingress.UnderTest(error=broken, namespace="traefik").get()
    traefik = controller_of(ingress.TRAEFIK, offline=True)
    assert ingress.UnderTest(controller=traefik).get() is traefik


def test_what_the_report_is_told_of_the_module_s_controller():
    traefik = controller_of(ingress.TRAEFIK, offline=True)
    assert ingress.UnderTest(controller=traefik).fact() == {
        "name": "traefik", "version": ingress.TRAEFIK.version, "class": "nginx",
        "controller": "k8s.io/ingress-nginx", "namespace": "traefik", "installed": True,
    }
    found = dataclasses.replace(traefik, installed=None)
    assert ingress.UnderTest(controller=found).fact()["installed"] is False
    broken = Broken("ingress controller traefik v3.7.13 did not become ready: no Ready pod")
    failed = ingress.UnderTest(error=broken, plan=ingress.Plan(install=ingress.TRAEFIK)).fact()
    assert failed["name"] == "traefik" and failed["installed"] is True and "did not become ready" in failed["error"]
    assert ingress.UnderTest(skip="no IngressClass to test").fact() == {"none": "no IngressClass to test"}


# --- what a breakage is named by ----------------------------------------------------------------------


def pod(name, ready):
    return client.V1Pod(
        metadata=client.V1ObjectMeta(name=name, namespace="traefik", labels={"app.kubernetes.io/name": "traefik"}),
        spec=client.V1PodSpec(
            containers=[client.V1Container(name="traefik", image="docker.io/library/traefik:v3.7.13")]
        ),
        status=client.V1PodStatus(
            phase="Running", conditions=[client.V1PodCondition(type="Ready", status="True" if ready else "False")]
        ),
    )


def deployment(replicas, ready=0):
    return client.V1Deployment(
        metadata=client.V1ObjectMeta(name="traefik", namespace="traefik"),
        spec=client.V1DeploymentSpec(
            replicas=replicas,
            selector=client.V1LabelSelector(match_labels={"app.kubernetes.io/name": "traefik"}),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels={"app.kubernetes.io/name": "traefik", "app": "x"})
            ),
        ),
        status=client.V1DeploymentStatus(ready_replicas=ready),
    )


def fake_cluster(pods=(), deployments=(), offline=True):
    """FAKE cluster: lists the given pods and Deployments (no DaemonSets)."""
    items = SimpleNamespace
    return SimpleNamespace(
        offline=offline,
        core=SimpleNamespace(list_namespaced_pod=lambda ns, label_selector=None: items(items=list(pods))),
        apps=SimpleNamespace(
            list_namespaced_deployment=lambda ns: items(items=list(deployments)),
            list_namespaced_daemon_set=lambda ns: items(items=[]),
        ),
    )


def test_a_controller_scaled_to_zero_fails_at_once_naming_the_controller():
    traefik = controller_of(ingress.TRAEFIK, offline=True)
    traefik.cluster = fake_cluster(deployments=[deployment(0)])
    with pytest.raises(WaitGaveUp) as info:
        traefik.assert_serving()
    message = str(info.value)
    assert f"a ready pod of ingress controller traefik {releases.TRAEFIK} (IngressClass nginx" in message
    assert "Deployment traefik/traefik: 0 of 0 replicas ready (scaled to zero): nothing runs the controller" in message


def test_a_class_nothing_is_found_serving_fails_at_once_saying_so():
    """Seen on a user's Traefik with its ingress-nginx provider turned off, IngressClass nginx left:
    ING-04 waited 60 s for 'a ready pod ... in None (None)'."""
    orphan = controller_of(ingress.TRAEFIK, offline=True)
    orphan.cluster = fake_cluster()
    orphan.namespace = orphan.pod_selector = orphan.service_name = None
    with pytest.raises(WaitGaveUp) as info:
        orphan.assert_serving()
    message = str(info.value)
    assert "in None" not in message
    assert "nothing found serving IngressClass nginx (controller k8s.io/ingress-nginx)" in message
    assert orphan.unreachable() == orphan.not_found()


@pytest.mark.parametrize(
    ("args", "on"),
    [
        (["--providers.kubernetesingressnginx=true"], True),  # this suite's install
        (["--providers.kubernetesingressnginx"], True),  # a bare flag (how Helm charts write them)
        (["--providers.kubernetesingressnginx.ingressclass=nginx"], True),  # an option turns it on
        (["--providers.kubernetesingressnginx=false", "--providers.kubernetesingressnginx.ingressclass=x"], False),
        (["--providers.kubernetesingress=true", "--providers.kubernetesgateway=true"], False),
        ([], False),
    ],
)
def test_traefik_serves_the_ingress_nginx_class_when_any_argument_turns_its_provider_on(args, on):
    """Seen on Traefik v3.7.13: with `=true` removed and its options left, the provider still served ING-04."""
    from clusterproof.jigs.ingress.controller import turns_on

    assert turns_on(args, ingress.TRAEFIK.provider_arg) is on


def test_a_serving_controller_passes_and_a_restarting_one_is_waited_for(monkeypatch):
    traefik = controller_of(ingress.TRAEFIK, offline=True)
    traefik.cluster = fake_cluster(pods=[pod("traefik-1", True)], deployments=[deployment(1, 1)])
    traefik.assert_serving()
    assert ingress.version_of([pod("traefik-1", True)]) == "v3.7.13"
    traefik.cluster = fake_cluster(pods=[pod("traefik-1", False)], deployments=[deployment(1, 0)])
    with pytest.raises(wait.WaitTimeout, match="last seen: Deployment traefik/traefik: 0 of 1 replicas ready; pods"):
        traefik.assert_serving(timeout=0)


def endpoint_slices(ready_pods):
    endpoints = [
        client.V1Endpoint(
            addresses=["10.0.0.1"],
            conditions=client.V1EndpointConditions(ready=True),
            target_ref=client.V1ObjectReference(kind="Pod", name=name),
        )
        for name in ready_pods
    ]
    return SimpleNamespace(items=[SimpleNamespace(endpoints=endpoints)])


def test_a_path_routed_to_a_service_without_endpoints_fails_naming_the_service(monkeypatch):
    service = client.V1Service(
        metadata=client.V1ObjectMeta(name="empty"), spec=client.V1ServiceSpec(selector={"app": "nobody"})
    )
    cluster = SimpleNamespace(
        api=None, core=SimpleNamespace(read_namespaced_service=lambda name, ns: service)
    )  # FAKE cluster
    # FAKE EndpointSlices: none ready
    monkeypatch.setattr(
        client,
        "DiscoveryV1Api",
        lambda api: SimpleNamespace(list_namespaced_endpoint_slice=lambda ns, label_selector: endpoint_slices([])),
    )
    with pytest.raises(AssertionError) as info:
        ingress.service_backends(cluster, "ns-1", "empty", grace=0, what="/testpath (Host h)")
    assert str(info.value) == (
        "/testpath (Host h) is routed by the Ingress to Service empty, which has no ready endpoints "
        "(selector app=nobody): no backend can answer it"
    )
    assert (
        ingress.service_state(cluster, "ns-1", "empty") == "Service empty has no ready endpoints (selector app=nobody)"
    )


def test_the_service_of_a_path_is_the_longest_matching_prefix_element_by_element():
    routes = {"/": "root-svc", "/testpath": "test"}
    assert [ingress.service_for(routes, p) for p in ("/", "/other/page", "/testpath", "/testpath/x")] == [
        "root-svc",
        "root-svc",
        "test",
        "test",
    ]
    assert ingress.service_for(routes, "/testpathx") == "root-svc"
    minimal = yaml.safe_load((FIXTURES / "notes/ingress/minimal-ingress.yaml").read_text())
    assert ingress.path_services(minimal) == routes


def test_a_foreign_certificate_in_the_tls_secret_is_named_by_its_subject():
    pytest.importorskip("cryptography")
    cert, _ = ingress.self_signed_certificate("other.example")
    secret = client.V1Secret(data={"tls.crt": base64.b64encode(cert).decode()})
    cluster = SimpleNamespace(core=SimpleNamespace(read_namespaced_secret=lambda name, ns: secret))  # FAKE cluster
    state = ingress.secret_certificate_state(cluster, "ns-1", "tls-secret", "tls.ns-1.clusterproof.test")
    assert state == (
        "Secret tls-secret holds a certificate for CN=other.example (SAN other.example), "
        "which does not name tls.ns-1.clusterproof.test"
    )
    assert ingress.certificate_subject(b"") == "none presented"
    # nothing rewrites the test's own Secret: a foreign certificate there ends the wait at once
    assert ingress.secret_names_another_host(cluster, "ns-1", "tls-secret", "tls.ns-1.clusterproof.test") == (
        "Secret tls-secret holds a certificate for CN=other.example (SAN other.example), "
        "which does not name tls.ns-1.clusterproof.test"
    )
    assert ingress.secret_names_another_host(cluster, "ns-1", "tls-secret", "other.example") is None


def test_offline_nodes_without_the_controller_image_are_named():
    node = client.V1Node(
        status=client.V1NodeStatus(images=[client.V1ContainerImage(names=["registry.k8s.io/pause:3.10.2"])])
    )
    cluster = SimpleNamespace(core=SimpleNamespace(list_node=lambda: SimpleNamespace(items=[node])))  # FAKE cluster
    assert ingress.missing_images(cluster, ["docker.io/library/traefik:v3.7.13", "registry.k8s.io/pause:3.10.2"]) == [
        "docker.io/library/traefik:v3.7.13"
    ]


def test_controller_words_name_the_controller_not_the_api():
    assert ingress.controller_words("haproxy.org/ingress-controller/haproxy") == {"haproxy"}
    assert ingress.controller_words("k8s.io/ingress-nginx") == {"nginx"}
    assert ingress.controller_words("projectcontour.io/ingress-controller") == {"projectcontour"}


def test_an_unreadable_secret_is_said_so():
    def refuse(name, ns):
        raise ApiException(status=403, reason="Forbidden")

    cluster = SimpleNamespace(core=SimpleNamespace(read_namespaced_secret=refuse))  # FAKE cluster
    assert ingress.secret_certificate_state(cluster, "ns", "tls-secret", "h") == (
        "Secret tls-secret cannot be read: HTTP 403 Forbidden"
    )


# --- observed on --------------------------------------------------------------------------------------


def test_the_claims_table_names_what_each_verdict_was_observed_on():
    claims = parse_claims("## ING\n| ID | c | o |\n|---|---|---|\n| ING-03 | paths | http |\n| ING-04 | rw | http |\n")
    ledger = ClaimLedger(claims)
    on = f"traefik {releases.TRAEFIK} (ingress-nginx provider, IngressClass nginx, installed by this run)"

    def report(nodeid, claim, when, outcome, longrepr=None):
        return claim_report(nodeid, when, outcome, (claim,), longrepr, properties=[(OBSERVED_ON_PROPERTY, on)])

    for when in ("setup", "call", "teardown"):
        ledger.record(report("t::routes", "ING-03", when, "passed"))
    ledger.record(report("t::rewrite", "ING-04", "setup", "skipped", ("x.py", 1, "Skipped: ING-04 is ingress-nginx's")))
    verdicts = {v.claim.id: v for v in ledger.verdicts()}
    assert (verdicts["ING-03"].verdict, verdicts["ING-03"].reason) == ("held", f"observed on {on}")
    assert verdicts["ING-04"].reason == "ING-04 is ingress-nginx's"  # a skip says it already
    assert ledger.to_json()["claims"][0]["tests"][0]["observed_on"] == on


def _containers(doc: dict) -> list[dict]:
    spec = doc.get("spec") or {}
    template = (spec.get("template") or {}).get("spec") or {}
    return list(template.get("containers") or [])


# --- the install -------------------------------------------------------------------------------------


def test_the_install_is_timed_as_a_row_of_where_the_time_went(monkeypatch):
    from clusterproof.timings import Stopwatch

    stopwatch, manifests = Stopwatch(), FakeManifests(offline=True)
    found = controller_of(ingress.TRAEFIK, offline=True)
    waited = []
    # FAKE waits and lookup: what is installed, not how a cluster answers, is checked here
    monkeypatch.setattr(installer, "_wait_installed", lambda cluster, what, controller, timeout: waited.append(what))
    monkeypatch.setattr(installer, "find_controller", lambda cluster, target, why="", installed=None: found)
    crds = []  # FAKE: the Gateway API CRDs are installed before the GatewayClass
    monkeypatch.setattr(installer, "install_gateway_api_crds", lambda cluster, manifests, owner: crds.append(owner))
    cluster = SimpleNamespace(name="cp-x-ingress", offline=True)  # FAKE cluster
    assert ingress.install(cluster, ingress.TRAEFIK, manifests, stopwatch) is found
    assert waited == [ingress.TRAEFIK]
    assert [k["kind"] for k in manifests.created] == [
        "Namespace",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Service",
        "Deployment",
        "IngressClass",
        "GatewayClass",
    ]
    assert crds == [{"apiVersion": "v1", "kind": "Namespace", "name": "traefik", "uid": "uid-traefik"}]
    ((what, seconds, _),) = stopwatch.phases
    assert what == f"cluster cp-x-ingress: install ingress controller traefik {releases.TRAEFIK}" and seconds >= 0


def test_an_install_that_does_not_get_ready_fails_naming_the_pod_unless_its_image_cannot_be_had():
    def cluster_with(waiting_reason):
        status = client.V1ContainerStatus(
            name="traefik",
            image="docker.io/library/traefik:v3.7.13",
            image_id="",
            ready=False,
            restart_count=3,
            state=client.V1ContainerState(waiting=client.V1ContainerStateWaiting(reason=waiting_reason)),
        )
        p = pod("traefik-1", False)
        p.status.container_statuses = [status]
        return SimpleNamespace(  # FAKE cluster: one pod of the install
            core=SimpleNamespace(list_namespaced_pod=lambda ns, label_selector=None: SimpleNamespace(items=[p]))
        )

    def times_out():
        raise wait.WaitTimeout("1 ready pod(s) matching app.kubernetes.io/name=traefik", "traefik-1: Running", 300)

    with pytest.raises(Broken) as info:
        installer._settled(cluster_with("CrashLoopBackOff"), ingress.TRAEFIK, times_out)
    assert str(info.value).startswith(f"ingress controller traefik {releases.TRAEFIK} did not become ready: timed out")
    assert "traefik-1: Running" in str(info.value)
    with pytest.raises(SetupFailed) as info:
        installer._settled(cluster_with("ErrImageNeverPull"), ingress.TRAEFIK, times_out)
    assert str(info.value).startswith(
        f"could not evaluate (set-up: install ingress controller traefik {releases.TRAEFIK}): pod traefik-1: "
        "container traefik ErrImageNeverPull"
    )


def test_a_host_longer_than_a_common_name_still_gets_a_certificate_that_verifies(tmp_path):
    """The hosts carry the test's namespace and can pass X.509's 64-character CN cap: the
    certificate names the host in its SAN, and a verified HTTPS request with that SNI succeeds
    against a local TLS listener serving it."""
    import socket
    import ssl
    import threading

    host = "tls." + "n" * 60 + ".clusterproof.test"
    cert, key = ingress.self_signed_certificate(host)
    (tmp_path / "tls.crt").write_bytes(cert)
    (tmp_path / "tls.key").write_bytes(key)
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(tmp_path / "tls.crt", tmp_path / "tls.key")
    listener = socket.create_server(("127.0.0.1", 0))

    def serve_one() -> None:
        connection, _ = listener.accept()
        with server_context.wrap_socket(connection, server_side=True) as tls:
            tls.recv(65536)
            tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\nConnection: close\r\n\r\nroot")

    server = threading.Thread(target=serve_one, daemon=True)
    server.start()
    try:
        answer = ingress.https_get_sni("127.0.0.1", listener.getsockname()[1], host, "/", cert)
    finally:
        server.join(5)
        listener.close()
    assert (answer.status, answer.body) == (200, "root")
    assert answer.certificate == ssl.PEM_cert_to_DER_cert(cert.decode())


def test_a_route_wait_gives_up_at_once_naming_a_controller_scaled_to_zero_mid_test():
    """The controller served when the test began, then was scaled to zero: the node port refuses
    connections. The wait stops at the first refusal with the controller's state, not after 90 s
    of "connection refused". (The fetch is FAKE: it raises what a refused connection raises.)"""
    from clusterproof.errors import ProbeError

    def refused() -> HttpAnswer:
        raise ProbeError("GET http://172.19.0.4:31995/testpath: ConnectionError: refused")

    scaled = "Deployment traefik/traefik: 0 of 0 replicas ready (scaled to zero): nothing runs the controller"
    causes = iter([None, scaled])
    with pytest.raises(WaitGaveUp) as gave_up:
        ingress.wait_answer(
            refused, lambda a: a.ok, "/testpath answered by Service test", timeout=30, never=lambda: next(causes)
        )
    assert "scaled to zero): nothing runs the controller" in str(gave_up.value)
    assert "connection" in str(gave_up.value).lower()


def test_an_ingress_is_described_with_its_class_its_ingress_nginx_annotations_as_stored_and_its_address():
    """A hint of ING-03/04's waits: what the controller reads (a rewrite-target changed under the test shows)."""
    found = client.V1Ingress(
        metadata=client.V1ObjectMeta(
            name="rewrite-ingress",
            annotations={"nginx.ingress.kubernetes.io/rewrite-target": "/wrong/$2", "other.example/x": "y"},
        ),
        spec=client.V1IngressSpec(ingress_class_name="nginx"),
        status=client.V1IngressStatus(
            load_balancer=client.V1IngressLoadBalancerStatus(
                ingress=[client.V1IngressLoadBalancerIngress(ip="172.18.0.3")]
            )
        ),
    )
    described = ingress.describe_ingress(found)
    assert described == "Ingress rewrite-ingress (class nginx, rewrite-target /wrong/$2): address 172.18.0.3"
    found.status = None
    found.metadata.annotations = None
    assert ingress.describe_ingress(found).startswith("Ingress rewrite-ingress (class nginx): no address in its status")
