"""The ingress module's controller, once per module: the class chosen, its controller installed or found."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest
from kubernetes.client import ApiException

from clusterproof.cluster import Cluster
from clusterproof.errors import Broken, SetupFailed, WaitTimeout, one_line
from clusterproof.jigs.ingress.classes import Plan, class_infos, plan
from clusterproof.jigs.ingress.controller import Controller, find_controller
from clusterproof.jigs.ingress.installer import install, missing_images
from clusterproof.jigs.ingress.installs import (
    INGRESS_NGINX,
    INGRESS_NGINX_CONTROLLER,
    INGRESS_NGINX_FINAL,
    INGRESS_NGINX_OFFLINE,
    Install,
)

if TYPE_CHECKING:
    from clusterproof.manifests import Manifests
    from clusterproof.timings import Stopwatch


@dataclass
class UnderTest:
    """The ingress module's controller, once per module: a Controller, or why there is none to
    test (`skip`), or the install's failure (`error`, raised to every test that needs it: the
    install is tried once). `namespace` is where its pods are (for diagnostics)."""

    controller: Controller | None = None
    skip: str = ""
    error: BaseException | None = None
    namespace: str | None = None
    plan: Plan = field(default_factory=Plan)

    def fact(self) -> dict[str, Any]:
        """What the report says of the cluster's ingress controller (cluster.json `ingress_controller`):
        the one tested (installed by the module or found), the install that failed, or why there is none."""
        if self.controller is not None:
            c = self.controller
            return {"name": c.name, "version": c.version, "class": c.class_name, "controller": c.controller,
                    "namespace": c.namespace, "installed": c.installed is not None}
        install, target = self.plan.install, self.plan.target
        if self.error is not None and install is not None:
            return {"name": install.name, "version": install.version, "class": install.class_name,
                    "controller": install.controller, "namespace": install.namespace, "installed": True,
                    "error": one_line(self.error, 300)}
        if self.error is not None and target is not None:
            return {"name": target.controller, "class": target.name, "controller": target.controller,
                    "installed": False, "error": one_line(self.error, 300)}
        return {"none": self.skip or "no ingress controller to test"}

    def require_ingress_nginx(self, what: str, *, offline: bool, annotations: bool = False) -> None:
        """Skip `what` (an ingress-nginx claim) unless the controller under test is ingress-nginx
        itself (`annotations`: or another controller serving its class, reading its annotations),
        decided from the plan: also when that controller's install or lookup failed (a claim
        skipped on a healthy cluster stays skipped on a broken one)."""
        if self.controller is not None:
            if annotations:
                self.controller.require_nginx_annotations(what)
            else:
                self.controller.require_ingress_nginx(what)
            return
        intended = self.plan.install or self.plan.target
        if intended is None or intended.controller != INGRESS_NGINX_CONTROLLER:
            serves = False
        elif annotations or not isinstance(intended, Install):
            serves = True  # the class of ingress-nginx's controller (an existing class: taken to be its)
        else:
            serves = intended.name == INGRESS_NGINX.name
        if intended is None or serves:
            return
        if self.plan.install is not None:
            name = f"{self.plan.install.name} {self.plan.install.version} (installed by this run)"
        else:
            name = f"IngressClass {intended.name} ({intended.controller})"
        state = " (it did not become ready)" if self.error is not None else ""
        reason = f"; {INGRESS_NGINX_FINAL}, and cannot be had offline: {INGRESS_NGINX_OFFLINE}" if offline else ""
        own = "an ingress-nginx annotation" if annotations else "ingress-nginx's own"
        pytest.skip(f"{what} is {own}; the controller under test is {name}{state}{reason}")

    def get(self) -> Controller:
        if self.error is not None:
            raise self.error
        if self.controller is None:
            pytest.skip(self.skip or "no ingress controller to test")
        return self.controller


def controller_under_test(
    cluster: Cluster,
    wanted: str | None,
    manifests: Manifests,
    stopwatch: Stopwatch,
    *,
    run_id: str = "",
    allow_disruptive: bool = False,
) -> UnderTest:
    """Choose the class (see `plan`), install the controller when nothing implements one (on an
    existing cluster only with --allow-disruptive), find it. `manifests` is bound to the install's
    namespace and registers what it creates with the tracker (removed when its scope ends). Never
    raises: the outcome is for each test to meet."""
    existing = cluster.provider == "existing"
    chosen = plan(
        class_infos(cluster),
        wanted,
        existing=existing,
        offline=cluster.offline,
        run_id=run_id,
        may_install=allow_disruptive or not existing,
    )
    if chosen.skip:
        return UnderTest(skip=chosen.skip, plan=chosen)
    if chosen.install is not None and cluster.offline:
        missing = missing_images(cluster, [manifests.image(name) for name in chosen.install.images])
        if missing:
            return UnderTest(
                skip=f"no ingress controller to install offline: the nodes have no {', '.join(missing)} (the offline "
                "node images of the Go-built releases carry it: python -m clusterproof.offline build; the legacy "
                "1.20 image has none: Traefik >= v3.1 finds endpoints through discovery.k8s.io/v1 EndpointSlices, "
                f"which Kubernetes 1.20 does not serve); {INGRESS_NGINX_OFFLINE}",
                plan=chosen,
            )
    try:
        if chosen.install is not None:
            controller = install(cluster, chosen.install, manifests, stopwatch, why=chosen.why)
        else:
            assert chosen.target is not None
            controller = find_controller(cluster, chosen.target, why=chosen.why)
    except (Broken, SetupFailed, WaitTimeout, ApiException) as e:
        namespace = chosen.install.namespace if chosen.install else None
        return UnderTest(error=e, namespace=namespace, plan=chosen)
    return UnderTest(controller=controller, namespace=controller.namespace, plan=chosen)
