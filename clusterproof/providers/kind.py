"""kind clusters through pytest-kind-ng's KindCluster, made and deleted by the run.

Offline hooks (clusterproof.offline.api, imported when first needed so the framework works
without it): resolve_offline(mode, kind_image) -> bool, ensure_images(version, progress) -> node
image tag (its build steps shown as steps of `progress`), stock_image(version) -> kind's published
image or None, kind_command(kind_path, run_dir) -> Path, kind_config_overrides(version) -> dict,
configure_cluster(cluster, node_count), host_hygiene(log) (a context manager around all kind use
of the session). `version` is --k8s-version (None: the default release).
"""

from __future__ import annotations

import contextlib
import copy
import importlib
import logging
import os
import re
import subprocess
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import pytest
import yaml
from pytest_kind import KindCluster

from clusterproof import causes, health, wait
from clusterproof.cluster import Cluster
from clusterproof.errors import ClusterproofError, WaitTimeout
from clusterproof.kind_clusters import (
    SETTLE_AFTER_STOPPED_CREATE,
    Claim,
    Claims,
    delete_until_gone,
    docker_host,
    node_containers,
    recording,
)
from clusterproof.node_exec import DockerNodeExec
from clusterproof.preflight import read_kind_config
from clusterproof.progress import Progress
from clusterproof.providers import kind_create
from clusterproof.providers.kind_create import RetainingKindCluster
from clusterproof.run import cluster_name
from clusterproof.run_records import registry_dir
from clusterproof.timings import Stopwatch

if TYPE_CHECKING:
    from clusterproof.providers import Note
    from clusterproof.run import RunContext
    from clusterproof.settings import Settings
    from clusterproof.tracker import ResourceTracker

OFFLINE_API = "clusterproof.offline.api"
log = logging.getLogger("clusterproof.kind")
# The readiness gates are bounded and soft: after its window a gate hands the cluster over as it
# is, and what the health probe finds wrong is recorded (clusterproof.health). Healthy: nodes
# Ready 9-11 s after `kind create`, kube-proxy with them.
NODES_READY_WINDOW = 180.0
DAEMONSETS_WINDOW = 120.0
DAEMONSETS_AFTER_NODES_TIMEOUT = 10.0  # nodes never came: their DaemonSet pods will not either
HEALTH_WINDOW = 60.0  # CoreDNS and the add-ons of a young cluster may still be starting


def load_offline_api() -> ModuleType | None:
    try:
        return importlib.import_module(OFFLINE_API)
    except ModuleNotFoundError as e:
        if e.name and OFFLINE_API.startswith(e.name):
            return None
        raise


def merged_kind_config(
    base: dict[str, Any], offline_api: ModuleType | None, version: str | None = None
) -> dict[str, Any]:
    """The user's kind config plus what an offline cluster of that release needs (no kindnet, patches)."""
    config = copy.deepcopy(base)
    if offline_api is None:
        return config
    overrides = offline_api.kind_config_overrides(version)
    for key, value in overrides.items():
        if isinstance(value, dict):
            config[key] = {**(config.get(key) or {}), **value}
        elif isinstance(value, list):
            config[key] = [*(config.get(key) or []), *value]
        else:
            config[key] = value
    return config


class KindProvider:
    def __init__(
        self,
        settings: Settings,
        run: RunContext,
        tracker: ResourceTracker,
        note: Note,
        *,
        offline_api: ModuleType | None | bool = True,
        kind_cluster: type[KindCluster] = RetainingKindCluster,
        stopwatch: Stopwatch | None = None,
        claims: Claims | None = None,
    ) -> None:
        self.stopwatch = stopwatch or Stopwatch(progress=Progress(show=note))
        self.settings = settings
        self.run = run
        self.tracker = tracker
        self.note = note
        # True: import clusterproof.offline.api on first use; None: run without it (tests)
        self._offline_api_arg = offline_api
        self._kind_cluster = kind_cluster
        self._session = contextlib.ExitStack()
        self._prepared = False
        self._offline = False
        self._node_image: str | None = None
        self._kind_path: Path | None = None
        self._live: dict[str, KindCluster] = {}
        self._plan: list[str] = []
        self._ahead: dict[str, Future[Cluster]] = {}
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cluster-ahead")
        self._kept: list[str] = []
        self.claims = claims or Claims(registry_dir())
        self.docker = docker_host()

    # --- once per session ------------------------------------------------------------------

    @property
    def offline_api(self) -> ModuleType | None:
        if self._offline_api_arg is True:
            self._offline_api_arg = load_offline_api()
        return self._offline_api_arg or None

    def _prepare(self) -> None:
        if self._prepared:
            return
        api = self.offline_api
        if api is not None:
            self._session.enter_context(api.host_hygiene(log=self.note))
            self._offline = api.resolve_offline(self.settings.offline, self.settings.kind_image)
        elif self.settings.offline == "yes":
            raise pytest.UsageError(f"--offline yes needs {OFFLINE_API}, which is not installed")
        if self._offline and api is not None:
            self.note("offline: building or finding the node image (slow only the first time)")
            with self.stopwatch.measure("offline node image (build or cache check)", "the offline image build"):
                self._node_image = self.settings.kind_image or api.ensure_images(
                    self.k8s_release, self.stopwatch.progress
                )
        else:
            self._node_image = self.settings.kind_image or (api.stock_image(self.k8s_release) if api else None)
        self._kind_path = self._kind_binary()
        self._prepared = True

    def _kind_binary(self) -> Path:
        kind = self.settings.kind_bin
        if kind is None:  # --kind-download: pytest-kind-ng fetches it into a shared cache
            from pytest_kind import cluster as pytest_kind_cluster

            cache = self.settings.rootdir / ".clusterproof" / "kind"
            cache.mkdir(parents=True, exist_ok=True)
            kind = cache / f"kind-{pytest_kind_cluster.KIND_VERSION}"
            self._kind_cluster("clusterproof-download", kind_path=kind).ensure_kind()
            _remove_empty_scratch_dir("clusterproof-download")
        api = self.offline_api
        if api is not None:
            return api.kind_command(kind, self.run.private_dir("kind"))
        return kind

    @property
    def k8s_release(self) -> str | None:
        """--k8s-version, else the release an offline node image was built for (its tag says)."""
        if self.settings.k8s_version:
            return self.settings.k8s_version
        found = re.match(r"clusterproof/node:v(\d+\.\d+)\.", self.settings.kind_image or "")
        return found.group(1) if found else None

    # --- per cluster -----------------------------------------------------------------------

    def name_for(self, key: str) -> str:
        if self.settings.kind_cluster_name:
            if key == "session":
                return self.settings.kind_cluster_name
            return cluster_name(self.settings.kind_cluster_name, key)
        return cluster_name(self.run.run_id, key)

    # --- clusters ready when a module needs them -----------------------------------------------

    def plan(self, keys: list[str]) -> None:
        """The modules' keys in run order: while one module runs, the next one's cluster boots
        (one ahead at most, and only where the host has the room)."""
        self._plan = list(dict.fromkeys(keys))

    def acquire(self, key: str) -> Cluster:
        ahead = self._ahead.pop(key, None)
        if ahead is not None:
            # its own steps went to progress.log only (another thread): this wait is the terminal's
            waiting = "its boot, begun while the previous module ran (its steps are in progress.log)"
            with self.stopwatch.measure(f"cluster {self.name_for(key)}: waited for its boot ahead", waiting):
                cluster = ahead.result()  # its failure is this module's, raised here
        else:
            cluster = self._boot(key, self.note)
        self._boot_next(key)
        return cluster

    def _boot_next(self, key: str) -> None:
        if key not in self._plan or not self.settings.cluster_prefetch:
            return
        following = self._plan[self._plan.index(key) + 1:]
        if not following or following[0] in self._ahead:
            return
        room = host_room()
        if room:
            log.info("not booting %s ahead: %s", following[0], room)
            return
        self._ahead[following[0]] = self._pool.submit(self._boot, following[0], log.info)

    def _boot(self, key: str, note: Note) -> Cluster:
        self._prepare()
        name = self.name_for(key)
        cluster_dir = self.run.private_dir("clusters", name)
        kubeconfig = self.run.private_file(cluster_dir / "kubeconfig")
        config_path = cluster_dir / "kind-config.yaml"
        config = merged_kind_config(read_kind_config(self.settings.kind_config), self._active_api, self.k8s_release)
        config_path.write_text(yaml.safe_dump(config, sort_keys=False))

        kind = self._kind_cluster(name, kubeconfig=kubeconfig, image=self._node_image, kind_path=self._kind_path)
        try:
            claim: Claim | None = None
            with self.claims.creating(name, self.docker):
                if self._export_kubeconfig_if_exists(name, kubeconfig):
                    self._refuse_unless_named(name)
                    note(f"reusing kind cluster {name} (--cluster-name: never deleted by this run)")
                else:
                    claim = Claim(name, self.run.run_id, self.docker, time.time(), kept=self.settings.keep_clusters,
                                  kubeconfig=str(kubeconfig))
                    self.claims.write(claim)  # first: a run killed during the create is still known to own it
                    self._live[name] = kind
                creating = "kind create cluster (node containers, kubeadm init; about half a minute)"
                with self.stopwatch.measure(f"cluster {name}: kind create", creating), self._recording(claim):
                    self._create(kind, name, config_path, made=claim is not None)
            kubeconfig.chmod(0o600)
            cluster = Cluster.from_kubeconfig(
                kubeconfig,
                f"kind-{name}",
                name=name,
                provider="kind",
                node_exec=DockerNodeExec(),
                offline=self._offline,
                kubectl_bin=self.settings.kubectl_bin,
            )
            node_count = len(config.get("nodes") or [1])
            if self._active_api is not None:
                with self.stopwatch.measure(
                    f"cluster {name}: pod network (offline)", f"{node_count} nodes registered, each with a podCIDR"
                ):
                    self._active_api.configure_cluster(cluster, node_count)
            self._hand_over(cluster, node_count, note)
        except BaseException:
            self._delete(name, settle=SETTLE_AFTER_STOPPED_CREATE)  # only if this run made it
            raise
        return cluster

    def _create(self, kind: KindCluster, name: str, config_path: Path, *, made: bool) -> None:
        """kind create; when it fails for a cluster this run makes, the error names the cause its nodes
        (left by --retain, deleted by the caller) told (kind_create.explain)."""
        try:
            kind.create(config_file=config_path)
        except subprocess.CalledProcessError as e:
            if not made:
                raise
            raise kind_create.explain(name, e, self.run.artifacts_root() / f"kind-create-{name}.txt") from e

    def _recording(self, claim: Claim | None) -> contextlib.AbstractContextManager[None]:
        """The node containers of a cluster this run creates, into its claim as they appear."""
        return recording(self.claims, claim, containers=node_containers) if claim else contextlib.nullcontext()

    def _refuse_unless_named(self, name: str) -> None:
        """A cluster of the name this run would give its own already exists: another run's (or
        anyone's). Reusing one is explicit only: --cluster-name."""
        if not self.settings.kind_cluster_name:
            raise ClusterproofError(
                f"kind cluster {name} already exists and this run did not make it: not reused, not deleted "
                "(name a cluster to reuse with --cluster-name)"
            )

    def _hand_over(self, cluster: Cluster, node_count: int, note: Note) -> None:
        """Wait a bounded time for the nodes and kube-system's DaemonSets, then for whatever the
        health probe still finds wrong; record it and hand the cluster over either way. Only an API
        server that does not answer at all stops here (ClusterUnreachable: the module errors)."""
        name = cluster.name
        nodes_ready = self._gate(
            f"cluster {name}: nodes ready",
            f"{node_count} nodes Ready (at most {NODES_READY_WINDOW:.0f}s)",
            lambda: wait.nodes_ready(
                cluster.core,
                NODES_READY_WINDOW,
                count=node_count,
                # the pod network of kind's own images is a DaemonSet: without its controller, never Ready
                give_up=lambda: causes.daemonset_controller_cause(cluster),
            ),
        )
        window = DAEMONSETS_WINDOW if nodes_ready else DAEMONSETS_AFTER_NODES_TIMEOUT
        self._gate(
            f"cluster {name}: kube-system DaemonSets ready",
            f"kube-system's DaemonSets (kube-proxy) ready on every node (at most {window:.0f}s)",
            lambda: wait.daemonsets_ready(cluster.apps, "kube-system", window),
        )
        health.require_reachable(cluster)
        healthy = f"the system components (CoreDNS, add-ons) healthy (at most {HEALTH_WINDOW:.0f}s)"
        with self.stopwatch.measure(f"cluster {name}: health probe", healthy):
            findings = health.settle(cluster, HEALTH_WINDOW)
        health.record(cluster, findings)
        if findings:
            note(f"cluster {name} handed over as it is; cluster health: " + "; ".join(map(str, findings)))

    def _gate(self, what: str, waiting_for: str, gate: Callable[[], object]) -> bool:
        """Run a readiness wait; its end without success is noted, never raised."""
        with self.stopwatch.measure(what, waiting_for) as step:
            try:
                gate()
            except WaitTimeout as e:
                step.end_as("not within its window, going on", str(e))
                return False
        return True

    def _export_kubeconfig_if_exists(self, name: str, kubeconfig: Path) -> bool:
        """KindCluster.create reuses a cluster of that name but expects its kubeconfig present."""
        listed = subprocess.run([str(self._kind_path), "get", "clusters"], capture_output=True, text=True, check=True)
        if name not in listed.stdout.split():
            return False
        subprocess.run(
            [str(self._kind_path), "export", "kubeconfig", f"--name={name}", f"--kubeconfig={kubeconfig}"],
            capture_output=True,
            check=True,
        )
        return True

    @property
    def _active_api(self) -> ModuleType | None:
        """The offline hooks that change the cluster itself: only for offline clusters."""
        return self.offline_api if self._offline else None

    def release(self, cluster: Cluster) -> None:
        cluster.close()
        if cluster.name in self._live and not self.settings.keep_clusters:
            self.tracker.forget(cluster)
            self._delete(cluster.name)
            return
        self.tracker.cleanup(cluster)  # kept, or reused by name: it stays, what the run did there goes
        self._live.pop(cluster.name, None)
        if self.settings.keep_clusters:
            self._kept.append(cluster.name)
            self.note(f"kept kind cluster {cluster.name} (kubeconfig {cluster.kubeconfig})")

    def _delete(self, name: str, settle: float = 0.0) -> None:
        """Delete a cluster this run made (`_live`: claimed before its create); never one it reused.
        `settle`: after a create that did not finish (kind_clusters.delete_until_gone)."""
        kind = self._live.pop(name, None)
        if kind is None or self.settings.keep_clusters:
            return
        try:
            with self.stopwatch.measure(f"cluster {name}: kind delete", "kind delete cluster"):
                delete_until_gone(name, kind.delete, settle=settle)
        except KeyboardInterrupt:  # Ctrl-C, or a stop signal (stopping.Stopped)
            # a stop came during the delete, and killed `kind delete` on its way out: finish, then stop
            try:
                delete_until_gone(name, kind.delete, settle=settle)
            except Exception as e:
                self.note(f"could not delete kind cluster {name}: {e}")
            raise
        except Exception as e:
            self.note(f"could not delete kind cluster {name}: {e}")
        else:
            self.claims.remove(name, self.docker)
        _remove_empty_scratch_dir(name)

    def close(self) -> None:
        try:
            for future in self._ahead.values():  # a cluster booting ahead is deleted once it is up
                with contextlib.suppress(BaseException):
                    future.result()
            self._ahead.clear()
            self._pool.shutdown(wait=True)
            for name in list(self._live):
                self._delete(name)
        finally:
            self._session.close()


MIN_AVAILABLE_MEMORY = 2 * 1024**3  # a 3-node cluster takes about 0.7 GB; the tests' own pods more


def host_room(meminfo: Path = Path("/proc/meminfo"), cpus: int | None = None) -> str | None:
    """Why this host has no room for a second cluster booting beside a running module, or None."""
    cpus = os.cpu_count() if cpus is None else cpus
    if (cpus or 1) < 2:
        return f"{cpus} CPU"
    with contextlib.suppress(OSError, StopIteration, ValueError):
        line = next(x for x in meminfo.read_text().splitlines() if x.startswith("MemAvailable:"))
        available = int(line.split()[1]) * 1024
        if available < MIN_AVAILABLE_MEMORY:
            return f"{available / 1024**3:.1f} GiB of memory available"
    return None


def _remove_empty_scratch_dir(name: str) -> None:
    # KindCluster always makes .pytest-kind/<name> in the working directory; nothing of ours is there
    scratch = Path(".pytest-kind") / name
    with contextlib.suppress(OSError):
        scratch.rmdir()
        scratch.parent.rmdir()
