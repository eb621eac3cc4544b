"""The report's cluster panel: each cluster's facts as the run recorded them (cluster.json),
the facts every cluster shares said once, and the clusters' health findings grouped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# The facts of a cluster, as (key, label); the first ones are shown once above the clusters when every
# cluster has the same, the others (and any that differ) for each cluster.
SHARED_FACTS = (("provider", "provider"), ("version", "Kubernetes"), ("runtime", "runtime"), ("os", "node OS"))
OWN_FACTS = (("nodes", "nodes"), ("cni", "CNI"), ("ingress", "ingress controller"), ("storage", "StorageClass"))


@dataclass
class Fact:
    text: str
    detail: str = ""  # said small beside it
    bad: str = ""  # said in a badge (nodes not Ready, an install that failed)
    more: str = ""  # where it comes from: shown on hover (a row stays one line)


@dataclass
class ClusterView:
    name: str
    module: str  # the suite module it was made for (or "every module": --cluster-scope session)
    facts: dict[str, Fact]
    errors: list[str]


def cluster_panel(clusters: list[dict[str, Any]]) -> dict[str, Any]:
    """Each cluster's facts as the run recorded them (cluster.json), one row per cluster:
    {"views": [ClusterView], "shared": [(label, Fact)] (the same on every cluster), "columns":
    [(key, label)] (the facts of each cluster's row)}. One cluster: every fact is "shared"."""
    views = [cluster_view(c) for c in clusters]
    keys = [*SHARED_FACTS, *OWN_FACTS] if len(views) == 1 else SHARED_FACTS
    shared = [(k, label) for k, label in keys if len({repr(v.facts[k]) for v in views}) == 1]
    columns = [(k, label) for k, label in [*SHARED_FACTS, *OWN_FACTS] if (k, label) not in shared]
    return {
        "views": views,
        "shared": [(label, views[0].facts[k]) for k, label in shared] if views else [],
        "columns": columns,
    }


def cluster_view(c: dict[str, Any]) -> ClusterView:
    nodes = c.get("nodes") or []
    roles: dict[str, int] = {}
    for node in nodes:
        for role in node.get("roles") or ["worker"]:
            roles[role] = roles.get(role, 0) + 1
    ready = sum(1 for n in nodes if n.get("ready"))
    cni = c.get("cni") or {}
    kubelets = ", ".join(sorted({n.get("kubelet") or "?" for n in nodes}))
    facts = {
        "provider": Fact(str(c.get("provider") or "?") + (" (offline images)" if c.get("offline") else "")),
        "version": Fact(str(c.get("server_version") or "?"), f"kubelet {kubelets}" if nodes else ""),
        "runtime": Fact(", ".join(sorted({n.get("runtime") or "?" for n in nodes})) or "?"),
        "os": Fact(", ".join(sorted({n.get("os") or "?" for n in nodes})) or "?"),
        "nodes": Fact(
            f"{len(nodes)}: " + ", ".join(f"{n} {role}" for role, n in roles.items()) if nodes else "?",
            bad=f"{ready} of {len(nodes)} Ready" if nodes and ready != len(nodes) else "",
        ),
        "cni": Fact(str(cni.get("name", "?")), more=" ".join(str(cni[k]) for k in ("source", "image") if cni.get(k))),
        "ingress": ingress_fact(c),
        "storage": Fact(_classes(c.get("storage_classes"), "provisioner", "none (no StorageClass)")),
    }
    return ClusterView(str(c.get("name", "?")), module_of(str(c.get("key") or "")), facts, list(c.get("errors") or []))


def module_of(key: str) -> str:
    """`suites.test_ingress` -> `test_ingress.py`; `session` -> every module."""
    if key == "session":
        return "every module (one cluster)"
    return f"{key.rsplit('.', 1)[-1]}.py" if key else "?"


def ingress_fact(c: dict[str, Any]) -> Fact:
    """The controller the module installed or found (`ingress_controller`, recorded by the ingress
    module), else the IngressClasses the cluster had when it was handed over."""
    found = c.get("ingress_controller")
    if not isinstance(found, dict):
        return Fact(_classes(c.get("ingress_classes"), "controller", "none (no IngressClass)"))
    if found.get("none"):
        return Fact("none to test", str(found["none"]))
    what = " ".join(str(found[k]) for k in ("name", "version") if found.get(k)) or "?"
    how = "installed by the module" if found.get("installed") else "found on the cluster"
    where = str(found.get("controller") or "")
    if found.get("namespace"):
        where += f" in namespace {found['namespace']}"
    text = f"{what} (IngressClass {found.get('class') or '?'}, {how})"
    if found.get("error"):
        return Fact(text, str(found["error"]), bad="not working", more=where)
    return Fact(text, more=where)


def health_groups(clusters: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The clusters' health findings (cluster.json `health`), clusters with the same findings
    named together: [{"names": [...], "findings": [...]}]."""
    groups: dict[tuple[str, ...], list[str]] = {}
    for c in clusters:
        found = c.get("health")
        if isinstance(found, list) and found:
            groups.setdefault(tuple(str(f) for f in found), []).append(str(c.get("name", "?")))
    return [{"names": names, "findings": list(findings)} for findings, names in groups.items()]


def _classes(items: list[dict[str, Any]] | None, what: str, none: str) -> str:
    if not items:
        return none
    ordered = sorted(items, key=lambda i: not i.get("default"))
    return "; ".join(
        f"{i.get('name')} ({i.get(what) or '?'}{', default' if i.get('default') else ''})" for i in ordered
    )
