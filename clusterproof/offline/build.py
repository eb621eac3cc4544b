"""Build the offline node images, each step cached by a hash of its recipe.

Steps form a graph; a step's hash covers its own recipe (files, and for Go programs the
wrapper module's spec) and the hashes of the steps it uses, so a change anywhere rebuilds
exactly what depends on it. A step whose output exists (docker image tag, or a marker file
written only after success) is skipped: a second build is a cache check. A failed step
leaves no marker, so it never poisons the cache.

    python -m clusterproof.offline build [--k8s-version 1.37] ...  # build what is missing
    python -m clusterproof.offline tag [--k8s-version 1.37]         # the node image tag
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import fcntl
import hashlib
import inspect
import os
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from clusterproof.errors import ClusterproofError
from clusterproof.offline import gateway_api, gomod, programs, releases
from clusterproof.offline.releases import Release
from clusterproof.progress import Progress

RECIPES = Path(__file__).parent / "recipes"
GATEWAY_API_CRDS = "gateway-api-crds"  # the step writing the Gateway API CRDs (standard channel)
CRDS_FILE = "crds/standard.yaml"  # below that step's output
MIN_FREE_BYTES = 12 * 1024**3  # Go caches, rootfs trees and the images of one release at once
Log = Callable[[str], None]


class BuildError(ClusterproofError):
    """A build step failed; the message names the step and what to do."""


def default_cache_dir() -> Path:
    if os.environ.get("CLUSTERPROOF_CACHE"):
        return Path(os.environ["CLUSTERPROOF_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "clusterproof"


def recipe_hash(*parts: str | Path) -> str:
    """Hash of recipe files (by content) and upstream hashes or specs (as strings)."""
    h = hashlib.sha256()
    for part in parts:
        if isinstance(part, Path):
            h.update(part.name.encode())
            h.update(part.read_bytes())
        else:
            h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()[:12]


# An input of a step: an environment variable naming another step's output.
# ("TAG",) -> its image tag; ("dir", "bin") -> a directory below its output.
Input = tuple["Step", str]

GoAction = Callable[["Builder", "Step", Path], dict[str, float]]


@dataclass(eq=False)
class Step:
    name: str
    recipe: tuple[str | Path, ...]
    after: tuple[Step, ...] = ()
    script: str | None = None  # bash recipe in recipes/
    go: GoAction | None = None  # or a Go build, run here
    image: str | None = None  # docker image repository; tag = [tag_prefix-]hash
    tag_prefix: str = ""
    marker: str | None = None  # output-relative file that proves the output exists
    inputs: dict[str, Input] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)

    @property
    def hash(self) -> str:
        return recipe_hash(
            *self.recipe, *(f"{k}={v}" for k, v in sorted(self.env.items())), *(s.hash for s in self.after)
        )

    @property
    def tag(self) -> str:
        assert self.image, self.name
        prefix = f"{self.tag_prefix}-" if self.tag_prefix else ""
        return f"{self.image}:{prefix}{self.hash}"

    def output_dir(self, cache: Path) -> Path:
        return cache / self.name / self.hash


def _files(*names: str) -> tuple[Path, ...]:
    return tuple(RECIPES / n for n in ("lib.sh", *names))


def _script_step(name: str, script: str, *files: str, **settings: Any) -> Step:
    """A step run by a bash recipe: hashed on lib.sh, the script and the other `files` it uses."""
    return Step(name, _files(script, *files), script=script, **settings)


def _source_of(*objects: object) -> tuple[str, ...]:
    """The code's meaning, not its layout: reformatting or a comment rebuilds nothing."""
    return tuple(ast.dump(ast.parse(textwrap.dedent(inspect.getsource(o)))) for o in objects)  # type: ignore[arg-type]


def _go_recipe(program: gomod.GoProgram, *code: object) -> tuple[str, ...]:
    """What a Go step's output depends on: the wrapper module's spec (module, version, packages,
    replaces, flags, main source) and the build code (gomod, and any action code named)."""
    return (*_source_of(gomod, *code), repr(program))


# --- Go actions ----------------------------------------------------------------------------------


def _go_kubernetes(release: Release, *, with_agnhost: bool, only_agnhost: bool = False) -> GoAction:
    def action(builder: Builder, step: Step, out: Path) -> dict[str, float]:
        env = builder.go_env
        component = f"kubernetes {release.kube}"
        upstream = gomod.download(env, component, "k8s.io/kubernetes", release.kube, builder.cache / "go" / "work")
        program = programs.kubernetes(release, (upstream / "go.mod").read_text(), with_agnhost=with_agnhost)
        if only_agnhost:
            program = programs.only(program, programs.AGNHOST, f"agnhost {releases.AGNHOST_TAG}")
        seconds = gomod.build(env, program, out, builder.cache / "go" / "work" / step.name, log=builder.step_log(step))
        if not only_agnhost:
            seconds["pause"] = _compile_pause(programs.pause_source(upstream), out / "pause", release)
        return seconds

    return action


def _go_traefik(builder: Builder, step: Step, out: Path) -> dict[str, float]:
    """Traefik, whose go.mod replaces modules by forks: the wrapper repeats them (see programs.traefik)."""
    env = builder.go_env
    component = f"traefik {releases.TRAEFIK}"
    upstream = gomod.download(env, component, programs.TRAEFIK_MODULE, releases.TRAEFIK, builder.cache / "go" / "work")
    program = programs.traefik((upstream / "go.mod").read_text())
    return gomod.build(env, program, out, builder.cache / "go" / "work" / step.name, log=builder.step_log(step))


def _go_gateway_api_crds(builder: Builder, step: Step, out: Path) -> dict[str, float]:
    """The Gateway API CRDs of the standard channel at the version Traefik's go.mod requires:
    controller-gen over the module's types, then the channel's marks read (see offline.gateway_api)."""
    env, work, log = builder.go_env, builder.cache / "go" / "work", builder.step_log(step)
    traefik = gomod.download(env, step.name, programs.TRAEFIK_MODULE, releases.TRAEFIK, work)
    try:
        version = gateway_api.version_for((traefik / "go.mod").read_text())
    except ValueError as e:
        raise BuildError(f"{step.name}: {e}") from None
    seconds = gomod.build(env, gateway_api.controller_gen(), out, work / f"{step.name}-controller-gen", log=log)
    types = work / f"{step.name}-types"
    seconds.update(gomod.build(env, gateway_api.api_types(version), out, types, log=log))
    generated = out.parent / "generated"
    started = time.monotonic()
    log(f"controller-gen {releases.CONTROLLER_TOOLS} over {gateway_api.MODULE} {version}")
    done = subprocess.run(
        [str(out / "controller-gen"), *gateway_api.controller_gen_args(str(generated))],
        cwd=types, env=env.env(), capture_output=True, text=True,
    )
    if done.returncode != 0:
        raise BuildError(f"{step.name}: controller-gen failed: {gomod.first_error_line(done.stderr)}")
    seconds["controller-gen run"] = time.monotonic() - started
    module = gomod.download(env, step.name, gateway_api.MODULE, version, work)
    stamp = gateway_api.stamp_of((module / gateway_api.CONSTS_FILE).read_text())
    crds = gateway_api.standard_channel(_yaml_documents(sorted(generated.glob("*.yaml"))), stamp)
    target = out.parent / CRDS_FILE
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(yaml.safe_dump_all(crds, sort_keys=True))
    shipped = _yaml_documents(sorted((module / "config" / "crd" / gateway_api.CHANNEL).glob("*.yaml")))
    differences = gateway_api.compare(crds, shipped)
    log(
        f"{len(crds)} CRDs of the {gateway_api.CHANNEL} channel, {gateway_api.MODULE} {version}: "
        + ("the same as the module's own config/crd/standard" if not differences else
           f"{len(differences)} differ from the module's own config/crd/standard: {'; '.join(differences)}")
    )
    return seconds


def _yaml_documents(files: list[Path]) -> list[dict[str, Any]]:
    return [doc for f in files for doc in yaml.safe_load_all(f.read_text()) if isinstance(doc, dict)]


def _go_step(name: str, program: gomod.GoProgram, go: GoAction, *code: object) -> Step:
    """A Go build into bin/ by `go`, hashed on `program` and the build code (gomod and `code`:
    the action's own, where it has any; see _go_recipe)."""
    return Step(name, _go_recipe(program, *code), go=go, marker="bin/.done")


def _program_step(name: str, program: gomod.GoProgram) -> Step:
    """A Go step that builds `program` as gomod builds any wrapper module."""

    def action(builder: Builder, step: Step, out: Path) -> dict[str, float]:
        work = builder.cache / "go" / "work" / step.name
        return gomod.build(builder.go_env, program, out, work, log=builder.step_log(step))

    return _go_step(name, program, action)


def _compile_pause(source: Path, target: Path, release: Release) -> float:
    started = time.monotonic()
    if shutil.which("gcc") is None:
        raise BuildError("pause: gcc is missing (apt-get install gcc libc6-dev): pause is compiled from pause.c")
    done = subprocess.run(
        ["gcc", "-Os", "-static", f"-DVERSION=v{release.pause}", "-o", str(target), str(source)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise BuildError(
            f"pause: gcc -static failed: {gomod.first_error_line(done.stderr)} (apt-get install libc6-dev)"
        )
    subprocess.run(["strip", str(target)], capture_output=True)
    return time.monotonic() - started


# --- the graph -------------------------------------------------------------------------------------


def steps(release: Release) -> dict[str, Step]:
    """Every step the node image of `release` needs, by name; "node" is the last."""
    node_rootfs = _script_step("node-rootfs", "node-rootfs.sh", image="clusterproof/node-rootfs")
    workload_rootfs = _script_step("workload-rootfs", "workload-rootfs.sh", image="clusterproof/workload-rootfs")
    agnhost_release = releases.RELEASES[releases.AGNHOST_FROM]
    agnhost_program = programs.only(
        programs.kubernetes(agnhost_release, "", with_agnhost=True), programs.AGNHOST, f"agnhost {releases.AGNHOST_TAG}"
    )
    agnhost = _go_step(
        "go-agnhost",
        agnhost_program,
        _go_kubernetes(agnhost_release, with_agnhost=True, only_agnhost=True),
        _go_kubernetes,
    )
    if release.source == "debian":
        kube, runtime, etcd, extra = _debian_steps(release)
        containerd_config = "files/containerd-1.6.toml"
        storage: tuple[str, ...] = ()
    else:
        kube = _go_step(
            f"go-kubernetes-{release.minor}",
            programs.kubernetes(release, "", with_agnhost=False),
            _go_kubernetes(release, with_agnhost=False),
            _go_kubernetes,
            _compile_pause,
        )
        runtime = _program_step("go-containerd", programs.containerd())
        etcd = _program_step(f"go-etcd-{release.etcd}", programs.etcd(release))
        coredns = _program_step(f"go-coredns-{release.coredns}", programs.coredns(release))
        local_path = _program_step("go-local-path-provisioner", programs.local_path_provisioner())
        # the ingress controller of offline clusters (ingress-nginx cannot be built: clusterproof.jigs.ingress.installs)
        traefik = _go_step("go-traefik", programs.traefik(""), _go_traefik, _go_traefik)
        # the Gateway API CRDs Traefik's Gateway provider is built against (installed with it, not preloaded)
        crds = Step(
            GATEWAY_API_CRDS,
            _go_recipe(gateway_api.controller_gen(), _go_gateway_api_crds, gateway_api, _yaml_documents),
            go=_go_gateway_api_crds,
            marker="bin/.done",
            env={"TRAEFIK_VERSION": releases.TRAEFIK},
        )
        extra = {
            "COREDNS_BIN": (coredns, "bin"),
            "LOCAL_PATH_BIN": (local_path, "bin"),
            "TRAEFIK_BIN": (traefik, "bin"),
        }
        containerd_config = "files/containerd.toml"
        storage = ("files/local-path-storage.yaml",)
    images_env = {
        "KUBE_VERSION": release.kube,
        "REGISTRY": release.registry,
        "ETCD_TAG": release.etcd_tag,
        "COREDNS_TAG": release.coredns,
        "PAUSE_TAG": release.pause,
        "AGNHOST_TAG": releases.AGNHOST_TAG,
        "LOCAL_PATH_TAG": releases.LOCAL_PATH_PROVISIONER,
        "TRAEFIK_TAG": releases.TRAEFIK,
    }
    inputs: dict[str, Input] = {
        "BIN": (kube, "bin"),
        "ETCD_BIN": (etcd, "bin"),
        "AGNHOST_BIN": (agnhost, "bin"),
        "NODE_ROOTFS": (node_rootfs, "TAG"),
        "WORKLOAD_ROOTFS": (workload_rootfs, "TAG"),
        **extra,
    }
    images = _script_step(
        f"images-{release.minor}",
        "images.sh",
        "files/iptables-wrapper",
        after=tuple(s for s, _ in inputs.values()),
        marker="images.tar",
        inputs=inputs,
        env=images_env,
    )
    node = _script_step(
        f"node-{release.minor}",
        "node.sh",
        "files/entrypoint",
        "files/kubelet.service",
        "files/10-kubeadm.conf",
        "files/containerd.service",
        containerd_config,
        *storage,
        after=(images, node_rootfs, kube, runtime),
        image="clusterproof/node",
        tag_prefix=release.kube,
        inputs={
            "BIN": (kube, "bin"),
            "RUNTIME_BIN": (runtime, "bin"),
            "NODE_ROOTFS": (node_rootfs, "TAG"),
            "IMAGES_TAR": (images, "images.tar"),
        },
        env={
            "KUBE_VERSION": release.kube,
            "CONTAINERD_CONFIG": Path(containerd_config).name,
            "STORAGE_MANIFEST": Path(storage[0]).name if storage else "",
        },
    )
    graph = [node_rootfs, workload_rootfs, agnhost, kube, runtime, etcd, *(s for s, _ in extra.values()), images, node]
    if release.source == "go":
        graph.append(crds)
    found = {s.name: s for s in graph}
    found["node"] = node
    return found


def _debian_steps(release: Release) -> tuple[Step, Step, Step, dict[str, Input]]:
    """The legacy release: Debian bookworm's kubernetes source package, compiled with
    bullseye's Go 1.15; containerd 1.6 and etcd 3.4 from Debian's packages."""
    builder = _script_step("debian-builder", "builder-rootfs.sh", image="clusterproof/builder")
    source = _script_step("debian-source", "k8s-source.sh", marker="src/.done", env={"KUBE_VERSION": release.kube})
    kube = _script_step(
        f"debian-kubernetes-{release.minor}",
        "k8s-binaries.sh",
        after=(builder, source),
        marker="bin/.done",
        inputs={"BUILDER": (builder, "TAG"), "SRC_DIR": (source, "src")},
        env={"KUBE_VERSION": release.kube},
    )
    runtime = _debian_package_step(
        "debian-containerd", "containerd=1.6.20~ds1-1+deb12u3", "containerd containerd-shim-runc-v2 ctr"
    )
    etcd = _debian_package_step("debian-etcd", f"etcd-server={release.etcd}-4+b4", "etcd")
    return kube, runtime, etcd, {}


def _debian_package_step(name: str, package: str, binaries: str) -> Step:
    """`binaries` (space-separated) of one Debian package (name=version), into bin/."""
    return _script_step(name, "debian-packages.sh", marker="bin/.done", env={"PACKAGE": package, "BINARIES": binaries})


def node_image_tag(release: Release | None = None) -> str:
    return steps(release or releases.release(None))["node"].tag


def image_exists(ref: str) -> bool:
    return subprocess.run(["docker", "image", "inspect", ref], capture_output=True).returncode == 0


class Builder:
    """Builds what is missing of a step graph. Each step built is a step of `progress` (shown as
    it starts and ends, with heartbeats while a Go build is quiet); without one, its lines go to `log`."""

    def __init__(self, cache: Path | None = None, log: Log = print, progress: Progress | None = None):
        self.cache = cache or default_cache_dir()
        self.progress = progress or Progress(show=log)
        self.log = self.progress.say
        self.go_env = gomod.GoEnv(self.cache)
        self.timings: list[tuple[str, float, bool]] = []
        # (name, hash): a step of the same name and another recipe is another step
        self.ensured: set[tuple[str, str]] = set()
        self._preflight_done = False

    def step_log(self, step: Step) -> Log:
        return lambda message: self.log(f"[{step.name}] {message}")

    def done(self, step: Step) -> bool:
        if step.image:
            return image_exists(step.tag)
        assert step.marker
        return (step.output_dir(self.cache) / step.marker).exists()

    def env_for(self, step: Step) -> dict[str, str]:
        out = step.output_dir(self.cache)
        env = {"CACHE_DIR": str(self.cache), "STEP": step.name, "RECIPE_HASH": step.hash, "OUT": str(out), **step.env}
        if step.image:
            env["TAG"] = step.tag
        for var, (source, what) in step.inputs.items():
            env[var] = source.tag if what == "TAG" else str(source.output_dir(self.cache) / what)
        return env

    def preflight(self, needs_go: bool) -> None:
        if self._preflight_done:
            return
        if shutil.which("docker") is None:
            raise BuildError("docker is not installed: run scripts/bootstrap.sh (or apt-get install docker.io)")
        if subprocess.run(["docker", "info"], capture_output=True).returncode != 0:
            raise BuildError("docker daemon not reachable: start dockerd (scripts/bootstrap.sh does)")
        if shutil.which("debootstrap") is None:
            raise BuildError("debootstrap is missing: apt-get install debootstrap")
        if shutil.which("apt-get") is None:
            raise BuildError("the offline build needs a Debian host with apt-get (it fetches Debian packages)")
        if needs_go:
            gomod.check_toolchain("offline images")
        self.cache.mkdir(parents=True, exist_ok=True)
        free = shutil.disk_usage(self.cache).free
        if free < MIN_FREE_BYTES:
            raise BuildError(
                f"too little disk for the offline images: {free / 1024**3:.1f} GiB free in {self.cache}, "
                f"{MIN_FREE_BYTES / 1024**3:.0f} GiB needed (set CLUSTERPROOF_CACHE elsewhere or free space)"
            )
        self._preflight_done = True

    def run_step(self, step: Step) -> None:
        for dep in step.after:
            self.ensure(dep)
        self.preflight(needs_go=step.go is not None)
        started = time.monotonic()
        out = step.output_dir(self.cache)
        how, waiting_for = ("Go", "go mod tidy, go build") if step.go is not None else (step.script, step.script)
        with self.progress.step(f"offline build {step.name} ({how})", waiting_for):
            if step.go is not None:
                shutil.rmtree(out, ignore_errors=True)
                detail = step.go(self, step, out / "bin")
                self.log(f"[{step.name}] " + ", ".join(f"{name} {secs:.0f}s" for name, secs in detail.items()))
            else:
                out.mkdir(parents=True, exist_ok=True)
                self._run_script(step)
            if step.marker and not step.marker.endswith(".tar"):
                (out / step.marker).parent.mkdir(parents=True, exist_ok=True)
                (out / step.marker).touch()
            if os.environ.get("CLUSTERPROOF_BUILD_PRUNE", "1") != "0":
                self.prune_stale(step)
        self.timings.append((step.name, time.monotonic() - started, False))

    def _run_script(self, step: Step) -> None:
        """The step's bash recipe; what it says on stderr (its log lines, a failure's output) is
        said line by line as it comes (its stdout, tools' chatter, is dropped)."""
        with subprocess.Popen(
            ["bash", str(RECIPES / str(step.script))],
            env={**os.environ, **self.env_for(step)},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
        ) as proc:
            assert proc.stderr is not None
            for line in proc.stderr:
                if line.strip():
                    self.log(line.strip())
        if proc.returncode != 0:
            raise BuildError(f"build step {step.name!r} failed (exit {proc.returncode}); its output is above")

    def prune_stale(self, step: Step) -> None:
        """Outputs of this step's older recipes: unused now, they only fill the disk. An image
        still used by a container (a kept cluster) stays: docker refuses, harmlessly. Node
        images of other releases are not this step's: only tags with the same prefix go."""
        if step.image:
            listed = subprocess.run(
                ["docker", "images", step.image, "--format", "{{.Repository}}:{{.Tag}}"],
                capture_output=True,
                text=True,
            ).stdout.split()
            prefix = f"{step.image}:{step.tag_prefix}-" if step.tag_prefix else f"{step.image}:"
            stale = [ref for ref in listed if ref != step.tag and ref.startswith(prefix)]
            if stale:
                subprocess.run(["docker", "rmi", *stale], capture_output=True)
        for old in step.output_dir(self.cache).parent.glob("*"):
            if old.is_dir() and old.name != step.hash:
                shutil.rmtree(old, ignore_errors=True)

    @contextlib.contextmanager
    def exclusive(self, step: Step):
        """One build of a step at a time on this host: another process (a second checkout, a
        concurrent CI job) building the same step is waited for, then its output is reused."""
        locks = self.cache / ".locks"
        locks.mkdir(parents=True, exist_ok=True)
        with open(locks / f"{step.name}.lock", "w") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                with self.progress.step(
                    f"offline build {step.name}: waiting for another build of it on this host",
                    "that build to end (its lock)",
                ):
                    fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def ensure(self, step: Step) -> None:
        if (step.name, step.hash) in self.ensured:
            return
        self.ensured.add((step.name, step.hash))
        started = time.monotonic()
        if self.done(step):
            self.timings.append((step.name, time.monotonic() - started, True))
            return
        for dep in step.after:
            self.ensure(dep)
        with self.exclusive(step):
            if self.done(step):  # built meanwhile by the process we waited for
                self.timings.append((step.name, time.monotonic() - started, True))
                return
            self.run_step(step)

    def build(self, release: Release | None = None) -> str:
        """The node image of `release` (and, for the Go-built releases, the Gateway API CRDs)."""
        graph = steps(release or releases.release(None))
        self.ensure(graph["node"])
        if GATEWAY_API_CRDS in graph:
            self.ensure(graph[GATEWAY_API_CRDS])
        return graph["node"].tag

    def gateway_api_crds(self, release: Release | None = None) -> Path:
        """The Gateway API CRDs file (standard channel), built first when missing."""
        step = steps(release or releases.release(None)).get(GATEWAY_API_CRDS)
        if step is None:
            raise BuildError(f"no Gateway API CRDs for the legacy release {(release or releases.release(None)).kube}")
        self.ensure(step)
        return step.output_dir(self.cache) / CRDS_FILE

    def report(self) -> str:
        return "\n".join(
            f"  {name:<28} {'cached' if cached else 'built':<7} {secs:7.1f}s" for name, secs, cached in self.timings
        )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m clusterproof.offline")
    parser.add_argument("command", choices=("build", "tag"), nargs="?", default="build")
    parser.add_argument(
        "--k8s-version",
        action="append",
        default=[],
        metavar="X.Y",
        help=f"release(s) to build: {', '.join(releases.RELEASES)} (default {releases.DEFAULT})",
    )
    args = parser.parse_args(argv)
    try:
        wanted = [releases.release(v) for v in args.k8s_version] or [releases.release(None)]
    except ClusterproofError as e:
        print(f"clusterproof-build: {e}", file=sys.stderr)
        return 2
    if args.command == "tag":
        for release in wanted:
            print(node_image_tag(release))
        return 0
    builder = Builder(log=lambda m: print(f"clusterproof-build: {m}", file=sys.stderr, flush=True))
    started = time.monotonic()
    tags = []
    try:
        for release in wanted:
            tags.append(builder.build(release))
    except ClusterproofError as e:
        print(f"clusterproof-build: {e}", file=sys.stderr)
        return 1
    print(builder.report(), file=sys.stderr)
    print(f"clusterproof-build: {', '.join(tags)} ready in {time.monotonic() - started:.0f}s", file=sys.stderr)
    print("\n".join(tags))
    return 0
