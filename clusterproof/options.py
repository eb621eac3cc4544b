"""Command-line options -> a frozen Settings, and the checks that fail fast with one line.

Two stages: `build_settings` (cheap, at configure time: choices, files named on the command
line) and `check_cluster_access` (only when a collected test needs a cluster: docker, kind,
kubeconfig, context guard, API reachability).
pytest-kind-ng already defines --cluster-name, --keep-cluster, --kubeconfig, --kind-image,
--kind-bin and --kind-kubectl-bin; they are read here, not redefined.
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

from clusterproof import run
from clusterproof.redact import redact

PACKAGE_DATA = Path(__file__).parent / "data"
DEFAULT_KIND_CONFIG = Path("fixtures/kind/three-nodes.yaml")
PYTEST_KIND_DEFAULT_NAME = "pytest-kind"
MIN_KIND_VERSION = (0, 33, 0)
API_PROBE_TIMEOUT = 5.0
KIND_DOWNLOAD_ENV = "CLUSTERPROOF_KIND_DOWNLOAD"
NODE_ACCESS_MODES = ("auto", "docker", "pod", "none")  # clusterproof.node_access.MODES
DEFAULT_STATE_FILE = Path(".clusterproof/upgrade-state.json")


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
        help=f"kind cluster config (default: <rootdir>/{DEFAULT_KIND_CONFIG})",
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
        help="kind: the Kubernetes release of the clusters (offline: 1.37, 1.36 or the legacy 1.20; "
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
    group.addoption("--run-id", default=None, help="run id (default: time + random)")
    group.addoption(
        "--phase",
        choices=("before", "after"),
        default=None,
        help="upgrade validation: `before` creates durable state and records it (state file + ConfigMap); "
        "`after` compares the upgraded cluster with it, then runs the selected suites",
    )
    group.addoption(
        "--state-file",
        default=None,
        metavar="PATH",
        help=f"the upgrade state file (default: <rootdir>/{DEFAULT_STATE_FILE})",
    )
    group.addoption(
        "--keep-upgrade-state",
        action="store_true",
        help="--phase after: keep the durable namespaces and volumes even when every check held",
    )
    group.addoption(
        "--disruption-budget",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="--phase after: seconds a monitored target may be down during the upgrade (more fails UPG-09; "
        "less than this but more than none is reported as tolerated)",
    )
    group.addoption(
        "--api-disruption-budget",
        type=float,
        default=180.0,
        metavar="SECONDS",
        help="--phase after: the same for the API server (a single control plane is down while kubeadm "
        "replaces it)",
    )
    group.addoption(
        "--monitor-file",
        default=None,
        metavar="PATH",
        help="--phase after: what `python -m clusterproof.monitor` wrote (default: <state file>.monitor.jsonl)",
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
    group.addoption(
        "--ingress-class",
        default=None,
        metavar="NAME",
        help="existing clusters: the IngressClass whose controller the ingress checks test (default: the "
        "cluster's default IngressClass); kind clusters get the controller the suite installs",
    )


@dataclass(frozen=True)
class Settings:
    rootdir: Path
    run_id: str
    provider: str
    cluster_scope: str
    keep_clusters: bool
    kind_config: Path
    kind_bin: Path | None
    kind_download: bool
    kind_image: str | None
    k8s_version: str | None
    kind_cluster_name: str | None
    kubectl_bin: Path | None
    kubeconfig: Path | None
    context: str | None
    allowed_contexts: tuple[str, ...]
    offline: str
    image_map: Path | None
    artifacts_dir: Path
    claims_file: Path
    allow_disruptive: bool
    node_access: str = "auto"  # auto, docker, pod, none (clusterproof.node_access)
    allow_privileged: bool = False
    cluster_prefetch: bool = True
    ingress_class: str | None = None  # --ingress-class (existing clusters)
    phase: str | None = None
    state_file: Path = Path(".clusterproof/upgrade-state.json")
    keep_upgrade_state: bool = False
    disruption_budget: float = 30.0
    api_disruption_budget: float = 180.0
    monitor_file: Path | None = None

    @property
    def run_dir(self) -> Path:
        return run.run_dir_for(self.rootdir, self.run_id)

    @property
    def fixtures_dir(self) -> Path:
        return self.rootdir / "fixtures"


def build_settings(
    option: Callable[[str], Any],
    rootdir: Path,
    *,
    inherited_run_id: str | None = None,
    env: Mapping[str, str] = os.environ,
) -> Settings:
    """Cheap validation of what was typed; raises pytest.UsageError with one line."""
    run_id = inherited_run_id or option("run_id") or run.new_run_id()
    if not run.is_valid_run_id(run_id):
        raise pytest.UsageError(
            f"--run-id {run_id!r}: use letters, digits, '.', '_', '-' (at most 63, "
            "starting and ending with a letter or digit)"
        )
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

    cluster_name = option("cluster_name")
    if cluster_name == PYTEST_KIND_DEFAULT_NAME:
        cluster_name = None
    if cluster_name and not re.fullmatch(r"[a-z0-9][a-z0-9.-]{0,49}", cluster_name):
        raise pytest.UsageError(
            f"--cluster-name {cluster_name!r}: kind needs lowercase letters, digits, '.', '-' (at most 50)"
        )

    return Settings(
        rootdir=rootdir,
        run_id=run_id,
        provider=provider,
        cluster_scope=option("cluster_scope"),
        keep_clusters=bool(option("keep_clusters") or option("keep_cluster")),
        kind_config=_path(option("kind_config")) or rootdir / DEFAULT_KIND_CONFIG,
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
        artifacts_dir=_path(option("artifacts_dir")) or run_dir / "artifacts",
        claims_file=claims_file or default_claims_file(rootdir),
        allow_disruptive=bool(option("allow_disruptive")),
        **_node_access_settings(option),
        cluster_prefetch=option("cluster_prefetch") != "off",
        ingress_class=_ingress_class(option, provider),
        **_upgrade_settings(option, rootdir, provider),
    )


def _upgrade_settings(option: Callable[[str], Any], rootdir: Path, provider: str) -> dict[str, Any]:
    phase = option("phase")
    state_file = _path(option("state_file")) or rootdir / DEFAULT_STATE_FILE
    if phase and provider == "kind" and not (option("cluster_scope") == "session" and
                                             (option("keep_clusters") or option("keep_cluster"))):
        raise pytest.UsageError(
            f"--phase {phase} needs a cluster that outlives the run: an existing cluster (--kubeconfig, --context, "
            "--allow-context) or a kept kind cluster (--cluster-scope session --keep-clusters --cluster-name NAME)"
        )
    if phase == "after":
        from clusterproof.upgrade.state import StateError, UpgradeState

        try:
            UpgradeState.load(state_file)
        except StateError as e:
            raise pytest.UsageError(str(e)) from None
    budget = option("disruption_budget")
    if budget is not None and budget < 0:
        raise pytest.UsageError(f"--disruption-budget {budget:g}: seconds, 0 or more")
    monitor_file = _path(option("monitor_file")) or state_file.with_suffix(".monitor.jsonl")
    return {
        "phase": phase,
        "state_file": state_file,
        "keep_upgrade_state": bool(option("keep_upgrade_state")),
        "disruption_budget": 30.0 if budget is None else budget,
        "api_disruption_budget": option("api_disruption_budget") if option("api_disruption_budget") is not None
        else 180.0,
        "monitor_file": monitor_file,
    }


def _ingress_class(option: Callable[[str], Any], provider: str) -> str | None:
    name = option("ingress_class")
    if name and provider == "kind":
        raise pytest.UsageError(
            f"--ingress-class {name}: picks the class of an existing cluster (--kubeconfig/--context); on a "
            "kind cluster of the run the suite installs its own controller (ingress-nginx, offline Traefik)"
        )
    return name or None


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


def default_claims_file(rootdir: Path) -> Path:
    shared = rootdir.parent / "shared" / "CLAIMS.md"
    return shared if shared.is_file() else PACKAGE_DATA / "CLAIMS.md"


def _path(value: str | None) -> Path | None:
    return Path(value).expanduser() if value else None


# --- access checks (only when a test needs a cluster) -------------------------------------


@dataclass(frozen=True)
class Probes:
    """What the access checks ask of the machine; unit tests pass fakes."""

    which: Callable[[str], str | None] = shutil.which
    docker_reachable: Callable[[], bool] = lambda: docker_daemon_reachable()
    api_version: Callable[[Path, str, float], str] = lambda k, c, t: probe_api(k, c, t)
    pytest_kind_version: Callable[[], str] = lambda: _pytest_kind_version()
    kind_version: Callable[[Path], str] = lambda kind: kind_binary_version(kind)
    ingress_classes: Callable[[Path, str, float], list[Any]] = lambda k, c, t: list_ingress_classes(k, c, t)


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
    if settings.ingress_class:
        _check_ingress_class(settings.ingress_class, probes.ingress_classes(kubeconfig, context, API_PROBE_TIMEOUT))
    return dataclasses.replace(settings, kubeconfig=kubeconfig, context=context)


def _check_ingress_class(wanted: str, classes: list[Any]) -> None:
    """--ingress-class must name an IngressClass of the cluster: one line listing them otherwise."""
    from clusterproof.jigs.ingress import IngressClassNotFound, check_class

    try:
        check_class(wanted, classes)
    except IngressClassNotFound as e:
        raise pytest.UsageError(str(e)) from None


def resolve_kubeconfig(given: Path | None, env: Mapping[str, str]) -> Path:
    if given is None:
        from_env = env.get("KUBECONFIG", "")
        if os.pathsep in from_env:
            raise pytest.UsageError("KUBECONFIG lists several files: pass the one to use with --kubeconfig")
        given = Path(from_env).expanduser() if from_env else Path.home() / ".kube" / "config"
    if not given.is_file():
        raise pytest.UsageError(f"kubeconfig {given}: no such file")
    if not os.access(given, os.R_OK):
        raise pytest.UsageError(f"kubeconfig {given}: not readable")
    return given


def read_contexts(kubeconfig: Path) -> tuple[set[str], str | None]:
    """Context names and current-context; nothing else of the file is kept or shown."""
    try:
        doc = yaml.safe_load(kubeconfig.read_text())
    except (OSError, yaml.YAMLError) as e:
        raise pytest.UsageError(f"kubeconfig {kubeconfig}: not readable YAML ({type(e).__name__})") from None
    if not isinstance(doc, dict):
        raise pytest.UsageError(f"kubeconfig {kubeconfig}: not a kubeconfig (no mapping)")
    names = {c.get("name") for c in doc.get("contexts") or [] if isinstance(c, dict)}
    return {n for n in names if n}, doc.get("current-context") or None


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


def list_ingress_classes(kubeconfig: Path, context: str, timeout: float) -> list[Any]:
    """The cluster's IngressClasses (clusterproof.jigs.ingress.ClassInfo), one request, no retries."""
    from kubernetes import client, config

    from clusterproof.jigs.ingress import ClassInfo

    api = config.new_client_from_config(config_file=str(kubeconfig), context=context, persist_config=False)
    api.configuration.retries = False
    try:
        found = client.NetworkingV1Api(api).list_ingress_class(_request_timeout=(timeout, timeout)).items
    except client.ApiException as e:
        raise pytest.UsageError(
            f"--ingress-class: listing the IngressClasses of context {context!r} was refused: "
            f"HTTP {e.status} {e.reason}"
        ) from None
    finally:
        api.close()
    return [ClassInfo.of(c) for c in found]


def _without_userinfo(url: str) -> str:
    parts = urlsplit(url)
    if parts.username or parts.password:
        parts = parts._replace(netloc=parts.hostname + (f":{parts.port}" if parts.port else ""))
    return urlunsplit(parts)


def one_line(text: str, limit: int = 160) -> str:
    line = " ".join(redact(text).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


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
