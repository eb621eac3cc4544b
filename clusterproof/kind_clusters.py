"""Which kind clusters of this host a run made: the identity recorded at their creation.

A kind cluster is deleted only by the run that created it, or by a sweep once that run is dead:
never because of its name. The kind provider writes a claim (`<registry>/kind/<name>-<hash>.json`,
beside the run records) *before* `kind create` (the run, the docker daemon, when it began) and, once
created, the IDs of the cluster's node containers. A sweep takes a cluster only when the containers
it finds are the ones recorded (or, for a run killed during `kind create`, containers made between
the claim and that run's last sign of life): a cluster made again under the same name later by
someone else has other containers and is not touched. A cluster reused by name (`--cluster-name`)
gets no claim from the run that reuses it.

`creating(name)` holds a lock per cluster name for the check "does it exist?" and the create, so
two runs of this host never both create (and then both delete) one cluster.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from pathlib import Path

from clusterproof.run import hash_of, slug
from clusterproof.run_records import write_whole
from clusterproof.wait import until

KIND_CLUSTER_LABEL = "io.x-k8s.kind.cluster"  # kind's label on every node container of a cluster
DOCKER_TIMEOUT = 60
GONE_TIMEOUT = 60.0  # seconds a deleted cluster's nodes may take to be gone
SETTLE_AFTER_STOPPED_CREATE = 5.0  # seconds docker may still be making the nodes of a kind create stopped midway


@dataclass(frozen=True)
class Claim:
    """A kind cluster a run made (or began to make)."""

    name: str
    run_id: str
    docker: str  # DOCKER_HOST of the daemon the cluster lives with ("" the default)
    creating: float  # time.time() just before `kind create`
    containers: tuple[str, ...] = ()  # full IDs of its node containers, once created
    kept: bool = False  # --keep-clusters: its run leaves it, and so does the sweep
    kubeconfig: str = ""  # the run's kubeconfig of it (kind removes its entry there on delete)

    @classmethod
    def from_json(cls, text: str) -> Claim | None:
        """None if `text` is not a claim (a half-written file, another program's)."""
        try:
            data = json.loads(text)
            claim = cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})
            claim = replace(claim, containers=tuple(claim.containers))
        except (ValueError, TypeError, AttributeError):
            return None
        return claim if isinstance(claim.name, str) and isinstance(claim.run_id, str) else None


class Claims:
    """The claims of one host (one directory, 0700)."""

    def __init__(self, registry: Path) -> None:
        self.path = registry / "kind"

    def _file(self, name: str, docker: str) -> Path:
        return self.path / f"{slug(name, 60) or 'cluster'}-{hash_of(docker + '/' + name, 8)}.json"

    def write(self, claim: Claim) -> None:
        self.path.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_whole(self._file(claim.name, claim.docker), json.dumps(asdict(claim), sort_keys=True))

    def read(self, docker: str) -> dict[str, Claim]:
        """The claims of clusters of that docker daemon, by cluster name."""
        found: dict[str, Claim] = {}
        for path in sorted(self.path.glob("*.json")) if self.path.is_dir() else []:
            with contextlib.suppress(OSError):
                claim = Claim.from_json(path.read_text())
                if claim is not None and claim.docker == docker:
                    found[claim.name] = claim
        return found

    def remove(self, name: str, docker: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._file(name, docker).unlink()

    @contextlib.contextmanager
    def creating(self, name: str, docker: str) -> Iterator[None]:
        """Held while a run checks whether `name` exists and creates it."""
        self.path.mkdir(parents=True, exist_ok=True, mode=0o700)
        with open(self._file(name, docker).with_suffix(".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield


def docker_host(env: Mapping[str, str] = os.environ) -> str:
    return env.get("DOCKER_HOST", "")


Run = Callable[..., subprocess.CompletedProcess]


def delete_until_gone(
    name: str, delete: Callable[[], object], timeout: float = GONE_TIMEOUT, *, settle: float = 0.0
) -> None:
    """`delete` (kind delete cluster `name`), again whenever docker still lists a node container of
    it, until it lists none for `settle` seconds; else WaitTimeout. A kind create stopped midway
    leaves docker making the nodes it was asked for, out of sight until done: a node whose start
    was in flight survived a delete that said "Deleted nodes" (gone at one 3.5 s later), and nodes
    appeared a second after a delete that found none (SETTLE_AFTER_STOPPED_CREATE)."""
    left: dict[str, float] | None = None  # the nodes docker listed last (None: not deleted yet)
    quiet_since: float | None = None

    def gone() -> bool:
        nonlocal left, quiet_since
        if left is None or left:
            delete()
        left = node_containers(name)
        if left:
            quiet_since = None
            return False
        quiet_since = time.monotonic() if quiet_since is None else quiet_since
        return time.monotonic() - quiet_since >= settle

    until(gone, f"kind cluster {name} deleted: no node container of it left for {settle:g}s", timeout + settle,
          interval=1.0, describe=lambda _: "its node containers listed by docker")  # fmt: skip


def node_containers(name: str, run: Run = subprocess.run) -> dict[str, float]:
    """The node containers of kind cluster `name` (any state): full ID -> when docker created it."""
    listed = run(
        ["docker", "ps", "-a", "--no-trunc", "--filter", f"label={KIND_CLUSTER_LABEL}={name}", "--format", "{{.ID}}"],
        capture_output=True,
        text=True,
        timeout=DOCKER_TIMEOUT,
    )
    if listed.returncode != 0:
        raise RuntimeError(f"`docker ps` failed: {(listed.stderr or '').strip()[:200]}")
    ids = [line.strip() for line in listed.stdout.splitlines() if line.strip()]
    if not ids:
        return {}
    inspected = run(
        ["docker", "inspect", "--format", "{{.Id}} {{.Created}}", *ids],
        capture_output=True,
        text=True,
        timeout=DOCKER_TIMEOUT,
    )
    found: dict[str, float] = {}
    for line in inspected.stdout.splitlines():
        cid, _, created = line.strip().partition(" ")
        if cid:
            found[cid] = _docker_time(created)
    return found


_DOCKER_TIME = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$")


def _docker_time(text: str) -> float:
    """docker's RFC 3339 time with nanoseconds (2026-12-06T00:19:03.123456789Z) -> epoch seconds
    (0.0 if it is not one: such a container is older than any claim)."""
    found = _DOCKER_TIME.match(text.strip())
    if not found:
        return 0.0
    head, fraction, zone = found.groups()
    return datetime.fromisoformat(f"{head}.{(fraction or '0')[:6]:0<6}{'+00:00' if zone == 'Z' else zone}").timestamp()


@dataclass(frozen=True)
class Identity:
    ours: bool
    why: str


LATE_CREATE = 120.0  # kind makes every node container in its first seconds; a loaded host may take longer


def identify(claim: Claim, containers: Mapping[str, float]) -> Identity:
    """Is the cluster found now (its node containers: ID -> created) the one `claim` recorded? Each
    container must be one the claim recorded, or (a run killed before docker showed them all) one
    made during that run's `kind create` (at most LATE_CREATE after the claim) beside one it did
    record; only if it recorded none, the time alone."""
    if not containers:
        return Identity(False, "it has no node containers")
    recorded = set(claim.containers)
    window = (claim.creating - 5, claim.creating + LATE_CREATE)
    made_then = {c for c, created in containers.items() if window[0] <= created <= window[1]}
    if (recorded and not recorded & set(containers)) or set(containers) - recorded - made_then:
        return Identity(False, "its node containers are not the ones its run made (made again since)")
    if set(containers) <= recorded:
        return Identity(True, "its node containers are the ones its run recorded")
    return Identity(True, "its run was stopped during kind create, and made these containers then")


@contextlib.contextmanager
def recording(
    claims: Claims, claim: Claim, *, every: float = 1.0, containers: Callable[[str], Mapping[str, float]] | None = None
) -> Iterator[None]:
    """Around `kind create`: the IDs of the cluster's node containers go into the claim as soon as
    docker has them (a run killed during the create leaves a claim that names them), and once more
    when the create is done."""
    look = containers or node_containers
    seen: set[str] = set()
    stop = threading.Event()

    def record() -> None:
        found = set(look(claim.name))
        if found - seen:
            seen.update(found)
            claims.write(replace(claim, containers=tuple(sorted(seen))))

    def poll() -> None:
        while not stop.wait(every):
            with contextlib.suppress(Exception):  # docker busy: the next look, or the last one
                record()

    poller = threading.Thread(target=poll, name=f"kind-claim-{claim.name}", daemon=True)
    poller.start()
    try:
        yield
    finally:
        stop.set()
        poller.join(timeout=DOCKER_TIMEOUT)
    record()
