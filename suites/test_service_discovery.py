"""Service discovery [000, 001, 004]: DNS names of Services (A, SRV, CNAME, headless) and the
`<NAME>_SERVICE_HOST/_PORT` environment variables, plus the notes' `kubectl exec ... --env`.

DNS checks look names up from a client pod; they skip, saying what is missing, when cluster DNS
does not answer and nothing backs the kube-dns Service.
"""

from __future__ import annotations

import shlex

import pytest

from clusterproof import wait
from clusterproof.cluster import Cluster
from clusterproof.jigs import dns
from clusterproof.manifests import Manifests
from clusterproof.probe import ClientPod

APP_PODS = "claims/services/app-pods.yaml"
HEADLESS = "claims/services/svc-headless.yaml"
EXTERNAL_NAME = "claims/services/svc-externalname.yaml"
SAMPLE_SERVICE = "notes/services/sample-multiport.yaml"
SAMPLE_APP = "claims/services/sample-app.yaml"
NOTES_EXEC_ENV = "notes-as-written/001-kubectl-exec-env.txt"


def start_app_pods(cluster: Cluster, namespace: str, manifests: Manifests) -> dict[str, str]:
    """pod-1 and pod-2 (serve-hostname :8080), ready; returns pod IP -> pod name."""
    manifests.apply(APP_PODS)
    pods = wait.pods_ready(cluster.core, namespace, "app=pod", 2)
    return {p.status.pod_ip: p.metadata.name for p in pods}


def start_sample(cluster: Cluster, namespace: str, manifests: Manifests) -> str:
    """The notes' Service `sample` (8080 -> 80, 8443 -> 443) and its two porter pods; returns its ClusterIP."""
    service = manifests.apply_one(SAMPLE_SERVICE)
    manifests.apply(SAMPLE_APP)
    wait.deployment_available(cluster.apps, namespace, "sample-app")
    return service["spec"]["clusterIP"]


def sample_pods(cluster: Cluster, namespace: str) -> set[str]:
    return {p.metadata.name for p in wait.pods_ready(cluster.core, namespace, "app=sample-app", 2)}


def env_of(pod: ClientPod) -> dict[str, str]:
    result = pod.exec(["env"])
    assert result.rc == 0, f"`env` in pod {pod.name} failed: {result.stderr!r}"
    return dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)


# --- SVC-12 ExternalName ---------------------------------------------------------------------


@pytest.mark.claim("SVC-12")
def test_external_name_service_resolves_as_a_cname_to_its_external_name(
    cluster: Cluster, namespace: str, manifests: Manifests, client_pod
) -> None:
    client = client_pod()
    resolver = dns.require_cluster_dns(cluster, client)
    service = manifests.apply_one(EXTERNAL_NAME)
    target = service["spec"]["externalName"].rstrip(".") + "."
    name = resolver.service_name("svc-externalname", namespace)

    answer = dns.wait_lookup(client, name, "CNAME", lambda a: a.records == (target,), f"CNAME {name} -> {target}")
    assert answer.records == (target,)

    # an A query follows the CNAME: the chain starts with the external name, then its address
    api_ip = cluster.core.read_namespaced_service("kubernetes", "default").spec.cluster_ip
    chained = dns.lookup(client, name, "A")
    assert chained.records[:1] == (target,) and api_ip in dns.addresses(chained), (
        f"A lookup of {name} should go through CNAME {target} to {api_ip}; got {chained}"
    )


# --- SVC-13 headless ---------------------------------------------------------------------------


@pytest.mark.claim("SVC-13")
def test_headless_service_has_no_virtual_ip_and_its_endpoints_are_the_ready_pods(
    cluster: Cluster, namespace: str, manifests: Manifests, client_pod
) -> None:
    manifests.apply(HEADLESS)
    pods = start_app_pods(cluster, namespace, manifests)
    service = cluster.core.read_namespaced_service("svc-headless", namespace)
    assert service.spec.cluster_ip == "None", (
        f"headless Service svc-headless got virtual IP {service.spec.cluster_ip!r}; expected none"
    )
    dns.wait_endpoint_ips(cluster, namespace, "svc-headless", set(pods))

    # no virtual IP in between: a client talks to each listed pod address directly
    client = client_pod()
    for ip, pod in pods.items():
        answer = client.await_answer(f"http://{ip}:8080/", f"endpoint {ip} of svc-headless")
        assert answer.body.strip() == pod, f"endpoint {ip} should be pod {pod}; answered {answer.body.strip()!r}"

    ip_1 = next(ip for ip, name in pods.items() if name == "pod-1")
    cluster.delete_pod_now(namespace, "pod-2", wait_gone=False)
    dns.wait_endpoint_ips(cluster, namespace, "svc-headless", {ip_1})


@pytest.mark.claim("SVC-13")
def test_headless_service_name_resolves_to_the_ready_pod_ips(
    cluster: Cluster, namespace: str, manifests: Manifests, client_pod
) -> None:
    client = client_pod()
    resolver = dns.require_cluster_dns(cluster, client)
    manifests.apply(HEADLESS)
    pods = start_app_pods(cluster, namespace, manifests)
    name = resolver.service_name("svc-headless", namespace)

    dns.wait_lookup(client, name, "A", dns.same_set(pods), f"A {name} == ready pod IPs {sorted(pods)}")

    ip_1 = next(ip for ip, pod in pods.items() if pod == "pod-1")
    cluster.delete_pod_now(namespace, "pod-2", wait_gone=False)
    dns.wait_lookup(client, name, "A", dns.same_set({ip_1}), f"A {name} == {ip_1} only, after pod-2 was deleted")


# --- SVC-15 / SVC-16 A and SRV records ----------------------------------------------------------


@pytest.mark.claim("SVC-15")
def test_service_name_resolves_to_its_cluster_ip_and_reaches_a_pod(
    cluster: Cluster, namespace: str, manifests: Manifests, client_pod
) -> None:
    client = client_pod()
    resolver = dns.require_cluster_dns(cluster, client)
    cluster_ip = start_sample(cluster, namespace, manifests)
    name = resolver.service_name("sample", namespace)

    dns.wait_lookup(client, name, "A", dns.same_set({cluster_ip}), f"A {name} == ClusterIP {cluster_ip}")
    short = dns.lookup(client, "sample", "A", search=True)
    assert dns.addresses(short) == {cluster_ip}, f"short name `sample` via the search list: {short}"

    result = client.sample_backends(f"http://{name}:8080/", {f"port-80 {p}" for p in sample_pods(cluster, namespace)})
    assert result.complete, f"requests to the Service by DNS name: {result}"


@pytest.mark.claim("SVC-16")
def test_srv_records_give_each_named_port_and_the_service_name(
    cluster: Cluster, namespace: str, manifests: Manifests, client_pod
) -> None:
    client = client_pod()
    resolver = dns.require_cluster_dns(cluster, client)
    start_sample(cluster, namespace, manifests)
    target = resolver.service_name("sample", namespace) + "."

    for port_name, port, reply in (("http-port", 8080, "port-80"), ("https-port", 8443, "port-443")):
        name = resolver.srv_name(port_name, "TCP", "sample", namespace)
        answer = dns.wait_lookup(client, name, "SRV", lambda a: bool(a.records), f"SRV {name}")
        records = [dns.SrvRecord.parse(r) for r in answer.records]
        assert [(r.port, r.target) for r in records] == [(port, target)], (
            f"SRV {name} should give port {port} at {target}; got {answer}"
        )
        # the SRV answer is enough to connect: its target and port reach the named port's pods
        answer_http = client.http(f"http://{records[0].target.rstrip('.')}:{records[0].port}/")
        assert answer_http.body.startswith(reply), (
            f"{records[0].target}:{records[0].port} from SRV {name} should reach container port "
            f"{reply[5:]}; answered {answer_http.body.strip()!r}"
        )


# --- SVC-14 environment variables, ERR-08 the notes' command ------------------------------------


@pytest.mark.claim("SVC-14")
def test_pods_started_after_a_service_get_its_env_vars_and_earlier_pods_do_not(
    cluster: Cluster, namespace: str, manifests: Manifests, client_pod
) -> None:
    early = client_pod("early")
    cluster_ip = start_sample(cluster, namespace, manifests)
    late = client_pod("late")

    env = env_of(late)
    expected = {
        "SAMPLE_SERVICE_HOST": cluster_ip,
        "SAMPLE_SERVICE_PORT": "8080",
        "SAMPLE_SERVICE_PORT_HTTP_PORT": "8080",
        "SAMPLE_SERVICE_PORT_HTTPS_PORT": "8443",
        "SAMPLE_PORT": f"tcp://{cluster_ip}:8080",
    }
    got = {k: env.get(k) for k in expected}
    assert got == expected, f"pod `late`, started after Service sample ({cluster_ip}), has env {got}"

    # the variables are usable as they are: the pod's own shell expands them
    # (kube-proxy may still be writing the Service's rules: retried for a while)
    wait.until_seen(
        lambda: late.sh('curl -sS --max-time 3 "http://$SAMPLE_SERVICE_HOST:$SAMPLE_SERVICE_PORT/"'),
        lambda reply: reply.stdout.startswith("port-80 sample-app-"),
        "an answer of a sample-app pod's port 80 at $SAMPLE_SERVICE_HOST:$SAMPLE_SERVICE_PORT from pod late",
        60,
        describe=lambda reply: f"curl exit {reply.rc}: {(reply.stdout or reply.stderr).strip()!r}",
    )

    early_sample = sorted(k for k in env_of(early) if k.startswith("SAMPLE_"))
    assert early_sample == [], f"pod `early`, started before Service sample existed, has {early_sample}"


@pytest.mark.claim("ERR-08")
def test_notes_kubectl_exec_env_is_refused_and_exec_dash_dash_env_lists_the_variables(
    cluster: Cluster, namespace: str, manifests: Manifests, client_pod
) -> None:
    cluster.require_kubectl()
    cluster_ip = manifests.apply_one(SAMPLE_SERVICE)["spec"]["clusterIP"]
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
