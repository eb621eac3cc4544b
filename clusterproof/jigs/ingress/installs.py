"""The ingress controllers this suite installs: what each one is (release, fixture, names), which
one where (ingress-nginx online, Traefik offline, INGRESS_NGINX_OFFLINE says why), and what is known
of ingress-nginx's end (INGRESS_NGINX_FINAL, `support_of`)."""

from __future__ import annotations

from dataclasses import dataclass

from clusterproof.offline.releases import TRAEFIK as TRAEFIK_VERSION

CONTROLLERS_DIR = "claims/ingress/controllers"
INGRESS_NGINX_CONTROLLER = "k8s.io/ingress-nginx"
TRAEFIK_GATEWAY_CONTROLLER = "traefik.io/gateway-controller"
# ingress-nginx's end: its last release and the Kubernetes minors that release supports (its README's
# support table); said wherever ingress-nginx is the controller under test or ING-01 cannot run.
INGRESS_NGINX_LAST = "v1.15.1"
INGRESS_NGINX_SUPPORTED = ((1, 31), (1, 35))
INGRESS_NGINX_FINAL = (
    f"ingress-nginx {INGRESS_NGINX_LAST} is its final release (the project was retired in March 2026), "
    f"supported on Kubernetes {INGRESS_NGINX_SUPPORTED[0][0]}.{INGRESS_NGINX_SUPPORTED[0][1]}–"
    f"{INGRESS_NGINX_SUPPORTED[1][0]}.{INGRESS_NGINX_SUPPORTED[1][1]}"
)
# Why the offline cluster has no ingress-nginx (probed on this build machine; the skip reason of
# ING-01 and ING-04 there).
INGRESS_NGINX_OFFLINE = (
    "no ingress-nginx controller image offline: its nginx needs stream-lua-nginx-module and "
    "lua-resty-balancer, -lock, -http, -dns, -cookie, -string, -ipmatcher, -global-throttle, which Debian "
    "(trixie, sid) does not package, and the Go module proxy serves no controller-v* release of "
    "k8s.io/ingress-nginx (only v0.0.0-20240708192948-52c50467d67d, controller v1.11.0's era) nor "
    "kube-webhook-certgen"
)


@dataclass(frozen=True)
class Install:
    """A controller this suite installs the bare-metal way: its manifest (a fixture, rendered
    here), what it creates, and how its pods are found."""

    name: str  # ingress-nginx, traefik
    version: str  # the pinned release (the catalogue's image tag)
    fixture: str
    namespace: str
    class_name: str
    controller: str  # its IngressClass's spec.controller
    service: str  # the NodePort Service on 80 and 443
    deployment: str
    pod_selector: str
    images: tuple[str, ...]  # logical names (the catalogue's) of the images its manifest runs
    jobs: tuple[str, ...] = ()  # Jobs that must complete (admission certificates)
    webhook: bool = False  # an admission webhook that must admit Ingresses of its class
    provider: str = ""  # how it serves the class when it is not the class's own controller
    provider_arg: str = ""  # the argument of its container that turns that provider on
    gateway_class: str | None = None  # a GatewayClass it makes and serves (Gateway API)
    gateway_controller: str | None = None  # that GatewayClass's controllerName


INGRESS_NGINX = Install(
    name="ingress-nginx",
    version="v1.15.1",
    fixture=f"{CONTROLLERS_DIR}/ingress-nginx-baremetal.yaml",
    namespace="ingress-nginx",
    class_name="nginx",
    controller=INGRESS_NGINX_CONTROLLER,
    service="ingress-nginx-controller",
    deployment="ingress-nginx-controller",
    pod_selector="app.kubernetes.io/name=ingress-nginx,app.kubernetes.io/component=controller",
    images=("ingress-nginx-controller", "kube-webhook-certgen"),
    jobs=("ingress-nginx-admission-create", "ingress-nginx-admission-patch"),
    webhook=True,
)
# Traefik serves the notes' class nginx through its Kubernetes Ingress NGINX provider (reading their
# ingress-nginx annotations), and Gateways of its GatewayClass traefik.
TRAEFIK = Install(
    name="traefik",
    version=TRAEFIK_VERSION,
    fixture=f"{CONTROLLERS_DIR}/traefik-baremetal.yaml",
    namespace="traefik",
    class_name="nginx",
    controller=INGRESS_NGINX_CONTROLLER,
    service="traefik",
    deployment="traefik",
    pod_selector="app.kubernetes.io/name=traefik",
    images=("traefik",),
    provider="ingress-nginx provider",
    provider_arg="--providers.kubernetesingressnginx=true",
    gateway_class="traefik",
    gateway_controller=TRAEFIK_GATEWAY_CONTROLLER,
)
# names of the notes' ingress-nginx install [000]
NGINX_NAMESPACE = INGRESS_NGINX.namespace
CONTROLLER_SERVICE = INGRESS_NGINX.service
ADMISSION_SERVICE = "ingress-nginx-controller-admission"
ADMISSION_JOBS = INGRESS_NGINX.jobs
# controllers whose pods are found by their usual labels (others through their Service's name), by the
# IngressClass controller they serve: ingress-nginx's own first, then Traefik's ingress-nginx provider
KNOWN_CONTROLLERS = (INGRESS_NGINX, TRAEFIK)


def known_for(controller: str) -> tuple[Install, ...]:
    return tuple(c for c in KNOWN_CONTROLLERS if c.controller == controller)


def install_for(offline: bool) -> Install:
    """ingress-nginx where a registry answers; Traefik (built by the offline build) offline."""
    return TRAEFIK if offline else INGRESS_NGINX


def support_of(version: str, server: tuple[int, int], git_version: str) -> str:
    """What is known of an ingress-nginx release on this Kubernetes: for its final release, the
    supported range and whether this pairing is in it (an unsupported pairing is said, not hidden)."""
    if version != INGRESS_NGINX_LAST:
        return f"on Kubernetes {git_version}"
    low, high = INGRESS_NGINX_SUPPORTED
    verdict = "a supported pairing" if low <= server <= high else "an unsupported pairing"
    return f"on Kubernetes {git_version}, {verdict}: {INGRESS_NGINX_FINAL}"
