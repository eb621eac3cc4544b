"""The framework's command-line options, and `build_settings`: what was typed -> a frozen Settings.

Cheap checks only (choices, files named on the command line), at configure time; what needs the
machine or the cluster is clusterproof.preflight's. A topic declares its own options in its own
plugin module (clusterproof.upgrade.plugin, clusterproof.jigs.ingress.plugin).
pytest-kind-ng already defines --cluster-name, --keep-cluster, --kubeconfig, --kind-image,
--kind-bin and --kind-kubectl-bin; they are read here, not redefined.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from clusterproof import run
from clusterproof.node_exec import MODES as NODE_ACCESS_MODES
from clusterproof.preflight import KIND_DOWNLOAD_ENV
from clusterproof.settings import DEFAULT_KIND_CONFIG, Settings, default_claims_file

PYTEST_KIND_DEFAULT_NAME = "pytest-kind"


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("clusterproof", "clusterproof: the cluster under test")
    group.addoption(
        "--cluster-provider",
        choices=("kind", "existing"),
        default=None,
        help="kind: create kind clusters; existing: use --kubeconfig/--context. "
        "Default: existing if --kubeconfig or --context is given, else kind.",
    )
    group.addoption(
        "--cluster-scope",
        choices=("module", "session"),
        default="module",
        help="one cluster per suite module (default) or one for the whole session",
    )
    group.addoption(
        "--cluster-prefetch",
        choices=("on", "off"),
        default="on",
        help="kind, one cluster per module: boot the next module's cluster while the current module runs "
        "(one ahead, when the host has 2 CPUs and 2 GiB free; default on)",
    )
    group.addoption(
        "--keep-clusters",
        action="store_true",
        help="do not delete kind clusters after use (pytest-kind-ng's --keep-cluster too)",
    )
    group.addoption(
        "--kind-config",
        default=None,
        metavar="PATH",
        help=f"kind cluster config (default: <fixtures>/{DEFAULT_KIND_CONFIG}; fixtures/ of the repository)",
    )
    group.addoption(
        "--kind-download",
        action="store_true",
        help=f"let pytest-kind-ng download kind when it is not on PATH (or {KIND_DOWNLOAD_ENV}=1); "
        "the version is KIND_VERSION, v0.33.0 or newer",
    )
    group.addoption(
        "--offline",
        choices=("auto", "yes", "no"),
        default="auto",
        help="kind: use the images built from Debian packages (auto: when no registry answers)",
    )
    group.addoption(
        "--k8s-version",
        default=None,
        metavar="X.Y",
        help="kind: the Kubernetes release of the clusters (offline: 1.37, 1.36, 1.35 or the legacy 1.20; "
        "default 1.37; online: kindest/node of that release)",
    )
    group.addoption("--context", default=None, metavar="NAME", help="kubeconfig context to use")
    group.addoption(
        "--allow-context",
        action="append",
        default=[],
        metavar="NAME",
        help="existing clusters: a context clusterproof may create and delete objects in (repeatable; required)",
    )
    group.addoption(
        "--image-map",
        default=None,
        metavar="FILE",
        help="override the image catalogue: YAML mapping or `name=ref` lines",
    )
    group.addoption(
        "--artifacts-dir",
        default=None,
        metavar="DIR",
        help="diagnostics and claims.json (default: .clusterproof/runs/<run-id>/artifacts)",
    )
    group.addoption(
        "--claims-file",
        default=None,
        metavar="PATH",
        help="CLAIMS.md (default: ../shared/CLAIMS.md from rootdir if present, else the packaged copy)",
    )
    group.addoption(
        "--run-id",
        default=None,
        metavar="PREFIX",
        help="the start of the run's id, which gets a random part (<PREFIX>-<6 hex>: unique per run); "
        "default: time + random",
    )
    group.addoption(
        "--allow-disruptive",
        action="store_true",
        help="run tests marked disruptive on an existing cluster too",
    )
    group.addoption(
        "--node-access",
        choices=NODE_ACCESS_MODES,
        default="auto",
        help="how node checks reach a node: docker (kind nodes on this host), pod (a privileged host exec pod "
        "per node; needs --allow-privileged), none (they skip); auto (default): docker for kind nodes here, "
        "else pod with --allow-privileged, else none",
    )
    group.addoption(
        "--allow-privileged",
        action="store_true",
        help="let clusterproof make privileged pods (hostPID, hostNetwork) on the cluster: node access through a pod",
    )


def build_settings(
    option: Callable[[str], Any],
    rootdir: Path,
    *,
    fixtures_dir: Path | None = None,
    inherited_run_id: str | None = None,
    env: Mapping[str, str] = os.environ,
) -> Settings:
    """Cheap validation of what was typed; raises pytest.UsageError with one line."""
    run_id = inherited_run_id or _run_id(option("run_id"))
    kubeconfig = _path(option("kubeconfig"))
    context = option("context")
    provider = option("cluster_provider") or ("existing" if kubeconfig or context else "kind")
    run_dir = run.run_dir_for(rootdir, run_id)

    image_map = _path(option("image_map"))
    if image_map is not None and not image_map.is_file():
        raise pytest.UsageError(f"--image-map {image_map}: no such file")
    claims_file = _path(option("claims_file"))
    if claims_file is not None and not claims_file.is_file():
        raise pytest.UsageError(f"--claims-file {claims_file}: no such file")

    artifacts_dir = _path(option("artifacts_dir"))
    if artifacts_dir is not None and artifacts_dir.exists() and not artifacts_dir.is_dir():
        raise pytest.UsageError(f"--artifacts-dir {artifacts_dir}: not a directory")

    cluster_name = option("cluster_name")
    if cluster_name == PYTEST_KIND_DEFAULT_NAME:
        cluster_name = None
    if cluster_name and not re.fullmatch(r"[a-z0-9][a-z0-9.-]{0,49}", cluster_name):
        raise pytest.UsageError(
            f"--cluster-name {cluster_name!r}: kind needs lowercase letters, digits, '.', '-' (at most 50)"
        )

    fixtures_dir = fixtures_dir or rootdir / "fixtures"
    return Settings(
        rootdir=rootdir,
        fixtures_dir=fixtures_dir,
        run_id=run_id,
        provider=provider,
        cluster_scope=option("cluster_scope"),
        keep_clusters=bool(option("keep_clusters") or option("keep_cluster")),
        kind_config=_path(option("kind_config")) or fixtures_dir / DEFAULT_KIND_CONFIG,
        kind_bin=_path(option("kind_bin")),
        kind_download=bool(option("kind_download") or env.get(KIND_DOWNLOAD_ENV) == "1"),
        kind_image=option("kind_image"),
        k8s_version=_k8s_version(option("k8s_version")),
        kind_cluster_name=cluster_name,
        kubectl_bin=_path(option("kind_kubectl_bin")),
        kubeconfig=kubeconfig,
        context=context,
        allowed_contexts=tuple(option("allow_context") or ()),
        offline=option("offline"),
        image_map=image_map,
        artifacts_dir=artifacts_dir or run_dir / "artifacts",
        claims_file=claims_file or default_claims_file(rootdir),
        allow_disruptive=bool(option("allow_disruptive")),
        **_node_access_settings(option),
        cluster_prefetch=option("cluster_prefetch") != "off",
    )


def _run_id(given: str | None) -> str:
    """A new run's id: `--run-id` plus a random part (ids are unique per run), else time + random."""
    if not given:
        return run.new_run_id()
    if len(given) > run.GIVEN_MAX or not run.is_valid_run_id(given):
        raise pytest.UsageError(
            f"--run-id {given!r}: use letters, digits, '.', '_', '-' (at most {run.GIVEN_MAX}, "
            "starting and ending with a letter or digit)"
        )
    return run.run_id_from(given)


def _node_access_settings(option: Callable[[str], Any]) -> dict[str, Any]:
    mode = option("node_access") or "auto"
    allow_privileged = bool(option("allow_privileged"))
    if mode == "pod" and not allow_privileged:
        raise pytest.UsageError(
            "--node-access pod makes a privileged pod (hostPID, hostNetwork, the host's namespaces) on each node "
            "it reaches: pass --allow-privileged too to allow that on this cluster"
        )
    return {"node_access": mode, "allow_privileged": allow_privileged}


def _k8s_version(value: str | None) -> str | None:
    if not value:
        return None
    from clusterproof.offline.releases import UnknownRelease, release

    try:
        return release(value).minor
    except UnknownRelease as e:
        raise pytest.UsageError(str(e)) from None


def _path(value: str | None) -> Path | None:
    return Path(value).expanduser() if value else None


