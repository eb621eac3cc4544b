"""Build the offline node and workload images, each step cached by a hash of its recipe.

Steps form a chain; a step's hash covers its own recipe files and the hashes of the steps
it uses, so a change anywhere rebuilds exactly what depends on it. A step whose output
exists (docker image tag or cache file) is skipped: a second build takes seconds.

    python -m clusterproof.offline build     # build what is missing, print a time per step
    python -m clusterproof.offline tag       # print the node image tag the recipe gives
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from clusterproof.errors import ClusterproofError

KUBE_VERSION = "v1.20.2"
RECIPES = Path(__file__).parent / "recipes"
MIN_FREE_BYTES = 4 * 1024**3  # rootfs trees, Go build cache and images at once
Log = Callable[[str], None]


class BuildError(ClusterproofError):
    """A build step failed; the message names the step and what to do."""


def default_cache_dir() -> Path:
    if os.environ.get("CLUSTERPROOF_CACHE"):
        return Path(os.environ["CLUSTERPROOF_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "clusterproof"


def recipe_hash(*parts: str | Path) -> str:
    """Hash of recipe files (by content) and upstream hashes (as strings)."""
    h = hashlib.sha256()
    for part in parts:
        if isinstance(part, Path):
            h.update(part.name.encode())
            h.update(part.read_bytes())
        else:
            h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()[:12]


@dataclass
class Step:
    name: str
    script: str
    recipe: tuple[Path, ...]
    after: tuple[Step, ...] = ()
    image: str | None = None  # docker image repository; tag = hash
    marker: str | None = None  # cache-relative file that proves the output exists
    env: dict[str, str] = field(default_factory=dict)

    @property
    def hash(self) -> str:
        return recipe_hash(*self.recipe, KUBE_VERSION, *(s.hash for s in self.after))

    @property
    def tag(self) -> str:
        assert self.image, self.name
        prefix = f"{KUBE_VERSION}-" if self.name == "node" else ""
        return f"{self.image}:{prefix}{self.hash}"

    def output_dir(self, cache: Path) -> Path:
        return cache / self.name / self.hash


def _files(*names: str) -> tuple[Path, ...]:
    return tuple(RECIPES / n for n in ("lib.sh", *names))


def steps() -> dict[str, Step]:
    builder = Step("builder", "builder-rootfs.sh", _files("builder-rootfs.sh"), image="clusterproof/builder")
    source = Step("source", "k8s-source.sh", _files("k8s-source.sh"), marker="src/.done")
    binaries = Step(
        "binaries", "k8s-binaries.sh", _files("k8s-binaries.sh"), after=(builder, source), marker="bin/.done"
    )
    node_rootfs = Step("node-rootfs", "node-rootfs.sh", _files("node-rootfs.sh"), image="clusterproof/node-rootfs")
    workload_rootfs = Step(
        "workload-rootfs", "workload-rootfs.sh", _files("workload-rootfs.sh"), image="clusterproof/workload-rootfs"
    )
    images = Step(
        "images",
        "images.sh",
        _files("images.sh", "files/iptables-wrapper"),
        after=(binaries, node_rootfs, workload_rootfs),
        marker="images.tar",
    )
    node = Step(
        "node",
        "node.sh",
        _files(
            "node.sh", "files/entrypoint", "files/kubelet.service", "files/10-kubeadm.conf", "files/containerd.toml"
        ),
        after=(images, node_rootfs, binaries),
        image="clusterproof/node",
    )
    return {s.name: s for s in (builder, source, binaries, node_rootfs, workload_rootfs, images, node)}


def node_image_tag() -> str:
    return steps()["node"].tag


def image_exists(ref: str) -> bool:
    return subprocess.run(["docker", "image", "inspect", ref], capture_output=True).returncode == 0


class Builder:
    def __init__(self, cache: Path | None = None, log: Log = print):
        self.cache = cache or default_cache_dir()
        self.log = log
        self.steps = steps()
        self.timings: list[tuple[str, float, bool]] = []

    def done(self, step: Step) -> bool:
        if step.image:
            return image_exists(step.tag)
        assert step.marker
        return (step.output_dir(self.cache) / step.marker).exists()

    def env_for(self, step: Step) -> dict[str, str]:
        s = self.steps
        out = step.output_dir(self.cache)
        env = {
            "CACHE_DIR": str(self.cache),
            "STEP": step.name,
            "KUBE_VERSION": KUBE_VERSION,
            "RECIPE_HASH": step.hash,
            "OUT": str(out),
        }
        if step.image:
            env["TAG"] = step.tag
        if step.name == "source":
            env["OUT"] = str(out / "src")
        if step.name == "binaries":
            env.update(BUILDER=s["builder"].tag, SRC_DIR=str(s["source"].output_dir(self.cache) / "src"),
                       OUT=str(out / "bin"))
        if step.name == "images":
            env.update(BIN=str(s["binaries"].output_dir(self.cache) / "bin"),
                       NODE_ROOTFS=s["node-rootfs"].tag, WORKLOAD_ROOTFS=s["workload-rootfs"].tag)
        if step.name == "node":
            env.update(BIN=str(s["binaries"].output_dir(self.cache) / "bin"), NODE_ROOTFS=s["node-rootfs"].tag,
                       IMAGES_TAR=str(s["images"].output_dir(self.cache) / "images.tar"))
        return env

    def preflight(self) -> None:
        if shutil.which("docker") is None:
            raise BuildError("docker is not installed: run scripts/bootstrap.sh (or apt-get install docker.io)")
        if subprocess.run(["docker", "info"], capture_output=True).returncode != 0:
            raise BuildError("docker daemon not reachable: start dockerd (scripts/bootstrap.sh does)")
        if shutil.which("debootstrap") is None:
            raise BuildError("debootstrap is missing: apt-get install debootstrap")
        if shutil.which("apt-get") is None:
            raise BuildError("the offline build needs a Debian host with apt-get (it fetches Debian packages)")
        self.cache.mkdir(parents=True, exist_ok=True)
        free = shutil.disk_usage(self.cache).free
        if free < MIN_FREE_BYTES:
            raise BuildError(
                f"too little disk for the offline images: {free / 1024**3:.1f} GiB free in {self.cache}, "
                f"{MIN_FREE_BYTES / 1024**3:.0f} GiB needed (set CLUSTERPROOF_CACHE elsewhere or free space)"
            )

    def run_step(self, step: Step) -> None:
        for dep in step.after:
            self.ensure(dep)
        started = time.monotonic()
        self.log(f"[{step.name}] building ({step.script})")
        out = step.output_dir(self.cache)
        out.mkdir(parents=True, exist_ok=True)
        proc = subprocess.run(
            ["bash", str(RECIPES / step.script)], env={**os.environ, **self.env_for(step)}, stdout=subprocess.PIPE,
            stderr=None, text=True,
        )
        if proc.returncode != 0:
            raise BuildError(f"build step {step.name!r} failed (exit {proc.returncode}); its output is above")
        if step.marker and not step.marker.endswith(".tar"):
            (out / step.marker).parent.mkdir(parents=True, exist_ok=True)
            (out / step.marker).touch()
        self.prune_stale(step)
        elapsed = time.monotonic() - started
        self.timings.append((step.name, elapsed, False))
        self.log(f"[{step.name}] done in {elapsed:.0f}s")

    def prune_stale(self, step: Step) -> None:
        """Outputs of this step's older recipes: unused now, they only fill the disk. An image
        still used by a container (a kept cluster) stays: docker refuses, harmlessly."""
        if step.image:
            listed = subprocess.run(
                ["docker", "images", step.image, "--format", "{{.Repository}}:{{.Tag}}"],
                capture_output=True, text=True,
            ).stdout.split()
            stale = [ref for ref in listed if ref != step.tag]
            if stale:
                subprocess.run(["docker", "rmi", *stale], capture_output=True)
        for old in step.output_dir(self.cache).parent.glob("*"):
            if old.is_dir() and old.name != step.hash:
                shutil.rmtree(old, ignore_errors=True)

    def ensure(self, step: Step) -> None:
        if any(name == step.name for name, _, _ in self.timings):
            return
        started = time.monotonic()
        if self.done(step):
            self.timings.append((step.name, time.monotonic() - started, True))
            return
        self.run_step(step)

    def build(self) -> str:
        node = self.steps["node"]
        if not self.done(node):
            self.preflight()
        self.ensure(node)
        return node.tag

    def report(self) -> str:
        return "\n".join(
            f"  {name:<16} {'cached' if cached else 'built':<7} {secs:7.1f}s" for name, secs, cached in self.timings
        )


def main(argv: list[str]) -> int:
    cmd = argv[0] if argv else "build"
    if cmd == "tag":
        print(node_image_tag())
        return 0
    if cmd != "build":
        print("usage: python -m clusterproof.offline [build|tag]", file=sys.stderr)
        return 2
    builder = Builder(log=lambda m: print(f"clusterproof-build: {m}", file=sys.stderr, flush=True))
    started = time.monotonic()
    try:
        tag = builder.build()
    except ClusterproofError as e:
        print(f"clusterproof-build: {e}", file=sys.stderr)
        return 1
    print(builder.report(), file=sys.stderr)
    print(f"clusterproof-build: node image {tag} ready in {time.monotonic() - started:.0f}s", file=sys.stderr)
    print(tag)
    return 0
