"""The cluster DNS domain (#24 6): read from a pod's resolv.conf, used for the names looked up
and the ExternalName target, and said in the claim's reason. FAKE pod: exec answers with a
resolv.conf as the kubelet writes it."""

from __future__ import annotations

from types import SimpleNamespace

from clusterproof.jigs import dns


def pod_with(resolv_conf: str) -> SimpleNamespace:
    return SimpleNamespace(name="client", exec=lambda argv: SimpleNamespace(stdout=resolv_conf, rc=0))


def test_the_domain_is_the_one_the_kubelet_puts_in_the_search_list():
    corp = pod_with("search ns1.svc.corp.internal svc.corp.internal corp.internal\nnameserver 10.96.0.10\n")
    resolver = dns.resolver_of(corp)
    assert (resolver.domain, resolver.nameserver) == ("corp.internal", "10.96.0.10")
    assert resolver.service_name("sample", "ns1") == "sample.ns1.svc.corp.internal"
    assert resolver.srv_name("http-port", "TCP", "sample", "ns1") == "_http-port._tcp.sample.ns1.svc.corp.internal"
    assert resolver.describe_domain() == (
        "cluster domain corp.internal (the notes' names, under cluster.local, were looked up under it)"
    )
    kind = dns.resolver_of(pod_with("search ns1.svc.cluster.local svc.cluster.local\nnameserver 10.96.0.10\n"))
    assert kind.describe_domain() == "cluster domain cluster.local"


def test_ipv6_addresses_are_looked_up_as_aaaa_records():
    assert dns.address_record("10.96.0.10") == "A"
    assert dns.address_record("fd00:10:96::a") == "AAAA"
