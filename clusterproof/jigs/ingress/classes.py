"""Which IngressClass is under test: the cluster's classes, `--ingress-class`, the default, the plan."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from kubernetes import client

from clusterproof import pod_states
from clusterproof.api_answers import unless_missing
from clusterproof.cluster import Cluster
from clusterproof.errors import ClusterproofError
from clusterproof.jigs.ingress.installs import INGRESS_NGINX, INGRESS_NGINX_OFFLINE, Install, install_for
from clusterproof.run import RUN_LABEL

DEFAULT_CLASS_ANNOTATION = "ingressclass.kubernetes.io/is-default-class"


@dataclass(frozen=True)
class ClassInfo:
    name: str
    controller: str
    default: bool = False
    run_id: str | None = None  # the run of this suite that installed it (its run label), if one did

    @classmethod
    def of(cls, ic: client.V1IngressClass) -> ClassInfo:
        annotations = ic.metadata.annotations or {}
        default = annotations.get(DEFAULT_CLASS_ANNOTATION) == "true"
        run_id = (ic.metadata.labels or {}).get(RUN_LABEL)
        return cls(ic.metadata.name, (ic.spec.controller if ic.spec else None) or "?", default, run_id)


class IngressClassNotFound(ClusterproofError):
    """--ingress-class names no IngressClass of the cluster (one line, listing the classes)."""


@dataclass(frozen=True)
class Plan:
    """What the ingress module tests: an IngressClass there is, or one it installs (`install`),
    or nothing (`skip`, in words); `why` says how it was chosen."""

    target: ClassInfo | None = None
    install: Install | None = None
    why: str = ""
    skip: str = ""


def ingress_classes(cluster: Cluster) -> list[client.V1IngressClass]:
    listed = unless_missing(cluster.networking.list_ingress_class)  # None before 1.19: no networking.k8s.io/v1
    return listed.items if listed is not None else []


def class_infos(cluster: Cluster) -> list[ClassInfo]:
    return [ClassInfo.of(c) for c in ingress_classes(cluster)]


def describe_classes(classes: Iterable[client.V1IngressClass | ClassInfo]) -> str:
    infos = [c if isinstance(c, ClassInfo) else ClassInfo.of(c) for c in classes]
    names = [f"{c.name} ({c.controller}{', default' if c.default else ''})" for c in infos]
    return ", ".join(names) or "none"


def default_classes(classes: Iterable[client.V1IngressClass | ClassInfo]) -> list[str]:
    infos = [c if isinstance(c, ClassInfo) else ClassInfo.of(c) for c in classes]
    return [c.name for c in infos if c.default]


def check_class(wanted: str, classes: Sequence[ClassInfo]) -> ClassInfo:
    """The IngressClass `wanted`, or IngressClassNotFound listing the classes there are."""
    for info in classes:
        if info.name == wanted:
            return info
    raise IngressClassNotFound(
        f"--ingress-class {wanted}: the cluster has no IngressClass {wanted!r} "
        f"(IngressClasses: {describe_classes(classes)})"
    )


def plan(
    classes: Sequence[ClassInfo],
    wanted: str | None,
    *,
    existing: bool,
    offline: bool,
    run_id: str = "",
    may_install: bool = True,
) -> Plan:
    """Which class to test. `--ingress-class` first, then the cluster's default class; a class the
    suite's own install would make is reused (never installed twice) when this run made it; an
    existing cluster with other classes is tested as it is (its only class, or the user picks one);
    otherwise the suite installs its controller (a kind cluster of the run has none; on an existing
    cluster only when `may_install`: --allow-disruptive). A class another run of the suite installed
    is never tested: that run removes it when its module ends."""
    if wanted:
        chosen = Plan(target=check_class(wanted, classes), why=f"--ingress-class {wanted}")
    else:
        chosen = _choose(classes, existing=existing, offline=offline, may_install=may_install)
    target = chosen.target
    if target is not None and target.run_id and target.run_id != run_id:
        return Plan(
            skip=f"IngressClass {target.name} ({target.controller}) was installed by run {target.run_id} of this "
            "suite, which removes it when its ingress module ends: not tested by another run (run the ingress "
            "module of one run at a time, or let the sweep remove what a dead run left)"
        )
    return chosen


def _choose(classes: Sequence[ClassInfo], *, existing: bool, offline: bool, may_install: bool) -> Plan:
    defaults = sorted((c for c in classes if c.default), key=lambda c: c.name)
    if defaults:
        return Plan(target=defaults[0], why="the cluster's default IngressClass")
    ours = install_for(offline)
    for info in classes:
        if info.name == ours.class_name and info.controller == ours.controller:
            return Plan(target=info, why=f"IngressClass {info.name} is there already (not installed twice)")
    if existing and len(classes) == 1:
        return Plan(target=classes[0], why="the cluster's only IngressClass")
    if existing and classes:
        return Plan(
            skip=f"the cluster has IngressClasses {describe_classes(classes)} and none is the default: "
            "pick the one to test with --ingress-class NAME"
        )
    if existing and not may_install:
        return Plan(
            skip=f"no ingress controller on the cluster, and installing {ours.name} {ours.version} (cluster-wide "
            "RBAC, an IngressClass" + (", an admission webhook" if ours.webhook else "") + ") on an existing "
            "cluster needs --allow-disruptive"
        )
    why = "no ingress controller on the cluster" if existing else "a kind cluster of this run"
    if offline:
        why += f"; Traefik, not ingress-nginx: {INGRESS_NGINX_OFFLINE}"
    return Plan(install=ours, why=why)


def controller_claims(cluster: Cluster, class_name: str) -> bool:
    """Whether some controller implements IngressClass `class_name` (the class exists, or, for
    "nginx", a ready ingress-nginx controller runs, which serves it even without the object)."""
    if any(c.metadata.name == class_name for c in ingress_classes(cluster)):
        return True
    if class_name != INGRESS_NGINX.class_name:
        return False
    pods = cluster.core.list_pod_for_all_namespaces(label_selector=INGRESS_NGINX.pod_selector).items
    return any(pod_states.pod_is_ready(p) for p in pods)
