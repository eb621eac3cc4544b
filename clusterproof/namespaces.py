"""Test namespaces: made per test, labelled with the run and with the Pod Security level their
tests need (as upstream's e2e framework does: a cluster enforcing `baseline` or `restricted` by
default then admits what the tests run, and a test that needs more says so), registered for
deletion once made (never one that was there already), usable once the default ServiceAccount
exists (pods are refused before), deleted without waiting."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from kubernetes import client

from clusterproof import wait
from clusterproof.errors import ClusterproofError, SetupFailed
from clusterproof.verdicts import words

if TYPE_CHECKING:
    from clusterproof.cluster import Cluster

SERVICE_ACCOUNT_TIMEOUT = 60.0
POD_SECURITY_LEVELS = ("privileged", "baseline", "restricted")
DEFAULT_POD_SECURITY = "baseline"  # what the suites' own pods meet; hostPath and host namespaces need privileged


def pod_security_labels(level: str) -> dict[str, str]:
    """Pod Security Admission's namespace labels: enforce (and warn, audit) `level`."""
    if level not in POD_SECURITY_LEVELS:
        raise ValueError(f"unknown Pod Security level {level!r} (one of {', '.join(POD_SECURITY_LEVELS)})")
    return {f"pod-security.kubernetes.io/{mode}": level for mode in ("enforce", "warn", "audit")}


def create_namespace(
    cluster: Cluster,
    name: str,
    labels: Mapping[str, str],
    timeout: float = SERVICE_ACCOUNT_TIMEOUT,
    *,
    created: Callable[[str], None] = lambda name: None,
    pod_security: str = DEFAULT_POD_SECURITY,
) -> str:
    """Create it labelled with the Pod Security level `pod_security`, then `created(name)` (where
    its deletion is registered: only what this run made is deleted), then wait until it is usable.
    A namespace of that name already there (409) is someone else's: an error, and never registered
    for deletion. A refusal (a policy that forbids that label) is a set-up failure in the server's
    words: the test could not be evaluated."""
    all_labels = {**labels, **pod_security_labels(pod_security)}
    body = client.V1Namespace(metadata=client.V1ObjectMeta(name=name, labels=all_labels))
    try:
        cluster.core.create_namespace(body)
    except client.ApiException as e:
        if e.status == 409:
            raise ClusterproofError(f"namespace {name} already exists: not this run's, left alone") from None
        step = f"create namespace {name} with PodSecurity {pod_security} (pod-security.kubernetes.io/enforce)"
        raise SetupFailed(step, words(e)) from e
    created(name)
    return wait_usable(cluster, name, timeout)


def wait_usable(cluster: Cluster, name: str, timeout: float = SERVICE_ACCOUNT_TIMEOUT) -> str:
    """Until the namespace's default ServiceAccount exists (pods are refused before)."""
    # Before 1.24 admission also wants the account's token Secret, made a moment later.
    needs_token = cluster.server_version < (1, 24)

    def account_ready() -> bool:
        account = cluster.core.read_namespaced_service_account("default", name)
        return bool(account.secrets) or not needs_token

    wait.until(
        account_ready,
        f"the default ServiceAccount{' and its token' if needs_token else ''} in namespace {name}",
        timeout,
        interval=0.2,
    )
    return name
