"""Other runtimes and kubelet roots (#24 12): `ctr` is pointed at the runtime endpoint the node's
kubelet uses (WRK-06 on k3s/RKE2), the kubelet's root dir is read rather than assumed (VOL-02)."""

from __future__ import annotations

from clusterproof.jigs import kubelet


def test_the_runtime_endpoint_and_root_dir_come_from_the_kubelet_when_it_says():
    rke2 = kubelet.from_sources(
        [
            "/var/lib/rancher/rke2/bin/kubelet",
            "--root-dir=/var/lib/kubelet-rke2",
            "--container-runtime-endpoint",
            "unix:///run/k3s/containerd/containerd.sock",
        ],
        {},
        {},
    )
    assert rke2.runtime_socket == "/run/k3s/containerd/containerd.sock"
    assert rke2.root_dir == "/var/lib/kubelet-rke2"
    assert rke2.ctr("tasks", "ls") == [
        "ctr",
        "--address",
        "/run/k3s/containerd/containerd.sock",
        "-n",
        "k8s.io",
        "tasks",
        "ls",
    ]
    k3s = kubelet.from_sources(
        [], {"kubeletconfig": {"containerRuntimeEndpoint": "unix:///run/k3s/containerd/containerd.sock"}}, {}
    )
    assert k3s.runtime_socket == "/run/k3s/containerd/containerd.sock"
    assert k3s.read_from == "runtime endpoint: kubelet configz containerRuntimeEndpoint; root dir: default"


def test_kubeadms_old_annotation_and_the_defaults():
    old = kubelet.from_sources([], {}, {kubelet.CRI_SOCKET_ANNOTATION: "/run/containerd/containerd.sock"})
    assert old.runtime_endpoint == "unix:///run/containerd/containerd.sock"
    kind = kubelet.from_sources(["/usr/bin/kubelet", "--config=/var/lib/kubelet/config.yaml"], {}, {})
    assert (kind.runtime_endpoint, kind.root_dir) == (kubelet.DEFAULT_RUNTIME_ENDPOINT, kubelet.DEFAULT_ROOT_DIR)
