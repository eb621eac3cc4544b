"""This test's own names for the notes' PersistentVolumes and StorageClasses.

PersistentVolumes and StorageClasses are cluster-wide, so one test's objects must not meet
another's (other tests, other runs, other xdist workers): every PV and StorageClass gets a
per-test suffix (the notes' name stays in front: `pv-01-<suffix>`), the PVs are labelled
`clusterproof.io/pv-set=<suffix>` and every static claim selects that label, and host paths move
under /tmp/clusterproof-<run id>/<PV name>. Nothing here talks to the cluster.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from clusterproof.manifests import Doc
from clusterproof.node_files import node_dir
from clusterproof.run import hash_of, short_id

PV_SET_LABEL = "clusterproof.io/pv-set"
HOST_PATH_PLUGINS = ("hostPath", "local")


@dataclass
class PVNames:
    run_id: str
    suffix: str
    renamed: dict[str, str] = field(default_factory=dict)  # notes' name -> this test's name

    @classmethod
    def for_test(cls, run_id: str, namespace: str) -> PVNames:
        """The suffix: the run's short id (which run left a PV behind) and a hash of the test's
        namespace (unique per test and run)."""
        return cls(run_id, f"{short_id(run_id)}-{hash_of(namespace, 4)}")

    @property
    def run_dir(self) -> str:
        return node_dir(self.run_id)

    def name(self, notes_name: str) -> str:
        """This test's name of the notes' PV or StorageClass `notes_name`."""
        return self.renamed.get(notes_name, notes_name)

    def notes_name(self, name: str | None) -> str | None:
        back = {v: k for k, v in self.renamed.items()}
        return back.get(name, name) if name else name

    def host_path(self, pv_name: str) -> str:
        return f"{self.run_dir}/{pv_name}"

    def isolate(self, docs: list[Doc], *, dynamic: bool = False) -> list[Doc]:
        """Copies of `docs` under this test's names (see the module docstring). dynamic=True:
        claims keep no selector (a claim with a selector is never provisioned)."""
        docs = copy.deepcopy(docs)
        for doc in docs:
            if doc["kind"] in ("PersistentVolume", "StorageClass"):
                old = doc["metadata"]["name"]
                self.renamed[old] = f"{old}-{self.suffix}"
        for doc in docs:
            kind, spec = doc["kind"], doc.get("spec") or {}
            if kind == "StorageClass":
                doc["metadata"]["name"] = self.name(doc["metadata"]["name"])
            elif kind == "PersistentVolume":
                doc["metadata"]["name"] = self.name(doc["metadata"]["name"])
                doc["metadata"].setdefault("labels", {})[PV_SET_LABEL] = self.suffix
                self._map_class(spec)
                for plugin in HOST_PATH_PLUGINS:
                    if plugin in spec:
                        spec[plugin]["path"] = self.host_path(doc["metadata"]["name"])
            elif kind == "PersistentVolumeClaim":
                self._map_class(spec)
                if not dynamic:
                    labels = spec.setdefault("selector", {}).setdefault("matchLabels", {})
                    labels[PV_SET_LABEL] = self.suffix
        return docs

    def _map_class(self, spec: dict[str, Any]) -> None:
        name = spec.get("storageClassName")
        if name:
            spec["storageClassName"] = self.name(name)


def host_paths(docs: list[Doc]) -> list[str]:
    """The node paths the PVs among `docs` use."""
    return [
        doc["spec"][plugin]["path"]
        for doc in docs
        if doc["kind"] == "PersistentVolume"
        for plugin in HOST_PATH_PLUGINS
        if plugin in doc["spec"]
    ]
