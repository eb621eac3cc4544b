"""facts.read/record on a FAKE cluster: canned API objects from fake clients (no API server)."""

import json
import threading
from types import SimpleNamespace

from kubernetes import client

from clusterproof import facts, health


def meta(name, namespace=None, annotations=None, labels=None):
    return client.V1ObjectMeta(name=name, namespace=namespace, annotations=annotations, labels=labels)


def node(name, role=None, kubelet="v1.20.2", ready="True"):
    return client.V1Node(
        metadata=meta(name, labels={f"node-role.kubernetes.io/{role}": ""} if role else {}),
        status=client.V1NodeStatus(
            conditions=[client.V1NodeCondition(type="Ready", status=ready)],
            node_info=client.V1NodeSystemInfo(
                kubelet_version=kubelet,
                os_image="Debian GNU/Linux 12 (bookworm)",
                container_runtime_version="containerd://1.6.20",
                architecture="amd64", boot_id="", kernel_version="", kube_proxy_version="", machine_id="",
                operating_system="linux", system_uuid="",
            ),
        ),
    )


def daemonset(name, namespace, image):
    pod = client.V1PodTemplateSpec(spec=client.V1PodSpec(containers=[client.V1Container(name="c", image=image)]))
    return client.V1DaemonSet(
        metadata=meta(name, namespace), spec=client.V1DaemonSetSpec(selector=client.V1LabelSelector(), template=pod)
    )


def items(*objects):
    return SimpleNamespace(items=list(objects))


class FakeCluster:
    """Fake Cluster: only what facts.read touches, each client a canned SimpleNamespace."""

    def __init__(self, daemonsets=(), pods=(), offline=False, ingress_classes=(), broken_storage=False):
        self.name = "cp-163000ab12-services"
        self.provider = "kind"
        self.context = "kind-cp-163000ab12-services"
        self.offline = offline
        self.git_version = "v1.20.2"
        self.core = SimpleNamespace(
            list_node=lambda **_: items(node("cp-control-plane", "control-plane"), node("cp-worker"), node("cp-w2")),
            list_namespaced_pod=lambda namespace, **_: items(*pods),
        )
        self.apps = SimpleNamespace(list_daemon_set_for_all_namespaces=lambda **_: items(*daemonsets))
        self.networking = SimpleNamespace(list_ingress_class=lambda **_: items(*ingress_classes))

        def storage_classes(**_):
            if broken_storage:
                raise client.ApiException(status=403, reason="Forbidden")
            return items(
                client.V1StorageClass(
                    metadata=meta("standard", annotations={"storageclass.kubernetes.io/is-default-class": "true"}),
                    provisioner="rancher.io/local-path",
                ),
                client.V1StorageClass(metadata=meta("slow"), provisioner="kubernetes.io/no-provisioner"),
            )

        self.storage = SimpleNamespace(list_storage_class=storage_classes)


KUBE_PROXY = daemonset("kube-proxy", "kube-system", "k8s.gcr.io/kube-proxy:v1.20.2")


def test_facts_of_a_kind_cluster():
    cluster = FakeCluster(
        daemonsets=[KUBE_PROXY, daemonset("kindnet", "kube-system", "docker.io/kindest/kindnetd:v20250214")],
        ingress_classes=[
            client.V1IngressClass(
                metadata=meta("nginx"), spec=client.V1IngressClassSpec(controller="k8s.io/ingress-nginx")
            )
        ],
    )
    found = facts.read(cluster, key="suites.test_services")
    assert found["name"] == "cp-163000ab12-services" and found["key"] == "suites.test_services"
    assert found["server_version"] == "v1.20.2" and found["provider"] == "kind"
    assert [(n["name"], n["roles"], n["kubelet"], n["ready"]) for n in found["nodes"]] == [
        ("cp-control-plane", ["control-plane"], "v1.20.2", True),
        ("cp-worker", ["worker"], "v1.20.2", True),
        ("cp-w2", ["worker"], "v1.20.2", True),
    ]
    assert found["cni"] == {
        "name": "kindnet",
        "source": "DaemonSet kube-system/kindnet",
        "image": "docker.io/kindest/kindnetd:v20250214",
    }
    assert found["ingress_classes"] == [{"name": "nginx", "controller": "k8s.io/ingress-nginx", "default": False}]
    assert found["storage_classes"][0] == {"name": "standard", "provisioner": "rancher.io/local-path", "default": True}
    assert found["storage_classes"][1]["default"] is False
    assert found["errors"] == []


def test_cni_is_found_outside_kube_system_and_from_static_pods():
    calico = FakeCluster(daemonsets=[KUBE_PROXY, daemonset("calico-node", "calico-system", "calico/node:v3.27.0")])
    assert facts.read(calico)["cni"]["name"] == "calico"
    assert facts.read(calico)["cni"]["source"] == "DaemonSet calico-system/calico-node"
    flannel = FakeCluster(daemonsets=[daemonset("kube-flannel-ds", "kube-flannel", "flannel/flannel:v0.24.0")])
    assert facts.read(flannel)["cni"]["name"] == "flannel"
    static = FakeCluster(pods=[client.V1Pod(metadata=meta("cilium-x7k2p", "kube-system"))])
    assert facts.read(static)["cni"]["name"] == "cilium"


def test_no_cni_daemonset_is_clusterproofs_ptp_when_offline_else_unknown():
    assert facts.read(FakeCluster(daemonsets=[KUBE_PROXY], offline=True))["cni"]["name"] == "ptp (clusterproof offline)"
    assert facts.read(FakeCluster(daemonsets=[KUBE_PROXY]))["cni"]["name"] == "unknown"


def test_what_cannot_be_read_is_named_not_raised():
    found = facts.read(FakeCluster(broken_storage=True))
    assert found["storage_classes"] == []
    assert found["errors"] == ["StorageClasses: ApiException (403)"]
    assert found["ingress_classes"] == []  # none there: not an error


def test_record_keeps_one_entry_per_cluster_across_writers(tmp_path):
    path = tmp_path / "artifacts" / "cluster.json"
    clusters = []
    for i in range(6):
        c = FakeCluster()
        c.name = f"cp-163000ab12-m{i % 3}"  # each cluster acquired twice (existing provider, module scope)
        clusters.append(c)
    threads = [threading.Thread(target=facts.record, args=(c, path, "k")) for c in clusters]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    data = json.loads(path.read_text())
    assert data["schema"] == 1
    assert sorted(c["name"] for c in data["clusters"]) == ["cp-163000ab12-m0", "cp-163000ab12-m1", "cp-163000ab12-m2"]


def test_a_module_adds_what_it_learnt_to_its_own_cluster_s_entry(tmp_path, caplog):
    path = tmp_path / "cluster.json"
    for name in ("cp-1-ingress", "cp-1-quota"):
        c = FakeCluster()
        c.name = name
        facts.record(c, path, f"suites.test_{name[5:]}")
    facts.add(path, "cp-1-ingress", "ingress_controller", {"name": "traefik", "token": "abcdefghijklmnop"})
    entries = {c["name"]: c for c in json.loads(path.read_text())["clusters"]}
    assert entries["cp-1-ingress"]["ingress_controller"] == {"name": "traefik", "token": "[REDACTED]"}
    assert "ingress_controller" not in entries["cp-1-quota"]
    before = path.read_text()
    facts.add(path, "cp-1-volumes", "ingress_controller", {})  # not recorded: left alone, said in the log
    assert path.read_text() == before and "cp-1-volumes is not recorded" in caplog.text


def test_record_never_raises(tmp_path, caplog):
    blocked = tmp_path / "file"
    blocked.write_text("")
    facts.record(FakeCluster(), blocked / "cluster.json")  # its parent is a file
    assert "could not record cluster facts" in caplog.text


def test_health_findings_recorded_at_hand_over_go_into_cluster_json(tmp_path):
    cluster = FakeCluster(daemonsets=[KUBE_PROXY])
    cluster.name = "cp-163000ab12-workloads"
    finding = "no DaemonSet has been processed (kube-proxy): is the DaemonSet controller running?"
    health.record(cluster, [health.Finding("DaemonSet controller", finding, final=True)])
    path = tmp_path / "cluster.json"
    facts.record(cluster, path, "suites.test_workloads")
    other = FakeCluster()
    other.name = "cp-163000ab12-quota"
    health.record(other, [])
    facts.record(other, path, "suites.test_quota")

    assert json.loads(path.read_text())["clusters"][0]["health"] == [finding]
    assert facts.health_of(path) == [{"cluster": "cp-163000ab12-workloads", "findings": [finding]}]
    assert facts.health_lines(path) == [f"cp-163000ab12-workloads: {finding}"]
    assert facts.health_of(tmp_path / "missing.json") == []
