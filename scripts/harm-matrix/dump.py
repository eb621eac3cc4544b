#!/usr/bin/env python3
"""Dump what a clusterproof run must not touch, for a before/after diff (the harm matrix, #20).

    dump.py --kubeconfig K --context C > before.json    # every object not made by a run + this host's kind clusters
    dump.py --diff before.json after.json               # exit 1 and the differences, if any

Objects made by runs are left out: anything labelled clusterproof.io/run-id (and everything in a
namespace so labelled), the runs' registry namespace clusterproof-runs. Kept per object: labels,
annotations, ownerReferences, spec (or, for objects without one, everything but metadata and
status; a Secret's data as a hash). Left out as noise: Events, Leases, EndpointSlices, Endpoints.
"""

import argparse
import hashlib
import json
import subprocess
import sys
from pathlib import Path

RUN_LABEL = "clusterproof.io/run-id"
NOISE = {"events", "events.events.k8s.io", "leases.coordination.k8s.io", "endpointslices.discovery.k8s.io", "endpoints"}
VOLATILE_ANNOTATIONS = {"control-plane.alpha.kubernetes.io/leader", "kubectl.kubernetes.io/last-applied-configuration"}


def kubectl(args, kubeconfig, context):
    return subprocess.run(
        ["kubectl", "--kubeconfig", kubeconfig, "--context", context, *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def objects(kubeconfig, context):
    names = kubectl(["api-resources", "--verbs=list", "-o", "name"], kubeconfig, context).stdout.split()
    out, run_namespaces = {}, set()
    listed = {}
    for name in names:
        if name in NOISE or name.endswith("metrics.k8s.io"):
            continue
        done = kubectl(["get", name, "-A", "-o", "json"], kubeconfig, context)
        if done.returncode != 0:
            out[f"!error {name}"] = done.stderr.strip()[:200]
            continue
        listed[name] = json.loads(done.stdout)["items"]
    for ns in listed.get("namespaces", []):
        if RUN_LABEL in (ns["metadata"].get("labels") or {}) or ns["metadata"]["name"] == "clusterproof-runs":
            run_namespaces.add(ns["metadata"]["name"])
    for name, items in listed.items():
        for obj in items:
            meta = obj["metadata"]
            if RUN_LABEL in (meta.get("labels") or {}) or meta.get("namespace") in run_namespaces:
                continue
            if name == "namespaces" and meta["name"] in run_namespaces:
                continue
            kept = {
                "labels": meta.get("labels") or {},
                "annotations": {
                    k: v for k, v in (meta.get("annotations") or {}).items() if k not in VOLATILE_ANNOTATIONS
                },
                "ownerReferences": meta.get("ownerReferences") or [],
                "uid": meta.get("uid"),
            }
            if "spec" in obj:
                kept["spec"] = obj["spec"]
            else:
                rest = {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}
                if obj.get("kind") == "Secret":
                    rest = {"data sha256": hashlib.sha256(json.dumps(rest, sort_keys=True).encode()).hexdigest()}
                kept["rest"] = rest
            out[f"{name} {meta.get('namespace', '')}/{meta['name']}"] = kept
    return out


def kind_clusters(watched):
    """The watched kind clusters of this host (other helpers' clusters come and go): their node containers."""
    names = subprocess.run(["kind", "get", "clusters"], capture_output=True, text=True).stdout.split()
    found = {}
    for name in names:
        if name not in watched:
            continue
        ids = subprocess.run(
            [
                "docker",
                "ps",
                "-a",
                "--no-trunc",
                "--filter",
                f"label=io.x-k8s.kind.cluster={name}",
                "--format",
                "{{.ID}} {{.Names}}",
            ],
            capture_output=True,
            text=True,
        ).stdout.split("\n")
        found[name] = sorted(x for x in ids if x)
    return found


def diff(a, b, path=""):
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if k not in a:
                yield f"+ {path}{k}"
            elif k not in b:
                yield f"- {path}{k}"
            else:
                yield from diff(a[k], b[k], f"{path}{k}: " if not path else f"{path}{k}.")
    elif a != b:
        yield f"~ {path.rstrip('.: ')}: {json.dumps(a)[:200]} -> {json.dumps(b)[:200]}"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--kubeconfig")
    p.add_argument("--context")
    p.add_argument("--diff", nargs=2)
    p.add_argument("--kind", default="", help="comma-separated kind clusters to watch")
    a = p.parse_args()
    if a.diff:
        before, after = (json.loads(Path(f).read_text()) for f in a.diff)
        lines = list(diff(before, after))
        print("\n".join(lines) if lines else "no difference")
        return 1 if lines else 0
    json.dump(
        {"kind clusters": kind_clusters(a.kind.split(",")), "objects": objects(a.kubeconfig, a.context)},
        sys.stdout,
        indent=1,
        sort_keys=True,
    )
    return 0


sys.exit(main())
