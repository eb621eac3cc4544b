"""Test namespaces: made per test, labelled with the run, registered for deletion once made (never
one that was there already), usable once the default ServiceAccount exists (pods are refused
before), deleted without waiting."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from kubernetes import client

from clusterproof import wait
from clusterproof.errors import ClusterproofError

if TYPE_CHECKING:
    from clusterproof.cluster import Cluster

SERVICE_ACCOUNT_TIMEOUT = 60.0


def create_namespace(
    cluster: Cluster,
    name: str,
    labels: Mapping[str, str],
    timeout: float = SERVICE_ACCOUNT_TIMEOUT,
    *,
    created: Callable[[str], None] = lambda name: None,
) -> str:
    """Create it, then `created(name)` (where its deletion is registered: only what this run made
    is deleted), then wait until it is usable. A namespace of that name already there (409) is
    someone else's: an error, and never registered for deletion."""
    body = client.V1Namespace(metadata=client.V1ObjectMeta(name=name, labels=dict(labels)))
    try:
        cluster.core.create_namespace(body)
    except client.ApiException as e:
        if e.status == 409:
            raise ClusterproofError(f"namespace {name} already exists: not this run's, left alone") from None
        raise
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
