"""Which Go programs a Go-built release needs, and how each is built from its module."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from clusterproof.offline import gomod
from clusterproof.offline.releases import CONTAINERD, LOCAL_PATH_PROVISIONER, TRAEFIK, Release

KUBE_COMMANDS = (
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kube-proxy",
    "kubelet",
    "kubeadm",
    "kubectl",
)
AGNHOST = "k8s.io/kubernetes/test/images/agnhost"
TRAEFIK_MODULE = "github.com/traefik/traefik/v3"
STUBS = Path(__file__).parent / "recipes" / "files" / "go-stubs"
# Traefik v3.7's module graph holds modules the Go module proxy does not serve (probed 2026-12-06 with
# `go mod tidy` of the wrapper and `go mod download`; 403 "not available" unless said): what the
# wrapper uses instead, each written down here.
# - Modules of our own (recipes/files/go-stubs, see its README): Traefik's extension point of its
#   dynamic configuration, a nested module of its tree replaced there by a local path and never
#   published; Akamai's EdgeGrid v13 (lego's Akamai EdgeDNS provider), of which no version is served.
TRAEFIK_STUBS = {
    "github.com/traefik/traefik/dynamic/ext": "traefik-dynamic-ext",
    "github.com/akamai/AkamaiOPEN-edgegrid-golang/v13": "akamai-edgegrid-v13",
}
# - Other served versions: the containous fork of go-http-auth at v0.4.1-0.20260804094822-b975dcaa8c48
#   is refused, the fork commit Traefik v3.6 used is served (Traefik's basic and digest auth
#   middlewares build on it; no claim uses them); lego v5.4.1's DNS provider SDKs (huaweicloud
#   v0.1.213, sacloud v0.1.0, ucloud v0.22.116, yandex dns v0.0.94) are refused, lego v5.5.2 (same
#   major, the newest whose SDKs are served) requires served ones, but for Oracle's, whose v1065.124.x
#   is refused while v1065.108.2 (what lego v4 required for Traefik v3.6) is served.
TRAEFIK_PINS = {
    "github.com/abbot/go-http-auth": "github.com/containous/go-http-auth v0.4.1-0.20200324110947-a37a7636d23e",
    "github.com/go-acme/lego/v5": "v5.5.2",
    "github.com/nrdcg/oci-go-sdk/common/v1065": "v1065.108.2",
    "github.com/nrdcg/oci-go-sdk/dns/v1065": "v1065.108.2",
}
VERSION_PACKAGES = ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version")
NO_COMMIT = "0" * 40
BUILD_DATE = "2026-01-01T00:00:00Z"  # fixed: the same recipe gives the same binaries

# CoreDNS built with the plugins an in-cluster DNS uses (kubeadm's Corefile and the usual
# additions); the cloud-provider and tracing plugins are left out (their dependencies are most
# of CoreDNS's build time). Order does not matter here: dnsserver.Directives sets it.
COREDNS_PLUGINS = (
    "acl",
    "any",
    "auto",
    "autopath",
    "bind",
    "bufsize",
    "cache",
    "cancel",
    "chaos",
    "debug",
    "dns64",
    "errors",
    "file",
    "forward",
    "header",
    "health",
    "hosts",
    "k8s_external",
    "kubernetes",
    "loadbalance",
    "local",
    "log",
    "loop",
    "metadata",
    "metrics",
    "minimal",
    "nsid",
    "pprof",
    "ready",
    "reload",
    "rewrite",
    "root",
    "secondary",
    "template",
    "timeouts",
    "tls",
    "transfer",
    "whoami",
)

ETCD_MAIN = """package main

import (
\t"os"

\t"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
"""


def kubernetes(release: Release, upstream_go_mod: str, *, with_agnhost: bool) -> gomod.GoProgram:
    """kubeadm, kubelet, kubectl, the control plane and kube-proxy (and agnhost) of one release.
    `upstream_go_mod`: k8s.io/kubernetes's own go.mod (its staging replaces and godebug line)."""
    go, godebug = gomod.directives(upstream_go_mod)
    packages = tuple(f"k8s.io/kubernetes/cmd/{c}" for c in KUBE_COMMANDS)
    if with_agnhost:
        packages += (AGNHOST,)
    version = {
        "gitVersion": release.kube,
        "gitCommit": NO_COMMIT,
        "gitTreeState": "clean",
        "gitMajor": "1",
        "gitMinor": str(release.minor_number),
        "buildDate": BUILD_DATE,
    }
    return gomod.GoProgram(
        component=f"kubernetes {release.kube}",
        module="k8s.io/kubernetes",
        version=release.kube,
        packages=packages,
        replaces={m: release.staging_version for m in gomod.local_replaces(upstream_go_mod)},
        ldflags=gomod.version_ldflags(VERSION_PACKAGES, version),
        godebug=godebug,
        go_directive=go,
    )


def only(program: gomod.GoProgram, package: str, component: str) -> gomod.GoProgram:
    """The same wrapper module, building one of its packages."""
    return dataclasses.replace(program, component=component, packages=(package,))


def etcd(release: Release) -> gomod.GoProgram:
    # the server module requires api/client/pkg at its own version: no replaces needed
    return gomod.GoProgram(
        component=f"etcd v{release.etcd}",
        module="go.etcd.io/etcd/server/v3",
        version=release.etcd,
        packages=(),
        main_go=ETCD_MAIN,
        main_name="etcd",
    )


def coredns(release: Release) -> gomod.GoProgram:
    imports = "\n".join(f'\t_ "github.com/coredns/coredns/plugin/{p}"' for p in COREDNS_PLUGINS)
    main = (
        "package main\n\nimport (\n"
        f"{imports}\n\n"
        '\t"github.com/coredns/coredns/coremain"\n)\n\n'
        "func main() { coremain.Run() }\n"
    )
    return gomod.GoProgram(
        component=f"coredns {release.coredns}",
        module="github.com/coredns/coredns",
        version=release.coredns,
        packages=(),
        main_go=main,
        main_name="coredns",
    )


def containerd() -> gomod.GoProgram:
    base = "github.com/containerd/containerd/v2"
    return gomod.GoProgram(
        component=f"containerd {CONTAINERD}",
        module=base,
        version=CONTAINERD,
        packages=(f"{base}/cmd/containerd", f"{base}/cmd/containerd-shim-runc-v2", f"{base}/cmd/ctr"),
        ldflags=gomod.version_ldflags(
            (f"{base}/version",), {"Version": CONTAINERD.lstrip("v"), "Revision": "clusterproof"}
        ),
        tags="no_btrfs no_devmapper no_zfs",
    )


def local_path_provisioner() -> gomod.GoProgram:
    module = "github.com/rancher/local-path-provisioner"
    return gomod.GoProgram(
        component=f"local-path-provisioner {LOCAL_PATH_PROVISIONER}",
        module=module,
        version=LOCAL_PATH_PROVISIONER,
        packages=(module,),
        ldflags=f"-s -w -X main.VERSION={LOCAL_PATH_PROVISIONER}",
    )


def traefik(upstream_go_mod: str) -> gomod.GoProgram:
    """The Traefik binary (its Kubernetes Ingress NGINX and Gateway API providers among the rest:
    cmd/traefik has no plugin selection). `upstream_go_mod`: Traefik's own go.mod, whose forks
    (replace lines) and excludes the wrapper repeats; what the proxy does not serve is replaced as
    TRAEFIK_STUBS and TRAEFIK_PINS say."""
    module = TRAEFIK_MODULE
    go, godebug = gomod.directives(upstream_go_mod)
    version = {"Version": TRAEFIK, "BuildDate": BUILD_DATE}
    return gomod.GoProgram(
        component=f"traefik {TRAEFIK}",
        module=module,
        version=TRAEFIK,
        packages=(f"{module}/cmd/traefik",),
        replaces={**gomod.module_replaces(upstream_go_mod), **TRAEFIK_PINS},
        excludes=gomod.module_excludes(upstream_go_mod),
        local_modules={module: stub(name) for module, name in TRAEFIK_STUBS.items()},
        ldflags=gomod.version_ldflags((f"{module}/pkg/version",), version),
        godebug=godebug,
        go_directive=go,
    )


def stub(name: str) -> dict[str, str]:
    """The files of our stand-in module `name` (recipes/files/go-stubs/<name>), by relative path."""
    root = STUBS / name
    return {str(f.relative_to(root)): f.read_text() for f in sorted(root.rglob("*")) if f.is_file()}


def pause_source(kubernetes_dir: Path) -> Path:
    """pause.c from the release's own tree (compiled static with the host's gcc)."""
    return kubernetes_dir / "build" / "pause" / "linux" / "pause.c"
