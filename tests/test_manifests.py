"""manifests.load/prepare/load_raw: namespaces, images, labels. No cluster involved."""

import json
from pathlib import Path

import pytest
from kubernetes.client import ApiException
from kubernetes.dynamic.exceptions import ResourceNotFoundError, UnprocessibleEntityError

from clusterproof import manifests
from clusterproof.api_answers import ApiRefusal, answer_to
from clusterproof.errors import ImageNotFound, ManifestError, ManifestNotFound, SetupFailed
from clusterproof.images import ImageCatalogue, ImageEntry

RUN = {"clusterproof.io/run-id": "20261122-163000-ab12"}

DEPLOYMENT_AND_SERVICE = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      initContainers:
        - name: fill
          image: busybox
      containers:
        - name: web
          image: agnhost
          args: [serve-hostname]
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 9376}]
"""

CLUSTER_SCOPED = """\
apiVersion: v1
kind: PersistentVolume
metadata: {name: pv-1}
spec:
  capacity: {storage: 1Gi}
  accessModes: [ReadWriteOnce]
  hostPath: {path: /tmp/pv-1}
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: slow}
provisioner: kubernetes.io/no-provisioner
---
apiVersion: v1
kind: Namespace
metadata: {name: other}
"""


@pytest.fixture
def catalogue() -> ImageCatalogue:
    return ImageCatalogue(
        {
            "agnhost": ImageEntry("agnhost", "registry.k8s.io/e2e-test-images/agnhost:2.21"),
            "busybox": ImageEntry("busybox", "docker.io/library/busybox:1.29"),
            "fluentd": ImageEntry("fluentd", "quay.io/fluentd:v2.5.2", offline="agnhost"),
        }
    )


@pytest.fixture
def fixtures_dir(tmp_path: Path) -> Path:
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "web.yaml").write_text(DEPLOYMENT_AND_SERVICE)
    (tmp_path / "notes" / "cluster.yaml").write_text(CLUSTER_SCOPED)
    return tmp_path


def load(path, fixtures_dir, catalogue, **kw):
    return manifests.load(path, "ns-1", catalogue=catalogue, labels=RUN, fixtures_dir=fixtures_dir, **kw)


def test_namespaced_documents_get_the_namespace(fixtures_dir, catalogue):
    deployment, service = load("notes/web.yaml", fixtures_dir, catalogue)
    assert deployment["metadata"]["namespace"] == "ns-1"
    assert service["metadata"]["namespace"] == "ns-1"


def test_cluster_scoped_documents_get_no_namespace(fixtures_dir, catalogue):
    docs = load("notes/cluster.yaml", fixtures_dir, catalogue)
    assert [d["kind"] for d in docs] == ["PersistentVolume", "StorageClass", "Namespace"]
    assert all("namespace" not in d["metadata"] for d in docs)


def test_images_resolved_in_containers_and_init_containers(fixtures_dir, catalogue):
    deployment, _ = load("notes/web.yaml", fixtures_dir, catalogue)
    spec = deployment["spec"]["template"]["spec"]
    assert spec["containers"][0]["image"] == "registry.k8s.io/e2e-test-images/agnhost:2.21"
    assert spec["initContainers"][0]["image"] == "docker.io/library/busybox:1.29"


def test_run_labels_merged_into_metadata_but_not_selectors(fixtures_dir, catalogue):
    deployment, service = load("notes/web.yaml", fixtures_dir, catalogue)
    assert deployment["metadata"]["labels"] == {"app": "web", **RUN}
    assert deployment["spec"]["selector"] == {"matchLabels": {"app": "web"}}
    assert deployment["spec"]["template"]["metadata"]["labels"] == {"app": "web"}
    assert service["spec"]["selector"] == {"app": "web"}
    assert service["metadata"]["labels"] == RUN


def test_unknown_image_names_manifest_and_image(tmp_path, catalogue):
    (tmp_path / "pod.yaml").write_text(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n    - {name: c, image: nginx}\n"
    )
    with pytest.raises(ImageNotFound, match=r"unknown image 'nginx' in pod.yaml"):
        load("pod.yaml", tmp_path, catalogue)


def test_cronjob_and_pod_images(catalogue):
    cronjob = {
        "apiVersion": "batch/v1beta1",
        "kind": "CronJob",
        "metadata": {"name": "c"},
        "spec": {"jobTemplate": {"spec": {"template": {"spec": {"containers": [{"image": "busybox"}]}}}}},
    }
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": [{"image": "agnhost"}]}}
    cj, p = manifests.prepare([cronjob, pod], "ns", catalogue=catalogue)
    assert cj["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["image"].startswith("docker.io/")
    assert p["spec"]["containers"][0]["image"].startswith("registry.k8s.io/")


def test_offline_alternative_used_only_when_offline(catalogue):
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": [{"image": "fluentd"}]}}
    (online,) = manifests.prepare([pod], catalogue=catalogue)
    (offline,) = manifests.prepare([pod], catalogue=catalogue, offline=True)
    assert online["spec"]["containers"][0]["image"] == "quay.io/fluentd:v2.5.2"
    assert offline["spec"]["containers"][0]["image"] == "registry.k8s.io/e2e-test-images/agnhost:2.21"


def test_load_does_not_change_the_source_documents(catalogue):
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": [{"image": "agnhost"}]}}
    manifests.prepare([pod], "ns", catalogue=catalogue, labels=RUN)
    assert pod == {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p"},
        "spec": {"containers": [{"image": "agnhost"}]},
    }


def test_list_kind_is_expanded(catalogue):
    lst = {
        "apiVersion": "v1",
        "kind": "List",
        "items": [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}}],
    }
    (cm,) = manifests.prepare([lst], "ns", catalogue=catalogue)
    assert cm["kind"] == "ConfigMap" and cm["metadata"]["namespace"] == "ns"


def test_missing_manifest_names_the_path(tmp_path, catalogue):
    with pytest.raises(ManifestNotFound, match=r"manifest not found: .*notes/nope.yaml"):
        load("notes/nope.yaml", tmp_path, catalogue)


def test_broken_yaml_is_an_error_for_load_but_readable_raw(tmp_path, catalogue):
    (tmp_path / "flat.yaml").write_text("apiVersion: v1\nkind: Pod\nmetadata:\nname: p\n spec: [\n")
    with pytest.raises(ManifestError, match="not valid YAML"):
        load("flat.yaml", tmp_path, catalogue)
    raw = manifests.load_raw("flat.yaml", fixtures_dir=tmp_path)
    assert raw.text.startswith("apiVersion: v1")


def test_load_raw_keeps_the_document_as_written(tmp_path):
    text = "apiversion: storage.k8s.io/v1\nkind: StorageClass\nmetadata: {name: s}\nprovisioner: x\n"
    (tmp_path / "sc.yaml").write_text(text)
    raw = manifests.load_raw("sc.yaml", fixtures_dir=tmp_path)
    assert raw.text == text
    assert raw.documents() == [
        {"apiversion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": "s"}, "provisioner": "x"}
    ]


def test_document_without_kind_is_rejected(catalogue):
    with pytest.raises(ManifestError, match="without apiVersion/kind"):
        manifests.prepare([{"metadata": {"name": "x"}}], catalogue=catalogue)


def test_placeholders_in_string_values_are_filled(tmp_path, catalogue):
    (tmp_path / "hp.yaml").write_text(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: w}\nspec:\n  nodeName: ${NODE_NAME}\n"
        "  containers: [{name: c, image: busybox, args: ['echo $2']}]\n"
        "  volumes:\n  - name: v\n    hostPath:\n      path: /tmp/clusterproof-${RUN_ID}/a\n"
    )
    (pod,) = load("hp.yaml", tmp_path, catalogue, values={"NODE_NAME": "kind-worker", "RUN_ID": "r1"})
    assert pod["spec"]["nodeName"] == "kind-worker"
    assert pod["spec"]["volumes"][0]["hostPath"]["path"] == "/tmp/clusterproof-r1/a"
    assert pod["spec"]["containers"][0]["args"] == ["echo $2"]


def test_placeholder_without_value_names_manifest_and_placeholder(tmp_path, catalogue):
    (tmp_path / "svc.yaml").write_text(
        "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec:\n  externalIPs:\n  - ${EXTERNAL_IP}\n"
    )
    with pytest.raises(ManifestError, match=r"svc.yaml: placeholder \$\{EXTERNAL_IP\} has no value"):
        load("svc.yaml", tmp_path, catalogue)


def test_render_fills_placeholders_in_a_patch(tmp_path):
    (tmp_path / "p.patch.yaml").write_text("spec:\n  externalIPs:\n  - ${NODE_IP_1}\n")
    assert manifests.render("p.patch.yaml", {"NODE_IP_1": "172.18.0.2"}, fixtures_dir=tmp_path) == [
        {"spec": {"externalIPs": ["172.18.0.2"]}}
    ]


class _FakeResource:
    """Stands in for the dynamic client's resource (no cluster): records each create's arguments."""

    namespaced = True

    def __init__(self) -> None:
        self.calls: list[dict] = []

    def create(self, body, namespace, dry_run):
        self.calls.append({"name": body["metadata"]["name"], "namespace": namespace, "dry_run": dry_run})
        return type("Created", (), {"to_dict": lambda _self: body})()


class _FakeTracker:
    def __init__(self) -> None:
        self.registered: list[str] = []

    def register(self, cluster, obj, namespaced):
        self.registered.append(obj["metadata"]["name"])


def _fake_cluster(resource: _FakeResource):
    resources = type("Resources", (), {"get": lambda _self, api_version, kind: resource})()
    return type("Cluster", (), {"dynamic": type("Dynamic", (), {"resources": resources})()})()


@pytest.mark.parametrize(("dry_run", "query", "tracked"), [(False, None, ["probe"]), (True, "All", [])])
def test_apply_dry_run_asks_the_api_server_to_store_nothing_and_tracks_nothing(dry_run, query, tracked):
    resource, tracker = _FakeResource(), _FakeTracker()
    doc = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "probe", "namespace": "ns"}}

    manifests.apply(_fake_cluster(resource), [doc], tracker=tracker, dry_run=dry_run)

    assert resource.calls == [{"name": "probe", "namespace": "ns", "dry_run": query}]
    assert tracker.registered == tracked


class _RefusingResource(_FakeResource):
    """FAKE resource whose create the API server refuses (the dynamic client's own exception)."""

    def create(self, body, namespace, dry_run):
        refused = ApiException(status=422, reason="Unprocessable Entity")
        refused.body = json.dumps(
            {
                "kind": "Status",
                "reason": "Invalid",
                "message": 'Service "np-svc" is invalid: spec.ports[0].nodePort: Invalid value: 30000: provided port '
                "is not in the valid range. The range of valid ports is 31000-31999",
                "details": {"causes": [{"field": "spec.ports[0].nodePort", "reason": "FieldValueInvalid"}]},
            }
        )
        raise UnprocessibleEntityError(refused)


def test_a_refused_create_is_a_set_up_error_in_the_api_servers_words_naming_the_object():
    doc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "np-svc", "namespace": "ns"}}
    with pytest.raises(ApiRefusal) as info:
        manifests.apply(_fake_cluster(_RefusingResource()), [doc], tracker=_FakeTracker())
    assert str(info.value) == (
        'could not evaluate (set-up: create Service np-svc): HTTP 422 Invalid: Service "np-svc" is invalid: '
        "spec.ports[0].nodePort: Invalid value: 30000: provided port is not in the valid range. The range of valid "
        "ports is 31000-31999"
    )
    assert isinstance(info.value, SetupFailed) and isinstance(info.value, ApiException)
    # a check that judges the refusal itself still gets the answer
    answer = answer_to(lambda: manifests.apply(_fake_cluster(_RefusingResource()), [doc], dry_run=True))
    assert answer.status == 422 and answer.cause_for("spec.ports[0].nodePort") is not None


def test_a_kind_the_server_does_not_serve_is_a_set_up_error():
    def not_served(_self, api_version, kind):
        raise ResourceNotFoundError(f"No matches found for {{'api_version': '{api_version}', 'kind': '{kind}'}}")

    resources = type("Resources", (), {"get": not_served})()
    cluster = type("Cluster", (), {"dynamic": type("Dynamic", (), {"resources": resources})()})()
    doc = {"apiVersion": "networking.k8s.io/v1beta1", "kind": "Ingress", "metadata": {"name": "x", "namespace": "n"}}
    with pytest.raises(SetupFailed, match=r"set-up: create Ingress x\): the API server does not serve networking"):
        manifests.apply(cluster, [doc])
