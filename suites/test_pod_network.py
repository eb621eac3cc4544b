"""The pod network [001, 004]: one network namespace per pod, and pod-to-pod traffic without NAT.

A pod that gets no sandbox (the runtime's CNI ADD failed, or the node's pod network is not ready)
is what these claims are about: it fails them, naming the pod, its node and the kubelet's words.
"""

from __future__ import annotations

import pytest

from clusterproof.cluster import Cluster
from clusterproof.jigs import pods
from clusterproof.jigs.pod_network import Container, peer_ip_seen_by_server
from clusterproof.manifests import Manifests

TWO_CONTAINERS = "claims/services/two-container-pod.yaml"
NO_NAT_SERVER = "claims/services/no-nat-server.yaml"
NO_NAT_CLIENT = "claims/services/no-nat-client.yaml"


@pytest.mark.claim("SVC-19")
def test_containers_of_one_pod_share_localhost_and_one_pod_ip(
    cluster: Cluster, namespace: str, manifests: Manifests, client_pod
) -> None:
    """The containers of one pod MUST share one network namespace: localhost reaches the
    sibling, and both have the one pod IP [001, 004].

    Observed: pod two-containers getting its sandbox (the network namespace; none fails the
    claim); container sidecar's request to localhost:8080 answered by container web's netexec;
    each container's global addresses (the pod IPs: one per family) and network namespace id;
    in another pod, nothing on localhost:8080."""
    manifests.apply(TWO_CONTAINERS)
    pod = pods.started(cluster, namespace, "two-containers", observes={pods.NO_SANDBOX})
    web = Container(cluster, namespace, "two-containers", "web")
    sidecar = Container(cluster, namespace, "two-containers", "sidecar")

    reply = sidecar.get("http://localhost:8080/hostname")
    assert reply.rc == 0 and reply.stdout.strip() == "two-containers", (
        f"localhost:8080 from container sidecar should reach container web's netexec; "
        f"got exit {reply.rc}: {(reply.stdout or reply.stderr).strip()!r}"
    )

    pod_ips = {ip.ip for ip in pod.status.pod_ips or []} or {pod.status.pod_ip}
    seen = {str(c): c.global_addresses() for c in (web, sidecar)}
    assert all(ips == pod_ips for ips in seen.values()), f"pod IPs {pod_ips}; addresses seen per container: {seen}"
    namespaces = {str(c): c.network_namespace() for c in (web, sidecar)}
    assert len(set(namespaces.values())) == 1, f"containers are in different network namespaces: {namespaces}"

    # localhost is the pod's own: another pod's localhost:8080 has nothing listening
    other = client_pod("other")
    elsewhere = other.sh("curl -sS --max-time 3 http://localhost:8080/hostname")
    assert elsewhere.rc != 0, f"localhost:8080 in another pod answered {elsewhere.stdout.strip()!r}"


@pytest.mark.claim("SVC-20")
def test_pod_to_pod_traffic_across_nodes_keeps_the_client_pod_ip(
    cluster: Cluster, namespace: str, manifests: Manifests
) -> None:
    """Pod-to-pod traffic across nodes MUST NOT be NATed: the server sees the client pod's own
    IP [004].

    Observed: both pods getting their sandboxes on their nodes (none fails the claim); the peer
    address agnhost netexec (/clientip) reports for a request from a client pod on another
    worker, against the client pod's IP (and the nodes' IPs)."""
    server_node, client_node = cluster.require_workers(2)[:2]
    values = {"SERVER_NODE": server_node.name, "CLIENT_NODE": client_node.name}
    manifests.apply(NO_NAT_SERVER, values=values)
    manifests.apply(NO_NAT_CLIENT, values=values)
    server = pods.started(cluster, namespace, "no-nat-server", observes={pods.NO_SANDBOX})
    client = pods.started(cluster, namespace, "no-nat-client", observes={pods.NO_SANDBOX})
    assert server.spec.node_name != client.spec.node_name, "server and client pods landed on one node"
    node_ips = {n.internal_ip: n.name for n in cluster.nodes}
    for pod in (server, client):
        assert pod.status.pod_ip not in node_ips, f"pod {pod.metadata.name} uses its node's IP (host network?)"

    peer = peer_ip_seen_by_server(Container(cluster, namespace, "no-nat-client"), server.status.pod_ip, 8080)
    where = f"node {node_ips[peer]}'s IP" if peer in node_ips else "not the client pod"
    assert peer == client.status.pod_ip, (
        f"no-nat-server on {server_node.name} saw the connection from no-nat-client (pod IP "
        f"{client.status.pod_ip}, on {client_node.name}) coming from {peer} ({where}): traffic was NATed"
    )
