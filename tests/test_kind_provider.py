"""KindProvider without docker: KindCluster, the offline hooks, the Cluster factory and the
node wait are FAKES that record what the provider asked of them."""

import dataclasses
import signal
import stat
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from clusterproof import health, stopping
from clusterproof.errors import ClusterproofError, ClusterUnreachable, WaitGaveUp, WaitTimeout
from clusterproof.kind_clusters import Claims
from clusterproof.options import build_settings
from clusterproof.progress import Progress
from clusterproof.providers import kind as kind_provider
from clusterproof.providers.kind import KindProvider, merged_kind_config
from clusterproof.run import RunContext, short_id
from clusterproof.timings import Stopwatch
from clusterproof.tracker import ResourceTracker

BASE = {
    "kind": "Cluster",
    "apiVersion": "kind.x-k8s.io/v1alpha4",
    "nodes": [{"role": "control-plane"}, {"role": "worker"}, {"role": "worker"}],
}

@pytest.fixture(autouse=True)
def no_docker_to_ask(monkeypatch):
    """The kind here is fake: its clusters' nodes are never in docker (kind_clusters.delete_until_gone
    asks docker whether a deleted cluster's nodes are gone)."""
    from clusterproof import kind_clusters

    monkeypatch.setattr(kind_clusters, "node_containers", lambda name: {})
    monkeypatch.setattr(kind_provider, "SETTLE_AFTER_STOPPED_CREATE", 0.0)



class FakeOfflineApi:
    """Fake clusterproof.offline.api: records calls, builds nothing."""

    def __init__(self, offline=True):
        self.offline = offline
        self.calls = []

    def host_hygiene(self, log):
        calls = self.calls

        class Ctx:
            def __enter__(self):
                calls.append("hygiene enter")

            def __exit__(self, *exc):
                calls.append("hygiene exit")

        return Ctx()

    def resolve_offline(self, mode, kind_image):
        self.calls.append(f"resolve {mode}")
        return self.offline

    def ensure_images(self, version, log):
        self.calls.append("ensure_images")
        return "clusterproof/node:v1.37.2-abc"

    def stock_image(self, version):
        return None

    def kind_command(self, kind_path, run_dir):
        self.calls.append("kind_command")
        return run_dir / "kind-launcher"

    def kind_config_overrides(self, version):
        return {"networking": {"disableDefaultCNI": True}, "kubeadmConfigPatches": ["kind: ClusterConfiguration\n"]}

    def configure_cluster(self, cluster, node_count):
        self.calls.append(f"configure {cluster.name}")


class FakeKindCluster:
    """Fake pytest_kind.KindCluster: records create/delete, touches the kubeconfig."""

    made = []

    def __init__(self, name, kubeconfig=None, image=None, kind_path=None):
        self.name, self.kubeconfig, self.image, self.kind_path = name, kubeconfig, image, kind_path
        self.events = []
        FakeKindCluster.made.append(self)

    def create(self, config_file=None):
        self.config_file = config_file
        self.events.append("create")

    def delete(self):
        self.events.append("delete")


@pytest.fixture
def provider_for(tmp_path, monkeypatch):
    FakeKindCluster.made = []
    (tmp_path / "fixtures" / "kind").mkdir(parents=True)
    (tmp_path / "fixtures" / "kind" / "three-nodes.yaml").write_text(yaml.safe_dump(BASE))
    waited = []
    monkeypatch.setattr(
        kind_provider.Cluster,
        "from_kubeconfig",
        classmethod(
            lambda cls, kubeconfig, context, **kw: SimpleNamespace(
                context=context, kubeconfig=kubeconfig, core=None, apps=None, close=lambda: None, **kw
            )
        ),
    )
    monkeypatch.setattr(kind_provider.wait, "nodes_ready", lambda core, timeout, count, **kw: waited.append(count))
    monkeypatch.setattr(kind_provider.wait, "daemonsets_ready", lambda apps, ns, timeout: waited.append(ns))
    # FAKE health: the API answers, nothing is found wrong
    monkeypatch.setattr(kind_provider.health, "require_reachable", lambda cluster: None)
    monkeypatch.setattr(kind_provider.health, "settle", lambda cluster, window: [])
    monkeypatch.setattr(KindProvider, "_export_kubeconfig_if_exists", lambda self, name, kc: False)
    # FAKE docker: each cluster made has one node container
    monkeypatch.setattr(kind_provider, "node_containers", lambda name: {f"{name}-c1": 1.0})

    def make(api, stopwatch=None, **options):
        values = {
            "run_id": "20261122-163000-ab12",
            "cluster_scope": "module",
            "offline": "auto",
            "cluster_name": "pytest-kind",
            "allow_context": [],
        }
        values.update(options)
        settings = build_settings(lambda k: values.get(k), tmp_path, env={})
        settings = dataclasses.replace(settings, kind_bin=Path("/usr/bin/kind"))
        run = RunContext(settings.run_id, settings.run_dir, settings.artifacts_dir)
        notes = []
        provider = KindProvider(
            settings,
            run,
            ResourceTracker(settings.run_id),
            notes.append,
            offline_api=api,
            kind_cluster=FakeKindCluster,
            claims=Claims(tmp_path / "registry"),
            stopwatch=stopwatch,
        )
        provider.waited = waited
        provider.notes = notes
        return provider

    return make


def test_offline_cluster_goes_through_every_hook_in_order(provider_for):
    api = FakeOfflineApi(offline=True)
    provider = provider_for(api)
    cluster = provider.acquire("suites.test_services")
    kind = FakeKindCluster.made[0]
    assert cluster.name == kind.name == f"cp-{provider.run.short_id}-services"
    assert cluster.context == f"kind-cp-{provider.run.short_id}-services"
    assert cluster.offline is True and cluster.provider == "kind"
    assert kind.image == "clusterproof/node:v1.37.2-abc"
    assert kind.kind_path.name == "kind-launcher"
    assert api.calls == [
        "hygiene enter",
        "resolve auto",
        "ensure_images",
        "kind_command",
        f"configure cp-{provider.run.short_id}-services",
    ]
    assert provider.waited == [3, "kube-system"]
    config = yaml.safe_load(Path(kind.config_file).read_text())
    assert config["networking"] == {"disableDefaultCNI": True}
    assert config["kubeadmConfigPatches"] == ["kind: ClusterConfiguration\n"]
    assert stat.S_IMODE(kind.kubeconfig.stat().st_mode) == 0o600
    assert kind.kubeconfig.parent.parent.parent == provider.run.run_dir
    provider.release(cluster)
    provider.close()
    assert kind.events == ["create", "delete"]
    assert api.calls[-1] == "hygiene exit"


def test_online_cluster_skips_offline_configuration(provider_for):
    api = FakeOfflineApi(offline=False)
    provider = provider_for(api)
    cluster = provider.acquire("session")
    kind = FakeKindCluster.made[0]
    assert cluster.offline is False and kind.image is None
    assert "ensure_images" not in api.calls and not any(c.startswith("configure") for c in api.calls)
    assert "networking" not in yaml.safe_load(Path(kind.config_file).read_text())


def test_without_the_offline_package_kind_runs_as_is(provider_for):
    provider = provider_for(None)
    provider.acquire("session")
    assert FakeKindCluster.made[0].kind_path == Path("/usr/bin/kind")


def test_offline_yes_without_the_offline_package_is_a_usage_error(provider_for):
    with pytest.raises(pytest.UsageError, match="--offline yes needs clusterproof.offline.api"):
        provider_for(None, offline="yes").acquire("session")


def test_kept_clusters_are_not_deleted(provider_for):
    provider = provider_for(None, keep_clusters=True)
    provider.release(provider.acquire("session"))
    provider.close()
    assert FakeKindCluster.made[0].events == ["create"]


def test_a_cluster_is_claimed_before_its_create_and_the_claim_goes_with_it(provider_for, monkeypatch):
    provider = provider_for(None)
    seen = []
    monkeypatch.setattr(FakeKindCluster, "create", lambda self, config_file=None: seen.append(provider.claims.read("")))
    cluster = provider.acquire("suites.test_quota")
    [claimed] = seen[0].values()  # written before `kind create`: a run killed during it is known to own it
    assert claimed.name == cluster.name and claimed.run_id == provider.run.run_id and claimed.containers == ()
    assert provider.claims.read("")[cluster.name].containers == (f"{cluster.name}-c1",)  # then its node containers
    provider.release(cluster)
    assert provider.claims.read("") == {}


def test_an_existing_cluster_of_a_name_this_run_would_make_is_refused_never_deleted(provider_for, monkeypatch):
    """`cp-<hash of the run id>-...` already there: another run's (or anyone's); not adopted."""
    monkeypatch.setattr(KindProvider, "_export_kubeconfig_if_exists", lambda self, name, kc: True)
    provider = provider_for(None)
    refused = r"kind cluster cp-\w+-quota already exists and this run did not make it"
    with pytest.raises(ClusterproofError, match=refused):
        provider.acquire("suites.test_quota")
    provider.close()
    assert FakeKindCluster.made[0].events == [] and provider.claims.read("") == {}


def test_a_cluster_reused_by_name_is_never_deleted(provider_for, monkeypatch):
    """--cluster-name dev, and dev exists (the user's): reused, then left as it was, at the end
    and after a failed set-up alike; no claim is written for it."""
    monkeypatch.setattr(KindProvider, "_export_kubeconfig_if_exists", lambda self, name, kc: True)
    provider = provider_for(None, cluster_name="dev", cluster_scope="session")
    cluster = provider.acquire("session")
    provider.release(cluster)
    provider.close()
    assert FakeKindCluster.made[0].events == ["create"]  # pytest-kind-ng's create of an existing one: a reuse
    assert any("reusing kind cluster dev" in n for n in provider.notes) and provider.claims.read("") == {}

    api = FakeOfflineApi(offline=True)
    api.configure_cluster = lambda cluster, node_count: (_ for _ in ()).throw(RuntimeError("no podCIDR"))
    provider = provider_for(api, cluster_name="dev", cluster_scope="session")
    with pytest.raises(RuntimeError):
        provider.acquire("session")
    provider.close()
    assert FakeKindCluster.made[-1].events == ["create"]


def test_failed_set_up_deletes_the_half_made_cluster(provider_for):
    api = FakeOfflineApi(offline=True)
    api.configure_cluster = lambda cluster, node_count: (_ for _ in ()).throw(RuntimeError("no podCIDR"))
    provider = provider_for(api)
    with pytest.raises(RuntimeError):
        provider.acquire("session")
    assert FakeKindCluster.made[0].events == ["create", "delete"]


def test_cluster_name_option_names_the_session_cluster(provider_for):
    provider = provider_for(None, cluster_name="dev")
    assert provider.name_for("session") == "dev"
    assert provider.name_for("suites.test_quota") == f"cp-{short_id('dev')}-quota"


def test_config_merge_keeps_user_settings():
    base = {**BASE, "networking": {"podSubnet": "10.244.0.0/16"}, "kubeadmConfigPatches": ["mine"]}
    api = SimpleNamespace(kind_config_overrides=lambda v: {"networking": {"disableDefaultCNI": True},
                                                           "kubeadmConfigPatches": ["theirs"]})
    merged = merged_kind_config(base, api)
    assert merged["networking"] == {"podSubnet": "10.244.0.0/16", "disableDefaultCNI": True}
    assert merged["kubeadmConfigPatches"] == ["mine", "theirs"]
    assert base["kubeadmConfigPatches"] == ["mine"]


def test_readiness_gates_are_soft_the_cluster_is_handed_over_with_its_health_recorded(provider_for, monkeypatch):
    """Nodes never Ready, kube-system DaemonSets never processed: the gates end (FAKE waits that
    time out), the cluster is handed over anyway, and what the (FAKE) probe found is recorded."""
    windows = []

    def nodes_never(core, timeout, count, **kw):
        raise WaitTimeout("all nodes Ready", "worker: NotReady", timeout)

    def daemonsets_never(apps, ns, timeout):
        windows.append(timeout)
        raise WaitGaveUp("every DaemonSet in kube-system Ready", "no DaemonSet has been processed", 30)

    text = "no DaemonSet has been processed (kube-proxy): is the DaemonSet controller running?"
    found = [health.Finding("DaemonSet controller", text, final=True)]
    monkeypatch.setattr(kind_provider.wait, "nodes_ready", nodes_never)
    monkeypatch.setattr(kind_provider.wait, "daemonsets_ready", daemonsets_never)
    monkeypatch.setattr(kind_provider.health, "settle", lambda cluster, window: found)
    provider = provider_for(None)
    cluster = provider.acquire("suites.test_workloads")

    assert FakeKindCluster.made[0].events == ["create"]  # handed over, not deleted
    assert windows == [kind_provider.DAEMONSETS_AFTER_NODES_TIMEOUT]  # nodes never came: a short DaemonSet gate
    assert health.findings_for(cluster) == found
    assert any("nodes ready: not within its window, going on" in n for n in provider.notes)
    assert any("cluster health: no DaemonSet has been processed" in n for n in provider.notes)
    phases = [what for what, _, _ in provider.stopwatch.phases]
    assert phases[-3:] == [
        f"cluster cp-{provider.run.short_id}-workloads: nodes ready",
        f"cluster cp-{provider.run.short_id}-workloads: kube-system DaemonSets ready",
        f"cluster cp-{provider.run.short_id}-workloads: health probe",
    ]


def test_an_api_server_that_does_not_answer_is_the_only_module_error(provider_for, monkeypatch):
    def unreachable(cluster):
        raise ClusterUnreachable(f"the API server of cluster {cluster.name} does not answer: ConnectionRefusedError")

    monkeypatch.setattr(kind_provider.health, "require_reachable", unreachable)
    with pytest.raises(ClusterUnreachable, match="does not answer"):
        provider_for(None).acquire("session")
    assert FakeKindCluster.made[0].events == ["create", "delete"]


def test_the_next_modules_cluster_boots_while_the_current_module_runs(provider_for, monkeypatch):
    monkeypatch.setattr(kind_provider, "host_room", lambda: None)  # FAKE: the host has room
    provider = provider_for(FakeOfflineApi(offline=False))
    provider.plan(["suites.test_a", "suites.test_b", "suites.test_c"])
    first = provider.acquire("suites.test_a")
    provider._ahead["suites.test_b"].result()  # booted in the background
    assert [k.name for k in FakeKindCluster.made] == [f"cp-{provider.run.short_id}-a", f"cp-{provider.run.short_id}-b"]
    provider.release(first)
    second = provider.acquire("suites.test_b")  # handed over, and test_c starts booting
    assert second.name == f"cp-{provider.run.short_id}-b" and list(provider._ahead) == ["suites.test_c"]
    provider.close()  # the one booting ahead is deleted too
    assert all(k.events == ["create", "delete"] for k in FakeKindCluster.made)
    assert len(FakeKindCluster.made) == 3


def test_each_step_of_a_boot_is_shown_as_it_starts_and_ends_a_boot_ahead_in_the_log_only(
    provider_for, monkeypatch, tmp_path
):
    """As the plugin sets it up: lines of other threads (a boot ahead) go to progress.log only, and
    the module that gets that cluster shows its wait for it."""
    monkeypatch.setattr(kind_provider, "host_room", lambda: None)  # FAKE: the host has room
    shown: list[str] = []
    log = tmp_path / "progress.log"
    progress = Progress(show=shown.append, log_file=log, show_other_threads=False, ticker=False)
    provider = provider_for(FakeOfflineApi(offline=True), stopwatch=Stopwatch(progress=progress))
    provider.plan(["suites.test_a", "suites.test_b"])
    first = provider.acquire("suites.test_a")
    provider._ahead["suites.test_b"].result()
    second = provider.acquire("suites.test_b")
    assert shown[0] == "offline node image (build or cache check): started"
    for phase in ("kind create", "pod network (offline)", "nodes ready", "kube-system DaemonSets ready",
                  "health probe"):
        assert f"cluster {first.name}: {phase}: started" in shown, phase
        assert any(line.startswith(f"cluster {first.name}: {phase}: done in ") for line in shown), phase
    assert not any(line.startswith(f"cluster {second.name}: kind create") for line in shown)
    assert f"cluster {second.name}: waited for its boot ahead: started" in shown
    assert f"cluster {second.name}: kind create: done in " in log.read_text()
    provider.close()


def test_no_boot_ahead_when_switched_off_or_without_room(provider_for, monkeypatch):
    provider = provider_for(FakeOfflineApi(offline=False), cluster_prefetch="off")
    provider.plan(["suites.test_a", "suites.test_b"])
    provider.acquire("suites.test_a")
    assert not provider._ahead
    monkeypatch.setattr(kind_provider, "host_room", lambda: "1 CPU")  # FAKE: no room
    roomless = provider_for(FakeOfflineApi(offline=False))
    roomless.plan(["suites.test_a", "suites.test_b"])
    roomless.acquire("suites.test_a")
    assert not roomless._ahead
    provider.close()
    roomless.close()


def test_host_room_reads_available_memory(tmp_path):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal: 24000000 kB\nMemAvailable:  1000000 kB\n")
    assert kind_provider.host_room(meminfo, cpus=2) == "1.0 GiB of memory available"
    meminfo.write_text("MemAvailable: 20000000 kB\n")
    assert kind_provider.host_room(meminfo, cpus=2) is None
    assert kind_provider.host_room(meminfo, cpus=1) == "1 CPU"


@pytest.mark.parametrize("stop", [KeyboardInterrupt(), stopping.Stopped(signal.SIGHUP)])
def test_a_stop_during_kind_delete_finishes_the_delete_then_stops(provider_for, stop):
    """SIGINT (KeyboardInterrupt) or SIGTERM/SIGHUP (pytest.exit, an Exception) arriving while kind
    deletes the cluster: subprocess.run kills kind on the way out. Measured: the stop was then
    swallowed as "could not delete kind cluster …: SIGHUP received". Now the delete is made again
    and the stop goes on. FAKE kind: the first delete raises the stop."""
    provider = provider_for(None)
    cluster = provider.acquire("session")
    kind = FakeKindCluster.made[0]

    def delete():
        kind.events.append("delete")
        if kind.events.count("delete") == 1:
            raise stop

    kind.delete = delete
    with pytest.raises(type(stop)):
        provider.release(cluster)
    assert kind.events == ["create", "delete", "delete"]
    assert not any("could not delete" in n for n in provider.notes)


def test_a_kind_configs_relative_extra_mount_is_taken_from_its_directory(tmp_path):
    """psa-baseline.yaml mounts its admission configuration, kept beside it; docker needs an
    absolute path. A file that is not there is one line."""
    import pytest

    from clusterproof.preflight import read_kind_config

    (tmp_path / "admission.yaml").write_text("kind: AdmissionConfiguration\n")
    config = tmp_path / "psa.yaml"
    mount = "{hostPath: admission.yaml, containerPath: /etc/kubernetes/clusterproof/admission.yaml}"
    config.write_text(f"kind: Cluster\nnodes:\n  - role: control-plane\n    extraMounts: [{mount}]\n")
    (node,) = read_kind_config(config)["nodes"]
    assert node["extraMounts"][0]["hostPath"] == str(tmp_path / "admission.yaml")
    config.write_text(config.read_text().replace("admission.yaml,", "missing.yaml,"))
    with pytest.raises(pytest.UsageError, match="extraMounts hostPath missing.yaml not found"):
        read_kind_config(config)


def test_a_failed_create_names_what_its_nodes_said_then_the_cluster_is_deleted(provider_for, monkeypatch):
    """FAKE kind create failing, and FAKE node logs (kind_create.explain is tested on its own)."""
    provider = provider_for(None)

    def create_fails(self, config_file=None):
        self.events.append("create")
        raise subprocess.CalledProcessError(1, ["kind", "create", "cluster"])

    monkeypatch.setattr(FakeKindCluster, "create", create_fails)
    failed = kind_provider.kind_create.CreateFailed
    monkeypatch.setattr(kind_provider.kind_create, "explain", lambda name, e, into: failed(f"{name}: {into.name}"))
    with pytest.raises(failed, match=r"-quota: kind-create-cp-.*-quota\.txt"):
        provider.acquire("suites.test_quota")
    assert FakeKindCluster.made[0].events == ["create", "delete"]
