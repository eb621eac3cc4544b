"""Test namespaces: made per test, labelled with the run, usable once the default
ServiceAccount exists (pods are refused before), deleted without waiting."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from kubernetes import client

from clusterproof import wait

if TYPE_CHECKING:
    from clusterproof.cluster import Cluster

SERVICE_ACCOUNT_TIMEOUT = 60.0


def create_namespace(
    cluster: Cluster, name: str, labels: Mapping[str, str], timeout: float = SERVICE_ACCOUNT_TIMEOUT
) -> str:
    body = client.V1Namespace(metadata=client.V1ObjectMeta(name=name, labels=dict(labels)))
    cluster.core.create_namespace(body)
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
