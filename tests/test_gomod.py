"""The Go-module side of the offline build, without building: wrapper modules, the replaces
read from upstream's go.mod, release lookup, and the one-line errors. `go` is never run here
except where a fake toolchain (a shell script, declared below) stands in for it."""

from __future__ import annotations

from pathlib import Path

import pytest

from clusterproof.offline import gomod, programs, releases

UPSTREAM = """module k8s.io/kubernetes

go 1.26.0

godebug default=go1.26

require (
\tk8s.io/api v0.0.0
)

replace (
\tk8s.io/api => ./staging/src/k8s.io/api
\tk8s.io/client-go => ./staging/src/k8s.io/client-go
)

replace example.com/other => example.com/other v1.2.3
"""


def test_local_replaces_are_the_staging_modules_only():
    assert gomod.local_replaces(UPSTREAM) == ["k8s.io/api", "k8s.io/client-go"]


def test_kubernetes_wrapper_pins_staging_modules_and_keeps_godebug_and_versions():
    program = programs.kubernetes(releases.release("1.37"), UPSTREAM, with_agnhost=True)
    files = gomod.wrapper_files(program)
    go_mod = files["go.mod"]
    assert "go 1.26.0" in go_mod and "godebug default=go1.26" in go_mod
    assert "require k8s.io/kubernetes v1.37.2" in go_mod
    assert "\tk8s.io/api => k8s.io/api v0.37.2" in go_mod
    assert "\tk8s.io/client-go => k8s.io/client-go v0.37.2" in go_mod
    assert '_ "k8s.io/kubernetes/test/images/agnhost"' in files["tools.go"]
    assert "-X k8s.io/component-base/version.gitVersion=v1.37.2" in program.ldflags
    assert "-X k8s.io/client-go/pkg/version.gitMinor=37" in program.ldflags


def test_etcd_and_coredns_are_built_from_a_wrapper_main():
    release = releases.release("1.36")
    etcd = gomod.wrapper_files(programs.etcd(release))
    assert "require go.etcd.io/etcd/server/v3 v3.6.8" in etcd["go.mod"] and "etcdmain.Main" in etcd["main.go"]
    coredns = gomod.wrapper_files(programs.coredns(release))
    assert '"github.com/coredns/coredns/plugin/kubernetes"' in coredns["main.go"]
    assert "route53" not in coredns["main.go"]


@pytest.mark.parametrize("given", ["1.37", "v1.37", "1.37.2", "v1.37.2"])
def test_release_lookup(given):
    assert releases.release(given).kube == "v1.37.2"


def test_release_with_another_patch_is_refused():
    with pytest.raises(releases.UnknownRelease, match="the offline build makes"):
        releases.release("1.37.1")


def test_the_upgrade_target_is_the_next_minor():
    assert releases.upgrade_target(releases.release("1.36")).kube == "v1.37.2"
    with pytest.raises(releases.UnknownRelease):
        releases.upgrade_target(releases.release("1.37"))


def test_kubeadm_names_of_the_images():
    release = releases.release("1.37")
    assert release.image("etcd") == "registry.k8s.io/etcd:3.7.0-0"
    assert release.image("coredns") == "registry.k8s.io/coredns/coredns:v1.14.6"
    assert release.image("kube-proxy") == "registry.k8s.io/kube-proxy:v1.37.2"
    assert release.kubeadm_api == "v1beta4" and releases.release("1.20").kubeadm_api == "v1beta2"


@pytest.fixture
def fake_go(tmp_path, monkeypatch):
    """A fake `go` (shell script): `env GOVERSION` answers go1.26.8, `mod download` fails as
    the proxy does when it refuses a module."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    go = bin_dir / "go"
    go.write_text(
        "#!/bin/sh\n"
        'case "$1 $2" in\n'
        '  "env GOVERSION") echo ${FAKE_GOVERSION:-go1.26.8};;\n'
        '  "mod download") echo "go: example.com/m@v9.9.9: reading https://proxy.golang.org/...: 403 Forbidden" >&2;'
        " exit 1;;\n"
        "esac\n"
    )
    go.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    return go


def test_a_refused_module_is_one_line_naming_the_component(fake_go, tmp_path):
    env = gomod.GoEnv(tmp_path / "cache")
    with pytest.raises(gomod.GoBuildError) as e:
        gomod.download(env, "kubernetes v9.9.9", "example.com/m", "v9.9.9", tmp_path / "work")
    message = str(e.value)
    assert "\n" not in message
    assert message.startswith("kubernetes v9.9.9: the Go module proxy refused example.com/m@v9.9.9: ")
    assert "403 Forbidden" in message


def test_no_go_toolchain(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(gomod.GoBuildError, match=r"^etcd: no Go toolchain on PATH: install Go 1.26 or newer"):
        gomod.check_toolchain("etcd")


def test_old_go_toolchain(fake_go, monkeypatch):
    monkeypatch.setenv("FAKE_GOVERSION", "go1.22.1")
    with pytest.raises(gomod.GoBuildError, match=r"^coredns: Go 1.22 is too old: install Go 1.26 or newer"):
        gomod.check_toolchain("coredns")


def test_go_env_keeps_caches_under_the_offline_cache(tmp_path):
    env = gomod.GoEnv(Path("/c")).env()
    assert env["GOMODCACHE"] == "/c/go/mod" and env["GOCACHE"] == "/c/go/build" and env["CGO_ENABLED"] == "0"


TRAEFIK_GO_MOD = """module github.com/traefik/traefik/v3

go 1.25.0

require (
\tgithub.com/gorilla/mux v1.8.1 // indirect
)

// Containous forks
replace (
\tgithub.com/abbot/go-http-auth => github.com/containous/go-http-auth v0.4.1-0.20200324110947-a37a7636d23e
\tgithub.com/gorilla/mux => github.com/containous/mux v0.0.0-20250523120546-41b6ec3aed59 // a fork
)

replace github.com/traefik/traefik/dynamic/ext => ./pkg/config/dynamic/ext

// ambiguous import
exclude github.com/tencentcloud/tencentcloud-sdk-go v3.0.83+incompatible
"""


def test_forks_and_excludes_of_a_go_mod_are_read_and_local_paths_left_out():
    assert gomod.module_replaces(TRAEFIK_GO_MOD) == {
        "github.com/abbot/go-http-auth": "github.com/containous/go-http-auth v0.4.1-0.20200324110947-a37a7636d23e",
        "github.com/gorilla/mux": "github.com/containous/mux v0.0.0-20250523120546-41b6ec3aed59",
    }
    assert gomod.module_excludes(TRAEFIK_GO_MOD) == (
        "github.com/tencentcloud/tencentcloud-sdk-go v3.0.83+incompatible",
    )
    assert gomod.module_replaces(UPSTREAM) == {"example.com/other": "example.com/other v1.2.3"}


def test_traefik_wrapper_repeats_upstreams_forks_and_excludes_and_stamps_the_version():
    program = programs.traefik(TRAEFIK_GO_MOD)
    files = gomod.wrapper_files(program)
    go_mod = files["go.mod"]
    assert "go 1.25.0" in go_mod and f"require github.com/traefik/traefik/v3 {releases.TRAEFIK}" in go_mod
    assert "\tgithub.com/gorilla/mux => github.com/containous/mux v0.0.0-20250523120546-41b6ec3aed59" in go_mod
    # a fork version the proxy refuses is replaced by the one it serves (programs.TRAEFIK_PINS)
    assert "\tgithub.com/abbot/go-http-auth => github.com/containous/go-http-auth v0.4.1-0.20200324110947" in go_mod
    assert "\tgithub.com/go-acme/lego/v5 => github.com/go-acme/lego/v5 v5.5.2" in go_mod
    assert "exclude (\n\tgithub.com/tencentcloud/tencentcloud-sdk-go v3.0.83+incompatible\n)" in go_mod
    assert files["tools.go"].count('_ "github.com/traefik/traefik/v3/cmd/traefik"') == 1
    assert f"-X github.com/traefik/traefik/v3/pkg/version.Version={releases.TRAEFIK}" in program.ldflags


def test_traefiks_unpublished_extension_module_is_replaced_by_our_stub_beside_the_wrapper():
    """v3.7's go.mod replaces github.com/traefik/traefik/dynamic/ext by ./pkg/config/dynamic/ext (not
    in the published module): the wrapper writes a module of ours and replaces it by that local path,
    whatever the upstream go.mod says (so the stub is part of the step's recipe)."""
    files = gomod.wrapper_files(programs.traefik(TRAEFIK_GO_MOD))
    replace = "\tgithub.com/traefik/traefik/dynamic/ext => ./local/github-com-traefik-traefik-dynamic-ext"
    assert replace in files["go.mod"]
    assert "./pkg/config/dynamic/ext" not in files["go.mod"]
    stub = "local/github-com-traefik-traefik-dynamic-ext"
    assert files[f"{stub}/go.mod"].startswith("module github.com/traefik/traefik/dynamic/ext\n")
    assert "type HTTP struct{}" in files[f"{stub}/ext.go"] and "type Router struct{}" in files[f"{stub}/ext.go"]
    assert programs.traefik("").local_modules == programs.traefik(TRAEFIK_GO_MOD).local_modules
    akamai = "local/github-com-akamai-akamaiopen-edgegrid-golang-v13"
    assert f"\tgithub.com/akamai/AkamaiOPEN-edgegrid-golang/v13 => ./{akamai}" in files["go.mod"]
    assert {f"{akamai}/go.mod", f"{akamai}/pkg/edgegrid/edgegrid.go", f"{akamai}/pkg/dns/dns.go"} <= set(files)


def test_local_modules_are_written_in_their_own_directories(fake_go, tmp_path):
    program = gomod.GoProgram("x v1", "example.com/x", "v1.0.0", ("example.com/x/cmd/x",),
                              local_modules={"example.com/x/ext": {"go.mod": "module example.com/x/ext\n"}})
    gomod.build(gomod.GoEnv(tmp_path / "cache", go=str(fake_go)), program, tmp_path / "out", tmp_path / "w", log=str)
    assert (tmp_path / "w" / "local" / "example-com-x-ext" / "go.mod").read_text() == "module example.com/x/ext\n"


def test_the_version_a_go_mod_requires():
    go_mod = "module m\n\nrequire (\n\tsigs.k8s.io/gateway-api v1.6.1\n\tother v2 // indirect\n)\nrequire one v3\n"
    assert gomod.required_version(go_mod, "sigs.k8s.io/gateway-api") == "v1.6.1"
    assert gomod.required_version(go_mod, "one") == "v3" and gomod.required_version(go_mod, "none") is None
