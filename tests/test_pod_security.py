"""Pod Security levels of the run's namespaces (#24 7): each namespace enforces the level its
tests need (marker `pod_security`, default baseline), as upstream's e2e framework labels its
namespaces; a cluster refusing that label makes the test "could not evaluate" in its words.
FAKE clients: no API server."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from kubernetes import client

from clusterproof import namespaces
from clusterproof.errors import SetupFailed


def fake_cluster(refuse: client.ApiException | None = None):
    made = []

    def create_namespace(body):
        if refuse is not None:
            raise refuse
        made.append(body)

    core = SimpleNamespace(
        create_namespace=create_namespace,
        read_namespaced_service_account=lambda name, ns: client.V1ServiceAccount(),
    )
    return SimpleNamespace(core=core, server_version=(1, 37)), made


def test_a_namespace_enforces_the_level_its_tests_need():
    cluster, made = fake_cluster()
    namespaces.create_namespace(cluster, "cp-1-hostpath", {"clusterproof.io/run-id": "r"}, pod_security="privileged")
    namespaces.create_namespace(cluster, "cp-1-quota", {"clusterproof.io/run-id": "r"})
    privileged, default = (ns.metadata.labels for ns in made)
    assert privileged["pod-security.kubernetes.io/enforce"] == "privileged"
    assert privileged["pod-security.kubernetes.io/warn"] == "privileged"
    assert default["pod-security.kubernetes.io/enforce"] == namespaces.DEFAULT_POD_SECURITY == "baseline"
    assert default["clusterproof.io/run-id"] == "r"
    with pytest.raises(ValueError, match="unknown Pod Security level 'root'"):
        namespaces.pod_security_labels("root")


def test_a_cluster_that_refuses_the_label_leaves_the_test_unevaluated_in_its_words():
    body = {
        "kind": "Status",
        "status": "Failure",
        "reason": "Forbidden",
        "code": 403,
        "message": 'namespaces "cp-1-hostpath" is forbidden: ValidatingAdmissionPolicy \'no-privileged-namespaces\' '
        "denied request: PodSecurity level privileged is not allowed",
    }
    refusal = client.ApiException(status=403, reason="Forbidden")
    refusal.body = json.dumps(body)
    cluster, _ = fake_cluster(refusal)
    with pytest.raises(SetupFailed) as info:
        namespaces.create_namespace(cluster, "cp-1-hostpath", {}, pod_security="privileged")
    text = str(info.value)
    assert text.startswith(
        "could not evaluate (set-up: create namespace cp-1-hostpath with PodSecurity privileged "
        "(pod-security.kubernetes.io/enforce)): "
    )
    assert "PodSecurity level privileged is not allowed" in text
