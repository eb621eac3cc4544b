"""Cluster health: a cheap look at the system components, and what it finds wrong in plain words.

A cluster is never refused: whatever state it is in, it is handed over to the tests, and what
is found wrong here is recorded ("cluster health": cluster.json, claims.json, the top of the
claims table and of report.html) so that a reader sees the cause before the failures it explains:

    no DaemonSet has been processed (kube-proxy, kindnet): is the DaemonSet controller running?
    kube-proxy: 0 of 3 nodes ready (the DaemonSet was never processed)
    CoreDNS pods not ready: coredns-7db6d8ff4d-x2x9q: Running (CrashLoopBackOff)
    no Endpoints object for Service kube-system/kube-dns (4 min old): is the endpoints controller running?
    kube-controller-manager: leader lease last renewed 5 min ago (holder ...): is it running?

`probe(cluster)` reads a handful of lists (nodes; kube-system's DaemonSets, pods, Deployments,
Services, Endpoints, EndpointSlices, leader Leases; local-path-storage's Deployments) and never
raises: what cannot be read is left out. It works on any cluster (kind or existing).

The same reads answer the jigs' "is waiting pointless?" questions: clusterproof.causes. The
command line is clusterproof.health_cli (`python -m clusterproof.health_cli`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kubernetes import client

from clusterproof.errors import ClusterUnreachable, one_line
from clusterproof.pod_states import daemonset_processed, describe_pods, node_is_ready, pod_is_ready, stuck_container
from clusterproof.system_look import (
    CONTROLLER_MANAGER,
    KUBE_PROXY,
    REQUEST_TIMEOUT,
    SYSTEM,
    Look,
    kube_proxy_pods,
)

if TYPE_CHECKING:
    from clusterproof.cluster import Cluster

DNS_LABEL = "k8s-app=kube-dns"  # CoreDNS keeps kube-dns's label (Deployment, pods, Service)
# DaemonSet name prefixes of pod networks that can take kube-proxy's place (no kube-proxy is then fine)
PROXY_REPLACEMENTS = ("cilium", "kube-router", "antrea-agent", "calico-node", "ovnkube-node", "kube-ovn-cni")
# DaemonSets every node needs (kube-proxy, pod networks): one that runs on no node is a finding
# (others, e.g. a GPU device plugin, may rightly want no node)
EVERY_NODE_DAEMONSETS = (KUBE_PROXY, "kindnet", "kube-flannel", "flannel", "weave-net", "aws-node", "azure-cni")
EMBEDDED_PROXY_KUBELETS = ("+k3s",)  # distributions whose agent runs kube-proxy itself (no pods)
LEADER_LEASES = (CONTROLLER_MANAGER, "kube-scheduler")
# kube-controller-manager's controllers the suites' waits depend on: name (1.28+) -> what it is
# called in a finding, and its older alias (both are accepted by --controllers)
CONTROLLERS = {
    "endpoints-controller": ("endpoints", "endpoint"),
    "endpointslice-controller": ("EndpointSlice", "endpointslice"),
    "endpointslice-mirroring-controller": ("EndpointSlice mirroring", "endpointslicemirroring"),
    "replicaset-controller": ("ReplicaSet", "replicaset"),
    "deployment-controller": ("Deployment", "deployment"),
    "daemonset-controller": ("DaemonSet", "daemonset"),
    "statefulset-controller": ("StatefulSet", "statefulset"),
    "job-controller": ("Job", "job"),
    "resourcequota-controller": ("resourcequota", "resourcequota"),
    "persistentvolume-binder-controller": ("PersistentVolume binder", "persistentvolume-binder"),
    "namespace-controller": ("namespace", "namespace"),
}
SLICE_CONTROLLER = "EndpointSlice controller"
SLICE_LAG = 10.0  # seconds: an Endpoints object this old has its EndpointSlice if that controller runs
SETTLED_AGE = 30.0  # seconds: a system object this old has been seen by its controller if one runs
STALE_LEASE = 60.0  # seconds without a renewal (and at least 3 lease durations): the leader is gone
SETTLE_INTERVAL = 2.0
SETTLE_STABLE = 30.0  # the same findings this long: not progressing, no use waiting out the window


@dataclass(frozen=True)
class Finding:
    """One thing found wrong. `final`: waiting will not change it (the hand-over need not wait)."""

    component: str
    text: str
    final: bool = False

    def __str__(self) -> str:
        return self.text


# --- what is wrong ---------------------------------------------------------------------------


def probe(cluster: Cluster, *, now: float | None = None) -> list[Finding]:
    """Everything found wrong with the system components, in plain words (never raises)."""
    look = Look(cluster, now)
    found: list[Finding] = []
    for check in (
        node_findings,
        controller_findings,
        daemonset_findings,
        kube_proxy_findings,
        kube_proxy_sync_findings,
        dns_findings,
        deployment_findings,
        endpoints_findings,
        lease_findings,
        admission_findings,
    ):
        try:
            found += check(look)
        except Exception as e:  # a bug in one check must not hide the others
            found.append(Finding("clusterproof", f"health check {check.__name__} failed: {type(e).__name__}: {e}"))
    return found


def node_findings(look: Look) -> list[Finding]:
    bad = []
    for node in look.nodes:
        if node_is_ready(node):
            continue
        ready = next((c for c in (node.status.conditions or []) if c.type == "Ready"), None) if node.status else None
        why = f" ({ready.reason}: {ready.message})" if ready is not None and ready.message else ""
        bad.append(f"{node.metadata.name}{why}")
    return [Finding("nodes", f"nodes not Ready: {'; '.join(bad)}")] if bad else []


def daemonset_findings(look: Look) -> list[Finding]:
    sets = look.daemonsets
    if not sets:
        return []
    found = []
    controller_off = False  # known, not just young DaemonSets not processed yet
    if not any(daemonset_processed(d) for d in sets):
        names = ", ".join(sorted(d.metadata.name for d in sets))
        controller_off = max(look.age(d) for d in sets) >= SETTLED_AGE
        found.append(
            Finding(
                "DaemonSet controller",
                f"no DaemonSet has been processed ({names}): is the DaemonSet controller running?",
                final=controller_off,
            )
        )
    nodes = len(look.nodes)
    for ds in sorted(sets, key=lambda d: d.metadata.name):
        name = ds.metadata.name
        s = ds.status
        if not daemonset_processed(ds):
            never = f"{name}: 0 of {nodes} nodes ready (the DaemonSet was never processed)"
            found.append(Finding(name, never, final=controller_off))
            continue
        desired, ready = s.desired_number_scheduled or 0, s.number_ready or 0
        if desired == 0 and nodes and name.startswith(EVERY_NODE_DAEMONSETS + PROXY_REPLACEMENTS):
            found.append(Finding(name, f"{name}: runs on no node (0 of {nodes} nodes wanted)", final=True))
        elif ready < desired:
            pods = _pods_of(look.system_pods, ds.spec.selector.match_labels or {})
            stuck = _stuck(pods)
            states = f" (pods: {describe_pods(p for p in pods if not pod_is_ready(p))})" if pods else ""
            found.append(Finding(name, f"{name}: {ready} of {desired} nodes ready{states}", final=bool(stuck)))
    return found


def kube_proxy_findings(look: Look) -> list[Finding]:
    """kube-proxy not there at all (mode none, or removed): only a finding when nothing else
    implements Services (a pod network that replaces it, or a distribution that embeds it)."""
    if any(d.metadata.name == KUBE_PROXY for d in look.daemonsets) or kube_proxy_pods(look):
        return []  # its DaemonSet's state is daemonset_findings'
    replacement = proxy_replacement(look)
    if replacement or not look.nodes:
        return []
    return [
        Finding(
            KUBE_PROXY,
            f"{KUBE_PROXY}: not running on any node (no DaemonSet or pod {SYSTEM}/{KUBE_PROXY}) and no pod "
            "network that replaces it: nothing implements Services",
            final=True,
        )
    ]


def kube_proxy_sync_findings(look: Look) -> list[Finding]:
    """kube-proxy running but not syncing its rules: its /healthz answers 503 once a change has
    waited more than its health timeout (2 sync periods, 60 s by default) without being written."""
    stale = []
    for node, (status, body) in sorted(look.kube_proxy_health.items()):
        if status != 503:
            continue
        last = body.get("lastUpdated") if isinstance(body, dict) else None
        stale.append(f"{node}" + (f" (last synced {last})" if last else ""))
    if not stale:
        return []
    text = f"{KUBE_PROXY}: not syncing its rules (healthz 503) on {', '.join(stale)}"
    return [Finding(KUBE_PROXY, text, final=True)]


def dns_findings(look: Look) -> list[Finding]:
    state = dns_state(look)
    return [Finding("CoreDNS", state.problem, final=state.final)] if state.problem else []


def deployment_findings(look: Look) -> list[Finding]:
    found = []
    for d in look.deployments:
        if _is_dns(d):
            continue  # dns_findings
        name, ns = d.metadata.name, d.metadata.namespace
        want = d.spec.replicas if d.spec.replicas is not None else 1
        available = (d.status.available_replicas or 0) if d.status else 0
        if want == 0:
            found.append(Finding(name, f"{name}: Deployment {ns}/{name} scaled to 0 replicas", final=True))
        elif available < want:
            pods = _pods_of(look.pods_in(ns), (d.spec.selector.match_labels or {}) if d.spec.selector else {})
            states = f" (pods: {describe_pods(pods)})" if pods else " (no pods)"
            found.append(
                Finding(name, f"{name}: {available} of {want} replicas available{states}", final=bool(_stuck(pods)))
            )
    return found


def endpoints_findings(look: Look) -> list[Finding]:
    """Services with a selector, old enough, that have no Endpoints object: the endpoints
    controller is not running; and Services whose Endpoints object is there but which have no
    EndpointSlice (or, both missing, old enough): the EndpointSlice controller is not running,
    and kube-proxy and CoreDNS, which read only EndpointSlices, route and answer nothing for
    them. Evidence from kube-system and default."""
    selected = [s for s in look.services if s.spec.selector and s.spec.cluster_ip]
    settled = [s for s in selected if look.age(s) >= SETTLED_AGE]
    found = []
    endpoints = look.endpoints
    if endpoints is not None and settled:
        missing = [s for s in settled if _key(s) not in endpoints]
        if missing and len(missing) == len(settled):
            found.append(
                Finding(
                    "endpoints controller",
                    f"no Endpoints object for Service {_aged(look, missing)}: is the endpoints controller running?",
                    final=True,
                )
            )
    slices = look.slice_services
    if slices is None or not selected:
        return found
    objects = look.endpoints_objects or {}
    key = _key
    # the Endpoints object proves its controller has seen the Service: the slice is due by now
    due = [s for s in selected if key(s) in objects and look.age(objects[key(s)]) >= SLICE_LAG]
    without = [s for s in due if key(s) not in slices]
    if without and len(without) == len(due):
        listed = ", ".join(f"{s.metadata.namespace}/{s.metadata.name}{_ready_of(objects[key(s)])}" for s in without)
        text = (
            f"Services have Endpoints but no EndpointSlices ({listed}): is the EndpointSlice controller running? "
            "(kube-proxy and CoreDNS read only EndpointSlices)"
        )
        found.append(Finding(SLICE_CONTROLLER, text, final=True))
    elif not due and settled and all(key(s) not in slices for s in settled):
        text = f"no EndpointSlice for Service {_aged(look, settled)}: is the EndpointSlice controller running?"
        found.append(Finding(SLICE_CONTROLLER, text, final=True))
    return found


def controller_findings(look: Look) -> list[Finding]:
    """kube-controller-manager's controllers its --controllers flag turns off (as its mirror pod
    shows it), among those the suites' waits depend on."""
    args = look.controller_manager_args() or []
    off = {c: text for c in CONTROLLERS if (text := controller_off(args, c))}
    return [Finding(f"{CONTROLLERS[c][0]} controller", text, final=True) for c, text in off.items()]


def controller_off(args: Iterable[str], controller: str) -> str | None:
    """Whether kube-controller-manager's `--controllers` turns `controller` off (a name of
    CONTROLLERS), in words; None when it runs or the flag is not there (its default: all on)."""
    flag = next((a for a in args if a.partition("=")[0] == "--controllers"), None)
    if flag is None:
        return None
    names = [n.strip() for n in flag.partition("=")[2].split(",")]
    label, alias = CONTROLLERS[controller]
    known = {controller, alias}
    disabled = any(f"-{n}" in names for n in known)
    if disabled or not ("*" in names or known & set(names)):
        return f"kube-controller-manager runs with {flag}: the {label} controller is off"
    return None


def lease_findings(look: Look) -> list[Finding]:
    found = []
    for name in LEADER_LEASES:
        lease = look.lease(name)
        spec = lease.spec if lease is not None else None
        if spec is None or spec.renew_time is None:
            continue
        age = look.now - spec.renew_time.timestamp()
        if age > max(STALE_LEASE, 3 * (spec.lease_duration_seconds or 15)):
            holder = f" (holder {spec.holder_identity})" if spec.holder_identity else ""
            found.append(
                Finding(name, f"{name}: leader lease last renewed {_ago(age)} ago{holder}: is it running?", final=True)
            )
    return found


def admission_findings(look: Look) -> list[Finding]:
    """Admission plugins kube-apiserver's flags turn off (as its mirror pod shows them)."""
    for arg in look.apiserver_args() or []:
        flag, _, value = arg.partition("=")
        if flag == "--disable-admission-plugins" and value:
            return [Finding("kube-apiserver", f"kube-apiserver runs with {arg}: those admission plugins are off", True)]
    return []


# --- cluster DNS ------------------------------------------------------------------------------


@dataclass(frozen=True)
class DnsState:
    """CoreDNS (or kube-dns) as installed: `installed` False when there is no DNS Deployment and
    no DNS pod at all (a part the cluster lacks); `problem` says why it cannot answer, if known."""

    installed: bool
    problem: str = ""
    final: bool = False
    pods: str = "none"


def dns_state(look: Look) -> DnsState:
    deployments = [d for d in look.deployments if _is_dns(d) and d.metadata.namespace == SYSTEM]
    pods = [p for p in look.system_pods if (p.metadata.labels or {}).get("k8s-app") == "kube-dns"]
    described = describe_pods(pods) if pods else "none"
    if not deployments and not pods:
        return DnsState(installed=False)
    scaled = [d for d in deployments if d.spec.replicas == 0]
    if scaled and not pods:
        names = ", ".join(f"{SYSTEM}/{d.metadata.name}" for d in scaled)
        return DnsState(True, f"CoreDNS: Deployment {names} scaled to 0 replicas: no DNS pods", True, described)
    if not pods:
        return DnsState(True, "CoreDNS: no DNS pods (the Deployment has made none)", False, described)
    not_ready = [p for p in pods if not pod_is_ready(p)]
    if len(not_ready) == len(pods):
        stuck = _stuck(pods)
        return DnsState(True, f"CoreDNS pods not ready: {describe_pods(not_ready)}", bool(stuck), described)
    return DnsState(True, "", False, described)


# --- the hand-over -------------------------------------------------------------------------------

_recorded: dict[str, list[Finding]] = {}


def settle(
    cluster: Cluster,
    window: float,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> list[Finding]:
    """Probe until nothing is found wrong, every finding is final, the findings have not changed
    for SETTLE_STABLE seconds, or `window` seconds passed; what was found last (a young cluster's
    CoreDNS may still be starting: that is waited for)."""
    deadline = clock() + window
    last: list[str] = []
    since = clock()
    while True:
        found = probe(cluster)
        texts = [f.text for f in found]
        if texts != last:
            last, since = texts, clock()
        if not found or all(f.final for f in found) or clock() >= deadline or clock() - since >= SETTLE_STABLE:
            return found
        sleep(SETTLE_INTERVAL)


def record(cluster: Cluster, findings: Iterable[Finding]) -> None:
    """What the provider found when it handed the cluster over (facts.py writes it out)."""
    _recorded[cluster.name] = list(findings)


def findings_for(cluster: Cluster) -> list[Finding]:
    """The recorded findings, else a probe now (an existing cluster)."""
    recorded = _recorded.get(cluster.name)
    return list(recorded) if recorded is not None else probe(cluster)


def require_reachable(cluster: Cluster, timeout: float = REQUEST_TIMEOUT) -> None:
    """Raise ClusterUnreachable when the API server does not answer at all (the only reason a
    module errors as a whole)."""
    try:
        client.VersionApi(cluster.api).get_code(_request_timeout=timeout)
    except Exception as e:
        raise ClusterUnreachable(
            f"the API server of cluster {cluster.name} does not answer: "
            f"{type(e).__name__}: {one_line(e, 200, first_line=True)}"
        ) from None


# --- helpers -------------------------------------------------------------------------------------


def proxy_replacement(look: Look) -> str | None:
    """What implements Services instead of kube-proxy pods, when something may."""
    for name in look.all_daemonset_names:
        if name.startswith(PROXY_REPLACEMENTS):
            return f"DaemonSet {name}"
    for node in look.nodes:
        kubelet = node.status.node_info.kubelet_version if node.status and node.status.node_info else ""
        if any(mark in kubelet for mark in EMBEDDED_PROXY_KUBELETS):
            return f"kubelet {kubelet} (embeds kube-proxy)"
    return None


def _is_dns(deployment: client.V1Deployment) -> bool:
    labels = deployment.metadata.labels or {}
    return labels.get("k8s-app") == "kube-dns" or deployment.metadata.name in ("coredns", "kube-dns")


def _pods_of(pods: list[client.V1Pod], match_labels: dict[str, str]) -> list[client.V1Pod]:
    if not match_labels:
        return []
    return [p for p in pods if all((p.metadata.labels or {}).get(k) == v for k, v in match_labels.items())]


def _key(obj: Any) -> tuple[str, str]:
    return obj.metadata.namespace, obj.metadata.name


def _aged(look: Look, objects: Iterable[Any]) -> str:
    return ", ".join(f"{o.metadata.namespace}/{o.metadata.name} ({_ago(look.age(o))} old)" for o in objects)


def _ready_of(endpoints: client.V1Endpoints) -> str:
    ready = [a.ip for subset in endpoints.subsets or [] for a in subset.addresses or []]
    return f": ready {', '.join(ready)}" if ready else ""


def _stuck(pods: Iterable[client.V1Pod]) -> list[str]:
    return [reason for p in pods if (reason := stuck_container(p))]


def _ago(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h"
