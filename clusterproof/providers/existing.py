"""An existing cluster: --kubeconfig + --context, already checked against --allow-context.
The run works only in namespaces of its own (labelled with the run id) and removes them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from clusterproof.cluster import Cluster

if TYPE_CHECKING:
    from clusterproof.providers import Note
    from clusterproof.settings import Settings
    from clusterproof.tracker import ResourceTracker


class ExistingProvider:
    def __init__(self, settings: Settings, tracker: ResourceTracker, note: Note) -> None:
        if settings.kubeconfig is None or settings.context is None:
            raise ValueError("existing provider needs checked settings (check_cluster_access)")
        self.settings = settings
        self.tracker = tracker
        self.note = note
        self._cluster: Cluster | None = None

    def acquire(self, key: str) -> Cluster:
        if self._cluster is None:
            assert self.settings.kubeconfig and self.settings.context
            self._cluster = Cluster.from_kubeconfig(
                self.settings.kubeconfig,
                self.settings.context,
                name=self.settings.context,
                provider="existing",
                node_exec=None,
                # an existing cluster's images are its own business: offline only when told so
                offline=self.settings.offline == "yes",
                kubectl_bin=self.settings.kubectl_bin,
            )
            # node access (docker for kind nodes on this host, a host exec pod, none) is chosen
            # per use of the cluster: clusterproof.plugin.node_access.installed
            self.note(f"using existing cluster: context {self.settings.context}")
        return self._cluster

    def release(self, cluster: Cluster) -> None:
        self.tracker.cleanup(cluster)

    def close(self) -> None:
        if self._cluster is not None:
            self.tracker.cleanup(self._cluster)
            self._cluster.close()
            self._cluster = None
