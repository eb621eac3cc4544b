"""What `--phase before` recorded, carried to `--phase after` in a JSON file. The file says which
cluster it belongs to (the UID of kube-system, which survives an upgrade and differs between
clusters), which schema wrote it, and what to compare: every durable object's identity and
normalised spec (clusterproof.upgrade.specs), the volumes' bindings, checksums, versions, and the
hops already checked (a multi-hop upgrade: each `--phase after` whose checks all held adds one).

Written atomically under a unique temporary name in the same directory (`write_new` never
replaces an existing file: two `before` runs on one state file cannot both win)."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from clusterproof.errors import ClusterproofError
from clusterproof.upgrade.versions import numbers

SCHEMA = 2
# seconds a monitored target may be down during the upgrade; the API server's is longer: a single
# control plane is down while kubeadm replaces it
DISRUPTION_BUDGET = 30.0
API_DISRUPTION_BUDGET = 180.0


class StateError(ClusterproofError):
    """The state file cannot be used: one line saying why and what to do."""


@dataclass
class UpgradeState:
    run_id: str  # the before run's id: the state's ID (also in the monitor's output)
    cluster_uid: str  # kube-system namespace UID
    context: str
    server_version: str
    node_versions: dict[str, str]  # node -> kubelet version
    node_ips: dict[str, str]  # node -> InternalIP (the monitor's NodePort targets)
    namespace: str  # the durable namespace
    quota_namespace: str
    kube_proxy: str = ""  # kube-proxy's image tag ("" when the cluster has no kube-proxy DaemonSet)
    # "Kind name" -> {kind, api_version, name, namespace, uid, claim, spec: flat normalised spec}
    objects: dict[str, dict[str, Any]] = field(default_factory=dict)
    volumes: dict[str, dict[str, Any]] = field(default_factory=dict)  # PV name -> {claim, namespace, claim_uid, ...}
    checksums: dict[str, dict[str, str]] = field(default_factory=dict)  # what -> {where, sha256}
    restarts: dict[str, int] = field(default_factory=dict)  # pod/container -> restart count
    created: float = field(default_factory=time.time)
    # each `--phase after` whose checks all held: {server_version, node_versions, kube_proxy, checked}
    hops: list[dict[str, Any]] = field(default_factory=list)
    schema: int = SCHEMA

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @property
    def last(self) -> dict[str, Any]:
        """The versions to judge the next upgrade against, and since when: `before`, or the last hop."""
        if self.hops:
            return self.hops[-1]
        return {
            "server_version": self.server_version,
            "node_versions": self.node_versions,
            "kube_proxy": self.kube_proxy,
            "checked": self.created,
        }

    def write_new(self, path: Path) -> None:
        """Write the file where none is (FileExistsError if one appeared meanwhile)."""
        temporary = _temporary_copy(self.to_json(), path)
        try:
            os.link(temporary, path)  # atomic, and never over an existing file
        finally:
            temporary.unlink()

    def replace(self, path: Path) -> None:
        """Write the file, replacing what is there (the after phase adding a hop)."""
        os.replace(_temporary_copy(self.to_json(), path), path)

    @classmethod
    def from_json(cls, text: str, source: str) -> UpgradeState:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise StateError(
                f"{source}: not a clusterproof upgrade state file (JSON error at line {e.lineno})"
            ) from None
        if not isinstance(data, dict) or "cluster_uid" not in data or "schema" not in data:
            raise StateError(f"{source}: not a clusterproof upgrade state file (no cluster_uid/schema)")
        schema = data["schema"]
        if not isinstance(schema, int):
            raise StateError(f"{source}: not a clusterproof upgrade state file (schema {schema!r})")
        if schema > SCHEMA:
            raise StateError(
                f"{source}: written by a newer clusterproof (state schema {schema}, this one reads "
                f"{SCHEMA}): run --phase after with the same version as --phase before"
            )
        if schema < SCHEMA:
            raise StateError(
                f"{source}: written by an older clusterproof (state schema {schema}, this one reads {SCHEMA}): "
                "finish it with that version, or record the state again with --phase before"
            )
        known = set(cls.__dataclass_fields__)
        fields = {k: v for k, v in data.items() if k in known}
        try:
            return cls(**fields)
        except TypeError as e:
            raise StateError(f"{source}: not a clusterproof upgrade state file ({e})") from None

    @classmethod
    def load(cls, path: Path) -> UpgradeState:
        if not path.is_file():
            raise StateError(
                f"--phase after needs the state file --phase before wrote: {path} does not exist "
                "(pass --state-file PATH)"
            )
        return cls.from_json(path.read_text(), str(path))

    def check_cluster(self, cluster_uid: str, server_version: str, source: str) -> None:
        """The same cluster, not older than before."""
        if cluster_uid != self.cluster_uid:
            raise StateError(
                f"{source} belongs to another cluster (kube-system UID {self.cluster_uid}, this cluster's is "
                f"{cluster_uid}): pass the state file of this cluster's --phase before"
            )
        before = self.last["server_version"]
        if (numbers(server_version) or (0,)) < (numbers(before) or (0,)):
            raise StateError(
                f"the cluster runs {server_version} but ran {before} before: a downgrade is not an "
                "upgrade; nothing was compared"
            )


def _temporary_copy(text: str, beside: Path) -> Path:
    """`text` in a new file of a unique name in `beside`'s directory (same file system: the
    rename or link that follows is atomic)."""
    beside.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{beside.name}.", suffix=".tmp", dir=beside.parent)
    try:
        with os.fdopen(fd, "w") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(name)
        raise
    return Path(name)
