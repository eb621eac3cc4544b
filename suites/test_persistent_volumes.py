"""PersistentVolumes, claims and StorageClasses as the notes describe them ([000], [001], [002],
[003]), and what the API server makes of [001]'s broken PV and StorageClass (ERR-03, ERR-04).

Every PV and StorageClass is cluster-wide: each test gets its own, named after the notes' one
with a per-test suffix (pv-01-<suffix>), and its static claims select only its own PVs (see
clusterproof/jigs/pv_names.py). [003]'s local PV pv-01 keeps its nodeAffinity node=node1: one node
is labelled node=node1 for the module; its path (/node-v in the notes) is a per-test directory
under /tmp/clusterproof-<run id>/ so tests do not share data.
"""

from __future__ import annotations

import pytest
from kubernetes import client

from clusterproof.api_answers import raw_request, unless_missing
from clusterproof.cluster import Cluster
from clusterproof.jigs import pods, pv
from clusterproof.jigs.pods import PodFiles
from clusterproof.jigs.pv import PVJig
from clusterproof.jigs.pv_phases import PhaseLog
from clusterproof.manifests import Manifests
from clusterproof.verdicts import setup_step

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
RECYCLE_TIMEOUT = 180.0  # the 1.20 recycler pod's deadline for hostPath is 60 s (+ scheduling, pulls)
PHASE_TIMEOUT = 300.0  # the whole life cycle: Available, Bound, a pod, deletions, Released


@pytest.fixture
def jig(cluster: Cluster, manifests: Manifests) -> PVJig:
    return PVJig(cluster, manifests)


def label_node1(jig: PVJig) -> str:
    with setup_step("label a node node=node1 (pv-01's nodeAffinity)"):
        return jig.label_node1()


def bind_pv_01(jig: PVJig, node1: str) -> client.V1PersistentVolume:
    """[003]: pv-01 (local, nodeAffinity node=node1, its path made on node1) Available, then
    pvc-01 binds it; returns pv-01 Bound. A set-up step (binding is PV-01's observable)."""
    jig.apply(PV_01)
    with setup_step(f"bind pv-01 (local, on {node1}) to pvc-01"):
        jig.make_local_path(node1, "pv-01")
        jig.wait_pv_phase("pv-01", "Available")
        jig.apply(PVC_01)
        jig.wait_claim_bound("pvc-01")
        return jig.wait_pv_phase("pv-01", "Bound")


def bind_sample_pv_and_write(jig: PVJig, pod_files: PodFiles, text: str) -> str:
    """[001]'s PV `sample` bound to sample-pvc, `text` written to kept.txt on it through pvc-pod,
    which is then deleted; returns the pod's node."""
    jig.apply(SAMPLE_PVC)
    jig.wait_claim_bound("sample-pvc")
    pod = jig.start_pod(PVC_POD, values={"CLAIM_NAME": "sample-pvc"})
    pod_files.write("pvc-pod", "/data/kept.txt", text)
    jig.cluster.delete_pod_now(jig.namespace, "pvc-pod")
    return pod.spec.node_name


# --- static binding ----------------------------------------------------------------------------


@pytest.mark.claim("PV-01")
def test_admin_made_pv_is_available_and_a_matching_claim_binds_it(jig: PVJig, namespace: str) -> None:
    """An admin-made PV MUST be Available; a claim matching its capacity, access mode and
    `storageClassName: ""` MUST bind it, both then Bound [000, 003].

    Observed: pv-01's phase and claimRef before and after pvc-01; pvc-01's volumeName and capacity."""
    label_node1(jig)
    jig.apply(PV_01)
    before = jig.wait_pv_phase("pv-01", "Available")
    assert before.spec.claim_ref is None, f"pv-01 is Available yet claimed by {before.spec.claim_ref}"

    jig.apply(PVC_01)
    claim = jig.wait_claim_bound("pvc-01")
    volume = jig.wait_pv_phase("pv-01", "Bound")

    assert claim.spec.volume_name == jig.name("pv-01"), f"pvc-01 bound {claim.spec.volume_name}, not pv-01"
    ref = volume.spec.claim_ref
    assert (ref.namespace, ref.name, ref.uid) == (namespace, "pvc-01", claim.metadata.uid), (
        f"pv-01's claimRef names {ref.namespace}/{ref.name} (uid {ref.uid}), not {namespace}/pvc-01"
    )
    assert claim.status.capacity["storage"] == "1G", f"pvc-01 got capacity {claim.status.capacity}, pv-01 offers 1G"


@pytest.mark.claim("PV-02")
def test_claims_asking_more_capacity_or_a_missing_access_mode_stay_pending(jig: PVJig) -> None:
    """A claim asking more capacity, or an access mode no PV offers, MUST stay Pending [003].

    Observed: the PV controller's decision (FailedBinding) about pvc-too-big (2G) and pvc-rwx
    (RWX) against pv-01 (1G, RWO), both then Pending and pv-01 still Available; pvc-01, which
    fits, then binding pv-01."""
    jig.apply(PV_01)
    with setup_step("wait until pv-01 is Available"):
        jig.wait_pv_phase("pv-01", "Available")
    jig.apply(PVC_PENDING)  # pvc-too-big (2G, RWO) and pvc-rwx (1G, RWX); pv-01 is 1G, RWO only

    for name in ("pvc-too-big", "pvc-rwx"):
        decision = jig.wait_no_match_decision(name)
        phase = jig.pvc(name).status.phase
        assert phase == "Pending", f"claim {name} is {phase} after '{decision.reason}: {decision.message}'"
    volume = jig.pv("pv-01")
    assert volume.status.phase == "Available", (
        f"pv-01 is {volume.status.phase}, claimed by {volume.spec.claim_ref}: a mismatching claim took it"
    )
    # the PV itself was bindable all along: the claim that fits takes it
    jig.apply(PVC_01)
    assert jig.wait_claim_bound("pvc-01").spec.volume_name == jig.name("pv-01")


@pytest.mark.claim("PV-03")
@pytest.mark.needs_node_exec
def test_pod_mounts_the_claim_by_name_and_its_data_outlives_the_pod(
    jig: PVJig, namespace: str, pod_files: PodFiles
) -> None:
    """A pod MUST mount a claim by its claimName, and what it writes there MUST outlive the pod [000, 003].

    Observed: a file pod-volume-3 writes through pvc-01, read back by a new pod of the same
    claim after pod-volume-3 was deleted, and found at pv-01's path on node1."""
    node1 = label_node1(jig)
    path = bind_pv_01(jig, node1).spec.local.path

    jig.start_pod(POD_VOLUME_3)
    pod_files.write("pod-volume-3", "/volume/kept.txt", f"written in {namespace}")
    with setup_step("delete pod pod-volume-3"):
        jig.cluster.delete_pod_now(namespace, "pod-volume-3")

    # another name: the kubelet may still be tearing down the old pod-volume-3 on the same node
    jig.start_pod(POD_VOLUME_3, name="pod-volume-3-next")
    seen = pod_files.read("pod-volume-3-next", "/volume/kept.txt")
    assert seen == f"written in {namespace}", (
        f"the new pod pod-volume-3-next reads {seen!r} from /volume/kept.txt (claim pvc-01); the deleted "
        "pod-volume-3 wrote it"
    )
    on_node = jig.node_files.read(node1, f"{path}/kept.txt")
    assert on_node == f"written in {namespace}", f"{path}/kept.txt on node {node1} reads {on_node!r}"


def avoid(node: str) -> dict:
    """A pod affinity that prefers every node but `node`."""
    prefer_not = {"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "NotIn", "values": [node]}]}
    return {
        "nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 100, "preference": prefer_not}]}
    }


@pytest.mark.claim("PV-04")
@pytest.mark.needs_node_exec
def test_local_pv_with_node_affinity_pins_its_pods_to_the_labelled_node(jig: PVJig, cluster: Cluster) -> None:
    """A local PV with nodeAffinity (node=node1) MUST pin every pod using it to that node [003].

    Observed: where four pods of claim pvc-01 land, although each prefers any other node; a pod
    the scheduler cannot place (no node1 to run it: a volume node affinity conflict) fails it."""
    cluster.require_workers(2)
    node1 = label_node1(jig)
    bind_pv_01(jig, node1)

    def avoid_node1(doc: dict) -> None:
        doc["spec"]["affinity"] = avoid(node1)

    names = [f"pod-volume-3-{i}" for i in range(1, 5)]
    for name in names:
        pods.create_pod(jig.manifests, POD_VOLUME_3, name=name, edit=avoid_node1)
    placed = jig.where_pods_of_pv_01_land(names, node1)

    labelled = pv.node1_nodes(cluster)
    assert set(placed.values()) <= set(labelled), (
        f"pods of claim pvc-01 (local PV pv-01, nodeAffinity node=node1 -> {labelled}) landed on {placed}"
    )


# --- reclaim policies --------------------------------------------------------------------------


@pytest.mark.claim("PV-05")
@pytest.mark.needs_node_exec
def test_retain_keeps_the_released_pv_and_its_data_and_does_not_bind_it_again(
    jig: PVJig, namespace: str, pod_files: PodFiles
) -> None:
    """Retain: deleting the claim MUST leave the PV Released with its data, and the PV MUST NOT be
    bound again by itself [001].

    Observed: PV sample Released (policy Retain, claimRef still the deleted claim's uid); the
    file written through it still on its node; a new sample-pvc looked at by the PV controller
    (FailedBinding) and left Pending, the PV still Released."""
    jig.apply(PV_SAMPLE)
    text = f"written in {namespace}"
    with setup_step("bind PV sample to sample-pvc and write kept.txt through a pod"):
        jig.wait_pv_phase("sample", "Available")
        node = bind_sample_pv_and_write(jig, pod_files, text)
    old_uid = jig.pvc("sample-pvc").metadata.uid

    with setup_step("delete claim sample-pvc"):
        jig.delete_claim("sample-pvc")
    released = jig.wait_pv_phase("sample", "Released")
    path = released.spec.host_path.path
    assert released.spec.persistent_volume_reclaim_policy == "Retain"
    assert released.spec.claim_ref.uid == old_uid, f"the Released PV sample names claim {released.spec.claim_ref}"
    kept = jig.node_files.read(node, f"{path}/kept.txt")
    assert kept == text, f"after the claim went, {path}/kept.txt on node {node} reads {kept!r}"

    # the same claim again: the controller looks, finds no Available PV, and leaves it Pending
    jig.apply(SAMPLE_PVC)
    decision = jig.wait_no_match_decision("sample-pvc")
    claim = jig.pvc("sample-pvc")
    volume = jig.pv("sample")
    assert claim.status.phase == "Pending", f"the new sample-pvc is {claim.status.phase} ({claim.spec.volume_name})"
    assert volume.status.phase == "Released", (
        f"PV sample went {volume.status.phase} (claimRef {volume.spec.claim_ref}) after the new claim "
        f"({decision.reason}: {decision.message})"
    )


@pytest.mark.claim("PV-09")
def test_claim_naming_a_storage_class_gets_a_pv_provisioned(jig: PVJig, cluster: Cluster, namespace: str) -> None:
    """A claim naming a StorageClass MUST get a PV provisioned for it [000, 002].

    Observed: dynamic-pvc, naming the default class, Bound to a new PV made by the class's
    provisioner (its provisioned-by annotation), of that class, claimed by dynamic-pvc.
    Skipped when the cluster has no default StorageClass."""
    storage_class = pv.require_default_class(cluster)
    volume = jig.provision(DYNAMIC_PVC, "dynamic-pvc", storage_class, consumer=PVC_POD)

    who = (volume.metadata.annotations or {}).get(pv.PROVISIONED_BY)
    assert who == storage_class.provisioner, (
        f"PV {volume.metadata.name} was made by {who!r}, not the class's provisioner {storage_class.provisioner}"
    )
    assert volume.spec.storage_class_name == storage_class.metadata.name
    ref = volume.spec.claim_ref
    assert (ref.namespace, ref.name) == (namespace, "dynamic-pvc"), f"the new PV is claimed by {ref}"
    assert volume.status.phase == "Bound", f"the provisioned PV is {volume.status.phase}"


@pytest.mark.claim("PV-06")
def test_deleting_the_claim_deletes_its_dynamically_provisioned_pv(jig: PVJig, cluster: Cluster) -> None:
    """Delete: deleting the claim MUST delete its dynamically provisioned PV [001].

    Observed: the provisioned PV's reclaim policy (Delete) and, after dynamic-pvc is deleted,
    the PV gone. Skipped without a default StorageClass, or when it does not reclaim with Delete."""
    storage_class = pv.require_default_class(cluster)
    cluster.require(
        (storage_class.reclaim_policy or "Delete") == "Delete",
        f"the default StorageClass {storage_class.metadata.name} reclaims with {storage_class.reclaim_policy}, "
        "not Delete",
    )
    with setup_step(f"provision a PV for dynamic-pvc (StorageClass {storage_class.metadata.name})"):
        volume = jig.provision(DYNAMIC_PVC, "dynamic-pvc", storage_class, consumer=PVC_POD)
    name = volume.metadata.name
    policy = volume.spec.persistent_volume_reclaim_policy
    assert policy == "Delete", f"PV {name} of class {storage_class.metadata.name} has reclaim policy {policy}"

    with setup_step("delete pod pvc-pod, then claim dynamic-pvc"):
        # a claim in use stays Terminating (kubernetes.io/pvc-protection) until its pod is gone
        # (the consumer exists only where the class waits for one)
        unless_missing(lambda: jig.cluster.delete_pod_now(jig.namespace, "pvc-pod"))
        jig.delete_claim("dynamic-pvc")
    why = f"claim dynamic-pvc is deleted and its PV reclaims with Delete (provisioner {storage_class.provisioner})"
    jig.wait_pv_deleted(name, hint=why)


@pytest.mark.claim("PV-07")
@pytest.mark.needs_node_exec  # the recycler pod mounts the PV's host path on a node (the runtime makes it)
def test_recycle_reclaim_policy_is_stated_deprecated_by_the_cluster(
    jig: PVJig, cluster: Cluster, record_property
) -> None:
    """Recycle is deprecated [001]: the cluster MUST say so to whoever asks for it. Since 1.30
    (kubernetes#122339) the API server answers a PV with reclaim policy Recycle with a
    deprecation warning; what the PV controller then does with it (a recycler pod, Available
    again, or Failed) is recorded, not judged.

    Observed: the API server's warnings on the raw POST of PV pv-recycle (and any event about the
    PV that calls it deprecated); after pvc-recycle is deleted, the PV's phase and message and
    its RecyclerPod / VolumeFailedRecycle events, recorded. Skipped on a server older than 1.30
    that states the deprecation nowhere."""
    pv_doc, pvc_doc = jig.load(PV_RECYCLE)
    answer = jig.create_raw(pv_doc)
    assert answer.status == 201, f"the API refused PV pv-recycle (Recycle): {answer}"
    assert answer.body["spec"]["persistentVolumeReclaimPolicy"] == "Recycle", answer.body["spec"]
    record_property("PV-07 create", f"accepted, warnings: {list(answer.warnings) or 'none'}")
    jig.create([pvc_doc])
    with setup_step("bind pvc-recycle to pv-recycle, then delete the claim"):
        jig.wait_claim_bound("pvc-recycle")
        jig.delete_claim("pvc-recycle")
    outcome = jig.wait_pv_phase("pv-recycle", ("Available", "Failed"), RECYCLE_TIMEOUT)
    name = outcome.metadata.name
    events = jig.pv_events(name)
    record_property("PV-07 outcome", f"{outcome.status.phase}: {outcome.status.message or ''}")
    record_property("PV-07 events", " | ".join(dict.fromkeys(f"{e.reason}: {e.message}" for e in events)) or "none")

    stated = pv.recycle_deprecation(answer.warnings, events)
    if not stated:
        cluster.require(
            cluster.server_version >= pv.RECYCLE_WARNED_SINCE,
            f"{cluster.git_version} predates the API server's deprecation warning for Recycle "
            f"({'.'.join(map(str, pv.RECYCLE_WARNED_SINCE))}) and no event calls it deprecated: nothing to observe",
        )
    assert stated, (
        f"the API server accepted PV {name} with reclaim policy Recycle without a deprecation warning "
        f"(warnings: {list(answer.warnings) or 'none'}), and no event calls it deprecated "
        f"(events: {[f'{e.reason}: {e.message}' for e in events] or 'none'}); {cluster.git_version} should warn"
    )
    record_property("observed", f"deprecation stated: {stated[0]}")


@pytest.mark.claim("PV-08")
def test_access_modes_are_matched_when_binding(jig: PVJig) -> None:
    """Access modes RWO / ROX / RWX MUST be matched when binding [001].

    Observed: which PV each claim binds, three PVs offering one mode each and three claims
    asking one mode each."""
    jig.apply(ACCESS_MODES)
    bound = jig.volumes_bound_to(["pvc-rwo", "pvc-rox", "pvc-rwx"])
    expected = {"pvc-rwo": "pv-rwo", "pvc-rox": "pv-rox", "pvc-rwx": "pv-rwx"}
    assert bound == expected, (
        f"claim -> PV {bound} (None: Pending); each PV offers one mode (pv-rwo RWO, pv-rox ROX, pv-rwx RWX) "
        f"and each claim asks one: expected {expected}"
    )


@pytest.mark.claim("PV-10")
def test_growing_a_claim_is_refused_without_allow_volume_expansion_and_accepted_with_it(jig: PVJig) -> None:
    """Growing a claim MUST be refused when its StorageClass lacks `allowVolumeExpansion`, and
    accepted when the class allows it [001].

    Observed: the API server's answers to growing resize-refused and resize-allowed (bound
    claims of the two classes) from 1Gi to 2Gi, and the sizes they then ask for."""
    jig.create(jig.load(SAMPLE_STORAGECLASS) + jig.load(NO_EXPANSION_CLASS))
    jig.apply(RESIZE_SET)
    with setup_step("bind resize-allowed and resize-refused"):
        for claim in ("resize-allowed", "resize-refused"):
            jig.wait_claim_bound(claim)

    no_expansion = jig.name("sample-storageclass-no-expansion")
    refused = jig.try_grow_claim("resize-refused", "2Gi")
    assert not refused.accepted, (
        f"growing resize-refused to 2Gi (class {no_expansion}, no allowVolumeExpansion) was accepted: "
        "is the API server's PersistentVolumeClaimResize admission plugin enabled?"
    )
    assert refused.status == 403 and refused.reason == "Forbidden" and RESIZE_REFUSED in refused.message, (
        f"growing resize-refused (class {no_expansion}, no allowVolumeExpansion) answered {refused}"
    )

    grown = jig.try_grow_claim("resize-allowed", "2Gi")
    assert grown.accepted, (
        f"growing resize-allowed (class {jig.name('sample-storageclass')}, allowVolumeExpansion: true) was "
        f"refused: {grown}"
    )
    assert grown.body["spec"]["resources"]["requests"]["storage"] == "2Gi"
    assert jig.pvc("resize-refused").spec.resources.requests["storage"] == "1Gi"


@pytest.mark.claim("PV-11")
def test_pv_goes_available_bound_released_in_order(
    jig: PVJig, cluster: Cluster, namespace: str, pod_files: PodFiles
) -> None:
    """A PV's life cycle MUST run provisioning, binding, using, reclaiming [000]: phases
    Available, Bound, Released, in that order.

    Observed: PV sample's phases, watched from before it exists until Released, while it is
    made, bound to sample-pvc, written through a pod and its claim deleted (Retain)."""
    docs = jig.load(PV_SAMPLE)
    with PhaseLog(cluster.core, jig.name("sample"), "Released", PHASE_TIMEOUT) as log:
        jig.create(docs)
        jig.wait_pv_phase("sample", "Available")
        bind_sample_pv_and_write(jig, pod_files, f"written in {namespace}")  # binding, using
        jig.delete_claim("sample-pvc")  # reclaiming (Retain)
        phases = log.result()

    seen = phases[1:] if phases[:1] == ["Pending"] else phases  # a new PV is Pending until the controller saw it
    assert seen == ["Available", "Bound", "Released"], f"PV sample went through {' -> '.join(phases) or 'nothing'}"


# --- the notes as written ----------------------------------------------------------------------


@pytest.mark.claim("ERR-03")
def test_notes_pv_with_spec_under_metadata_is_refused_for_lack_of_a_spec(
    cluster: Cluster, manifests: Manifests, jig: PVJig
) -> None:
    """[001]'s PV with `spec` nested under `metadata` is refused: the unknown field is dropped,
    so the PV arrives without any spec.

    Observed: the API server's answer to a dry-run POST of the manifest as written (renamed for
    this test): 422 Invalid, the causes all about the missing spec, none about metadata."""
    (doc,) = manifests.load_raw(PV_AS_WRITTEN).documents()
    doc["metadata"]["name"] = f"sample-{jig.suffix}"
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
    """kubectl (client-side schema) refuses [001]'s PV as written for its unknown field metadata.spec.

    Observed: exit code and stderr of `kubectl create --dry-run=server -f` on the file."""
    path = manifests.load_raw(PV_AS_WRITTEN).path
    done = cluster.kubectl("create", "--dry-run=server", "-f", str(path), check=False)
    assert done.returncode != 0, f"kubectl accepted the notes' PV: {done.stdout.strip()}"
    assert "unknown field" in done.stderr and "spec" in done.stderr, f"kubectl said: {done.stderr.strip()}"


@pytest.mark.claim("ERR-04")
def test_notes_storageclass_without_apiversion_is_taken_from_the_url_by_the_api_server(
    cluster: Cluster, manifests: Manifests, jig: PVJig, record_property
) -> None:
    """`apiversion` (lower case) is not apiVersion: the object names no API version. The API
    server takes group and version from the URL it was sent to and drops the unknown field
    (dry run: nothing is stored).

    Observed: the API server's answer to a dry-run POST to /apis/storage.k8s.io/v1."""
    (doc,) = manifests.load_raw(STORAGECLASS_AS_WRITTEN).documents()
    assert "apiVersion" not in doc and doc["apiversion"] == "storage.k8s.io/v1"
    doc["metadata"]["name"] = f"sample-storageclass-{jig.suffix}"
    answer = raw_request(cluster, "POST", "/apis/storage.k8s.io/v1/storageclasses", doc, query=[("dryRun", "All")])
    record_property("ERR-04 server", f"{answer}, apiVersion {answer.body.get('apiVersion')}")

    assert answer.status == 201, f"POST of the notes' StorageClass to /apis/storage.k8s.io/v1 answered {answer}"
    made = answer.body
    assert (made.get("apiVersion"), made.get("kind")) == ("storage.k8s.io/v1", "StorageClass"), made
    assert "apiversion" not in made, f"the server kept the unknown field: {made}"
    assert (made["provisioner"], made["allowVolumeExpansion"]) == ("kubernetes.io/gce-pd", True), made


@pytest.mark.claim("ERR-04")
def test_kubectl_refuses_the_notes_storageclass_without_apiversion(cluster: Cluster, manifests: Manifests) -> None:
    """kubectl refuses [001]'s StorageClass as written: it names no apiVersion.

    Observed: exit code and stderr of `kubectl create --dry-run=server -f` on the file."""
    path = manifests.load_raw(STORAGECLASS_AS_WRITTEN).path
    done = cluster.kubectl("create", "--dry-run=server", "-f", str(path), check=False)
    assert done.returncode != 0, f"kubectl accepted the notes' StorageClass: {done.stdout.strip()}"
    said = done.stderr.strip()
    assert "apiVersion not set" in said or "'apiVersion' is missing" in said, f"kubectl said: {said}"
