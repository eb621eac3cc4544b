"""Cluster DNS verbs: does cluster DNS answer at all, and lookups from inside a client pod.

Lookups use `dig` in the client pod against the nameserver of the pod's /etc/resolv.conf (the
address the kubelet gives every pod, normally the kube-dns Service), so they see what a workload
sees. Nothing here resolves names from the test host.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import pytest

from clusterproof import causes, health, pod_states, urls, wait
from clusterproof.api_answers import unless_missing
from clusterproof.cluster import Cluster
from clusterproof.errors import Broken, WaitTimeout
from clusterproof.probe import ClientPod

NOTES_DOMAIN = "cluster.local"  # the notes' names: <svc>.<ns>.svc.cluster.local
DNS_SERVICE_LABEL = "k8s-app=kube-dns"  # CoreDNS keeps the kube-dns Service name and label
DNS_NAMESPACE = "kube-system"
LOOKUP_TIMEOUT = 60.0  # answers follow Service/Endpoints changes after CoreDNS's cache (kubeadm: `cache 30`)
DNS_READY_TIMEOUT = 60.0  # a young cluster's CoreDNS pods may still be starting
DNS_ANSWER_TIMEOUT = 30.0  # ready pods: kube-proxy's rules for the kube-dns Service may lag a little
DNS_BROKEN_TIMEOUT = 15.0  # when health already names why it cannot answer


@dataclass(frozen=True)
class Resolver:
    """What the pod's /etc/resolv.conf says."""

    nameserver: str
    domain: str  # the cluster domain, e.g. cluster.local (from the search list "<ns>.svc.<domain>")

    def service_name(self, service: str, namespace: str) -> str:
        return f"{service}.{namespace}.svc.{self.domain}"

    def describe_domain(self) -> str:
        """Under which domain the notes' names were looked up (they write `cluster.local`)."""
        if self.domain == NOTES_DOMAIN:
            return f"cluster domain {self.domain}"
        return f"cluster domain {self.domain} (the notes' names, under {NOTES_DOMAIN}, were looked up under it)"

    def srv_name(self, port_name: str, protocol: str, service: str, namespace: str) -> str:
        return f"_{port_name}._{protocol.lower()}.{self.service_name(service, namespace)}"


@dataclass(frozen=True)
class Lookup:
    """One `dig +short` answer: the records, or what went wrong."""

    name: str
    rtype: str
    records: tuple[str, ...]
    error: str

    def __str__(self) -> str:
        if self.records:
            return f"{self.rtype} {self.name} -> {', '.join(self.records)}"
        return f"{self.rtype} {self.name}: no answer ({self.error or 'empty'})"


@dataclass(frozen=True)
class SrvRecord:
    priority: int
    weight: int
    port: int
    target: str

    @classmethod
    def parse(cls, text: str) -> SrvRecord:
        priority, weight, port, target = text.split()
        return cls(int(priority), int(weight), int(port), target)


def resolver_of(pod: ClientPod) -> Resolver:
    result = pod.exec(["cat", "/etc/resolv.conf"])
    nameservers: list[str] = []
    search: list[str] = []
    for line in result.stdout.splitlines():
        fields = line.split()
        if fields and fields[0] == "nameserver":
            nameservers += fields[1:2]
        elif fields and fields[0] == "search":
            search = fields[1:]
    domain = next((s.split(".svc.", 1)[1] for s in search if ".svc." in s), NOTES_DOMAIN)
    if not nameservers:
        raise AssertionError(f"pod {pod.name} has no nameserver in /etc/resolv.conf: {result.stdout!r}")
    return Resolver(nameservers[0], domain)


def lookup(pod: ClientPod, name: str, rtype: str = "A", *, search: bool = False, server: str | None = None) -> Lookup:
    """`dig +short` from the pod (at `server`, else the pod's nameserver); records in answer
    order (a CNAME chain comes first)."""
    flags = "+search" if search else "+nosearch"
    argv = ["dig", *([f"@{server}"] if server else []), "+short", "+time=2", "+tries=2", flags, name, rtype]
    result = pod.sh(" ".join(shlex.quote(a) for a in argv) + " 2>&1")
    lines = [line.strip() for line in result.stdout.splitlines() if line.strip()]
    records = tuple(line for line in lines if not line.startswith(";"))
    problems = list(dict.fromkeys(line.lstrip("; ") for line in lines if line.startswith(";")))
    error = "; ".join(problems) or (f"dig exit code {result.rc}" if result.rc else "")
    return Lookup(name, rtype, records, error)


def wait_lookup(
    pod: ClientPod,
    name: str,
    rtype: str,
    matches: Callable[[Lookup], bool],
    expected: str,
    *,
    search: bool = False,
    timeout: float = LOOKUP_TIMEOUT,
) -> Lookup:
    """Repeat a lookup until `matches` holds; a timeout names the last answer."""
    return wait.until_seen(
        lambda: lookup(pod, name, rtype, search=search),
        lambda answer: answer if matches(answer) else None,
        expected,
        timeout,
        describe=lambda answer: f"answer from pod {pod.name}: {answer}",
    )


@dataclass(frozen=True)
class DnsClient:
    """A client pod whose lookups go to the cluster DNS its resolv.conf names."""

    pod: ClientPod
    resolver: Resolver

    def service_name(self, service: str, namespace: str) -> str:
        return self.resolver.service_name(service, namespace)

    def srv_name(self, port_name: str, protocol: str, service: str, namespace: str) -> str:
        return self.resolver.srv_name(port_name, protocol, service, namespace)

    def lookup(self, name: str, rtype: str = "A", *, search: bool = False) -> Lookup:
        return lookup(self.pod, name, rtype, search=search)

    def wait_lookup(
        self, name: str, rtype: str, matches: Callable[[Lookup], bool], expected: str, *, search: bool = False
    ) -> Lookup:
        return wait_lookup(self.pod, name, rtype, matches, expected, search=search)


def addresses(answer: Lookup) -> set[str]:
    """The A or AAAA records of an answer (CNAME targets dropped)."""
    return {r for r in answer.records if not r.endswith(".")}


def address_record(ip: str) -> str:
    """The record type that answers with `ip`: A, or AAAA for an IPv6 address."""
    return "AAAA" if urls.family(ip) == 6 else "A"


# --- is there cluster DNS? -------------------------------------------------------------------


@dataclass(frozen=True)
class DnsStatus:
    resolver: Resolver
    probe: Lookup
    endpoints: tuple[str, ...]  # ready addresses behind the kube-dns Service(s)
    pods: str  # state of the DNS pods, for the reason

    @property
    def answers(self) -> bool:
        return bool(addresses(self.probe))

    def describe(self) -> str:
        where = f"{DNS_NAMESPACE} Services {DNS_SERVICE_LABEL}"
        backing = f"ready endpoints {', '.join(self.endpoints)}" if self.endpoints else "no ready endpoints"
        return (
            f"{where}: {backing} (pods: {self.pods}); {self.probe} "
            f"via nameserver {self.resolver.nameserver} from the pod's resolv.conf"
        )


def probe_cluster_dns(cluster: Cluster, pod: ClientPod) -> DnsStatus:
    resolver = resolver_of(pod)
    api_ip = cluster.core.read_namespaced_service("kubernetes", "default").spec.cluster_ip
    probe = lookup(pod, f"kubernetes.default.svc.{resolver.domain}", address_record(api_ip))
    return DnsStatus(resolver, probe, tuple(_dns_endpoints(cluster)), _dns_pods(cluster))


def require_cluster_dns(cluster: Cluster, pod: ClientPod) -> DnsClient:
    """`pod` as a DnsClient, once cluster DNS answers. Skip only when cluster DNS is not installed
    (no DNS Deployment and no DNS pod in kube-system: a part the cluster lacks). When it is
    installed but cannot answer (scaled to 0, pods not ready, e.g. CrashLoopBackOff, no ready
    endpoints, no route to the kube-dns Service) the cluster is broken: `Broken`, naming why
    (the DNS claims fail, they are not skipped)."""
    state = health.dns_state(health.Look(cluster))
    if not state.installed:
        pytest.skip(
            f"cluster DNS is not installed: no CoreDNS/kube-dns Deployment or pod in {DNS_NAMESPACE} "
            f"({DNS_SERVICE_LABEL})"
        )
    if state.final:
        raise Broken(f"cluster DNS cannot answer: {state.problem}")
    # CoreDNS reaches the API server through the kubernetes Service: without kube-proxy it never gets ready
    routing = causes.routing_cause(cluster)
    try:
        wait.pods_ready(
            cluster.core, DNS_NAMESPACE, DNS_SERVICE_LABEL, 1, DNS_BROKEN_TIMEOUT if routing else DNS_READY_TIMEOUT
        )
    except WaitTimeout as e:
        seen = getattr(e, "final", None) or e.last_seen
        why = f"; {routing} (CoreDNS reaches the API server through the kubernetes Service)" if routing else ""
        raise Broken(f"cluster DNS cannot answer: no CoreDNS pod became ready: {seen}{why}") from None
    known = dns_service_cause(cluster) or causes.endpoints_cause(cluster)
    status = wait.last_seen(
        lambda: probe_cluster_dns(cluster, pod),
        lambda found: found.answers,
        "cluster DNS to answer",
        causes.grace_for(cluster, known, DNS_BROKEN_TIMEOUT) if known else DNS_ANSWER_TIMEOUT,
        interval=2,
    )
    if status.answers:
        return DnsClient(pod, status.resolver)
    if known:  # the next DNS test need not wait for it again
        causes.confirm(cluster, known)
    if not status.endpoints:
        why = causes.endpoints_cause(cluster) or "CoreDNS pods are ready, the kube-dns Service has no ready endpoints"
        raise Broken(f"cluster DNS does not answer: {why}; {status.describe()}")
    # CoreDNS's own answer, asked at a ready endpoint's pod IP: is it CoreDNS, or the way to it?
    server = status.endpoints[0]
    direct = lookup(pod, status.probe.name, status.probe.rtype, server=server)
    if addresses(direct):
        own = f"CoreDNS itself answers on its pod IP {server} ({direct})"
        why = dns_service_cause(cluster) or "the kube-dns Service has ready endpoints but does not answer"
    else:
        own = f"CoreDNS does not answer on its pod IP {server} either ({direct})"
        why = "CoreDNS does not answer"
    raise Broken(f"cluster DNS does not answer: {why}; {own}; {status.describe()}")


def dns_service_cause(cluster: Cluster) -> str | None:
    """Why the kube-dns Service cannot route, when known (clusterproof.causes.service_cause)."""
    services = cluster.core.list_namespaced_service(DNS_NAMESPACE, label_selector=DNS_SERVICE_LABEL).items
    found = (causes.service_cause(cluster, DNS_NAMESPACE, s.metadata.name) for s in services)
    return next(filter(None, found), None) or causes.routing_cause(cluster)


def _dns_endpoints(cluster: Cluster) -> list[str]:
    services = cluster.core.list_namespaced_service(DNS_NAMESPACE, label_selector=DNS_SERVICE_LABEL).items
    ready: list[str] = []
    for service in services:
        name = service.metadata.name
        endpoints = unless_missing(lambda name=name: cluster.core.read_namespaced_endpoints(name, DNS_NAMESPACE))
        for subset in (endpoints.subsets if endpoints else None) or []:  # no Endpoints object yet: nothing ready
            ready += [a.ip for a in subset.addresses or []]
    return sorted(set(ready))


def _dns_pods(cluster: Cluster) -> str:
    pods = cluster.core.list_namespaced_pod(DNS_NAMESPACE, label_selector=DNS_SERVICE_LABEL).items
    return pod_states.describe_pods(pods) if pods else "none"


def same_set(expected: Iterable[str]) -> Callable[[Lookup], bool]:
    wanted = set(expected)
    return lambda answer: addresses(answer) == wanted
