"""One run of the suite: its id, the labels and names derived from it, and its private dir."""

from __future__ import annotations

import glob
import hashlib
import os
import re
import secrets
import shutil
import stat
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

RUN_LABEL = "clusterproof.io/run-id"
TEST_LABEL = "clusterproof.io/test"
# on everything an upgrade's `before` keeps on purpose (value: that run's id): the sweep never takes it
STATE_LABEL = "clusterproof.io/upgrade-state"

_RUN_ID = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$")  # a label value
RANDOM_PART = 6  # hex digits of randomness every run id ends with
GIVEN_MAX = 63 - RANDOM_PART - 1  # a user's --run-id: the prefix of the run's id
KIND_NAME_MAX = 50  # kind's limit: node hostnames are <name>-control-plane and must fit 63
DNS_LABEL_MAX = 63


def new_run_id(now: datetime | None = None, rand: str | None = None) -> str:
    """Time-based and random, e.g. 20261122-163000-ab12cd."""
    now = now or datetime.now()
    return f"{now:%Y%m%d-%H%M%S}-{rand or secrets.token_hex(RANDOM_PART // 2)}"


def run_id_from(given: str, rand: str | None = None) -> str:
    """A user's --run-id made this run's own: `<given>-<random>`. Two CI jobs given the same id (a
    pipeline id shared by a matrix) are two runs, whose objects, names and sweeps never meet."""
    return f"{given}-{rand or secrets.token_hex(RANDOM_PART // 2)}"


def is_valid_run_id(run_id: str) -> bool:
    return bool(_RUN_ID.match(run_id))


def run_dirs_of(runs: Path, given: str) -> list[Path]:
    """The run dirs under `runs` (.clusterproof/runs) of runs started with `--run-id given`, oldest
    first: for the programs that start runs and read what they left (the benchmark, the upgrade)."""
    pattern = re.compile(re.escape(given) + rf"-[0-9a-f]{{{RANDOM_PART}}}")
    found = [p for p in runs.glob(f"{glob.escape(given)}-*") if pattern.fullmatch(p.name) and p.is_dir()]
    return sorted(found, key=lambda p: p.stat().st_mtime)


def short_id(run_id: str) -> str:
    """Ten hex digits of a hash of the whole run id: what tells runs apart in object names. Never a
    part of the id itself (`alice-e2e-staging` and `bob-e2e-staging` end alike)."""
    return hash_of(run_id, 10)


def slug(text: str, max_len: int) -> str:
    """Lowercase [a-z0-9-], no leading/trailing/double dashes, at most max_len characters."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:max_len].strip("-")


def hash_of(text: str, length: int = 8) -> str:
    return hashlib.sha1(text.encode()).hexdigest()[:length]


def cluster_name(run_id: str, key: str) -> str:
    """kind cluster name `cp-<short id>-<key slug>`, lowercase, <= 50 characters."""
    prefix = f"cp-{short_id(run_id)}"
    key = re.sub(r"^test_|_test$", "", key.rsplit(".", 1)[-1])
    rest = slug(key, KIND_NAME_MAX - len(prefix) - 1)
    return f"{prefix}-{rest}" if rest else prefix


def namespace_name(run_id: str, test_name: str, nodeid: str, index: int = 1) -> str:
    """`cp-<short id>-<test slug>-<hash of node id>[-<index>]`: unique per test, <= 63."""
    suffix = f"-{hash_of(nodeid, 4)}" + (f"-{index}" if index > 1 else "")
    prefix = f"cp-{short_id(run_id)}-"
    name = re.sub(r"^test_", "", test_name)
    body = slug(name, DNS_LABEL_MAX - len(prefix) - len(suffix)) or "t"
    return f"{prefix}{body}{suffix}"


def test_label(nodeid: str) -> str:
    return hash_of(nodeid, 12)


@dataclass(frozen=True)
class RunContext:
    """Where a run keeps what it makes. Directories are created on first use only."""

    run_id: str
    run_dir: Path
    artifacts_dir: Path

    @property
    def short_id(self) -> str:
        return short_id(self.run_id)

    @property
    def labels(self) -> dict[str, str]:
        return {RUN_LABEL: self.run_id}

    def ensure_run_dir(self) -> Path:
        """The run dir, 0700: it holds kubeconfigs. `.clusterproof/latest` points at it."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.run_dir.chmod(0o700)
        if self.run_dir.parent.name == "runs":
            _point_latest(self.run_dir.parent.parent / "latest", Path("runs") / self.run_dir.name)
        return self.run_dir

    def private_dir(self, *parts: str) -> Path:
        """A 0700 directory under the run dir."""
        self.ensure_run_dir()
        path = self.run_dir.joinpath(*parts)
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        return path

    def private_file(self, path: Path) -> Path:
        """Create (or truncate) a 0600 file, e.g. a kubeconfig, before anything writes to it."""
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.close(fd)
        path.chmod(0o600)
        return path

    def credentials_dir(self) -> Path:
        """Where copies of credentials go (a flattened kubeconfig): a 0700 directory of this
        process in a private temp directory of this user, never under the run dir or the
        artifacts. Removed at the end of the run (`remove_credentials`), and by the sweep when the
        run was killed."""
        path = credentials_root() / self._credentials_name
        path.mkdir(exist_ok=True, mode=0o700)
        return path

    def remove_credentials(self) -> None:
        shutil.rmtree(credentials_root(create=False) / self._credentials_name, ignore_errors=True)

    @property
    def _credentials_name(self) -> str:  # per process: xdist workers end at different times
        return f"{self.run_id}.{os.environ.get('PYTEST_XDIST_WORKER', 'main')}"

    def artifacts_root(self) -> Path:
        if self.artifacts_dir.is_relative_to(self.run_dir):
            self.ensure_run_dir()
        self.artifacts_dir.mkdir(parents=True, exist_ok=True)
        return self.artifacts_dir

    def artifacts_for(self, nodeid: str) -> Path:
        """<artifacts>/<test id slug>/ (the node id hash keeps long, similar ids apart)."""
        path = self.artifacts_root() / artifacts_dir_name(nodeid)
        path.mkdir(exist_ok=True)
        return path


def artifacts_dir_name(nodeid: str) -> str:
    """The name of a test's directory under the artifacts (its diagnostics.txt)."""
    return f"{slug(nodeid, 100) or 'session'}-{hash_of(nodeid, 6)}"


def _point_latest(link: Path, target: Path) -> None:
    if link.is_symlink() and Path(os.readlink(link)) == target:
        return
    temporary = link.with_name(f".latest-{os.getpid()}-{secrets.token_hex(2)}")
    temporary.symlink_to(target)
    os.replace(temporary, link)  # atomic: xdist workers may race here


def credentials_root(*, create: bool = True) -> Path:
    """`<temp dir>/clusterproof-<uid>`: 0700, this user's (refused if it is not: someone could read
    what goes there). Holds `<run id>.<owner>` directories of credential copies."""
    root = Path(tempfile.gettempdir()) / f"clusterproof-{os.getuid()}"
    if create:
        root.mkdir(exist_ok=True, mode=0o700)
    if root.exists():
        found = os.lstat(root)
        if not stat.S_ISDIR(found.st_mode) or found.st_uid != os.getuid() or stat.S_IMODE(found.st_mode) & 0o077:
            raise PermissionError(f"{root}: not a private directory of this user (0700): credentials not put there")
    return root


def credential_owner(dir_name: str) -> tuple[str, str]:
    """(run id, owner) of a directory under credentials_root."""
    run_id, _, owner = dir_name.rpartition(".")
    return run_id, owner


def run_dir_for(rootdir: Path, run_id: str) -> Path:
    return rootdir / ".clusterproof" / "runs" / run_id
