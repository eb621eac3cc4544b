#!/usr/bin/env python3
"""Make a kind cluster look like a user's: its own ingress controller (Traefik, from the suite's
fixture, renamed and moved to namespace user-ingress; IngressClass default; Service with
externalTrafficPolicy Local and externalIPs), a namespace with a Retain PV bound to a claim and a pod
using it, node labels. Prints the kubectl YAML to apply on stdin of `kubectl apply -f -`."""

import sys

import yaml

WT = __import__("pathlib").Path(__file__).resolve().parents[2]
node_ip = sys.argv[1]  # a node's InternalIP, for externalIPs
worker = sys.argv[2]
docs = list(yaml.safe_load_all((WT / "fixtures/claims/ingress/controllers/traefik-baremetal.yaml").read_text()))
out = []
for d in docs:
    if not d:
        continue
    meta = d["metadata"]
    if d["kind"] == "Namespace":
        meta["name"] = "user-ingress"
    elif d["kind"] in ("ClusterRole", "ClusterRoleBinding", "IngressClass"):
        meta["name"] = "user-" + meta["name"]
    else:
        meta["namespace"] = "user-ingress"
    if d["kind"] == "ClusterRoleBinding":
        d["roleRef"]["name"] = "user-" + d["roleRef"]["name"]
        for s in d["subjects"]:
            s["namespace"] = "user-ingress"
    if d["kind"] == "IngressClass":
        meta.setdefault("annotations", {})["ingressclass.kubernetes.io/is-default-class"] = "true"
    if d["kind"] == "Service" and d["spec"].get("type") == "NodePort":
        d["spec"]["externalTrafficPolicy"] = "Local"
        d["spec"]["externalIPs"] = [node_ip]
        for p in d["spec"]["ports"]:
            p.pop("nodePort", None)
    if d["kind"] == "Deployment":
        for c in d["spec"]["template"]["spec"]["containers"]:
            c["image"] = "docker.io/library/traefik:v3.6.12"
            c["imagePullPolicy"] = "Never"
            c["args"] = [
                a.replace(
                    "--providers.kubernetesingress.ingressclass=traefik",
                    "--providers.kubernetesingress.ingressclass=user-traefik",
                ).replace(
                    "--providers.kubernetesingress.ingressendpoint.publishedservice=traefik/traefik",
                    "--providers.kubernetesingress.ingressendpoint.publishedservice=user-ingress/traefik",
                )
                for a in c.get("args", [])
            ]
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
