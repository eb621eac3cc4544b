"""The offline tooling's pure parts: capability arithmetic, the kind/docker shim, the pod
network plan, sysctl restore and recipe hashing. Nothing here runs docker or kind; the shim
is exercised against a fake `docker` that only echoes its arguments (declared below)."""

from __future__ import annotations

import json
import subprocess
import tomllib
from pathlib import Path

import pytest

from clusterproof.offline import build, capabilities, hygiene, podnetwork, releases
from clusterproof.progress import Progress

FULL_41 = (1 << 41) - 1


def status(bounding: int) -> str:
    return f"Name:\tpython\nCapBnd:\t{bounding:016x}\n"


def test_no_missing_capabilities_on_a_full_bounding_set():
    assert capabilities.missing_capabilities(status(FULL_41), last_cap=40) == []


def test_sys_resource_missing_is_named_as_docker_names_it():
    assert capabilities.missing_capabilities(status(0x000001FFFEFFFFFF), last_cap=40) == ["SYS_RESOURCE"]


def test_kind_is_used_unchanged_on_a_normal_host(tmp_path):
    assert capabilities.kind_command(Path("/usr/bin/kind"), tmp_path, missing=[]) == Path("/usr/bin/kind")
    assert not (tmp_path / "docker-shim").exists()


@pytest.fixture
def fake_docker(tmp_path, monkeypatch):
    """A fake docker binary that prints each argument on its own line (no daemon involved)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    docker = bin_dir / "docker"
    docker.write_text('#!/bin/sh\nfor a in "$@"; do echo "$a"; done\n')
    docker.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    return docker


def shim_args(tmp_path: Path, *argv: str) -> list[str]:
    capabilities.kind_command(Path("/usr/bin/kind"), tmp_path / "run", missing=["SYS_RESOURCE"])
    out = subprocess.run([str(tmp_path / "run" / "docker-shim" / "docker"), *argv], capture_output=True, text=True)
    return out.stdout.splitlines()


def test_shim_swaps_privileged_for_capabilities_minus_the_missing_ones(tmp_path, fake_docker):
    args = shim_args(tmp_path, "run", "--name", "n1", "--privileged", "--tmpfs", "/tmp", "image")
    assert "--privileged" not in args
    assert args[:3] == ["run", "--name", "n1"]
    assert {"--cap-add=ALL", "--cap-drop=SYS_RESOURCE", "--device=/dev/kmsg", "--device-cgroup-rule=a *:* rwm"} <= set(
        args
    )
    assert args[-3:] == ["--tmpfs", "/tmp", "image"]


def test_shim_drops_privileged_from_exec_and_passes_other_commands_through(tmp_path, fake_docker):
    assert shim_args(tmp_path, "exec", "--privileged", "-i", "node", "true") == ["exec", "-i", "node", "true"]
    assert shim_args(tmp_path, "ps", "-a") == ["ps", "-a"]


def test_kind_launcher_puts_the_shim_first_in_path(tmp_path, fake_docker):
    launcher = capabilities.kind_command(Path("/usr/bin/kind"), tmp_path, missing=["SYS_RESOURCE"])
    text = launcher.read_text()
    assert f"PATH={tmp_path / 'docker-shim'}:$PATH exec /usr/bin/kind" in text


NODES = [
    podnetwork.NodeRoute("cp", ("172.18.0.3",), ("10.244.0.0/24",)),
    podnetwork.NodeRoute("w1", ("172.18.0.2",), ("10.244.1.0/24",)),
    podnetwork.NodeRoute("w2", ("172.18.0.4",), ("10.244.2.0/24",)),
]
KIND_SUBNET = ("10.244.0.0/16",)


def test_every_node_routes_to_every_other_nodes_pod_cidr_and_not_its_own():
    scripts = podnetwork.plan(NODES, KIND_SUBNET)
    assert "ip route replace 10.244.1.0/24 via 172.18.0.2" in scripts["cp"]
    assert "ip route replace 10.244.2.0/24 via 172.18.0.4" in scripts["cp"]
    assert "10.244.0.0/24 via" not in scripts["cp"]


def test_only_traffic_leaving_the_pod_network_is_masqueraded():
    script = podnetwork.plan(NODES, KIND_SUBNET)["w1"]
    assert "-s 10.244.1.0/24 ! -d 10.244.0.0/16 -j MASQUERADE" in script
    assert "iptables -t nat -C POSTROUTING" in script  # idempotent: check before append


def test_the_masquerade_rule_spares_the_clusters_own_pod_subnet_not_kinds_default():
    """#24 12a: with `podSubnet: 10.250.0.0/16` a rule sparing 10.244.0.0/16 NATed pod-to-pod
    traffic across nodes (SVC-20 failed). The subnet comes from kubeadm's ClusterConfiguration,
    else kube-controller-manager's --cluster-cidr, else what covers the nodes' podCIDRs."""
    nodes = [podnetwork.NodeRoute("w1", ("172.18.0.2",), ("10.250.1.0/24",)), NODES[0]]
    kubeadm = "kind: ClusterConfiguration\nnetworking:\n  podSubnet: 10.250.0.0/16\n"
    subnets = podnetwork.pod_subnets(kubeadm, [], nodes)
    assert subnets == ("10.250.0.0/16",)
    assert "-s 10.250.1.0/24 ! -d 10.250.0.0/16 -j MASQUERADE" in podnetwork.plan(nodes, subnets)["w1"]
    assert podnetwork.pod_subnets(None, ["kube-controller-manager", "--cluster-cidr=10.250.0.0/16"], nodes) == (
        "10.250.0.0/16",
    )
    assert podnetwork.pod_subnets("networking: {}", [], nodes[:1]) == ("10.250.1.0/24",)
    assert podnetwork.covering_subnets(["10.250.1.0/24", "10.250.2.0/24"]) == ("10.250.0.0/22",)
    assert podnetwork.pod_subnets(None, [], []) == (podnetwork.DEFAULT_POD_SUBNET,)


def test_dual_stack_nodes_route_and_masquerade_each_family_on_its_own():
    """IPv6 and dual-stack: each other node's IPv6 podCIDR via its IPv6 InternalIP, ip6tables for
    IPv6 masquerade, forwarding on, both ranges and both default routes in the CNI config."""
    cp = podnetwork.NodeRoute("cp", ("172.18.0.3", "fc00:f853:ccd:e793::3"), ("10.244.0.0/24", "fd00:10:244::/64"))
    w1 = podnetwork.NodeRoute("w1", ("172.18.0.2", "fc00:f853:ccd:e793::2"), ("10.244.1.0/24", "fd00:10:244:1::/64"))
    kubeadm = "networking:\n  podSubnet: 10.244.0.0/16,fd00:10:244::/56\n"
    subnets = podnetwork.pod_subnets(kubeadm, [], [cp, w1])
    script = podnetwork.plan([cp, w1], subnets)["cp"]
    assert "ip route replace fd00:10:244:1::/64 via fc00:f853:ccd:e793::2" in script
    assert "ip route replace 10.244.1.0/24 via 172.18.0.2" in script
    assert "ip6tables -t nat -A POSTROUTING -s fd00:10:244::/64 ! -d fd00:10:244::/56 -j MASQUERADE" in script
    assert "iptables -t nat -A POSTROUTING -s 10.244.0.0/24 ! -d 10.244.0.0/16 -j MASQUERADE" in script
    assert "net.ipv6.conf.all.forwarding=1" in script
    ipam = json.loads(podnetwork.conflist(cp.pod_cidrs))["plugins"][0]["ipam"]
    assert ipam["ranges"] == [[{"subnet": "10.244.0.0/24"}], [{"subnet": "fd00:10:244::/64"}]]
    assert ipam["routes"] == [{"dst": "0.0.0.0/0"}, {"dst": "::/0"}]


def test_cni_config_uses_the_nodes_pod_cidr_without_ptp_masquerade():
    conf = json.loads(podnetwork.conflist(["10.244.2.0/24"]))
    ptp, portmap = conf["plugins"]
    assert ptp["type"] == "ptp" and ptp["ipMasq"] is False
    assert ptp["ipam"]["ranges"] == [[{"subnet": "10.244.2.0/24"}]]
    assert portmap["type"] == "portmap"


def test_sysctls_changed_during_the_run_are_written_back(tmp_path):
    (tmp_path / "kernel").mkdir()
    panic = tmp_path / "kernel" / "panic"
    panic.write_text("0\n")
    saved = hygiene.read_sysctls(("kernel/panic", "kernel/absent"), root=tmp_path)
    assert saved == {"kernel/panic": "0"}
    panic.write_text("10\n")
    assert hygiene.restore_sysctls(saved, root=tmp_path) == ["kernel.panic: 10 -> 0"]
    assert panic.read_text() == "0"
    assert hygiene.restore_sysctls(saved, root=tmp_path) == []


def test_a_recipe_change_changes_the_hash_of_that_step_and_of_every_step_after_it(tmp_path, monkeypatch):
    release = releases.release("1.37")
    before = {name: step.hash for name, step in build.steps(release).items()}
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    for f in build.RECIPES.rglob("*"):
        if f.is_file():
            (recipes / f.relative_to(build.RECIPES)).parent.mkdir(parents=True, exist_ok=True)
            (recipes / f.relative_to(build.RECIPES)).write_bytes(f.read_bytes())
    (recipes / "images.sh").write_text((recipes / "images.sh").read_text() + "\n# changed\n")
    monkeypatch.setattr(build, "RECIPES", recipes)
    after = {name: step.hash for name, step in build.steps(release).items()}
    changed = {name for name in before if before[name] != after[name]}
    assert changed == {"images-1.37", "node-1.37", "node"}


def test_releases_share_what_is_not_theirs_and_differ_in_what_is():
    new, old = build.steps(releases.release("1.37")), build.steps(releases.release("1.36"))
    shared = {"node-rootfs", "workload-rootfs", "go-agnhost", "go-containerd", "go-local-path-provisioner"}
    assert {n: new[n].hash for n in shared} == {n: old[n].hash for n in shared}
    assert new["node"].hash != old["node"].hash


def test_the_legacy_release_is_built_from_debian_and_needs_no_go_kubernetes():
    legacy = build.steps(releases.release("1.20"))
    assert "debian-kubernetes-1.20" in legacy and not any(n.startswith("go-kubernetes") for n in legacy)
    assert legacy["node"].env["CONTAINERD_CONFIG"] == "containerd-1.6.toml"


def test_node_image_tag_names_the_kubernetes_version_and_the_recipe_hash():
    for minor, release in releases.RELEASES.items():
        tag = build.node_image_tag(release)
        assert tag.startswith(f"clusterproof/node:{release.kube}-"), minor
        assert len(tag.rsplit("-", 1)[1]) == 12


def test_a_cached_build_runs_no_step(tmp_path, monkeypatch):
    """Every step's output "exists" (fake existence check): build() only looks."""
    builder = build.Builder(cache=tmp_path, log=lambda m: None)
    monkeypatch.setattr(builder, "done", lambda step: True)
    monkeypatch.setattr(builder, "run_step", lambda step: pytest.fail(f"{step.name} rebuilt"))
    assert builder.build() == build.node_image_tag()
    assert [cached for _, _, cached in builder.timings] == [True, True]  # the node image and the Gateway API CRDs


def fake_recipe_builder(tmp_path, monkeypatch, script: str) -> tuple[build.Builder, build.Step, list[str]]:
    """A builder whose recipes dir holds one FAKE recipe (`fake.sh`: `script`), preflight skipped."""
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    (recipes / "fake.sh").write_text(script)
    monkeypatch.setattr(build, "RECIPES", recipes)
    monkeypatch.setattr(build.Builder, "preflight", lambda self, needs_go: None)
    said: list[str] = []
    builder = build.Builder(cache=tmp_path / "cache", progress=Progress(show=said.append, ticker=False))
    return builder, build.Step("fake", ("recipe",), script="fake.sh", marker="out/.done"), said


def test_a_step_built_says_when_it_starts_what_its_recipe_says_as_it_comes_and_when_it_ends(tmp_path, monkeypatch):
    builder, step, said = fake_recipe_builder(
        tmp_path, monkeypatch, 'echo "  [fake] debootstrap bookworm" >&2\necho chatter on stdout\n'
    )
    builder.ensure(step)
    assert said[:2] == ["offline build fake (fake.sh): started", "[fake] debootstrap bookworm"]
    assert said[2].startswith("offline build fake (fake.sh): done in ") and len(said) == 3
    assert [(name, cached) for name, _, cached in builder.timings] == [("fake", False)]


def test_a_failed_recipe_says_what_it_said_and_that_it_failed(tmp_path, monkeypatch):
    builder, step, said = fake_recipe_builder(tmp_path, monkeypatch, 'echo "E: no such package" >&2\nexit 3\n')
    with pytest.raises(build.BuildError, match="'fake' failed \\(exit 3\\)"):
        builder.ensure(step)
    assert said[1] == "E: no such package"
    assert said[2].startswith("offline build fake (fake.sh): failed after ") and "exit 3" in said[2]
    assert not (step.output_dir(builder.cache) / "out" / ".done").exists()


WRAPPER = Path(build.__file__).parent / "recipes" / "files" / "iptables-wrapper"


@pytest.fixture
def fake_xtables(tmp_path):
    """Fake iptables backends (shell scripts): nft holds 3 rules, legacy none; each logs its argv."""
    sbin = tmp_path / "sbin"
    sbin.mkdir()
    for mode, rules in (("nft", "-A A\\n-A B\\n-A C\\n"), ("legacy", "")):
        script = sbin / f"xtables-{mode}-multi"
        script.write_text(f'#!/bin/sh\necho "{mode} $*" >>"{tmp_path}/calls"\nprintf "*filter\\n{rules}COMMIT\\n"\n')
        script.chmod(0o755)
    for name in ("iptables", "ip6tables"):
        (sbin / name).symlink_to(WRAPPER)
    return sbin


def run_wrapper(sbin: Path, name: str, *args: str) -> subprocess.Popen:
    env = {"PATH": "/usr/bin:/bin", "IPTABLES_WRAPPER_SBIN": str(sbin), "IPTABLES_WRAPPER_CHOICE": str(sbin / "mode")}
    return subprocess.Popen([str(sbin / name), *args], env=env, stdout=subprocess.DEVNULL)


def test_iptables_wrapper_picks_the_busier_backend_once_even_under_concurrent_calls(fake_xtables):
    # kube-proxy's goroutines call iptables and ip6tables at the same time; the old wrapper shared
    # a scratch file between calls and now and then picked the empty legacy backend
    calls = [run_wrapper(fake_xtables, name, "-S") for name in ("iptables", "ip6tables") * 10]
    assert [p.wait() for p in calls] == [0] * 20
    assert (fake_xtables / "mode").read_text() == "nft\n"
    invoked = (fake_xtables.parent / "calls").read_text().splitlines()
    assert sorted(line for line in invoked if not line.endswith("iptables-save")) == sorted(
        ["nft iptables -S"] * 10 + ["nft ip6tables -S"] * 10
    )
    # once chosen, a call goes straight to the backend
    (fake_xtables.parent / "calls").write_text("")
    assert run_wrapper(fake_xtables, "ip6tables", "-L").wait() == 0
    assert (fake_xtables.parent / "calls").read_text() == "nft ip6tables -L\n"


def test_go_built_releases_preload_the_offline_ingress_controller_and_the_legacy_one_does_not():
    for minor in ("1.37", "1.36"):
        graph = build.steps(releases.release(minor))
        images = graph[f"images-{minor}"]
        assert images.inputs["TRAEFIK_BIN"] == (graph["go-traefik"], "bin")
        assert images.env["TRAEFIK_TAG"] == releases.TRAEFIK and graph["go-traefik"] in images.after
    assert (
        build.steps(releases.release("1.37"))["go-traefik"].hash
        == build.steps(releases.release("1.36"))["go-traefik"].hash
    )
    assert "go-traefik" not in build.steps(releases.release("1.20"))


def test_the_pod_network_waits_for_every_node_of_the_kind_config_to_register():
    """`kind create` can return before the last worker's Node exists: configuring the two that
    are there would leave the third NotReady for good. FAKE cluster: list_node answers two nodes,
    then three; node_exec records what each node was given."""
    from types import SimpleNamespace

    from kubernetes import client

    from clusterproof.offline import api

    def node(route: podnetwork.NodeRoute) -> client.V1Node:
        return client.V1Node(
            metadata=client.V1ObjectMeta(name=route.name),
            spec=client.V1NodeSpec(pod_cidr=route.pod_cidrs[0], pod_cidrs=list(route.pod_cidrs)),
            status=client.V1NodeStatus(addresses=[client.V1NodeAddress(type="InternalIP", address=route.ips[0])]),
        )

    answers = [NODES[:2], NODES]

    def list_node() -> SimpleNamespace:
        routes = answers.pop(0) if len(answers) > 1 else answers[0]
        return SimpleNamespace(items=[node(r) for r in routes])

    def read_config_map(name: str, namespace: str) -> client.V1ConfigMap:
        return client.V1ConfigMap(data={"ClusterConfiguration": "networking:\n  podSubnet: 10.244.0.0/16\n"})

    configured: list[tuple[str, str]] = []
    cluster = SimpleNamespace(
        core=SimpleNamespace(
            list_node=list_node,
            read_namespaced_config_map=read_config_map,
            list_namespaced_pod=lambda *a, **k: SimpleNamespace(items=[]),
        ),
        node_exec=lambda name, *argv, input: configured.append((name, argv[-1])),
    )
    api.configure_cluster(cluster, 3)
    assert [name for name, _ in configured] == ["cp", "w1", "w2"]
    assert "! -d 10.244.0.0/16 -j MASQUERADE" in configured[1][1]


def test_a_step_another_process_is_building_is_waited_for_then_reused(tmp_path, monkeypatch):
    """Two builders on one cache (two checkouts, two CI jobs): the second waits on the step's
    lock and, once the first has built it, reuses it instead of building it again. Fake steps."""
    import threading

    said: list[str] = []
    first, second = build.Builder(cache=tmp_path, log=lambda m: None), build.Builder(cache=tmp_path, log=said.append)
    step = build.Step("demo", ("recipe",), marker="bin/.done")
    built = []
    monkeypatch.setattr(build.Builder, "run_step", lambda self, s: built.append(self))
    with first.exclusive(step):
        worker = threading.Thread(target=second.ensure, args=(step,))
        worker.start()
        while not said:
            worker.join(0.01)
        (step.output_dir(tmp_path) / "bin").mkdir(parents=True)
        (step.output_dir(tmp_path) / "bin" / ".done").touch()
    worker.join(5)
    assert said[0] == "offline build demo: waiting for another build of it on this host: started"
    assert said[1].startswith("offline build demo: waiting for another build of it on this host: done in")
    assert built == [] and second.timings[0][2] is True


def test_the_go_built_releases_upgrade_one_minor_at_a_time_from_1_35_to_the_default():
    """The multi-hop upgrade's path (kubeadm upgrades one minor at a time): 1.35 -> 1.36 -> 1.37."""
    path = [releases.release("1.35")]
    while path[-1].minor != releases.DEFAULT:
        path.append(releases.upgrade_target(path[-1]))
    assert [r.kube for r in path] == ["v1.35.4", "v1.36.3", "v1.37.2"]
    with pytest.raises(releases.UnknownRelease, match="no release after v1.37.2"):
        releases.upgrade_target(releases.release("1.37"))
    # what kubeadm v1.35.4 asks for (cmd/kubeadm/app/constants): its own etcd and CoreDNS
    old = build.steps(releases.release("1.35"))
    assert {"go-etcd-3.6.6", "go-coredns-v1.13.1", "go-kubernetes-1.35"} <= set(old)


def test_every_go_built_release_carries_the_pause_image_its_containerd_runs_sandboxes_with():
    """Seen with 1.35 built with kubeadm's pause 3.10.1: containerd's sandbox image (3.10.2) was not
    in the node, no static pod got a sandbox ("failed to pull image registry.k8s.io/pause:3.10.2")
    and kind create failed after 4 min with the control plane "not healthy"."""
    config = tomllib.loads((build.RECIPES / "files" / "containerd.toml").read_text())
    sandbox = config["plugins"]["io.containerd.cri.v1.images"]["pinned_images"]["sandbox"]
    for release in (r for r in releases.RELEASES.values() if r.source == "go"):
        assert release.image("pause") == sandbox, release.kube
        assert build.steps(release)[f"images-{release.minor}"].env["PAUSE_TAG"] == release.pause


def test_a_step_of_the_same_name_and_another_recipe_is_built_not_taken_for_the_first(tmp_path, monkeypatch):
    """Seen here: a long build whose source changed under it computed a second release's step
    with another hash; the builder took it for the one already built (same name) and the next
    step found no output. Fake steps and existence checks."""
    builder = build.Builder(cache=tmp_path, log=lambda m: None)
    built = []
    monkeypatch.setattr(builder, "done", lambda step: False)
    monkeypatch.setattr(builder, "run_step", lambda step: built.append(step.hash))
    one, other = build.Step("demo", ("recipe 1",)), build.Step("demo", ("recipe 2",))
    for step in (one, one, other):
        builder.ensure(step)
    assert built == [one.hash, other.hash]
