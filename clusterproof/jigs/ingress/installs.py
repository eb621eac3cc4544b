"""The ingress controllers this suite installs: what each one is (release, fixture, names), which
one where (ingress-nginx online, Traefik offline, INGRESS_NGINX_OFFLINE says why)."""

from __future__ import annotations

from dataclasses import dataclass

from clusterproof.offline.releases import TRAEFIK as TRAEFIK_VERSION

CONTROLLERS_DIR = "claims/ingress/controllers"
INGRESS_NGINX_CONTROLLER = "k8s.io/ingress-nginx"
TRAEFIK_CONTROLLER = "traefik.io/ingress-controller"
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
TRAEFIK = Install(
    name="traefik",
    version=TRAEFIK_VERSION,
    fixture=f"{CONTROLLERS_DIR}/traefik-baremetal.yaml",
    namespace="traefik",
    class_name="traefik",
    controller=TRAEFIK_CONTROLLER,
    service="traefik",
    deployment="traefik",
    pod_selector="app.kubernetes.io/name=traefik",
    images=("traefik",),
)
# names of the notes' ingress-nginx install [000]
NGINX_NAMESPACE = INGRESS_NGINX.namespace
CONTROLLER_SERVICE = INGRESS_NGINX.service
ADMISSION_SERVICE = "ingress-nginx-controller-admission"
ADMISSION_JOBS = INGRESS_NGINX.jobs
# controllers whose pods are found by their usual labels (others through their Service's name)
KNOWN_CONTROLLERS = {c.controller: c for c in (INGRESS_NGINX, TRAEFIK)}


def install_for(offline: bool) -> Install:
    """ingress-nginx where a registry answers; Traefik (built by the offline build) offline."""
    return TRAEFIK if offline else INGRESS_NGINX
