"""Before and after a cluster upgrade: what an upgrade must keep (UPG rows of
clusterproof/data/UPGRADE-CLAIMS.md; not claims of the notes).

`--phase before` creates durable state in namespaces of its own and records it in the state file
(all or nothing: a `before` that does not finish removes what it made). `--phase after` compares
the upgraded cluster with the record, then the selected suites run again on the new version.
Durable objects lost meanwhile fail the claims that need them, naming what is gone. Without
--phase these tests are deselected.
"""

from __future__ import annotations

import pytest

from clusterproof.cluster import Cluster
from clusterproof.probe import ClientPod
from clusterproof.upgrade.jig import UpgradeJig
from clusterproof.upgrade.state import UpgradeState

before = pytest.mark.upgrade_phase("before")
after = pytest.mark.upgrade_phase("after")


@before
@pytest.mark.claim("UPG-01")
def test_state_to_carry_over_is_created_and_recorded(
    upgrade: UpgradeJig, upgrade_settings, cluster: Cluster, note
) -> None:
    """UPG-01: before an upgrade, the suite MUST leave a Deployment behind a ClusterIP and a NodePort
    Service with a PodDisruptionBudget, a StatefulSet with data on its claims, a Retain volume with
    data, a DaemonSet, a consumed ConfigMap, a ResourceQuota at its limit and a hostPath file, and
    record their identities, specs and checksums. Observed: the state file against the cluster read
    again (every object, spec and binding, the data hashed again), before the state is committed."""
    state, journal = upgrade.create_durable_state(cluster.context, note)
    upgrade.write_state_file(
        state, journal, upgrade_settings.state_file, overwrite=upgrade_settings.overwrite_state_file
    )
    upgrade.assert_cluster_matches(upgrade_settings.state_file)
    upgrade.commit(state, journal)


@after
@pytest.mark.claim("UPG-02")
def test_objects_keep_their_identity_and_spec(upgrade: UpgradeJig, upgrade_state: UpgradeState) -> None:
    """UPG-02: an upgrade MUST NOT replace or change the workload and Service objects. Observed: each
    Deployment, StatefulSet, DaemonSet, Service and PodDisruptionBudget there, with its UID and every
    field of its normalised spec as recorded (clusterproof/upgrade/specs.py: what is compared)."""
    upgrade.assert_same_objects(upgrade_state)


@after
@pytest.mark.claim("UPG-03")
def test_volumes_stay_bound_to_their_claims(upgrade: UpgradeJig, upgrade_state: UpgradeState) -> None:
    """UPG-03: every PersistentVolume MUST stay Bound to the same claim, neither changed. Observed: each
    PV's claimRef (name and UID) and phase; each PV's and claim's spec (reclaim policy, capacity,
    access modes, claimRef, class) as recorded."""
    upgrade.assert_volumes_still_bound(upgrade_state)


@after
@pytest.mark.claim("UPG-04")
def test_data_written_before_is_unchanged(upgrade: UpgradeJig, upgrade_state: UpgradeState) -> None:
    """UPG-04: data written before the upgrade MUST read back unchanged. Observed: the sha256 of each
    StatefulSet claim's file, of the Retain volume's file and of the hostPath file on its node."""
    upgrade.assert_data_unchanged(upgrade_state)


@after
@pytest.mark.claim("UPG-05")
def test_controllers_still_act_and_the_workload_serves(
    upgrade: UpgradeJig, upgrade_state: UpgradeState, client_pod, record_property
) -> None:
    """UPG-05: after the upgrade the controllers MUST still act and the Deployment MUST still answer
    through its Services. Observed: the Deployment scales to 3 ready pods; requests through each
    Service (its ClusterIP from a client pod, web-np's NodePort on every node from this host) are
    answered by exactly the Deployment's current pods; a StatefulSet pod writes to its claim; the
    DaemonSet is ready on every node. Container restarts since before are recorded, not asserted
    (kubeadm restarts static pods)."""
    upgrade.require(
        "UPG-05",
        upgrade_state,
        "Deployment web",
        "Service web",
        "Service web-np",
        "StatefulSet store",
        "DaemonSet prober",
    )
    upgrade.scale_web(upgrade_state, 3)
    client: ClientPod = client_pod()
    upgrade.assert_services_answer(upgrade_state, client)
    upgrade.assert_statefulset_writes(upgrade_state)
    upgrade.assert_daemonset_on_every_node(upgrade_state)
    record_property("restarts", upgrade.restarts_since(upgrade_state))


@after
@pytest.mark.claim("UPG-06")
def test_quota_is_still_enforced(upgrade: UpgradeJig, upgrade_state: UpgradeState) -> None:
    """UPG-06: a ResourceQuota at its limit MUST still be what it was and refuse one more object.
    Observed: the quota's spec as recorded; creating a third ConfigMap is answered 403 "exceeded quota"."""
    upgrade.require("UPG-06", upgrade_state, "ResourceQuota at-limit")
    upgrade.assert_quota_refuses(upgrade_state)


@after
@pytest.mark.claim("UPG-07")
def test_configmap_still_reaches_pods(upgrade: UpgradeJig, upgrade_state: UpgradeState) -> None:
    """UPG-07: a ConfigMap MUST keep its data and still reach a new pod as an environment variable and
    as a file. Observed: the ConfigMap's data as recorded; the consumer Deployment's replacement pod's
    $GREETING and /etc/settings/greeting."""
    upgrade.require("UPG-07", upgrade_state, "ConfigMap settings", "Deployment consumer")
    upgrade.assert_configmap_reaches_a_new_pod(upgrade_state)


@after
@pytest.mark.claim("UPG-08")
def test_every_component_is_at_the_target_version(
    upgrade: UpgradeJig, upgrade_state: UpgradeState, upgrade_settings
) -> None:
    """UPG-08: after the upgrade the API server MUST run the target version (--expect-version, else
    newer than before; the same version only with --allow-same-version, a rehearsal), every kubelet
    the API server's version and kube-proxy its minor, none newer than the API server. Observed: the
    API server's /version, each node's kubelet version, kube-proxy's image tag (not judged where the
    cluster has no kube-proxy DaemonSet)."""
    upgrade.assert_versions(upgrade_state, upgrade_settings.version_rule)


@after
@pytest.mark.claim("UPG-09")
def test_disruption_stayed_within_budget(
    upgrade: UpgradeJig, upgrade_state: UpgradeState, upgrade_settings, record_property
) -> None:
    """UPG-09: while the cluster was upgraded, each monitored target MUST NOT have been down (or
    unobserved) longer than --disruption-budget, the API server not longer than
    --api-disruption-budget (shorter outages are reported as tolerated). Observed: the monitor's
    output for this state and this upgrade (its sessions cover the upgrade window the cluster
    shows), intervals per target (NodePort per node with new and reused connections, the ClusterIP
    from inside on every node, the API server), stretches without samples and those its own
    listener was down (the probing side blind) counted as not observed."""
    counted = upgrade.assert_disruption_within(
        upgrade_state,
        upgrade_settings.monitor_file,
        upgrade_settings.disruption_budget,
        upgrade_settings.api_disruption_budget,
        upgrade_settings.steps_file,
    )
    record_property("seconds down or not observed", counted)
