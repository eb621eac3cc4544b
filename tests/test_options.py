"""Option validation (clusterproof.options) and the preflight (clusterproof.preflight): every bad
input gives one clear line. The machine is replaced by FAKE Probes (no docker, kind or API server is
touched)."""

import os
from pathlib import Path

import pytest

from clusterproof.options import build_settings
from clusterproof.preflight import Probes, check_cluster_access

KUBECONFIG = """\
apiVersion: v1
kind: Config
current-context: kind-dev
clusters:
- name: dev
  cluster: {server: "https://127.0.0.1:6443", certificate-authority-data: SECRETCA}
contexts:
- name: kind-dev
  context: {cluster: dev, user: dev}
- name: prod
  context: {cluster: dev, user: dev}
users:
- name: dev
  user: {token: SECRETTOKEN}
"""


def options(**given):
    defaults = {
        "run_id": None,
        "kubeconfig": None,
        "context": None,
        "cluster_provider": None,
        "cluster_scope": "module",
        "keep_clusters": False,
        "keep_cluster": False,
        "kind_config": None,
        "kind_bin": None,
        "kind_download": False,
        "kind_image": None,
        "k8s_version": None,
        "cluster_name": "pytest-kind",
        "kind_kubectl_bin": None,
        "allow_context": [],
        "offline": "auto",
        "image_map": None,
        "artifacts_dir": None,
        "claims_file": None,
        "allow_disruptive": False,
        "node_access": "auto",
        "allow_privileged": False,
        "cluster_prefetch": "on",
    }
    defaults.update(given)
    return defaults.__getitem__


def settings(tmp_path, **given):
    return build_settings(options(**given), tmp_path, env={})


def fake_probes(
    which=("docker", "kind", "kubectl"),
    docker=True,
    api=lambda k, c, t: "v1.20.2",
    kind_version="v0.17.0",
    kind_binary="v0.33.0",
):
    return Probes(
        which=lambda name: f"/usr/bin/{name}" if name in which else None,
        docker_reachable=lambda: docker,
        api_version=api,
        pytest_kind_version=lambda: kind_version,
        kind_version=lambda kind: kind_binary,
    )


@pytest.fixture
def kind_root(tmp_path):
    (tmp_path / "fixtures" / "kind").mkdir(parents=True)
    (tmp_path / "fixtures" / "kind" / "three-nodes.yaml").write_text("kind: Cluster\n")
    return tmp_path


@pytest.fixture
def kubeconfig(tmp_path):
    path = tmp_path / "kubeconfig"
    path.write_text(KUBECONFIG)
    return path


def usage_error(fn, *args, **kwargs) -> str:
    with pytest.raises(pytest.UsageError) as info:
        fn(*args, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    assert "SECRET" not in message
    return message


# --- build_settings -------------------------------------------------------------------------


def test_defaults(tmp_path):
    s = settings(tmp_path)
    assert s.provider == "kind"
    assert s.cluster_scope == "module"
    assert s.kind_config == tmp_path / "fixtures/kind/three-nodes.yaml"
    assert s.artifacts_dir == tmp_path / ".clusterproof" / "runs" / s.run_id / "artifacts"
    assert s.claims_file.name == "CLAIMS.md"
    assert s.kind_cluster_name is None


def test_existing_is_the_default_provider_with_kubeconfig_or_context(tmp_path):
    assert settings(tmp_path, kubeconfig="k").provider == "existing"
    assert settings(tmp_path, context="c").provider == "existing"
    assert settings(tmp_path, context="c", cluster_provider="kind").provider == "kind"


def test_claims_file_prefers_shared_beside_the_repo(tmp_path):
    root = tmp_path / "main"
    root.mkdir()
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "CLAIMS.md").write_text("")
    assert build_settings(options(), root, env={}).claims_file == tmp_path / "shared" / "CLAIMS.md"


def test_keep_cluster_of_pytest_kind_means_keep_clusters(tmp_path):
    assert settings(tmp_path, keep_cluster=True).keep_clusters


def test_inherited_run_id_wins(tmp_path):
    s = build_settings(options(run_id="mine"), tmp_path, inherited_run_id="ctrl-1", env={})
    assert s.run_id == "ctrl-1"


def test_bad_run_id(tmp_path):
    assert usage_error(settings, tmp_path, run_id="bad id!").startswith("--run-id 'bad id!'")
    assert usage_error(settings, tmp_path, run_id="a" * 57).startswith(f"--run-id '{'a' * 57}': ")


def test_a_given_run_id_gets_a_random_part_so_two_runs_given_one_id_are_two_runs(tmp_path):
    """The same --run-id in two CI jobs: each run has its own id, run dir, labels and names."""
    first, second = (settings(tmp_path, run_id="pipeline-42") for _ in range(2))
    assert first.run_id.startswith("pipeline-42-") and second.run_id.startswith("pipeline-42-")
    assert first.run_id != second.run_id and first.run_dir != second.run_dir


def test_missing_image_map(tmp_path):
    assert usage_error(settings, tmp_path, image_map="nope.map") == "--image-map nope.map: no such file"


def test_missing_claims_file(tmp_path):
    assert usage_error(settings, tmp_path, claims_file="x.md") == "--claims-file x.md: no such file"


def test_bad_cluster_name(tmp_path):
    assert usage_error(settings, tmp_path, cluster_name="Bad_Name").startswith("--cluster-name 'Bad_Name'")


def test_kind_download_by_env(tmp_path):
    s = build_settings(options(), tmp_path, env={"CLUSTERPROOF_KIND_DOWNLOAD": "1"})
    assert s.kind_download


# --- kind provider checks --------------------------------------------------------------------


def test_kind_ok_resolves_binaries(kind_root):
    s = check_cluster_access(settings(kind_root), fake_probes())
    assert s.kind_bin == Path("/usr/bin/kind")
    assert s.kubectl_bin == Path("/usr/bin/kubectl")


def test_kind_config_missing(tmp_path):
    msg = usage_error(check_cluster_access, settings(tmp_path), fake_probes())
    assert msg.startswith("--kind-config ") and msg.endswith("three-nodes.yaml: no such file")


def test_no_docker_cli(kind_root):
    msg = usage_error(check_cluster_access, settings(kind_root), fake_probes(which=("kind",)))
    assert msg.startswith("docker CLI not found on PATH")


def test_docker_daemon_down(kind_root):
    msg = usage_error(check_cluster_access, settings(kind_root), fake_probes(docker=False))
    assert msg.startswith("docker daemon not reachable: start dockerd (")


def test_no_kind_binary(kind_root):
    msg = usage_error(check_cluster_access, settings(kind_root), fake_probes(which=("docker",)))
    assert msg.startswith("kind not found on PATH: install kind v0.33.0 or newer")
    assert "--kind-bin" in msg and "--kind-download" in msg


def test_kind_bin_not_executable(kind_root):
    s = settings(kind_root, kind_bin=str(kind_root / "kind"))
    msg = usage_error(check_cluster_access, s, fake_probes())
    assert msg == f"--kind-bin {kind_root / 'kind'}: not an executable file"


def test_kind_download_refuses_old_default_version(kind_root):
    s = settings(kind_root, kind_download=True)
    msg = usage_error(check_cluster_access, s, fake_probes(which=("docker",)))
    assert msg.startswith("--kind-download would fetch kind v0.17.0: set KIND_VERSION=v0.33.0")


def test_kind_download_with_recent_version_is_accepted(kind_root):
    s = settings(kind_root, kind_download=True)
    checked = check_cluster_access(s, fake_probes(which=("docker",), kind_version="v0.33.0"))
    assert checked.kind_bin is None and checked.kind_download


# --- existing provider checks ---------------------------------------------------------------


def existing(tmp_path, kubeconfig, **given):
    return settings(tmp_path, kubeconfig=str(kubeconfig), **given)


def test_existing_ok_uses_current_context_when_allowed(tmp_path, kubeconfig):
    s = check_cluster_access(existing(tmp_path, kubeconfig, allow_context=["kind-dev"]), fake_probes())
    assert (s.context, s.kubeconfig) == ("kind-dev", kubeconfig)


def test_context_guard_refuses_unlisted_context(tmp_path, kubeconfig):
    s = existing(tmp_path, kubeconfig, context="prod", allow_context=["kind-dev"])
    msg = usage_error(check_cluster_access, s, fake_probes())
    assert msg == (
        "refusing to use context 'prod' of an existing cluster: pass --allow-context prod "
        "to let clusterproof create and delete objects there"
    )


def test_context_guard_refuses_without_any_allow_context(tmp_path, kubeconfig):
    msg = usage_error(check_cluster_access, existing(tmp_path, kubeconfig), fake_probes())
    assert msg.startswith("refusing to use context 'kind-dev'")


def test_context_not_in_kubeconfig(tmp_path, kubeconfig):
    s = existing(tmp_path, kubeconfig, context="staging", allow_context=["staging"])
    msg = usage_error(check_cluster_access, s, fake_probes())
    assert msg == f"context 'staging' not in kubeconfig {kubeconfig} (contexts: kind-dev, prod)"


def test_kubeconfig_missing(tmp_path):
    s = settings(tmp_path, kubeconfig=str(tmp_path / "none"))
    assert usage_error(check_cluster_access, s, fake_probes()) == f"kubeconfig {tmp_path / 'none'}: no such file"


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_kubeconfig_unreadable(tmp_path, kubeconfig):
    kubeconfig.chmod(0)
    msg = usage_error(check_cluster_access, existing(tmp_path, kubeconfig), fake_probes())
    assert msg == f"kubeconfig {kubeconfig}: not readable"


def test_kubeconfig_not_yaml(tmp_path):
    path = tmp_path / "kc"
    path.write_text("a: [\n")
    msg = usage_error(check_cluster_access, settings(tmp_path, kubeconfig=str(path)), fake_probes())
    assert msg == f"kubeconfig {path}: not readable YAML (ParserError)"


def test_kubeconfig_from_env_with_several_files(tmp_path):
    s = settings(tmp_path, context="x")
    msg = usage_error(check_cluster_access, s, fake_probes(), env={"KUBECONFIG": "a:b"})
    assert msg.startswith("KUBECONFIG lists several files")


def test_api_unreachable_is_reported_by_the_probe(tmp_path, kubeconfig):
    def unreachable(k, c, t):
        raise pytest.UsageError(f"Kubernetes API of context {c!r} not reachable within {t:g}s")

    s = existing(tmp_path, kubeconfig, allow_context=["kind-dev"])
    assert usage_error(check_cluster_access, s, fake_probes(api=unreachable)).endswith("within 5s")


def test_real_api_probe_gives_up_fast_on_a_closed_port(tmp_path, kubeconfig):
    """The real probe (kubernetes client, no retries) against 127.0.0.1 with nothing listening."""
    import socket
    import time

    from clusterproof.preflight import probe_api

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    kubeconfig.write_text(KUBECONFIG.replace("6443", str(port)))
    start = time.monotonic()
    msg = usage_error(probe_api, kubeconfig, "kind-dev", 5.0)
    assert time.monotonic() - start < 5
    assert msg.startswith(f"Kubernetes API of context 'kind-dev' not reachable within 5s at https://127.0.0.1:{port}")


def test_kind_too_old_for_current_kubernetes(kind_root):
    msg = usage_error(check_cluster_access, settings(kind_root), fake_probes(kind_binary="v0.27.0"))
    assert msg == (
        "kind v0.27.0 at /usr/bin/kind is too old: Kubernetes 1.36+ needs kind v0.33.0 or newer "
        "(kubeadm config v1beta4): run scripts/bootstrap.sh or pass --kind-bin"
    )


@pytest.mark.parametrize("given, minor", [("1.36", "1.36"), ("v1.37.2", "1.37"), ("1.20", "1.20")])
def test_k8s_version_names_a_release(tmp_path, given, minor):
    assert settings(tmp_path, k8s_version=given).k8s_version == minor


def test_unknown_k8s_version_lists_the_releases(tmp_path):
    msg = usage_error(settings, tmp_path, k8s_version="1.30")
    assert msg.startswith(
        "--k8s-version 1.30: the offline build makes 1.37 (v1.37.2), 1.36 (v1.36.3), 1.35 (v1.35.4), 1.20 (v1.20.2)"
    )
