"""Gateway API, for the notes' Ingress examples written as routes (the GW claims): which GatewayClass is
tested (--gateway-class; else the one this run's install made; else one a controller has accepted),
and the Gateway jig: the class's and a Gateway's status (Accepted, Programmed, an address), a route's
status per parent, and the entry points a Gateway's address and listener port give."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from kubernetes import client

from clusterproof import wait
from clusterproof.api_answers import unless_missing
from clusterproof.cluster import Cluster
from clusterproof.errors import ClusterproofError
from clusterproof.jigs.ingress.controller import Controller
from clusterproof.jigs.ingress.routes import EntryPoint
from clusterproof.run import RUN_LABEL

GROUP = "gateway.networking.k8s.io"
VERSION = "v1"
STATUS_TIMEOUT = 60.0  # a controller writes a Gateway's or route's status within seconds of seeing it
NO_CONTROLLER = "clusterproof.io/no-controller"  # a GatewayClass controllerName nobody implements

Doc = dict[str, Any]


class GatewayClassNotFound(ClusterproofError):
    """--gateway-class names no GatewayClass of the cluster (one line, listing the classes)."""


@dataclass(frozen=True)
class GatewayClassInfo:
    name: str
    controller: str
    accepted: bool = False  # its controller set Accepted=True
    run_id: str | None = None  # the run of this suite that installed it, if one did

    @classmethod
    def of(cls, obj: Doc) -> GatewayClassInfo:
        meta = obj.get("metadata") or {}
        return cls(
            meta.get("name", "?"),
            (obj.get("spec") or {}).get("controllerName", "?"),
            condition(obj, "Accepted") == "True",
            (meta.get("labels") or {}).get(RUN_LABEL),
        )


def describe_gateway_classes(classes: Sequence[GatewayClassInfo]) -> str:
    found = [f"{c.name} ({c.controller}{', accepted' if c.accepted else ', not accepted'})" for c in classes]
    return ", ".join(found) or "none"


def check_gateway_class(wanted: str, classes: Sequence[GatewayClassInfo] | None) -> GatewayClassInfo:
    if classes is None:
        raise GatewayClassNotFound(
            f"--gateway-class {wanted}: the cluster does not serve the Gateway API ({GROUP}/{VERSION})"
        )
    for info in classes:
        if info.name == wanted:
            return info
    raise GatewayClassNotFound(
        f"--gateway-class {wanted}: the cluster has no GatewayClass {wanted!r} "
        f"(GatewayClasses: {describe_gateway_classes(classes)})"
    )


def list_gateway_classes(api: client.ApiClient, timeout: float | None = None) -> list[GatewayClassInfo] | None:
    """The cluster's GatewayClasses; None when it does not serve the Gateway API."""
    kwargs = {"_request_timeout": (timeout, timeout)} if timeout else {}
    listed = unless_missing(
        lambda: client.CustomObjectsApi(api).list_cluster_custom_object(GROUP, VERSION, "gatewayclasses", **kwargs)
    )
    if listed is None:
        return None
    return [GatewayClassInfo.of(obj) for obj in listed.get("items") or []]


@dataclass(frozen=True)
class GatewayPlan:
    target: GatewayClassInfo | None = None
    why: str = ""
    skip: str = ""


def plan_gateway(
    classes: Sequence[GatewayClassInfo] | None, wanted: str | None, *, run_id: str = "", ours: str | None = None
) -> GatewayPlan:
    """Which GatewayClass the GW claims test: `--gateway-class`; else `ours` (the class this run's
    install made); else one its controller accepted (the first by name, when several). A class another
    run of the suite installed is never tested: that run removes it when its ingress module ends."""
    if classes is None:
        return GatewayPlan(skip=f"the cluster does not serve the Gateway API ({GROUP}/{VERSION}): no GatewayClass")
    if wanted:
        chosen = GatewayPlan(target=check_gateway_class(wanted, classes), why=f"--gateway-class {wanted}")
    elif ours and any(c.name == ours for c in classes):
        chosen = GatewayPlan(target=next(c for c in classes if c.name == ours), why="installed by this run")
    else:
        accepted = sorted((c for c in classes if c.accepted), key=lambda c: c.name)
        if not accepted:
            return GatewayPlan(
                skip="no GatewayClass that a controller accepted (GatewayClasses: "
                f"{describe_gateway_classes(classes)}): pick one with --gateway-class NAME"
            )
        others = f" (of {len(accepted)} accepted)" if len(accepted) > 1 else ""
        chosen = GatewayPlan(target=accepted[0], why=f"a GatewayClass its controller accepted{others}")
    target = chosen.target
    if target is not None and target.run_id and target.run_id != run_id:
        return GatewayPlan(
            skip=f"GatewayClass {target.name} was installed by run {target.run_id} of this suite, which removes it "
            "when its ingress module ends: not tested by another run"
        )
    return chosen


# --- status ------------------------------------------------------------------------------------


def conditions(obj: Doc | None) -> list[Doc]:
    return list(((obj or {}).get("status") or {}).get("conditions") or [])


def condition(obj: Doc | None, kind: str) -> str | None:
    """The status ("True", "False", "Unknown") of condition `kind`, None when there is none."""
    return next((c.get("status") for c in conditions(obj) if c.get("type") == kind), None)


def describe_conditions(found: list[Doc]) -> str:
    parts = [
        f"{c.get('type')} {c.get('status')}" + (f" ({c.get('reason')}: {c.get('message')})" if c.get("reason") else "")
        for c in found
    ]
    return "; ".join(parts) or "no conditions"


def addresses(gateway: Doc | None) -> list[str]:
    return [a.get("value") for a in ((gateway or {}).get("status") or {}).get("addresses") or [] if a.get("value")]


def route_parent(route: Doc | None, gateway: str) -> Doc | None:
    """The route's status for parent Gateway `gateway`, None when no controller wrote one."""
    for parent in ((route or {}).get("status") or {}).get("parents") or []:
        if (parent.get("parentRef") or {}).get("name") == gateway:
            return parent
    return None


def describe_gateway(gateway: Doc | None) -> str:
    if gateway is None:
        return "no such Gateway"
    listeners = [
        f"listener {li.get('name')}: {describe_conditions(li.get('conditions') or [])}"
        for li in (gateway.get("status") or {}).get("listeners") or []
    ]
    found = addresses(gateway)
    return "; ".join([describe_conditions(conditions(gateway)), f"addresses {', '.join(found) or 'none'}", *listeners])


# --- the Gateway jig ---------------------------------------------------------------------------


@dataclass
class GatewayJig:
    """The GatewayClass under test and what implements it. `implementation`: the controller of this
    run's install that serves the class (its pods, for what is named when none runs), else None."""

    cluster: Cluster
    class_name: str
    controller: str
    implementation: Controller | None = None
    why: str = ""

    def describe(self) -> str:
        impl = self.implementation
        if impl is None:
            return f"{self.controller} (GatewayClass {self.class_name})"
        origin = ", installed by this run" if impl.installed else ""
        return f"{impl.name} {impl.version} (GatewayClass {self.class_name}{origin})"

    @property
    def never(self) -> Callable[[], str | None] | None:
        """What no waiting cures: the implementing controller scaled to zero (known only for ours)."""
        return self.implementation.scaled_to_zero if self.implementation else None

    def read(self, plural: str, name: str, namespace: str | None = None) -> Doc | None:
        custom = client.CustomObjectsApi(self.cluster.api)
        if namespace is None:
            return unless_missing(lambda: custom.get_cluster_custom_object(GROUP, VERSION, plural, name))
        return unless_missing(lambda: custom.get_namespaced_custom_object(GROUP, VERSION, namespace, plural, name))

    def assert_class_accepted(self, timeout: float = STATUS_TIMEOUT) -> None:
        """The GatewayClass MUST be Accepted by its controller."""
        wait.until_seen(
            lambda: self.read("gatewayclasses", self.class_name),
            lambda gc: gc if condition(gc, "Accepted") == "True" else None,
            f"GatewayClass {self.class_name} Accepted by {self.controller}",
            timeout,
            describe=lambda gc: "no such GatewayClass" if gc is None else describe_conditions(conditions(gc)),
            never=self.never,
        )

    def assert_programmed(self, namespace: str, name: str, timeout: float = STATUS_TIMEOUT) -> list[str]:
        """Gateway `name` MUST be Accepted and Programmed, with an address: its addresses."""
        gateway = wait.until_seen(
            lambda: self.read("gateways", name, namespace),
            lambda gw: gw if _programmed(gw) else None,
            f"Gateway {namespace}/{name} Accepted and Programmed, with an address, by {self.describe()}",
            timeout,
            describe=describe_gateway,
            never=self.never,
        )
        return addresses(gateway)

    def assert_route_accepted(self, namespace: str, route: str, gateway: str, timeout: float = STATUS_TIMEOUT) -> None:
        """HTTPRoute `route` MUST be Accepted by Gateway `gateway`, its references resolved."""
        wait.until_seen(
            lambda: self.read("httproutes", route, namespace),
            lambda r: r if _accepted_by(r, gateway) else None,
            f"HTTPRoute {namespace}/{route} Accepted by Gateway {gateway}, its references resolved, "
            f"through {self.describe()}",
            timeout,
            describe=lambda r: "no such HTTPRoute" if r is None else _route_state(r, gateway),
            never=self.never,
        )

    def entry_points(self, namespace: str, gateway: str, port: int, scheme: str = "http") -> list[EntryPoint]:
        """Each address of the Gateway, at listener port `port`."""
        found = addresses(self.read("gateways", gateway, namespace))
        assert found, f"Gateway {namespace}/{gateway} has no address"
        return [EntryPoint(f"Gateway {gateway}'s address {ip}:{port}", ip, port, scheme) for ip in found]

    def claimed_within(self, namespace: str, gateway: str, window: float) -> str | None:
        """Watch Gateway `gateway` for `window` seconds: what a controller made of it (Accepted or
        Programmed, an address), or None when nothing did (a watch that fails is no observation:
        WatchFailed)."""
        custom = client.CustomObjectsApi(self.cluster.api)
        lister = functools.partial(custom.list_namespaced_custom_object, GROUP, VERSION, namespace, "gateways")
        return wait.seen_within(
            lister,
            lambda objs: _claimed(objs.get(gateway)),
            window,
            default=None,
            field_selector=f"metadata.name={gateway}",
        )

    def rewrite_gone(self, namespace: str, route: str, path: str) -> Callable[[], str | None]:
        """What no waiting cures for a rewrite of `path`: HTTPRoute `route` as the API server stores it
        has no URLRewrite filter on the rule for it (dropped, or pruned by a CRD that lacks it), or
        the controller is scaled to zero."""

        def why() -> str | None:
            found = self.read("httproutes", route, namespace)
            rule = _rule_for(found, path)
            if rule is not None and not any(f.get("type") == "URLRewrite" for f in rule.get("filters") or []):
                rules = _route_rules(found) if found else ""
                return f"HTTPRoute {route} as stored has no URLRewrite filter on the rule for {path}: {rules}"
            return self.never() if self.never else None

        return why

    def route_state(self, namespace: str, route: str, gateway: str) -> str:
        """HTTPRoute `route` as stored and as its parent's status says (a hint for a wrong answer)."""
        found = self.read("httproutes", route, namespace)
        return "no such HTTPRoute" if found is None else f"{_route_rules(found)}; {_route_state(found, gateway)}"


def _claimed(gateway: Doc | None) -> str | None:
    """What shows that a controller took Gateway `gateway` on, in words; None when nothing does."""
    found = [
        f"{kind} {condition(gateway, kind)}"
        for kind in ("Accepted", "Programmed")
        if condition(gateway, kind) == "True"
    ]
    found += [f"address {a}" for a in addresses(gateway)]
    return ", ".join(found) or None


def route_services(route: Doc) -> dict[str, str]:
    """{path prefix: Service} of an HTTPRoute document's PathPrefix rules (its first backend each)."""
    found = {}
    for rule in (route.get("spec") or {}).get("rules") or []:
        backends = rule.get("backendRefs") or []
        for match in rule.get("matches") or []:
            path = match.get("path") or {}
            if path.get("type") == "PathPrefix" and backends:
                found[path["value"]] = backends[0]["name"]
    return found


def _programmed(gateway: Doc | None) -> bool:
    return (
        condition(gateway, "Accepted") == "True"
        and condition(gateway, "Programmed") == "True"
        and bool(addresses(gateway))
    )


def _accepted_by(route: Doc | None, gateway: str) -> bool:
    parent = route_parent(route, gateway)
    found = (parent or {}).get("conditions") or []
    status = {c.get("type"): c.get("status") for c in found}
    return status.get("Accepted") == "True" and status.get("ResolvedRefs") == "True"


def _route_state(route: Doc, gateway: str) -> str:
    parent = route_parent(route, gateway)
    if parent is None:
        return f"no status from Gateway {gateway} (no controller accepted or refused it)"
    return f"from Gateway {gateway}: {describe_conditions(parent.get('conditions') or [])}"


def _rule_for(route: Doc | None, path: str) -> Doc | None:
    """The rule of `route` whose PathPrefix matches `path` longest (element-wise, as PathPrefix)."""
    best: tuple[int, Doc] | None = None
    for rule in ((route or {}).get("spec") or {}).get("rules") or []:
        for match in rule.get("matches") or []:
            prefix = ((match.get("path") or {}).get("value") or "/").rstrip("/")
            if (prefix == "" or path == prefix or path.startswith(prefix + "/")) and (
                best is None or len(prefix) > best[0]
            ):
                best = (len(prefix), rule)
    return best[1] if best else None


def _route_rules(route: Doc) -> str:
    """`rule PathPrefix /testpath -> test (URLRewrite ReplacePrefixMatch /)`, one per rule."""
    rules = []
    for rule in (route.get("spec") or {}).get("rules") or []:
        matches = [
            f"{(m.get('path') or {}).get('type', '?')} {(m.get('path') or {}).get('value', '?')}"
            for m in rule.get("matches") or []
        ]
        backends = [b.get("name", "?") for b in rule.get("backendRefs") or []]
        filters = [_filter_words(f) for f in rule.get("filters") or []]
        text = f"rule {', '.join(matches) or 'any path'} -> {', '.join(backends) or 'no backend'}"
        rules.append(text + (f" ({'; '.join(filters)})" if filters else " (no filter)"))
    return f"HTTPRoute {route['metadata']['name']}: " + ("; ".join(rules) or "no rules")


def _filter_words(f: Doc) -> str:
    if f.get("type") == "URLRewrite":
        path = (f.get("urlRewrite") or {}).get("path") or {}
        return (
            f"URLRewrite {path.get('type', '?')} {path.get('replacePrefixMatch') or path.get('replaceFullPath', '?')}"
        )
    return str(f.get("type", "?"))


@dataclass
class GatewayUnderTest:
    """The module's GatewayClass under test, once per module: a GatewayJig, or why there is none."""

    gateway: GatewayJig | None = None
    skip: str = ""
    plan: GatewayPlan = field(default_factory=GatewayPlan)

    def get(self) -> GatewayJig:
        if self.gateway is None:
            pytest.skip(self.skip or "no GatewayClass to test")
        return self.gateway


def gateway_under_test(
    cluster: Cluster, wanted: str | None, implementation: Controller | None, *, run_id: str = ""
) -> GatewayUnderTest:
    """Choose the GatewayClass (see `plan_gateway`); `implementation` is this run's installed
    controller, when it made one. Never raises for what the cluster lacks: the outcome is for each test."""
    installed = implementation.installed if implementation is not None else None
    ours = installed.gateway_class if installed is not None else None
    chosen = plan_gateway(list_gateway_classes(cluster.api), wanted, run_id=run_id, ours=ours)
    if chosen.target is None:
        return GatewayUnderTest(skip=chosen.skip, plan=chosen)
    target = chosen.target
    impl = implementation if ours == target.name else None
    jig = GatewayJig(cluster, target.name, target.controller, impl, why=chosen.why)
    return GatewayUnderTest(gateway=jig, plan=chosen)
