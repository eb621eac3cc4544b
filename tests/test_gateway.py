"""The Gateway API side of the ingress topic (GW claims) and what ING-02/ING-06 decide, without a cluster:
which GatewayClass is tested, what a Gateway's and a route's status say, a declaration nobody may serve,
the EXTERNAL-IP kubectl shows, the journal before ING-02's change, the GW rows of the claims table.

FAKE answers (dicts shaped like the API server's custom objects, SimpleNamespace clients) stand in for a
cluster where one is needed; each is declared as such."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from kubernetes import client

from clusterproof import journal
from clusterproof.claims import Claim
from clusterproof.jigs import ingress
from clusterproof.jigs.ingress import gateway as gw
from clusterproof.jigs.ingress import plugin, routes

TRAEFIK = gw.GatewayClassInfo("traefik", "traefik.io/gateway-controller", accepted=True, run_id="me")
ENVOY = gw.GatewayClassInfo("eg", "gateway.envoyproxy.io/gatewayclass-controller", accepted=True)
PENDING = gw.GatewayClassInfo("pending", "example.com/gw")


def test_the_gateway_class_is_the_one_asked_for_else_this_runs_else_one_accepted():
    assert gw.plan_gateway([ENVOY, TRAEFIK], "eg", run_id="me").target == ENVOY
    chosen = gw.plan_gateway([ENVOY, TRAEFIK], None, run_id="me", ours="traefik")
    assert chosen.target == TRAEFIK and chosen.why == "installed by this run"
    chosen = gw.plan_gateway([PENDING, ENVOY], None)
    assert chosen.target == ENVOY and chosen.why == "a GatewayClass its controller accepted"


def test_no_gateway_api_or_no_accepted_class_skips_saying_so():
    assert gw.plan_gateway(None, None).skip == (
        "the cluster does not serve the Gateway API (gateway.networking.k8s.io/v1): no GatewayClass"
    )
    assert gw.plan_gateway([PENDING], None).skip == (
        "no GatewayClass that a controller accepted (GatewayClasses: pending (example.com/gw, not accepted)): "
        "pick one with --gateway-class NAME"
    )
    with pytest.raises(gw.GatewayClassNotFound, match=r"^--gateway-class x: the cluster has no GatewayClass 'x' "):
        gw.plan_gateway([ENVOY], "x")


def test_a_gateway_class_another_run_installed_is_not_tested():
    chosen = gw.plan_gateway([TRAEFIK], "traefik", run_id="another")
    assert chosen.target is None and chosen.skip.startswith(
        "GatewayClass traefik was installed by run me of this suite"
    )


def test_a_gateway_class_is_read_from_the_api_servers_answer():
    obj = {
        "metadata": {"name": "traefik", "labels": {"clusterproof.io/run-id": "me"}},
        "spec": {"controllerName": "traefik.io/gateway-controller"},
        "status": {"conditions": [{"type": "Accepted", "status": "True"}]},
    }
    assert gw.GatewayClassInfo.of(obj) == TRAEFIK


GATEWAY = {
    "metadata": {"name": "gateway"},
    "status": {
        "conditions": [
            {"type": "Accepted", "status": "True", "reason": "Accepted", "message": "ok"},
            {"type": "Programmed", "status": "False", "reason": "Pending", "message": "waiting"},
        ],
        "addresses": [{"type": "IPAddress", "value": "172.18.0.3"}],
        "listeners": [{"name": "http", "conditions": [{"type": "Programmed", "status": "True"}]}],
    },
}


def test_a_gateways_status_in_words():
    assert gw.condition(GATEWAY, "Programmed") == "False" and gw.condition(GATEWAY, "Ready") is None
    assert gw.describe_gateway(GATEWAY) == (
        "Accepted True (Accepted: ok); Programmed False (Pending: waiting); addresses 172.18.0.3; "
        "listener http: Programmed True"
    )
    assert gw.describe_gateway(None) == "no such Gateway"
    assert not gw._programmed(GATEWAY)
    assert gw._claimed(GATEWAY) == "Accepted True, address 172.18.0.3"
    assert gw._claimed({"metadata": {"name": "declared-gateway"}}) is None


def route(filters=None, parents=None):
    return {
        "metadata": {"name": "rewrite-route"},
        "spec": {
            "rules": [
                {
                    "matches": [{"path": {"type": "PathPrefix", "value": "/testpath"}}],
                    "filters": filters or [],
                    "backendRefs": [{"name": "test", "port": 80}],
                },
                {"matches": [{"path": {"type": "PathPrefix", "value": "/"}}], "backendRefs": [{"name": "root-svc"}]},
            ]
        },
        "status": {"parents": parents or []},
    }


def test_a_route_is_read_as_paths_to_services_and_its_parents_status():
    assert gw.route_services(route()) == {"/testpath": "test", "/": "root-svc"}
    accepted = [
        {
            "parentRef": {"name": "gateway"},
            "conditions": [{"type": "Accepted", "status": "True"}, {"type": "ResolvedRefs", "status": "True"}],
        }
    ]
    assert gw._accepted_by(route(parents=accepted), "gateway") and not gw._accepted_by(route(), "gateway")
    assert gw.route_parent(route(parents=accepted), "other") is None


def test_a_wrong_answer_names_the_routes_rules_as_stored_a_dropped_filter_shows():
    rewrite = [
        {"type": "URLRewrite", "urlRewrite": {"path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/"}}}
    ]
    jig = gw.GatewayJig(SimpleNamespace(), "traefik", "traefik.io/gateway-controller")  # FAKE cluster: read is faked
    jig.read = lambda plural, name, namespace=None: route(rewrite)
    assert jig.route_state("ns", "rewrite-route", "gateway") == (
        "HTTPRoute rewrite-route: rule PathPrefix /testpath -> test (URLRewrite ReplacePrefixMatch /); "
        "rule PathPrefix / -> root-svc (no filter); "
        "no status from Gateway gateway (no controller accepted or refused it)"
    )
    jig.read = lambda plural, name, namespace=None: route()
    assert "rule PathPrefix /testpath -> test (no filter)" in jig.route_state("ns", "rewrite-route", "gateway")


def test_a_declaration_answered_from_a_backend_anywhere_fails_naming_where(monkeypatch):
    entries = [
        routes.EntryPoint("w1 10.0.0.2:80", "10.0.0.2", 80),
        routes.EntryPoint("w2 10.0.0.3:443", "10.0.0.3", 443, "https"),
    ]
    answers = {"10.0.0.2": None, "10.0.0.3": SimpleNamespace(status=404, body="404 page not found\n")}
    monkeypatch.setattr(routes, "answer_at", lambda entry, host, path: answers[entry.ip])  # FAKE answers
    seen = routes.assert_not_served(entries, "h.test", ("/",), {"root-backend-1"}, "Ingress x")
    assert seen == ["w1 10.0.0.2:80/: nothing answers", "w2 10.0.0.3:443/: 404 '404 page not found'"]
    answers["10.0.0.3"] = SimpleNamespace(status=200, body="root-backend-1")
    with pytest.raises(
        AssertionError,
        match=r"^w2 10.0.0.3:443/ \(Host h.test\) answered from backend 'root-backend-1': "
        r"something serves Ingress x",
    ):
        routes.assert_not_served(entries, "h.test", ("/",), {"root-backend-1"}, "Ingress x")


def service(kind: str, balancer=(), external=None):
    ingress_points = [client.V1LoadBalancerIngress(ip=ip) for ip in balancer]
    return client.V1Service(
        spec=client.V1ServiceSpec(type=kind, external_ips=external),
        status=client.V1ServiceStatus(load_balancer=client.V1LoadBalancerStatus(ingress=ingress_points)),
    )


@pytest.mark.parametrize(
    ("svc", "ips", "shown"),
    [
        (service("NodePort"), [], "<none>"),
        (service("NodePort"), ["10.0.0.2", "10.0.0.3"], "10.0.0.2,10.0.0.3"),
        (service("LoadBalancer"), [], "<pending>"),
        (service("LoadBalancer", ["34.1.2.3"]), [], "34.1.2.3"),
        (service("LoadBalancer", ["34.1.2.3"]), ["10.0.0.2"], "34.1.2.3,10.0.0.2"),
    ],
)
def test_the_external_ip_column_kubectl_shows_a_load_balancer_service_lists_its_balancer_first(svc, ips, shown):
    """#24 item 11: a LoadBalancer controller Service (the usual cloud install) never shows <none>."""
    assert ingress.expected_external_ip_column(svc, ips) == shown


def test_ing_02_journals_the_service_first_and_skips_a_service_another_run_is_changing():
    """FAKE core: a ConfigMap store; another run's journal entry is there for the Service."""
    made = {}

    def create(namespace, body, _request_timeout=None):
        if body["metadata"]["name"] in made:
            raise client.ApiException(status=409)
        made[body["metadata"]["name"]] = body

    def read(name, namespace, _request_timeout=None):
        return SimpleNamespace(metadata=SimpleNamespace(labels=made[name]["metadata"]["labels"]))

    svc = service("NodePort", external=["10.0.0.9"])
    svc.metadata = client.V1ObjectMeta(name="traefik", namespace="traefik")
    core = SimpleNamespace(
        create_namespace=lambda body, _request_timeout=None: None,
        create_namespaced_config_map=create,
        read_namespaced_config_map=read,
        read_namespaced_service=lambda name, ns: svc,
    )
    ctl = ingress.Controller(
        SimpleNamespace(core=core), "nginx", "k8s.io/ingress-nginx", "traefik", "v3.7.13", "traefik", "traefik", "x=y"
    )
    cleanups = []
    tracker = SimpleNamespace(on_cleanup=lambda cluster, what, undo: cleanups.append(what))
    ctl.hold_service(tracker, "me")
    (entry,) = made.values()
    assert entry["data"] == {
        "service": "traefik/traefik",
        "restore": '{"externalIPs": ["10.0.0.9"], "externalTrafficPolicy": null}',
    }
    assert cleanups == ["put back the spec of Service traefik/traefik (externalIPs, externalTrafficPolicy)"]
    with pytest.raises(pytest.skip.Exception, match=r"^Service traefik/traefik is being changed by run me"):
        ctl.hold_service(tracker, "another")
    assert journal.config_map_name("traefik", "traefik") in made


def test_the_gw_claims_come_from_the_packaged_list_after_the_ing_rows_they_mirror():
    known = {cid: Claim(cid, "t", "o", "s") for cid in ("SVC-01", "ING-01", "ING-06", "VOL-01")}
    assert plugin.pytest_clusterproof_claims(None, known) == []
    assert list(known)[:3] == ["SVC-01", "ING-01", "ING-06"] and list(known)[-1] == "VOL-01"
    assert [cid for cid in known if cid.startswith("GW-")] == ["GW-01", "GW-02", "GW-03", "GW-04", "GW-05"]
    assert list(known).index("GW-01") == 3
    assert "(mirrors ING-03)" in known["GW-02"].text
    only_services = {"SVC-01": Claim("SVC-01", "t", "o", "s")}
    assert plugin.pytest_clusterproof_claims(None, only_services) == ["GW-01", "GW-02", "GW-03", "GW-04", "GW-05"]


def test_a_successor_of_ingress_nginx_answering_otherwise_is_a_difference_and_misrouting_fails(monkeypatch):
    """ING-03/04 on Traefik's ingress-nginx provider: where ingress-nginx's answer is defined (a deeper
    path under the notes' rewrite-target /), another answer is recorded; the other Service's is a failure."""
    entry = routes.EntryPoint("w1 10.0.0.2:31080", "10.0.0.2", 31080)
    case = routes.AsIngressNginx(
        "/testpath/x", frozenset({"test-1"}), frozenset({"root-1"}), "ingress-nginx sends it /"
    )
    answers = iter([SimpleNamespace(status=400, body="Bad Request\n")])
    monkeypatch.setattr(routes, "answer_at", lambda entry, host, path: next(answers))  # FAKE answers
    assert routes.differences_from_ingress_nginx([entry], "h", [case], "traefik") == [
        "/testpath/x answered HTTP 400 'Bad Request' via w1 10.0.0.2:31080, where ingress-nginx sends it /"
    ]
    answers = iter([SimpleNamespace(status=200, body="test-1")])
    assert routes.differences_from_ingress_nginx([entry], "h", [case], "traefik") == []
    answers = iter([SimpleNamespace(status=200, body="root-1")])
    with pytest.raises(AssertionError, match=r"answered by root-1 through traefik: routed to another Service"):
        routes.differences_from_ingress_nginx([entry], "h", [case], "traefik")


def test_a_rewrite_whose_filter_the_route_lacks_as_stored_gives_up_at_once_naming_it():
    jig = gw.GatewayJig(SimpleNamespace(), "traefik", "traefik.io/gateway-controller")  # FAKE cluster: read is faked
    jig.read = lambda plural, name, namespace=None: route()
    why = jig.rewrite_gone("ns", "rewrite-route", "/testpath")()
    assert why.startswith("HTTPRoute rewrite-route as stored has no URLRewrite filter on the rule for /testpath: ")
    path = {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/"}
    rewrite = [{"type": "URLRewrite", "urlRewrite": {"path": path}}]
    jig.read = lambda plural, name, namespace=None: route(rewrite)
    assert jig.rewrite_gone("ns", "rewrite-route", "/testpath/x")() is None
    assert gw._rule_for(route(rewrite), "/other")["backendRefs"][0]["name"] == "root-svc"
