"""Manifests from fixtures/: the one place where namespaces, images and run labels are set.

`load` prepares documents (namespace on namespaced kinds, logical image names resolved
through the catalogue, run labels merged into metadata.labels — never into selectors);
`apply` creates them through the dynamic client and registers them with the tracker;
`load_raw` returns a file untouched, for the notes' broken examples kept as written.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from kubernetes import client
from kubernetes.dynamic.exceptions import ResourceNotFoundError

from clusterproof.api_answers import ApiRefusal
from clusterproof.errors import ManifestError, ManifestNotFound, SetupFailed

if TYPE_CHECKING:
    from clusterproof.cluster import Cluster
    from clusterproof.images import ImageCatalogue
    from clusterproof.tracker import ResourceTracker

CLUSTER_SCOPED_KINDS = frozenset(
    {
        "APIService",
        "CertificateSigningRequest",
        "ClusterRole",
        "ClusterRoleBinding",
        "ComponentStatus",
        "CSIDriver",
        "CSINode",
        "CustomResourceDefinition",
        "GatewayClass",
        "IngressClass",
        "MutatingWebhookConfiguration",
        "Namespace",
        "Node",
        "PersistentVolume",
        "PodSecurityPolicy",
        "PriorityClass",
        "RuntimeClass",
        "StorageClass",
        "ValidatingWebhookConfiguration",
        "VolumeAttachment",
    }
)
_TEMPLATED_KINDS = frozenset({"Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "Job", "ReplicationController"})
_CONTAINER_LISTS = ("initContainers", "containers", "ephemeralContainers")
_PLACEHOLDER = re.compile(r"\$\{([A-Z][A-Z0-9_]*)\}")

Doc = dict[str, Any]


@dataclass(frozen=True)
class RawManifest:
    """A fixture file as written; `documents()` parses it and may raise yaml.YAMLError."""

    path: Path
    text: str

    def documents(self) -> list[Any]:
        return [d for d in yaml.safe_load_all(self.text) if d is not None]


def fixture_path(path: str | Path, fixtures_dir: Path) -> Path:
    full = Path(path) if Path(path).is_absolute() else fixtures_dir / path
    if not full.is_file():
        raise ManifestNotFound(f"manifest not found: {full}")
    return full


def load_raw(path: str | Path, *, fixtures_dir: Path) -> RawManifest:
    full = fixture_path(path, fixtures_dir)
    return RawManifest(full, full.read_text(encoding="utf-8"))


def render(path: str | Path, values: Mapping[str, str], *, fixtures_dir: Path) -> list[Any]:
    """A fixture's documents with placeholders filled and nothing else done (patches, lists)."""
    raw = load_raw(path, fixtures_dir=fixtures_dir)
    return [substitute(doc, values, str(path)) for doc in raw.documents()]


def load(
    path: str | Path,
    namespace: str | None = None,
    *,
    catalogue: ImageCatalogue,
    labels: Mapping[str, str] | None = None,
    offline: bool = False,
    values: Mapping[str, str] | None = None,
    fixtures_dir: Path,
) -> list[Doc]:
    raw = load_raw(path, fixtures_dir=fixtures_dir)
    try:
        docs = raw.documents()
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise ManifestError(f"{raw.path}{where}: not valid YAML (use load_raw for as-written)") from None
    return prepare(
        docs, namespace, catalogue=catalogue, labels=labels, offline=offline, values=values, source=str(path)
    )


def prepare(
    docs: list[Any],
    namespace: str | None = None,
    *,
    catalogue: ImageCatalogue,
    labels: Mapping[str, str] | None = None,
    offline: bool = False,
    values: Mapping[str, str] | None = None,
    source: str = "<manifest>",
) -> list[Doc]:
    """Copies of `docs` ready to create (List kinds expanded, `${NAME}` placeholders in string
    values filled from `values`)."""
    prepared = []
    for doc in _expand_lists(docs, source):
        doc = substitute(copy.deepcopy(doc), values or {}, source)
        metadata = doc.setdefault("metadata", {})
        if not isinstance(metadata, dict):
            raise ManifestError(f"{source}: {doc['kind']} metadata is not a mapping")
        if namespace and doc["kind"] not in CLUSTER_SCOPED_KINDS:
            metadata["namespace"] = namespace
        if labels:
            metadata["labels"] = {**(metadata.get("labels") or {}), **labels}
        for container in _containers(doc):
            image = container.get("image")
            if image is not None:
                container["image"] = catalogue.ref(str(image), offline=offline, where=source)
        prepared.append(doc)
    return prepared


def apply(
    cluster: Cluster,
    docs: list[Doc],
    *,
    tracker: ResourceTracker | None = None,
    dry_run: bool = False,
) -> list[Doc]:
    """Create each document (server side, in order); returns the created objects as dicts.
    dry_run: the API server admits or refuses each one but stores nothing. A refusal is an
    ApiRefusal (a SetupFailed and an ApiException): `could not evaluate (set-up: create Service
    np-svc): HTTP 422 Invalid: ...` in the server's words; callers that judge the refusal
    themselves take it through api_answers.answer_to."""
    created = []
    for doc in docs:
        name = (doc.get("metadata") or {}).get("name", "?")
        step = f"create {doc['kind']} {name}" + (" (dry run)" if dry_run else "")
        try:
            resource = cluster.dynamic.resources.get(api_version=doc["apiVersion"], kind=doc["kind"])
        except ResourceNotFoundError:
            raise SetupFailed(step, f"the API server does not serve {doc['apiVersion']} {doc['kind']}") from None
        namespace = doc.get("metadata", {}).get("namespace") if resource.namespaced else None
        if resource.namespaced and not namespace:
            raise ManifestError(f"{doc['kind']}/{name} is namespaced but has no namespace")
        try:
            obj = resource.create(body=doc, namespace=namespace, dry_run="All" if dry_run else None).to_dict()
        except client.ApiException as e:
            raise ApiRefusal(step, e) from e
        if tracker is not None and not dry_run:
            tracker.register(cluster, obj, namespaced=resource.namespaced)
        created.append(obj)
    return created


def substitute(node: Any, values: Mapping[str, str], source: str) -> Any:
    """Fill `${NAME}` in string values (not keys); a placeholder without a value is an error."""
    if isinstance(node, dict):
        return {k: substitute(v, values, source) for k, v in node.items()}
    if isinstance(node, list):
        return [substitute(v, values, source) for v in node]
    if isinstance(node, str) and "${" in node:

        def fill(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in values:
                raise ManifestError(f"{source}: placeholder ${{{name}}} has no value (pass values={{{name!r}: ...}})")
            return str(values[name])

        return _PLACEHOLDER.sub(fill, node)
    return node


def pod_specs(doc: Doc) -> Iterator[Doc]:
    kind = doc.get("kind")
    spec = doc.get("spec") or {}
    if kind == "Pod":
        yield spec
    elif kind in _TEMPLATED_KINDS:
        yield (spec.get("template") or {}).get("spec") or {}
    elif kind == "CronJob":
        job = (spec.get("jobTemplate") or {}).get("spec") or {}
        yield (job.get("template") or {}).get("spec") or {}
    elif kind == "PodTemplate":
        yield (doc.get("template") or {}).get("spec") or {}


def _containers(doc: Doc) -> Iterator[Doc]:
    for spec in pod_specs(doc):
        for key in _CONTAINER_LISTS:
            for container in spec.get(key) or []:
                if isinstance(container, dict):
                    yield container


def _expand_lists(docs: list[Any], source: str) -> Iterator[Doc]:
    for doc in docs:
        if doc is None:
            continue
        if not isinstance(doc, dict) or "kind" not in doc or "apiVersion" not in doc:
            raise ManifestError(f"{source}: a document without apiVersion/kind")
        if doc["kind"].endswith("List") and isinstance(doc.get("items"), list):
            yield from _expand_lists(doc["items"], source)
        else:
            yield doc


class Manifests:
    """The `manifests` fixture: load/apply bound to the test's cluster, namespace and catalogue."""

    def __init__(
        self,
        cluster: Cluster,
        namespace: str,
        *,
        catalogue: ImageCatalogue,
        labels: Mapping[str, str],
        tracker: ResourceTracker,
        fixtures_dir: Path,
        values: Mapping[str, str] | None = None,
    ) -> None:
        self.cluster = cluster
        self.values = dict(values or {})  # defaults for ${NAME} placeholders (RUN_ID)
        self.namespace = namespace
        self.catalogue = catalogue
        self.labels = dict(labels)
        self.tracker = tracker
        self.fixtures_dir = fixtures_dir

    def image(self, name: str) -> str:
        return self.catalogue.ref(name, offline=self.cluster.offline)

    def _values(self, values: Mapping[str, str] | None) -> dict[str, str]:
        """Placeholder values: this set's defaults, a call's own winning."""
        return {**self.values, **(values or {})}

    def _bound(self, namespace: str | None, values: Mapping[str, str] | None) -> dict[str, Any]:
        """What `load` and `prepare` take from this set: its namespace unless one is given, its
        catalogue and labels, the cluster's offline flag, and the placeholder values."""
        return {
            "namespace": namespace or self.namespace,
            "catalogue": self.catalogue,
            "labels": self.labels,
            "offline": self.cluster.offline,
            "values": self._values(values),
        }

    def load(
        self, path: str | Path, namespace: str | None = None, *, values: Mapping[str, str] | None = None
    ) -> list[Doc]:
        return load(path, **self._bound(namespace, values), fixtures_dir=self.fixtures_dir)

    def load_raw(self, path: str | Path) -> RawManifest:
        return load_raw(path, fixtures_dir=self.fixtures_dir)

    def render(self, path: str | Path, values: Mapping[str, str] | None = None) -> list[Any]:
        """Documents with placeholders filled, nothing else (e.g. a *.patch.yaml body)."""
        return render(path, self._values(values), fixtures_dir=self.fixtures_dir)

    def prepare(
        self, docs: list[Any], namespace: str | None = None, *, values: Mapping[str, str] | None = None
    ) -> list[Doc]:
        """Like load, for documents a test built itself."""
        return prepare(docs, **self._bound(namespace, values), source="<inline>")

    def apply(
        self,
        source: str | Path | list[Doc],
        namespace: str | None = None,
        *,
        values: Mapping[str, str] | None = None,
    ) -> list[Doc]:
        """apply("notes/services/np-svc.yaml", values={"NODE_NAME": n}) or apply([doc, ...])."""
        if isinstance(source, list):
            docs = self.prepare(source, namespace, values=values)
        else:
            docs = self.load(source, namespace, values=values)
        return apply(self.cluster, docs, tracker=self.tracker)

    def create(self, docs: list[Doc], *, dry_run: bool = False) -> list[Doc]:
        """Create documents `load` or `prepare` already made ready (a jig's own edits kept), in
        order, registered with the tracker. dry_run: the API server admits or refuses each, stores
        nothing."""
        return apply(self.cluster, docs, tracker=self.tracker, dry_run=dry_run)

    def apply_one(
        self,
        source: str | Path | Doc,
        namespace: str | None = None,
        *,
        values: Mapping[str, str] | None = None,
    ) -> Doc:
        docs = self.apply([source] if isinstance(source, dict) else source, namespace, values=values)
        if len(docs) != 1:
            raise ManifestError(f"{source}: expected one document, got {len(docs)}")
        return docs[0]
