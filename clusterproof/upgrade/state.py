"""What `--phase before` recorded, carried to `--phase after` in a JSON file (and a copy in a
ConfigMap of the durable namespace). The file says which cluster it belongs to (the UID of
kube-system, which survives an upgrade and differs between clusters), which schema wrote it,
and what to compare: identities, checksums, versions."""

from __future__ import annotations

import json
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from clusterproof.errors import ClusterproofError

SCHEMA = 1
CONFIGMAP = "clusterproof-upgrade-state"
# seconds a monitored target may be down during the upgrade; the API server's is longer: a single
# control plane is down while kubeadm replaces it
DISRUPTION_BUDGET = 30.0
API_DISRUPTION_BUDGET = 180.0


class StateError(ClusterproofError):
    """The state file cannot be used: one line saying why and what to do."""


@dataclass
class UpgradeState:
    run_id: str
    cluster_uid: str  # kube-system namespace UID
    context: str
    server_version: str
    node_versions: dict[str, str]  # node -> kubelet version
    node_ips: dict[str, str]  # node -> InternalIP (the monitor's NodePort targets)
    namespace: str  # the durable namespace
    quota_namespace: str
    objects: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> {kind, uid, ...}
    volumes: dict[str, dict[str, Any]] = field(default_factory=dict)  # PV name -> {claim, claim_uid, ...}
    checksums: dict[str, dict[str, str]] = field(default_factory=dict)  # what -> {where, sha256}
    restarts: dict[str, int] = field(default_factory=dict)  # pod/container -> restart count
    created: float = field(default_factory=time.time)
    schema: int = SCHEMA

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(self.to_json())
        tmp.replace(path)

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
        if data["schema"] > SCHEMA:
            raise StateError(
                f"{source}: written by a newer clusterproof (state schema {data['schema']}, this one reads "
                f"{SCHEMA}): run --phase after with the same version as --phase before"
            )
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})

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
        if version_tuple(server_version) < version_tuple(self.server_version):
            raise StateError(
                f"the cluster runs {server_version} but ran {self.server_version} before: a downgrade is not an "
                "upgrade; nothing was compared"
            )


def version_tuple(version: str) -> tuple[int, ...]:
    found = re.match(r"v?(\d+)\.(\d+)\.(\d+)", version)
    return tuple(int(x) for x in found.groups()) if found else (0,)
