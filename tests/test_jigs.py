"""Jig verbs that need no cluster: how checks describe what they saw, and the PV names of a test.
FAKE client pods stand in for exec into a cluster (they return scripted samples)."""

from collections import Counter
from types import SimpleNamespace

import pytest
from kubernetes import client

from clusterproof.errors import WaitTimeout
from clusterproof.jigs.pv_names import PV_SET_LABEL, PVNames, host_paths
from clusterproof.jigs.service import Backends, ServiceJig, answer_mismatch
from clusterproof.probe import ClientPod, SampleResult


def ready_pod(name, ip):
    return client.V1Pod(
        metadata=client.V1ObjectMeta(name=name, uid=f"uid-{name}"), status=client.V1PodStatus(pod_ip=ip)
    )


def service(name="svc-1", ip="10.96.0.10", port=9000, type_="ClusterIP"):
    return client.V1Service(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1ServiceSpec(type=type_, cluster_ip=ip, ports=[client.V1ServicePort(port=port)]),
    )


class FakeClientPod(ClientPod):
    """FAKE ClientPod: answers at once and samples what it is told (no exec, no cluster)."""

    def __init__(self, seen, node_name=None, answers=True):
        self.name, self.node_name, self.seen, self.answers = "client", node_name, seen, answers
        self.asked = []

    def await_answer(self, url, what, timeout=60):
        self.asked.append(url)
        if not self.answers:
            raise WaitTimeout(f"an HTTP answer from {what} ({url})", "ProbeError: connection refused", timeout)
        return SimpleNamespace(body="pod-1\n")

    def sample_backends(self, url, expected, *, never=(), backend_of=None, **kwargs):
        return SampleResult(url, frozenset(expected), Counter(self.seen), requests=40, seconds=3)


PODS = Backends((ready_pod("pod-1", "10.244.1.5"), ready_pod("pod-2", "10.244.2.7")))


def test_answer_mismatch_names_who_never_answered_and_who_answered_instead():
    result = SampleResult(
        "http://x/", frozenset({"pod-1", "pod-2"}), Counter({"pod-1": 30, "old-pod": 10}), requests=40
    )
    text = answer_mismatch("ClusterIP 10.96.0.10:9000 of Service svc-1", result, {"pod-1", "pod-2"})
    assert text.startswith(
        "ClusterIP 10.96.0.10:9000 of Service svc-1 answered from {old-pod, pod-1}; ready pods {pod-1, pod-2}; "
        "never answered: {pod-2}; answered by something else: {old-pod} (http://x/: 40 requests"
    )
    exact = SampleResult("http://x/", frozenset({"pod-1"}), Counter({"pod-1": 3}))
    assert answer_mismatch("v", exact, {"pod-1"}) is None


def test_assert_answered_by_builds_its_description_from_the_service_and_the_clients():
    jig = ServiceJig(cluster=None, manifests=None)
    jig.assert_answered_by(FakeClientPod({"pod-1": 20, "pod-2": 20}), service(), PODS)  # exact: passes

    clients = [FakeClientPod({"pod-1": 40}, node_name="worker"), FakeClientPod({}, node_name="worker2", answers=False)]
    with pytest.raises(AssertionError) as info:
        jig.assert_answered_by(clients, service(), PODS, note="pod-not-ready selected but never ready")
    text = str(info.value)
    assert text.startswith(
        "ClusterIP 10.96.0.10:9000 of Service svc-1 from a pod on node worker (pod-not-ready selected but never "
        "ready) answered from {pod-1}; ready pods {pod-1, pod-2}; never answered: {pod-2}"
    )
    assert "; ClusterIP 10.96.0.10:9000 of Service svc-1 from a pod on node worker2 (pod-not-ready" in text
    assert "did not answer; ready pods {pod-1, pod-2}" in text and "connection refused" in text
    assert clients[0].asked == ["http://10.96.0.10:9000/"]


def test_assert_answered_by_one_of_accepts_any_of_the_pods_and_names_a_stranger():
    jig = ServiceJig(cluster=None, manifests=None)
    jig.assert_answered_by_one_of(FakeClientPod({}), service(type_="NodePort", name="np-svc"), PODS)
    strangers = Backends((ready_pod("pod-3", "10.244.1.9"),))
    with pytest.raises(AssertionError, match=r"of NodePort Service np-svc answered from 'pod-1', not from one of"):
        jig.assert_answered_by_one_of(FakeClientPod({}), service(type_="NodePort", name="np-svc"), strangers)


def test_pv_names_keep_tests_apart():
    names = PVNames.for_test("20261122-163000-ab12", "cp-163000ab12-pv-01-3f2a")
    docs = [
        {"kind": "StorageClass", "metadata": {"name": "manual"}},
        {
            "kind": "PersistentVolume",
            "metadata": {"name": "pv-01"},
            "spec": {"storageClassName": "manual", "local": {"path": "/node-v"}},
        },
        {"kind": "PersistentVolumeClaim", "metadata": {"name": "pvc-01"}, "spec": {"storageClassName": "manual"}},
    ]
    storage_class, pv, claim = names.isolate(docs)

    suffix = names.suffix
    assert suffix.startswith("163000ab12-")
    assert storage_class["metadata"]["name"] == f"manual-{suffix}" == pv["spec"]["storageClassName"]
    assert pv["metadata"]["name"] == f"pv-01-{suffix}" and pv["metadata"]["labels"] == {PV_SET_LABEL: suffix}
    assert host_paths([pv]) == [f"/tmp/clusterproof-20261122-163000-ab12/pv-01-{suffix}"]
    assert claim["spec"]["selector"]["matchLabels"] == {PV_SET_LABEL: suffix}
    assert names.notes_name(f"pv-01-{suffix}") == "pv-01" and docs[1]["metadata"]["name"] == "pv-01"  # copies

    (dynamic,) = names.isolate(docs[2:], dynamic=True)
    assert "selector" not in dynamic["spec"]  # a claim with a selector is never provisioned
