"""The run's settings: one frozen value, built by clusterproof.options, read by everything else.

It holds what every part of a run shares (which cluster, how to reach it, where artifacts go).
A topic's own options (an upgrade phase, an IngressClass) are the topic's: its plugin module
declares them and hands them to its tests through its own fixture.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from clusterproof import run

PACKAGE_DATA = Path(__file__).parent / "data"
DEFAULT_KIND_CONFIG = Path("kind/three-nodes.yaml")  # under the fixtures directory


@dataclass(frozen=True)
class Settings:
    rootdir: Path
    fixtures_dir: Path  # the manifests and kind configs (the repository's conftest says where)
    run_id: str
    provider: str
    cluster_scope: str
    keep_clusters: bool
    kind_config: Path
    kind_bin: Path | None
    kind_download: bool
    kind_image: str | None
    k8s_version: str | None
    kind_cluster_name: str | None
    kubectl_bin: Path | None
    kubeconfig: Path | None
    context: str | None
    allowed_contexts: tuple[str, ...]
    offline: str
    image_map: Path | None
    artifacts_dir: Path
    claims_file: Path
    allow_disruptive: bool
    node_access: str = "auto"  # auto, docker, pod, none (clusterproof.node_exec.MODES)
    allow_privileged: bool = False
    cluster_prefetch: bool = True

    @property
    def run_dir(self) -> Path:
        return run.run_dir_for(self.rootdir, self.run_id)



def default_claims_file(rootdir: Path) -> Path:
    shared = rootdir.parent / "shared" / "CLAIMS.md"
    return shared if shared.is_file() else PACKAGE_DATA / "CLAIMS.md"
