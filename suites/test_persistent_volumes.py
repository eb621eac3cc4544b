"""PersistentVolumes, claims and StorageClasses as the notes describe them ([000], [001], [002],
[003]), and what the API server makes of [001]'s broken PV and StorageClass (ERR-03, ERR-04).

Every PV and StorageClass is cluster-wide: each test gets its own, named after the notes' one
with a per-test suffix (pv-01-<suffix>), and its static claims select only its own PVs (see
clusterproof/jigs/pv.py). [003]'s local PV pv-01 keeps its nodeAffinity node=node1: one node is
labelled node=node1 for the run; its path (/node-v in the notes) is a per-test directory under
/tmp/clusterproof-<run id>/ so tests do not share data.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kubernetes import client

from clusterproof import wait
from clusterproof.api_answers import ApiAnswer, raw_request
from clusterproof.cluster import Cluster
from clusterproof.errors import WaitTimeout
from clusterproof.jigs import pv as pvjig
from clusterproof.jigs.pv import PhaseLog, PVJig
from clusterproof.jigs.volume import PodFiles
from clusterproof.manifests import Manifests
from clusterproof.run import RunContext, hash_of
from clusterproof.tracker import ResourceTracker

PV_01 = "notes/persistent-volumes/pv-01.yaml"
PVC_01 = "notes/persistent-volumes/pvc-01.yaml"
POD_VOLUME_3 = "notes/persistent-volumes/pod-volume-3.yaml"
PV_SAMPLE = "notes/persistent-volumes/pv-sample.yaml"
SAMPLE_PVC = "claims/persistent-volumes/sample-pvc.yaml"
SAMPLE_STORAGECLASS = "notes/persistent-volumes/sample-storageclass.yaml"
PVC_POD = "claims/persistent-volumes/pvc-pod.yaml"
PVC_PENDING = "claims/persistent-volumes/pvc-pending.yaml"
ACCESS_MODES = "claims/persistent-volumes/access-modes.yaml"
PV_RECYCLE = "claims/persistent-volumes/pv-recycle.yaml"
DYNAMIC_PVC = "claims/persistent-volumes/dynamic-pvc.yaml"
NO_EXPANSION_CLASS = "claims/persistent-volumes/storageclass-no-expansion.yaml"
RESIZE_SET = "claims/persistent-volumes/resize-set.yaml"
PV_AS_WRITTEN = "notes-as-written/001-pv-sample-spec-under-metadata.yaml"
STORAGECLASS_AS_WRITTEN = "notes-as-written/001-storageclass-apiversion.yaml"

RESIZE_REFUSED = (
    "only dynamically provisioned pvc can be resized and the storageclass that provisions the pvc must support resize"
)
HOSTPATH_PROVISIONER = "kubernetes.io/host-path"
RECYCLE_TIMEOUT = 180.0  # the 1.20 recycler pod's deadline for hostPath is 60 s (+ scheduling, pulls)
PHASE_TIMEOUT = 300.0  # the whole life cycle: Available, Bound, a pod, deletions, Released


@pytest.fixture
def pv(
    request: pytest.FixtureRequest,
    cluster: Cluster,
    namespace: str,
    manifests: Manifests,
    tracker: ResourceTracker,
    run: RunContext,
) -> Iterator[PVJig]:
    jig = PVJig(cluster, manifests, tracker, run.run_id, f"{run.short_id}-{hash_of(request.node.nodeid, 4)}", namespace)
    yield jig
    jig.close()


def start_and_wait(
    cluster: Cluster, namespace: str, pv: PVJig, source: str, name: str | None = None, **kwargs
) -> client.V1Pod:
    name = pv.start_pod(source, name=name, **kwargs)
    return wait.pod_ready(cluster.core, namespace, name, 120)


def bind_pv_01(pv: PVJig, node1: str) -> client.V1PersistentVolume:
    """[003]: pv-01 (local, nodeAffinity node=node1, its path made on node1) Available, then
    pvc-01 binds it."""
    pv.apply(PV_01)
    pv.make_local_path(node1, pv.name("pv-01"))
    pv.pv_phase("pv-01", "Available")
    pv.apply(PVC_01)
    pv.pvc_bound("pvc-01")
    return pv.pv_phase("pv-01", "Bound")


# --- static binding ----------------------------------------------------------------------------


@pytest.mark.claim("PV-01")
def test_admin_made_pv_is_available_and_a_matching_claim_binds_it(pv: PVJig, namespace: str) -> None:
    pv.play_node1()
    pv.apply(PV_01)
    before = pv.pv_phase("pv-01", "Available")
    assert before.spec.claim_ref is None, f"pv-01 is Available yet claimed by {before.spec.claim_ref}"

    pv.apply(PVC_01)
    claim = pv.pvc_bound("pvc-01")
    volume = pv.pv_phase("pv-01", "Bound")

    assert claim.spec.volume_name == pv.name("pv-01"), f"pvc-01 bound {claim.spec.volume_name}, not pv-01"
    ref = volume.spec.claim_ref
    assert (ref.namespace, ref.name, ref.uid) == (namespace, "pvc-01", claim.metadata.uid), (
        f"pv-01's claimRef names {ref.namespace}/{ref.name} (uid {ref.uid}), not {namespace}/pvc-01"
    )
    assert claim.status.capacity["storage"] == "1G", f"pvc-01 got capacity {claim.status.capacity}, pv-01 offers 1G"


@pytest.mark.claim("PV-02")
def test_claims_asking_more_capacity_or_a_missing_access_mode_stay_pending(pv: PVJig) -> None:
    pv.apply(PV_01)
    pv.pv_phase("pv-01", "Available")
    pv.apply(PVC_PENDING)  # pvc-too-big (2G, RWO) and pvc-rwx (1G, RWX); pv-01 is 1G, RWO only

    for name in ("pvc-too-big", "pvc-rwx"):
        decision = pv.no_match_decision(name)
        phase = pv.pvc(name).status.phase
        assert phase == "Pending", f"claim {name} is {phase} after '{decision.reason}: {decision.message}'"
    volume = pv.pv("pv-01")
    assert volume.status.phase == "Available", (
        f"pv-01 is {volume.status.phase}, claimed by {volume.spec.claim_ref}: a mismatching claim took it"
    )
    # the PV itself was bindable all along: the claim that fits takes it
    pv.apply(PVC_01)
    assert pv.pvc_bound("pvc-01").spec.volume_name == pv.name("pv-01")


@pytest.mark.claim("PV-03")
@pytest.mark.needs_node_exec
def test_pod_mounts_the_claim_by_name_and_its_data_outlives_the_pod(
    cluster: Cluster, namespace: str, pv: PVJig, pod_files: PodFiles
) -> None:
    node1 = pv.play_node1()
    volume = bind_pv_01(pv, node1)
    path = volume.spec.local.path

    start_and_wait(cluster, namespace, pv, POD_VOLUME_3)
    pod_files.write("pod-volume-3", "/volume/kept.txt", f"written in {namespace}")
    cluster.delete_pod_now(namespace, "pod-volume-3")

    # another name: the kubelet may still be tearing down the old pod-volume-3 on the same node
    start_and_wait(cluster, namespace, pv, POD_VOLUME_3, name="pod-volume-3-next")
    seen = pod_files.read("pod-volume-3-next", "/volume/kept.txt")
    assert seen == f"written in {namespace}", (
        f"the new pod pod-volume-3-next reads {seen!r} from /volume/kept.txt (claim pvc-01); the deleted "
        "pod-volume-3 wrote it"
    )
    on_node = pv.node_file(node1, f"{path}/kept.txt")
    assert on_node == f"written in {namespace}", f"{path}/kept.txt on node {node1} reads {on_node!r}"


@pytest.mark.claim("PV-04")
@pytest.mark.needs_node_exec
def test_local_pv_with_node_affinity_pins_its_pods_to_the_labelled_node(
    cluster: Cluster, namespace: str, pv: PVJig
) -> None:
    cluster.require_workers(2)
    node1 = pv.play_node1()
    bind_pv_01(pv, node1)
    # every pod even prefers another node: only the PV's nodeAffinity can bring it to node1
    avoid_node1 = {
        "nodeAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {
                    "weight": 100,
                    "preference": {
                        "matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "NotIn", "values": [node1]}]
                    },
                }
            ]
        }
    }
    names = [pv.start_pod(POD_VOLUME_3, name=f"pod-volume-3-{i}", affinity=avoid_node1) for i in range(1, 5)]
    pods = [wait.pod_ready(cluster.core, namespace, name, 120) for name in names]

    placed = {p.metadata.name: p.spec.node_name for p in pods}
    labelled = pvjig.node1_nodes(cluster)
    assert set(placed.values()) <= set(labelled), (
        f"pods of claim pvc-01 (local PV pv-01, nodeAffinity node=node1 -> {labelled}) landed on {placed}"
    )


# --- reclaim policies --------------------------------------------------------------------------


def use_sample_pv(cluster: Cluster, namespace: str, pv: PVJig, pod_files: PodFiles) -> str:
    """[001]'s PV `sample` bound to sample-pvc and written through pvc-pod; returns the node."""
    pv.apply(SAMPLE_PVC)
    pv.pvc_bound("sample-pvc")
    pod = start_and_wait(cluster, namespace, pv, PVC_POD, values={"CLAIM_NAME": "sample-pvc"})
    pod_files.write("pvc-pod", "/data/kept.txt", f"written in {namespace}")
    cluster.delete_pod_now(namespace, "pvc-pod")
    return pod.spec.node_name


@pytest.mark.claim("PV-05")
@pytest.mark.needs_node_exec
def test_retain_keeps_the_released_pv_and_its_data_and_does_not_bind_it_again(
    cluster: Cluster, namespace: str, pv: PVJig, pod_files: PodFiles
) -> None:
    pv.apply(PV_SAMPLE)
    pv.pv_phase("sample", "Available")
    node = use_sample_pv(cluster, namespace, pv, pod_files)
    old_uid = pv.pvc("sample-pvc").metadata.uid

    pv.delete_claim("sample-pvc")
    released = pv.pv_phase("sample", "Released")
    path = released.spec.host_path.path
    assert released.spec.persistent_volume_reclaim_policy == "Retain"
    assert released.spec.claim_ref.uid == old_uid, f"the Released PV sample names claim {released.spec.claim_ref}"
    kept = pv.node_file(node, f"{path}/kept.txt")
    assert kept == f"written in {namespace}", f"after the claim went, {path}/kept.txt on node {node} reads {kept!r}"

    # the same claim again: the controller looks, finds no Available PV, and leaves it Pending
    pv.apply(SAMPLE_PVC)
    decision = pv.no_match_decision("sample-pvc")
    claim = pv.pvc("sample-pvc")
    volume = pv.pv("sample")
    assert claim.status.phase == "Pending", f"the new sample-pvc is {claim.status.phase} ({claim.spec.volume_name})"
    assert volume.status.phase == "Released", (
        f"PV sample went {volume.status.phase} (claimRef {volume.spec.claim_ref}) after the new claim "
        f"({decision.reason}: {decision.message})"
    )


def require_default_class(cluster: Cluster) -> client.V1StorageClass:
    default = pvjig.default_storage_class(cluster)
    cluster.require(
        default is not None,
        "no default StorageClass: none of the StorageClasses "
        f"[{pvjig.describe_storage_classes(cluster)}] is annotated storageclass.kubernetes.io/is-default-class=true",
    )
    return default


def provision(cluster: Cluster, namespace: str, pv: PVJig, storage_class: client.V1StorageClass) -> tuple:
    """dynamic-pvc naming the class; a consumer pod when the class waits for one. Returns (claim, PV)."""
    (doc,) = pv.load(DYNAMIC_PVC, dynamic=True)
    doc["spec"]["storageClassName"] = storage_class.metadata.name
    pv.create([doc])
    if storage_class.volume_binding_mode == "WaitForFirstConsumer":
        pv.start_pod(PVC_POD, values={"CLAIM_NAME": "dynamic-pvc"})
    try:
        claim = wait.pvc_phase(cluster.core, namespace, "dynamic-pvc", "Bound", 60)
    except WaitTimeout as e:
        hint = (
            "; kubernetes.io/host-path provisions only when kube-controller-manager runs with "
            "--enable-hostpath-provisioner"
            if storage_class.provisioner == HOSTPATH_PROVISIONER
            else ""
        )
        raise AssertionError(
            f"StorageClass {storage_class.metadata.name} (provisioner {storage_class.provisioner}) gave claim "
            f"dynamic-pvc no PV: {e}; claim events: {pv.claim_events('dynamic-pvc')}{hint}"
        ) from None
    pv.track_provisioned(claim.spec.volume_name)
    return claim, cluster.core.read_persistent_volume(claim.spec.volume_name)


@pytest.mark.claim("PV-09")
def test_claim_naming_a_storage_class_gets_a_pv_provisioned(cluster: Cluster, namespace: str, pv: PVJig) -> None:
    storage_class = require_default_class(cluster)
    _, volume = provision(cluster, namespace, pv, storage_class)

    who = (volume.metadata.annotations or {}).get(pvjig.PROVISIONED_BY)
    assert who == storage_class.provisioner, (
        f"PV {volume.metadata.name} was made by {who!r}, not the class's provisioner {storage_class.provisioner}"
    )
    assert volume.spec.storage_class_name == storage_class.metadata.name
    ref = volume.spec.claim_ref
    assert (ref.namespace, ref.name) == (namespace, "dynamic-pvc"), f"the new PV is claimed by {ref}"
    assert volume.status.phase == "Bound", f"the provisioned PV is {volume.status.phase}"


@pytest.mark.claim("PV-06")
def test_deleting_the_claim_deletes_its_dynamically_provisioned_pv(cluster: Cluster, namespace: str, pv: PVJig) -> None:
    storage_class = require_default_class(cluster)
    cluster.require(
        (storage_class.reclaim_policy or "Delete") == "Delete",
        f"the default StorageClass {storage_class.metadata.name} reclaims with {storage_class.reclaim_policy}, "
        "not Delete",
    )
    _, volume = provision(cluster, namespace, pv, storage_class)
    name = volume.metadata.name
    policy = volume.spec.persistent_volume_reclaim_policy
    assert policy == "Delete", f"PV {name} of class {storage_class.metadata.name} has reclaim policy {policy}"

    pv.delete_claim("dynamic-pvc")

    def describe(_: object) -> str:
        try:
            left = cluster.core.read_persistent_volume(name)
        except client.ApiException as e:
            return f"HTTP {e.status}"
        events = "; ".join(f"{e.reason}: {e.message}" for e in pv.pv_events(name)) or "no events"
        return f"phase {left.status.phase} ({left.status.message or ''}); events: {events}"

    try:
        wait.gone(lambda: cluster.core.read_persistent_volume(name), f"PV {name}", 60)
    except WaitTimeout as e:
        raise AssertionError(
            f"claim dynamic-pvc deleted, its PV {name} (reclaim Delete, provisioner {storage_class.provisioner}) "
            f"is still there: {describe(None)} ({e})"
        ) from None


@pytest.mark.claim("PV-07")
def test_recycle_reclaim_policy_outcome_is_recorded(pv: PVJig, record_property) -> None:
    """Recycle is deprecated [001]. What this cluster does with it is recorded (in the test's
    properties): the API accepts it (with or without a warning); after the claim goes, the
    controller runs a recycler pod (1.20: image busybox:1.27) and the PV is Available again,
    or Failed when that pod failed (offline: the image cannot be pulled). Either passes."""
    pv_doc, pvc_doc = pv.load(PV_RECYCLE)
    answer = pv.create_raw(pv_doc)
    assert answer.status == 201, f"the API refused PV pv-recycle (Recycle): {answer}"
    assert answer.body["spec"]["persistentVolumeReclaimPolicy"] == "Recycle", answer.body["spec"]
    record_property("PV-07 create", f"accepted, warnings: {list(answer.warnings) or 'none'}")
    pv.create([pvc_doc])
    pv.pvc_bound("pvc-recycle")

    pv.delete_claim("pvc-recycle")
    outcome = pv.phase_in("pv-recycle", ("Available", "Failed"), RECYCLE_TIMEOUT)
    name = outcome.metadata.name
    recycler = [e.message for e in pv.pv_events(name) if e.reason == "RecyclerPod"]
    record_property("PV-07 outcome", f"{outcome.status.phase}: {outcome.status.message or ''}")
    record_property("PV-07 recycler pod", " | ".join(dict.fromkeys(recycler)) or "no RecyclerPod events")

    if outcome.status.phase == "Available":
        assert outcome.spec.claim_ref is None, f"recycled PV {name} still names claim {outcome.spec.claim_ref}"
        return
    failed = [e.message for e in pv.pv_events(name) if e.reason == "VolumeFailedRecycle"]
    assert (outcome.status.message or "").startswith("Recycle failed"), (
        f"PV {name} Failed with message {outcome.status.message!r}"
    )
    assert failed, f"PV {name} Failed without a VolumeFailedRecycle event; RecyclerPod events: {recycler}"
    assert recycler, f"PV {name} Failed ({outcome.status.message}) but no recycler pod was reported"


@pytest.mark.claim("PV-08")
def test_access_modes_are_matched_when_binding(pv: PVJig) -> None:
    pv.apply(ACCESS_MODES)
    bound = pv.claims_bound(["pvc-rwo", "pvc-rox", "pvc-rwx"])
    expected = {"pvc-rwo": "pv-rwo", "pvc-rox": "pv-rox", "pvc-rwx": "pv-rwx"}
    assert bound == expected, (
        f"claim -> PV {bound} (None: Pending); each PV offers one mode (pv-rwo RWO, pv-rox ROX, pv-rwx RWX) "
        f"and each claim asks one: expected {expected}"
    )


@pytest.mark.claim("PV-10")
def test_growing_a_claim_is_refused_without_allow_volume_expansion_and_accepted_with_it(
    cluster: Cluster, namespace: str, pv: PVJig
) -> None:
    pv.create(pv.load(SAMPLE_STORAGECLASS) + pv.load(NO_EXPANSION_CLASS))
    pv.apply(RESIZE_SET)
    for claim in ("resize-allowed", "resize-refused"):
        pv.pvc_bound(claim)
    grow = {"spec": {"resources": {"requests": {"storage": "2Gi"}}}}

    no_expansion = pv.name("sample-storageclass-no-expansion")
    try:
        cluster.core.patch_namespaced_persistent_volume_claim("resize-refused", namespace, grow)
    except client.ApiException as e:
        answer = ApiAnswer.from_exception(e)
    else:
        raise AssertionError(
            f"growing resize-refused to 2Gi (class {no_expansion}, no allowVolumeExpansion) was accepted: "
            "is the API server's PersistentVolumeClaimResize admission plugin enabled?"
        )
    assert answer.status == 403 and answer.reason == "Forbidden" and RESIZE_REFUSED in answer.message, (
        f"growing resize-refused (class {no_expansion}, no allowVolumeExpansion) answered {answer}"
    )

    try:
        grown = cluster.core.patch_namespaced_persistent_volume_claim("resize-allowed", namespace, grow)
    except client.ApiException as e:
        raise AssertionError(
            f"growing resize-allowed (class {pv.name('sample-storageclass')}, allowVolumeExpansion: true) was "
            f"refused: {ApiAnswer.from_exception(e)}"
        ) from None
    assert grown.spec.resources.requests["storage"] == "2Gi"
    assert pv.pvc("resize-refused").spec.resources.requests["storage"] == "1Gi"


@pytest.mark.claim("PV-11")
@pytest.mark.needs_node_exec
def test_pv_goes_available_bound_released_in_order(
    cluster: Cluster, namespace: str, pv: PVJig, pod_files: PodFiles
) -> None:
    docs = pv.load(PV_SAMPLE)
    with PhaseLog(cluster.core, pv.name("sample"), "Released", PHASE_TIMEOUT) as log:
        pv.create(docs)
        pv.pv_phase("sample", "Available")
        use_sample_pv(cluster, namespace, pv, pod_files)  # binding, using
        pv.delete_claim("sample-pvc")  # reclaiming (Retain)
        phases = log.result()

    seen = phases[1:] if phases[:1] == ["Pending"] else phases  # a new PV is Pending until the controller saw it
    assert seen == ["Available", "Bound", "Released"], f"PV sample went through {' -> '.join(phases) or 'nothing'}"


# --- the notes as written ----------------------------------------------------------------------


@pytest.mark.claim("ERR-03")
def test_notes_pv_with_spec_under_metadata_is_refused_for_lack_of_a_spec(
    cluster: Cluster, manifests: Manifests, pv: PVJig
) -> None:
    (doc,) = manifests.load_raw(PV_AS_WRITTEN).documents()
    doc["metadata"]["name"] = f"sample-{pv.suffix}"
    answer = raw_request(cluster, "POST", "/api/v1/persistentvolumes", doc, query=[("dryRun", "All")])

    assert answer.status == 422 and answer.reason == "Invalid", f"the notes' PV answered {answer}"
    causes = {(c.field, c.reason) for c in answer.causes}
    # metadata.spec is an unknown field: dropped, so the PV arrives without any spec
    assert causes == {
        ("spec.accessModes", "FieldValueRequired"),
        ("spec.capacity", "FieldValueRequired"),
        ("spec.capacity", "FieldValueNotSupported"),
        ("spec", "FieldValueRequired"),
    }, f"the notes' PV was refused for {answer.causes}"
    assert any("must specify a volume type" in c.message for c in answer.causes), answer.causes
    assert not any("metadata" in c.field for c in answer.causes), f"a cause names metadata: {answer.causes}"


@pytest.mark.claim("ERR-03")
def test_kubectl_refuses_the_notes_pv_for_the_unknown_field_metadata_spec(
    cluster: Cluster, manifests: Manifests
) -> None:
    path = manifests.load_raw(PV_AS_WRITTEN).path
    done = cluster.kubectl("create", "--dry-run=server", "-f", str(path), check=False)
    assert done.returncode != 0, f"kubectl accepted the notes' PV: {done.stdout.strip()}"
    assert "unknown field" in done.stderr and "spec" in done.stderr, f"kubectl said: {done.stderr.strip()}"


@pytest.mark.claim("ERR-04")
def test_notes_storageclass_without_apiversion_is_taken_from_the_url_by_the_api_server(
    cluster: Cluster, manifests: Manifests, pv: PVJig, record_property
) -> None:
    """`apiversion` (lower case) is not apiVersion: the object names no API version. The API
    server takes group and version from the URL it was sent to and drops the unknown field
    (dry run: nothing is stored)."""
    (doc,) = manifests.load_raw(STORAGECLASS_AS_WRITTEN).documents()
    assert "apiVersion" not in doc and doc["apiversion"] == "storage.k8s.io/v1"
    doc["metadata"]["name"] = f"sample-storageclass-{pv.suffix}"
    answer = raw_request(
        cluster, "POST", "/apis/storage.k8s.io/v1/storageclasses", doc, query=[("dryRun", "All")]
    )
    record_property("ERR-04 server", f"{answer}, apiVersion {answer.body.get('apiVersion')}")

    assert answer.status == 201, f"POST of the notes' StorageClass to /apis/storage.k8s.io/v1 answered {answer}"
    made = answer.body
    assert (made.get("apiVersion"), made.get("kind")) == ("storage.k8s.io/v1", "StorageClass"), made
    assert "apiversion" not in made, f"the server kept the unknown field: {made}"
    assert (made["provisioner"], made["allowVolumeExpansion"]) == ("kubernetes.io/gce-pd", True), made


@pytest.mark.claim("ERR-04")
def test_kubectl_refuses_the_notes_storageclass_without_apiversion(cluster: Cluster, manifests: Manifests) -> None:
    path = manifests.load_raw(STORAGECLASS_AS_WRITTEN).path
    done = cluster.kubectl("create", "--dry-run=server", "-f", str(path), check=False)
    assert done.returncode != 0, f"kubectl accepted the notes' StorageClass: {done.stdout.strip()}"
    said = done.stderr.strip()
    assert "apiVersion not set" in said or "'apiVersion' is missing" in said, f"kubectl said: {said}"
