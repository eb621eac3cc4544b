"""Service discovery [000, 001, 004]: DNS names of Services (A, SRV, CNAME, headless) and the
`<NAME>_SERVICE_HOST/_PORT` environment variables, plus the notes' `kubectl exec ... --env`.

DNS checks look names up from a client pod (`dns_client`); they skip, saying what is missing,
when cluster DNS is not installed (no CoreDNS/kube-dns Deployment or pod), and fail, saying why,
when it is installed but cannot answer (scaled to 0, pods not ready, no endpoints, no route).
What these claims observe is names and variables: reaching the Service behind them is SVC-03's,
SVC-04's and SVC-08's observable, so a Service that does not route cannot fail them.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable

import pytest

from clusterproof import urls
from clusterproof.claims import OBSERVED_ON_PROPERTY
from clusterproof.cluster import Cluster
from clusterproof.jigs import dns
from clusterproof.jigs.service import ServiceJig
from clusterproof.jigs.service_backends import APP_PODS
from clusterproof.manifests import Manifests
from clusterproof.probe import ClientPod
from clusterproof.verdicts import setup_step

HEADLESS = "claims/services/svc-headless.yaml"
EXTERNAL_NAME = "claims/services/svc-externalname.yaml"
SAMPLE_SERVICE = "notes/services/sample-multiport.yaml"  # [001] `sample`: 8080 -> 80, 8443 -> 443
NOTES_EXEC_ENV = "notes-as-written/001-kubectl-exec-env.txt"

ClientFactory = Callable[..., ClientPod]


@pytest.fixture
def jig(cluster: Cluster, manifests: Manifests) -> ServiceJig:
    return ServiceJig(cluster, manifests)


@pytest.fixture
def dns_client(cluster: Cluster, client_pod: ClientFactory, record_property) -> dns.DnsClient:
    """A client pod whose lookups go to cluster DNS (the test skips when there is none, and
    fails, naming why, when it is there but cannot answer). The claim's reason says under which
    cluster domain the notes' names (`...svc.cluster.local`) were looked up."""
    found = dns.require_cluster_dns(cluster, client_pod())
    record_property(OBSERVED_ON_PROPERTY, found.resolver.describe_domain())
    return found


def env_of(pod: ClientPod) -> dict[str, str]:
    result = pod.exec(["env"])
    assert result.rc == 0, f"`env` in pod {pod.name} failed: {result.stderr!r}"
    return dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)


# --- SVC-12 ExternalName ---------------------------------------------------------------------


@pytest.mark.claim("SVC-12")
def test_external_name_service_resolves_as_a_cname_to_its_external_name(
    cluster: Cluster, namespace: str, manifests: Manifests, dns_client: dns.DnsClient
) -> None:
    """An ExternalName Service MUST resolve as a DNS CNAME to its externalName [000].

    Observed: from a client pod, the CNAME lookup of svc-externalname's cluster name (the
    external name), and an A lookup following the chain to that name's address."""
    service = manifests.apply_one(EXTERNAL_NAME, values={"CLUSTER_DOMAIN": dns_client.resolver.domain})
    target = service["spec"]["externalName"].rstrip(".") + "."
    name = dns_client.service_name("svc-externalname", namespace)

    answer = dns_client.wait_lookup(name, "CNAME", lambda a: a.records == (target,), f"CNAME {name} -> {target}")
    assert answer.records == (target,)

    # an A query follows the CNAME: the chain starts with the external name, then its address
    api_ip = cluster.core.read_namespaced_service("kubernetes", "default").spec.cluster_ip
    chained = dns_client.lookup(name, dns.address_record(api_ip))
    assert chained.records[:1] == (target,) and api_ip in dns.addresses(chained), (
        f"{chained.rtype} lookup of {name} should go through CNAME {target} to {api_ip}; got {chained}"
    )


# --- SVC-13 headless ---------------------------------------------------------------------------


@pytest.mark.claim("SVC-13")
def test_headless_service_has_no_virtual_ip_and_its_endpoints_are_the_ready_pods(
    jig: ServiceJig, cluster: Cluster, namespace: str, client_pod: ClientFactory
) -> None:
    """A headless Service (`clusterIP: None`) MUST get no virtual IP; its endpoints are the
    ready pods, which clients reach directly [000, 004].

    Observed: svc-headless's stored clusterIP; its Endpoints listing exactly the ready pods'
    IPs; each listed address answering as its pod; after pod-2 is deleted, pod-1's IP alone."""
    service = jig.create_service(HEADLESS)
    pods = jig.start_backends(APP_PODS)
    assert service.spec.cluster_ip == "None", (
        f"headless Service svc-headless got virtual IP {service.spec.cluster_ip!r}; expected none"
    )
    jig.wait_endpoints("svc-headless", pods.ips)

    # no virtual IP in between: a client talks to each listed pod address directly
    client = client_pod()
    for ip, pod in pods.by_ip.items():
        answer = client.await_answer(urls.url(ip, 8080), f"endpoint {ip} of svc-headless")
        assert answer.body.strip() == pod, f"endpoint {ip} should be pod {pod}; answered {answer.body.strip()!r}"

    with setup_step("delete pod pod-2"):
        cluster.delete_pod_now(namespace, "pod-2", wait_gone=False)
    jig.wait_endpoints("svc-headless", {pods.ip_of("pod-1")})


@pytest.mark.claim("SVC-13")
def test_headless_service_name_resolves_to_the_ready_pod_ips(
    jig: ServiceJig, cluster: Cluster, namespace: str, dns_client: dns.DnsClient
) -> None:
    """A headless Service's DNS name MUST resolve to its ready pods' IPs [000, 004].

    Observed: from a client pod, the A records of svc-headless's cluster name equal to the
    ready pods' IPs, and to pod-1's alone once pod-2 is deleted."""
    jig.create_service(HEADLESS)
    pods = jig.start_backends(APP_PODS)
    name = dns_client.service_name("svc-headless", namespace)

    record = dns.address_record(next(iter(pods.ips)))
    dns_client.wait_lookup(name, record, dns.same_set(pods.ips), f"{record} {name} == ready pod IPs {sorted(pods.ips)}")

    ip_1 = pods.ip_of("pod-1")
    with setup_step("delete pod pod-2"):
        cluster.delete_pod_now(namespace, "pod-2", wait_gone=False)
    after = f"{record} {name} == {ip_1} only, after pod-2 was deleted"
    dns_client.wait_lookup(name, record, dns.same_set({ip_1}), after)


# --- SVC-15 / SVC-16 A and SRV records ----------------------------------------------------------


@pytest.mark.claim("SVC-15")
def test_service_name_resolves_to_its_cluster_ip(
    jig: ServiceJig, namespace: str, dns_client: dns.DnsClient
) -> None:
    """`<service>.<namespace>.svc.<cluster domain>` MUST resolve to the Service's ClusterIP [001].

    Observed: from a client pod, the A record of `sample`'s full name, and the short name
    `sample` through the pod's search list."""
    service = jig.create_service(SAMPLE_SERVICE)  # no pods needed: the names come from the Service
    cluster_ip = service.spec.cluster_ip
    name = dns_client.service_name("sample", namespace)

    record = dns.address_record(cluster_ip)
    dns_client.wait_lookup(name, record, dns.same_set({cluster_ip}), f"{record} {name} == ClusterIP {cluster_ip}")
    short = dns_client.lookup("sample", record, search=True)
    assert dns.addresses(short) == {cluster_ip}, f"short name `sample` via the search list: {short}"


@pytest.mark.claim("SVC-16")
def test_srv_records_give_each_named_port_and_the_service_name(
    jig: ServiceJig, namespace: str, dns_client: dns.DnsClient
) -> None:
    """`_<port>._<proto>.<service>.<namespace>.svc.<cluster domain>` MUST give the port's number
    and the Service's name as SRV record [001].

    Observed: from a client pod, the SRV records of `sample`'s two named ports (8080 and 8443 at
    sample's full name), and the A record of that target (sample's ClusterIP)."""
    service = jig.create_service(SAMPLE_SERVICE)  # no pods needed: the names come from the Service
    target = dns_client.service_name("sample", namespace) + "."

    for port_name, port in (("http-port", 8080), ("https-port", 8443)):
        name = dns_client.srv_name(port_name, "TCP", "sample", namespace)
        answer = dns_client.wait_lookup(name, "SRV", lambda a: bool(a.records), f"SRV {name}")
        records = [dns.SrvRecord.parse(r) for r in answer.records]
        assert [(r.port, r.target) for r in records] == [(port, target)], (
            f"SRV {name} should give port {port} at {target}; got {answer}"
        )
    # the SRV target is a name that resolves: to the Service's ClusterIP
    resolved = dns_client.lookup(target, dns.address_record(service.spec.cluster_ip))
    assert dns.addresses(resolved) == {service.spec.cluster_ip}, (
        f"the SRV target {target} should resolve to sample's ClusterIP {service.spec.cluster_ip}; got {resolved}"
    )


# --- SVC-14 environment variables, ERR-08 the notes' command ------------------------------------


@pytest.mark.claim("SVC-14")
def test_pods_started_after_a_service_get_its_env_vars_and_earlier_pods_do_not(
    jig: ServiceJig, client_pod: ClientFactory
) -> None:
    """A pod started after a Service MUST get `<NAME>_SERVICE_HOST/_PORT` variables for it; a
    pod started before does not [001].

    Observed: the environment of pod `late` (the variables, with `sample`'s ClusterIP and ports)
    and of pod `early` (none)."""
    early = client_pod("early")
    service = jig.create_service(SAMPLE_SERVICE)  # no pods needed: the variables come from the Service
    cluster_ip = service.spec.cluster_ip
    late = client_pod("late")

    env = env_of(late)
    expected = {
        "SAMPLE_SERVICE_HOST": cluster_ip,
        "SAMPLE_SERVICE_PORT": "8080",
        "SAMPLE_SERVICE_PORT_HTTP_PORT": "8080",
        "SAMPLE_SERVICE_PORT_HTTPS_PORT": "8443",
        "SAMPLE_PORT": urls.url(cluster_ip, 8080, "", "tcp"),
    }
    got = {k: env.get(k) for k in expected}
    assert got == expected, f"pod `late`, started after Service sample ({cluster_ip}), has env {got}"

    early_sample = sorted(k for k in env_of(early) if k.startswith("SAMPLE_"))
    assert early_sample == [], f"pod `early`, started before Service sample existed, has {early_sample}"


@pytest.mark.claim("ERR-08")
def test_notes_kubectl_exec_env_is_refused_and_exec_dash_dash_env_lists_the_variables(
    jig: ServiceJig, cluster: Cluster, namespace: str, manifests: Manifests, client_pod: ClientFactory
) -> None:
    """The notes' `kubectl exec -it {service.name} --env | grep -i kubernetes` is not a valid
    command (--env is no kubectl exec flag); the intended `kubectl exec POD -- env` lists the
    Service variables [001].

    Observed: kubectl's exit code and error for the line as written; the output of the
    intended command (KUBERNETES_SERVICE_HOST through the notes' grep, SAMPLE_SERVICE_HOST)."""
    cluster.require_kubectl()
    cluster_ip = jig.create_service(SAMPLE_SERVICE).spec.cluster_ip
    pod = client_pod()

    line = manifests.load_raw(NOTES_EXEC_ENV).text.strip()
    command, _, pipe = line.partition("|")
    argv = [pod.name if a == "{service.name}" else a for a in shlex.split(command)]
    assert argv[0] == "kubectl", f"unexpected notes line {line!r}"
    as_written = cluster.kubectl("-n", namespace, *argv[1:], check=False)
    assert as_written.returncode != 0 and "unknown flag: --env" in as_written.stderr, (
        f"notes' `{command.strip()}` (pod {pod.name}) should be refused for its unknown flag --env; "
        f"exit {as_written.returncode}, stderr {as_written.stderr.strip()!r}"
    )

    intended = cluster.kubectl("-n", namespace, "exec", pod.name, "--", "env", check=False)
    assert intended.returncode == 0, f"`kubectl exec {pod.name} -- env` failed: {intended.stderr.strip()!r}"
    grep_word = shlex.split(pipe)[-1].lower()  # the notes' `| grep -i kubernetes`
    kept = [v for v in intended.stdout.splitlines() if grep_word in v.lower()]
    assert any(v.startswith("KUBERNETES_SERVICE_HOST=") for v in kept), f"`| grep -i {grep_word}` kept {kept}"
    assert f"SAMPLE_SERVICE_HOST={cluster_ip}" in intended.stdout.splitlines(), (
        f"`kubectl exec {pod.name} -- env` should list SAMPLE_SERVICE_HOST={cluster_ip}; got {intended.stdout!r}"
    )
