"""Namespaces and ResourceQuota as [004] describes them: the quota `test-quotas` (pods: 3,
services: 1, replicationcontrollers: 1) refuses what exceeds it, shows its usage, binds only its
namespace; names are per namespace and a context's namespace is kubectl's default.

The notes put the quota into namespace `test`. A namespace name is cluster-wide and `test` may
belong to someone else, so every test here plays `test` with its own fresh namespace
(cp-<run>-<test>-<hash>, deleted afterwards); nothing depends on the literal name.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from clusterproof import wait
from clusterproof.cluster import Cluster
from clusterproof.jigs.quota import ADMISSION_HINT, Admission, PrivateKubeconfig, QuotaJig
from clusterproof.manifests import Manifests
from clusterproof.run import RunContext, hash_of
from clusterproof.verdicts import setup_step

QUOTA = "test-quotas"
QUOTA_PODS = "claims/quota/quota-pods.yaml"
QUOTA_SERVICES = "claims/quota/quota-services.yaml"
BUSYBOX_NS_RC = "claims/quota/busybox-ns-rc.yaml"
BUSYBOX_NS_RC_2 = "claims/quota/busybox-ns-rc-2.yaml"


@pytest.fixture
def quota(cluster: Cluster, manifests: Manifests) -> QuotaJig:
    return QuotaJig(cluster, manifests)


def assert_exceeded(refused: Admission, resource: str, used: int, limit: int) -> None:
    """The refusal [004] shows: 403 Forbidden, 'exceeded quota: test-quotas, requested: pods=1,
    used: pods=3, limited: pods=3'."""
    if refused.admitted:
        raise AssertionError(
            f"{refused.kind} {refused.name} was admitted although ResourceQuota {QUOTA} allows {resource}: {limit} "
            f"and {used} exist: {ADMISSION_HINT}"
        )
    expected = [
        f"exceeded quota: {QUOTA}",
        f"requested: {resource}=1",
        f"used: {resource}={used}",
        f"limited: {resource}={limit}",
    ]
    missing = [part for part in expected if part not in refused.message]
    assert (refused.status, refused.reason) == (403, "Forbidden") and not missing, (
        f"{refused}; expected HTTP 403 Forbidden saying {expected}" + (f", missing {missing}" if missing else "")
    )


def two_idle_rcs(manifests: Manifests, namespace: str) -> list[dict]:
    """busybox-ns and busybox-ns-2, both with replicas 0: only the RC count is at stake."""
    docs = manifests.load(BUSYBOX_NS_RC, namespace) + manifests.load(BUSYBOX_NS_RC_2, namespace)
    for doc in docs:
        doc["spec"]["replicas"] = 0
    return docs


def assert_all_admitted(answers: list[Admission], where: str) -> None:
    refused = [str(a) for a in answers if not a.admitted]
    assert not refused, f"in {where}: {refused}"


@pytest.mark.claim("NS-01")
def test_fourth_pod_is_refused_under_a_quota_of_three_pods(quota: QuotaJig, namespace: str) -> None:
    """Under ResourceQuota `pods: 3` the 4th pod MUST be refused with HTTP 403 "exceeded quota" [004].

    Observed: the API server's answers to four pods created one by one."""
    quota.apply_quota(namespace)
    *first, fourth = quota.create_each(QUOTA_PODS, namespace)

    assert_all_admitted(first, f"namespace {namespace} (quota pods: 3)")
    assert_exceeded(fourth, "pods", used=3, limit=3)


@pytest.mark.claim("NS-01")
def test_replication_controller_of_four_gets_three_pods_under_the_quota(
    cluster: Cluster, quota: QuotaJig, namespace: str
) -> None:
    """Under `pods: 3` a ReplicationController of 4 MUST get 3 pods, its 4th refused "exceeded
    quota" [004] (`kubectl describe rc busybox-ns --namespace=test`: the RC's events tell why a
    replica is missing).

    Observed: the RC's FailedCreate event naming the quota, and its pods settling at 3."""
    quota.apply_quota(namespace)
    (rc,) = quota.create_each(BUSYBOX_NS_RC, namespace)
    assert rc.admitted, str(rc)

    def failed_creates_and_pods() -> tuple[list[str], list[str]]:
        return quota.event_messages(namespace, "busybox-ns", "FailedCreate"), quota.pods(namespace, "name=busybox-ns")

    def refused_or_all_four(seen: tuple[list[str], list[str]]) -> tuple[str | None, list[str]] | None:
        failed_creates, pods = seen
        # other FailedCreate events (a transient API error) may come first: wait for the quota's
        refusal = next((m for m in failed_creates if "exceeded quota" in m), None)
        return (refusal, pods) if refusal or len(pods) >= 4 else None

    refusal, pods = wait.until_seen(
        failed_creates_and_pods,
        refused_or_all_four,
        "a FailedCreate event of RC busybox-ns saying 'exceeded quota', or its 4 pods",
        60,
        describe=lambda seen: f"FailedCreate events {seen[0]}, pods {seen[1]}",
    )
    assert refusal is not None, f"RC busybox-ns (replicas 4) got pods {pods} under pods: 3: {ADMISSION_HINT}"
    assert f"exceeded quota: {QUOTA}" in refusal and "requested: pods=1" in refusal, (
        f"RC busybox-ns's FailedCreate event says: {refusal}"
    )
    wait.until_seen(
        lambda: quota.pods(namespace, "name=busybox-ns"),
        lambda pods: len(pods) == 3,
        "3 pods of RC busybox-ns (replicas 4, quota pods: 3)",
        30,
        describe=lambda pods: f"pods {pods}",
    )


@pytest.mark.claim("NS-02")
def test_second_service_is_refused_under_a_quota_of_one_service(quota: QuotaJig, namespace: str) -> None:
    """Under `services: 1` the 2nd Service MUST be refused [004].

    Observed: the API server's answers to two Services created one after the other."""
    quota.apply_quota(namespace)
    first, second = quota.create_each(QUOTA_SERVICES, namespace)

    assert_all_admitted([first], f"namespace {namespace} (quota services: 1)")
    assert_exceeded(second, "services", used=1, limit=1)


@pytest.mark.claim("NS-03")
def test_second_replication_controller_is_refused_under_a_quota_of_one(
    quota: QuotaJig, manifests: Manifests, namespace: str
) -> None:
    """Under `replicationcontrollers: 1` the 2nd RC MUST be refused [004].

    Observed: the API server's answers to two RCs (replicas 0) created one after the other."""
    quota.apply_quota(namespace)
    first, second = quota.create_each(two_idle_rcs(manifests, namespace), namespace)

    assert_all_admitted([first], f"namespace {namespace} (quota replicationcontrollers: 1)")
    assert_exceeded(second, "replicationcontrollers", used=1, limit=1)


@pytest.mark.claim("NS-04")
def test_quota_status_shows_used_against_hard(quota: QuotaJig, manifests: Manifests, namespace: str) -> None:
    """A quota's usage MUST be visible as used against hard [004].

    Observed: test-quotas' status.hard, and status.used at 0, after 2 pods, 1 Service and 1 RC,
    and after one of the pods is deleted (the quota controller's counting: admission is not
    waited for, so a cluster whose ResourceQuota admission is off still shows it)."""
    quota.apply_quota(namespace, admission=False)
    hard = quota.hard(namespace, QUOTA)
    assert hard == {"pods": 3, "services": 1, "replicationcontrollers": 1}, f"status.hard of {QUOTA}: {hard}"
    assert quota.used(namespace, QUOTA) == {"pods": 0, "services": 0, "replicationcontrollers": 0}

    pods = manifests.load(QUOTA_PODS, namespace)[:2]
    services = manifests.load(QUOTA_SERVICES, namespace)[:1]
    assert_all_admitted(quota.create_each(pods + services + manifests.load(BUSYBOX_NS_RC_2), namespace), namespace)
    quota.wait_used(namespace, QUOTA, {"pods": 2, "services": 1, "replicationcontrollers": 1})

    with setup_step("delete pod quota-pod-1"):
        quota.cluster.core.delete_namespaced_pod("quota-pod-1", namespace, grace_period_seconds=0)
    quota.wait_used(namespace, QUOTA, {"pods": 1, "services": 1, "replicationcontrollers": 1})


@pytest.mark.claim("NS-05")
def test_quota_binds_only_its_own_namespace(
    quota: QuotaJig, manifests: Manifests, namespace: str, make_namespace: Callable[[], str]
) -> None:
    """A quota MUST bind only its own namespace [004].

    Observed: in another namespace, 4 pods, 2 Services and 2 RCs all admitted; in the quota's
    own, the 4th pod refused."""
    other = make_namespace()
    quota.apply_quota(namespace)

    in_other = [
        *quota.create_each(QUOTA_PODS, other),
        *quota.create_each(QUOTA_SERVICES, other),
        *quota.create_each(two_idle_rcs(manifests, other), other),
    ]
    assert_all_admitted(in_other, f"namespace {other}, which has no quota ({QUOTA} is in {namespace})")
    # the quota is in force where it lives
    *_, fourth = quota.create_each(QUOTA_PODS, namespace)
    assert_exceeded(fourth, "pods", used=3, limit=3)


# --- names per namespace, the context's namespace ----------------------------------------------


@pytest.fixture
def kubeconfig_copy(cluster: Cluster, run: RunContext, request: pytest.FixtureRequest) -> Iterator[PrivateKubeconfig]:
    cluster.require_kubectl()
    copy = PrivateKubeconfig(cluster, run, f"quota-{hash_of(request.node.nodeid, 8)}")
    yield copy
    copy.remove()


@pytest.mark.claim("NS-06")
def test_names_are_per_namespace_and_the_context_namespace_is_kubectls_default(
    quota: QuotaJig,
    manifests: Manifests,
    namespace: str,
    make_namespace: Callable[[], str],
    kubeconfig_copy: PrivateKubeconfig,
) -> None:
    """Names MUST be per namespace, and a context's namespace MUST be kubectl's default [004].

    Observed: quota-pod-1 admitted in two namespaces; with a private kubeconfig whose context's
    namespace was set (`kubectl config set-context --current --namespace=...`), `kubectl get pods`
    listing that namespace's pods, and `--namespace <other>` the other's."""
    other = make_namespace()
    pod, extra = manifests.load(QUOTA_PODS, namespace)[:2]
    twin, other_extra = manifests.load(QUOTA_PODS, other)[:2]
    other_extra["metadata"]["name"] = "quota-pod-only-here"
    # the same name in two namespaces: both admitted
    assert_all_admitted(quota.create_each([pod, extra], namespace), namespace)
    assert_all_admitted(quota.create_each([twin, other_extra], other), other)

    kubeconfig_copy.set_namespace(namespace)
    assert kubeconfig_copy.context_namespace() == namespace
    default = kubeconfig_copy.pod_names()
    named = kubeconfig_copy.pod_names("--namespace", other)

    assert default == {"quota-pod-1", "quota-pod-2"}, (
        f"`kubectl get pods` with the context's namespace set to {namespace} listed {sorted(default)}"
    )
    assert named == {"quota-pod-1", "quota-pod-only-here"}, (
        f"`kubectl get pods --namespace {other}` listed {sorted(named)}"
    )
