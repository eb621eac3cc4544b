"""Before and after a cluster upgrade: what an upgrade must keep (UPG rows of
clusterproof/data/UPGRADE-CLAIMS.md; not claims of the notes).

`--phase before` creates durable state in namespaces of its own and records it (state file and a
ConfigMap copy); nothing of it is deleted by that run. `--phase after` compares the upgraded
cluster with the record, then the selected suites run again on the new version. Without
--phase these tests are deselected.
"""

from __future__ import annotations

import pytest

from clusterproof.cluster import Cluster
from clusterproof.upgrade.jig import UpgradeJig
from clusterproof.upgrade.state import UpgradeState

before = pytest.mark.upgrade_phase("before")
after = pytest.mark.upgrade_phase("after")


@before
@pytest.mark.claim("UPG-01")
def test_state_to_carry_over_is_created_and_recorded(upgrade: UpgradeJig, upgrade_settings, cluster: Cluster) -> None:
    """UPG-01: before an upgrade, the suite MUST leave a Deployment behind a ClusterIP and a NodePort
    Service with a PodDisruptionBudget, a StatefulSet with data on its claims, a Retain volume with
    data, a DaemonSet, a consumed ConfigMap, a ResourceQuota at its limit and a hostPath file, and
    record their identities and checksums. Observed: the state file and its ConfigMap copy."""
    state = upgrade.create_durable_state(upgrade_settings.state_file, cluster.context)
    upgrade.assert_recorded(state, upgrade_settings.state_file)


@after
@pytest.mark.claim("UPG-02")
def test_objects_keep_their_identity(upgrade: UpgradeJig, upgrade_state: UpgradeState) -> None:
    """UPG-02: an upgrade MUST NOT replace the workload and Service objects. Observed: the same UIDs,
    ClusterIP and nodePort as recorded before."""
    upgrade.assert_same_identity(upgrade_state)


@after
@pytest.mark.claim("UPG-03")
def test_volumes_stay_bound_to_their_claims(upgrade: UpgradeJig, upgrade_state: UpgradeState) -> None:
    """UPG-03: every PersistentVolume MUST stay Bound to the same claim. Observed: each PV's claimRef
    (name and UID) and phase."""
    upgrade.assert_volumes_still_bound(upgrade_state)


@after
@pytest.mark.claim("UPG-04")
def test_data_written_before_is_unchanged(upgrade: UpgradeJig, upgrade_state: UpgradeState) -> None:
    """UPG-04: data written before the upgrade MUST read back unchanged. Observed: the sha256 of each
    StatefulSet claim's file, of the Retain volume's file and of the hostPath file on its node."""
    upgrade.assert_data_unchanged(upgrade_state)


@after
@pytest.mark.claim("UPG-05")
def test_controllers_still_act(upgrade: UpgradeJig, upgrade_state: UpgradeState, record_property) -> None:
    """UPG-05: after the upgrade the controllers MUST still act. Observed: the Deployment scales to 3
    ready pods, a StatefulSet pod writes to its claim, the DaemonSet is ready on every node.
    Container restarts since before are recorded, not asserted (kubeadm restarts static pods)."""
    upgrade.assert_deployment_scales(upgrade_state)
    upgrade.assert_statefulset_writes(upgrade_state)
    upgrade.assert_daemonset_on_every_node(upgrade_state)
    record_property("restarts", upgrade.restarts_since(upgrade_state))


@after
@pytest.mark.claim("UPG-06")
def test_quota_is_still_enforced(upgrade: UpgradeJig, upgrade_state: UpgradeState) -> None:
    """UPG-06: a ResourceQuota at its limit MUST still refuse one more object. Observed: creating a
    third ConfigMap is answered 403 "exceeded quota"."""
    upgrade.assert_quota_refuses(upgrade_state)


@after
@pytest.mark.claim("UPG-07")
def test_configmap_still_reaches_pods(upgrade: UpgradeJig, upgrade_state: UpgradeState) -> None:
    """UPG-07: a ConfigMap MUST still reach a new pod as an environment variable and as a file.
    Observed: the consumer Deployment's replacement pod's $GREETING and /etc/settings/greeting."""
    upgrade.assert_configmap_reaches_a_new_pod(upgrade_state)


@after
@pytest.mark.claim("UPG-08")
def test_every_component_is_at_the_target_version(upgrade: UpgradeJig, upgrade_state: UpgradeState) -> None:
    """UPG-08: after the upgrade every kubelet and kube-proxy MUST run the API server's version, and
    no kubelet may be newer than the API server. Observed: each node's kubelet version, kube-proxy's
    image tag, the API server's /version."""
    upgrade.assert_versions(target=None)


@after
@pytest.mark.claim("UPG-09")
def test_disruption_stayed_within_budget(
    upgrade: UpgradeJig, upgrade_state: UpgradeState, upgrade_settings, record_property
) -> None:
    """UPG-09: while the cluster was upgraded, each monitored target MUST NOT have been down longer than
    --disruption-budget, the API server not longer than --api-disruption-budget (shorter outages are
    reported as tolerated). Observed: the monitor's
    intervals per target (NodePort per node with new and reused connections, the ClusterIP from
    inside on every node, the API server); the monitor's own listener shows the probing side was up."""
    down = upgrade.assert_disruption_within(
        upgrade_settings.monitor_file, upgrade_settings.disruption_budget, upgrade_settings.api_disruption_budget
    )
    record_property("seconds down", down)
