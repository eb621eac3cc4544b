"""Preflight: can the chosen provider work on this machine? One line and a fast exit if not.

Run only when a collected test needs a cluster: docker, kind and its version, the kubeconfig, the
context guard (--allow-context), the API server's answer. A topic's own check that needs the
cluster (an IngressClass named on the command line) runs after this, through the plugin's hook
`pytest_clusterproof_access_checked`.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
import yaml

from clusterproof.errors import one_line
from clusterproof.kubeconfig import read_contexts, resolve_kubeconfig
from clusterproof.settings import Settings

MIN_KIND_VERSION = (0, 33, 0)
API_PROBE_TIMEOUT = 5.0
KIND_DOWNLOAD_ENV = "CLUSTERPROOF_KIND_DOWNLOAD"


@dataclass(frozen=True)
class Probes:
    """What the access checks ask of the machine; unit tests pass fakes."""

    which: Callable[[str], str | None] = shutil.which
    docker_reachable: Callable[[], bool] = lambda: docker_daemon_reachable()
    api_version: Callable[[Path, str, float], str] = lambda k, c, t: probe_api(k, c, t)
    pytest_kind_version: Callable[[], str] = lambda: _pytest_kind_version()
    kind_version: Callable[[Path], str] = lambda kind: kind_binary_version(kind)


def check_cluster_access(
    settings: Settings, probes: Probes | None = None, env: Mapping[str, str] = os.environ
) -> Settings:
    """Raise pytest.UsageError (one line) if the chosen provider cannot work; returns the
    settings with kind/kubectl binaries and the kubeconfig/context resolved."""
    probes = probes or Probes()
    kubectl = settings.kubectl_bin or _which_path(probes.which, "kubectl")
    if settings.provider == "kind":
        settings = _check_kind(settings, probes)
    else:
        settings = _check_existing(settings, probes, env)
    return dataclasses.replace(settings, kubectl_bin=kubectl)


def _check_kind(settings: Settings, probes: Probes) -> Settings:
    if not settings.kind_config.is_file():
        raise pytest.UsageError(f"--kind-config {settings.kind_config}: no such file")
    read_kind_config(settings.kind_config)  # before any build or boot, not at each boot
    if probes.which("docker") is None:
        raise pytest.UsageError(
            "docker CLI not found on PATH: kind needs docker (scripts/bootstrap.sh installs it), "
            "or use an existing cluster with --kubeconfig/--context/--allow-context"
        )
    if not probes.docker_reachable():
        raise pytest.UsageError(
            "docker daemon not reachable: start dockerd (`sudo service docker start`, "
            "`sudo dockerd &`, or scripts/bootstrap.sh) or point DOCKER_HOST at one"
        )
    if settings.kind_bin is not None:
        if not (settings.kind_bin.is_file() and os.access(settings.kind_bin, os.X_OK)):
            raise pytest.UsageError(f"--kind-bin {settings.kind_bin}: not an executable file")
        _check_kind_version(settings.kind_bin, probes)
        return settings
    found = _which_path(probes.which, "kind")
    if found is not None:
        _check_kind_version(found, probes)
        return dataclasses.replace(settings, kind_bin=found)
    if not settings.kind_download:
        raise pytest.UsageError(
            "kind not found on PATH: install kind v0.33.0 or newer (scripts/bootstrap.sh), pass "
            f"--kind-bin PATH, or allow a download with --kind-download ({KIND_DOWNLOAD_ENV}=1) "
            "and KIND_VERSION=v0.33.0"
        )
    version = probes.pytest_kind_version()
    if parse_version(version) < MIN_KIND_VERSION:
        raise pytest.UsageError(
            f"--kind-download would fetch kind {version}: set KIND_VERSION=v0.33.0 or newer (before running pytest)"
        )
    return settings


def _check_kind_version(kind: Path, probes: Probes) -> None:
    version = probes.kind_version(kind)
    if parse_version(version) < MIN_KIND_VERSION:
        raise pytest.UsageError(
            f"kind {version} at {kind} is too old: Kubernetes 1.36+ needs kind v0.33.0 or newer "
            "(kubeadm config v1beta4): run scripts/bootstrap.sh or pass --kind-bin"
        )


def _check_existing(settings: Settings, probes: Probes, env: Mapping[str, str]) -> Settings:
    kubeconfig = resolve_kubeconfig(settings.kubeconfig, env)
    contexts, current = read_contexts(kubeconfig)
    context = settings.context or current
    if not context:
        raise pytest.UsageError(f"kubeconfig {kubeconfig} has no current-context: pass --context")
    if context not in contexts:
        listed = ", ".join(sorted(contexts)) or "none"
        raise pytest.UsageError(f"context {context!r} not in kubeconfig {kubeconfig} (contexts: {listed})")
    if context not in settings.allowed_contexts:
        raise pytest.UsageError(
            f"refusing to use context {context!r} of an existing cluster: pass --allow-context "
            f"{context} to let clusterproof create and delete objects there"
        )
    probes.api_version(kubeconfig, context, API_PROBE_TIMEOUT)
    return dataclasses.replace(settings, kubeconfig=kubeconfig, context=context)


def read_kind_config(path: Path) -> dict[str, Any]:
    """The kind config's YAML; a usage error (one line) if it is not a kind Cluster config. A
    node's extraMounts hostPath that is relative is taken from the config's own directory (an
    admission configuration file kept beside it: docker needs it absolute); one that is not
    there is one line."""
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise pytest.UsageError(f"--kind-config {path}: not UTF-8 text") from None
    except OSError as e:
        raise pytest.UsageError(f"--kind-config {path}: {e.strerror}") from None
    except yaml.YAMLError as e:
        where = getattr(e, "problem_mark", None)
        at = f" (line {where.line + 1})" if where is not None else ""
        problem = one_line(str(getattr(e, "problem", e)))
        raise pytest.UsageError(f"--kind-config {path}: not YAML{at}: {problem}") from None
    if not isinstance(doc, dict) or doc.get("kind") != "Cluster":
        raise pytest.UsageError(f"--kind-config {path}: not a kind Cluster config")
    for node in doc.get("nodes") or []:
        for mount in (node or {}).get("extraMounts") or []:
            host_path = Path(str(mount.get("hostPath", "")))
            if mount.get("hostPath") and not host_path.is_absolute():
                host_path = (path.parent / host_path).resolve()
                if not host_path.exists():
                    raise pytest.UsageError(f"--kind-config {path}: extraMounts hostPath {mount['hostPath']} not found")
                mount["hostPath"] = str(host_path)
    return doc


def docker_daemon_reachable(timeout: float = 5.0) -> bool:
    try:
        result = subprocess.run(
            ["docker", "version", "--format", "{{.Server.Version}}"],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0 and bool(result.stdout.strip())


def probe_api(kubeconfig: Path, context: str, timeout: float) -> str:
    """GET /version once, no retries, short timeouts; returns the git version."""
    from kubernetes import client, config
    from kubernetes.config.config_exception import ConfigException

    cfg = client.Configuration()
    try:
        config.load_kube_config(
            config_file=str(kubeconfig),
            context=context,
            client_configuration=cfg,
            persist_config=False,
        )
    except (ConfigException, ValueError, OSError) as e:
        raise pytest.UsageError(f"kubeconfig {kubeconfig}, context {context!r}: {one_line(str(e))}") from None
    cfg.retries = False
    server = _without_userinfo(cfg.host)
    try:
        with client.ApiClient(cfg) as api:
            info = client.VersionApi(api).get_code(_request_timeout=(timeout, timeout))
    except client.ApiException as e:
        raise pytest.UsageError(
            f"Kubernetes API of context {context!r} at {server} answered HTTP {e.status} {e.reason} to GET /version"
        ) from None
    except Exception as e:  # urllib3 connection/TLS/timeout errors: all mean "not reachable"
        raise pytest.UsageError(
            f"Kubernetes API of context {context!r} not reachable within {timeout:g}s at "
            f"{server}: {type(e).__name__}: {one_line(str(e))}"
        ) from None
    return info.git_version


def _without_userinfo(url: str) -> str:
    parts = urlsplit(url)
    if parts.username or parts.password:
        parts = parts._replace(netloc=parts.hostname + (f":{parts.port}" if parts.port else ""))
    return urlunsplit(parts)


def parse_version(version: str) -> tuple[int, ...]:
    numbers = re.findall(r"\d+", version)
    return tuple(int(n) for n in numbers[:3]) if numbers else (0,)


def _which_path(which: Callable[[str], str | None], name: str) -> Path | None:
    found = which(name)
    return Path(found) if found else None


def kind_binary_version(kind: Path) -> str:
    """`kind version` prints `kind v0.33.0 go1.26.8 linux/amd64`; "unknown" if it cannot run."""
    try:
        out = subprocess.run([str(kind), "version"], capture_output=True, text=True, timeout=10).stdout.split()
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return out[1] if len(out) > 1 else "unknown"


def _pytest_kind_version() -> str:
    # pytest-kind-ng reads KIND_VERSION when it is imported; this is the version it would fetch
    from pytest_kind import cluster

    return cluster.KIND_VERSION
