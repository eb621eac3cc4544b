#!/usr/bin/env python3
"""Make a kind cluster look like a user's: their own ingress controller (Traefik, from the suite's
fixture as a user migrating off ingress-nginx runs it: its ingress-nginx provider serving the default
IngressClass nginx; moved to namespace user-ingress, its cluster-wide RBAC renamed; the Service with
externalTrafficPolicy Local and externalIPs), a namespace with a Retain PV bound to a claim and a pod
using it. Prints the YAML for `kubectl apply -f -`.

A bare cluster has no Gateway API CRDs (the suite installs them with its own controller), so the
fixture's GatewayClass, its Gateway provider and that provider's RBAC are left out: with them the
apply fails and the controller never gets ready. The image is the catalogue's (the offline build's
Traefik, on the nodes), pulled as the fixture says (IfNotPresent)."""

import sys
from pathlib import Path

import yaml

WT = Path(__file__).resolve().parents[2]
GATEWAY_GROUP = "gateway.networking.k8s.io"
node_ip = sys.argv[1]  # a node's InternalIP, for externalIPs
worker = sys.argv[2]
image = yaml.safe_load((WT / "clusterproof/data/images.yaml").read_text())["traefik"]["ref"]
docs = yaml.safe_load_all((WT / "fixtures/claims/ingress/controllers/traefik-baremetal.yaml").read_text())
out = []
for d in docs:
    if not d or d["apiVersion"].startswith(GATEWAY_GROUP):
        continue
    meta = d["metadata"]
    if d["kind"] == "Namespace":
        meta["name"] = "user-ingress"
    elif d["kind"] in ("ClusterRole", "ClusterRoleBinding"):
        meta["name"] = "user-" + meta["name"]
    elif d["kind"] != "IngressClass":
        meta["namespace"] = "user-ingress"
    if d["kind"] == "ClusterRole":
        d["rules"] = [r for r in d["rules"] if GATEWAY_GROUP not in r["apiGroups"]]
    if d["kind"] == "ClusterRoleBinding":
        d["roleRef"]["name"] = "user-" + d["roleRef"]["name"]
        for s in d["subjects"]:
            s["namespace"] = "user-ingress"
    if d["kind"] == "IngressClass":
        meta.setdefault("annotations", {})["ingressclass.kubernetes.io/is-default-class"] = "true"
    if d["kind"] == "Service" and d["spec"].get("type") == "NodePort":
        d["spec"]["externalTrafficPolicy"] = "Local"
        d["spec"]["externalIPs"] = [node_ip]
    if d["kind"] == "Deployment":
        for c in d["spec"]["template"]["spec"]["containers"]:
            c["image"] = image
            c["args"] = [a for a in c["args"] if not a.startswith("--providers.kubernetesgateway")]
    out.append(d)
out += [
    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "user-data", "labels": {"team": "payments"}}},
    {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {"name": "user-retain"},
        "provisioner": "kubernetes.io/no-provisioner",
        "reclaimPolicy": "Retain",
        "volumeBindingMode": "WaitForFirstConsumer",
    },
    {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": "user-ledger", "labels": {"team": "payments"}},
        "spec": {
            "capacity": {"storage": "1Gi"},
            "accessModes": ["ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": "Retain",
            "storageClassName": "user-retain",
            "hostPath": {"path": "/var/tmp/user-ledger", "type": "DirectoryOrCreate"},
            "nodeAffinity": {
                "required": {
                    "nodeSelectorTerms": [
                        {"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In", "values": [worker]}]}
                    ]
                }
            },
        },
    },
    {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "ledger", "namespace": "user-data"},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "storageClassName": "user-retain",
            "resources": {"requests": {"storage": "1Gi"}},
        },
    },
    {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "ledger", "namespace": "user-data", "labels": {"app": "ledger"}},
        "spec": {
            "containers": [
                {
                    "name": "c",
                    "image": "registry.k8s.io/e2e-test-images/agnhost:2.66.1",
                    "imagePullPolicy": "Never",
                    "args": ["pause"],
                    "volumeMounts": [{"name": "d", "mountPath": "/data"}],
                }
            ],
            "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "ledger"}}],
        },
    },
]
yaml.safe_dump_all(out, sys.stdout, sort_keys=False)
