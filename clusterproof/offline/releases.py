"""The Kubernetes releases the offline build can make, and what each one's cluster needs.

Versions come from what the Go module proxy serves and builds with Go 1.26 (probed and
written down in docs/DESIGN.md, "Offline build"). Image tags are the ones kubeadm of that
release asks for (cmd/kubeadm/app/constants), so kubeadm init and upgrade find them unchanged,
except pause: the node's containerd runs every pod sandbox with one pause image
(recipes/files/containerd.toml, shared by the Go-built releases) and the suites' catalogue names
that same one, so each Go-built release carries it (kubeadm only warns when its own differs).
"""

from __future__ import annotations

from dataclasses import dataclass

from clusterproof.errors import ClusterproofError


class UnknownRelease(ClusterproofError):
    """A --k8s-version the offline build does not know."""


@dataclass(frozen=True)
class Release:
    kube: str  # v1.37.2
    source: str  # "go": Go modules; "debian": Debian's source package (the legacy 1.20.2)
    registry: str  # where kubeadm of this release looks for its images
    etcd: str  # etcd release built (Go module version, without v)
    etcd_tag: str  # the tag kubeadm asks for
    coredns: str  # CoreDNS release built ("" when the cluster has none)
    pause: str

    @property
    def minor(self) -> str:
        return ".".join(self.kube.lstrip("v").split(".")[:2])

    @property
    def minor_number(self) -> int:
        return int(self.minor.split(".")[1])

    @property
    def staging_version(self) -> str:
        """k8s.io/api and the other staging modules: v0.<minor>.<patch>."""
        major, minor, patch = self.kube.lstrip("v").split(".")
        return f"v0.{minor}.{patch}"

    @property
    def kubeadm_api(self) -> str:
        """The kubeadm config API kind writes for this release (kind >= 0.32)."""
        if self.minor_number < 23:
            return "v1beta2"
        return "v1beta3" if self.minor_number < 36 else "v1beta4"

    def image(self, name: str) -> str:
        tags = {
            "etcd": f"{self.registry}/etcd:{self.etcd_tag}",
            "coredns": f"{self.registry}/coredns/coredns:{self.coredns}",
            "pause": f"{self.registry}/pause:{self.pause}",
        }
        return tags.get(name) or f"{self.registry}/{name}:{self.kube}"


RELEASES = {
    "1.37": Release(
        kube="v1.37.2",
        source="go",
        registry="registry.k8s.io",
        etcd="3.7.0",
        etcd_tag="3.7.0-0",
        coredns="v1.14.6",
        pause="3.10.2",
    ),
    "1.36": Release(
        kube="v1.36.3",
        source="go",
        registry="registry.k8s.io",
        etcd="3.6.8",
        etcd_tag="3.6.8-0",
        coredns="v1.14.2",
        pause="3.10.2",
    ),
    # The oldest Go-built release: the start of the multi-hop upgrade (1.35 -> 1.36 -> 1.37, the
    # nightly's); supported until February 2027, the last minor ingress-nginx's final release supports.
    "1.35": Release(
        kube="v1.35.4",
        source="go",
        registry="registry.k8s.io",
        etcd="3.6.6",
        etcd_tag="3.6.6-0",
        coredns="v1.13.1",
        # kubeadm 1.35 asks for 3.10.1; a node without containerd's sandbox image (3.10.2) starts no
        # pod: kind create waited 4 min for a control plane whose sandboxes failed to pull it
        pause="3.10.2",
    ),
    # The notes' own era (master taint, v1beta1 Ingress served): the nightly's legacy row.
    "1.20": Release(
        kube="v1.20.2",
        source="debian",
        registry="k8s.gcr.io",
        etcd="3.4.23",
        etcd_tag="3.4.13-0",
        coredns="",
        pause="3.2",
    ),
}
DEFAULT = "1.37"

# Shared by every Go-built release: the node's runtime, the default StorageClass's provisioner,
# and upstream's e2e test image (built from the newest release's tree).
CONTAINERD = "v2.3.4"  # what kind v0.33's own base image carries
LOCAL_PATH_PROVISIONER = "v0.0.30"
AGNHOST_FROM = "1.37"
AGNHOST_TAG = "2.66.1"  # test/images/agnhost/VERSION in that tree
# The ingress controller of offline clusters (ingress-nginx cannot be built here: see
# clusterproof/jigs/ingress/installs.py, INGRESS_NGINX_OFFLINE): its Kubernetes Ingress NGINX provider
# reads the notes' Ingresses as written (class nginx, rewrite-target from v3.7.0), its Gateway API
# provider serves the GW claims. Its module graph holds modules the proxy does not serve (its nested
# dynamic/ext module, a fork version, some DNS SDKs of lego): clusterproof.offline.programs says what
# the wrapper uses instead (TRAEFIK_STUBS, TRAEFIK_PINS).
TRAEFIK = "v3.7.13"
# controller-gen, which turns the Gateway API module's types into its CRDs at build time (the Gateway
# API version is the one Traefik's go.mod requires: clusterproof.offline.gateway_api)
CONTROLLER_TOOLS = "v0.21.0"


def release(version: str | None) -> Release:
    """`1.37`, `v1.37`, `1.37.2` or `v1.37.2` -> the Release; None -> the default."""
    if not version:
        return RELEASES[DEFAULT]
    wanted = version.lstrip("v")
    minor = ".".join(wanted.split(".")[:2])
    found = RELEASES.get(minor)
    if found is None or (wanted.count(".") == 2 and found.kube.lstrip("v") != wanted):
        known = ", ".join(f"{k} ({r.kube})" for k, r in RELEASES.items())
        raise UnknownRelease(f"--k8s-version {version}: the offline build makes {known}")
    return found


def upgrade_target(source: Release) -> Release:
    """The next minor after `source` among the Go-built releases (kubeadm upgrades one minor at a time)."""
    for candidate in RELEASES.values():
        if candidate.source == "go" and candidate.minor_number == source.minor_number + 1:
            return candidate
    raise UnknownRelease(f"no release after {source.kube} in the offline build to upgrade to")
