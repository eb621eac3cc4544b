"""The durable objects' specs as `--phase before` records them and `--phase after` compares them.

An object is recorded as a flat mapping `field path -> value` (`spec.ports.0.targetPort: 8080`,
`data.greeting: ...`), read from the API server after creation, so the defaults it filled in
then (a Service's sessionAffinity, a Deployment's strategy) are part of the record. The rule of
what is compared, and what is not:

- compared: everything under `spec` (a ConfigMap's `data`, `binaryData` and `immutable`), and the
  object's labels and annotations;
- not compared, because the API server or a controller writes them, not the user, and an upgrade
  may change them legitimately: `status` (also a StatefulSet's claim templates' status); every
  other `metadata` field (uid is UPG-02's identity, compared on its own; resourceVersion,
  generation, managedFields, creationTimestamp (also inside pod templates), finalizers, owner
  references); annotations a controller writes (IGNORED_ANNOTATIONS: revision counters, binding
  and provisioning marks); the suite's own bookkeeping labels (`clusterproof.io/...`: they move
  from the `before` run to the durable state when it is committed); a PersistentVolume's
  `spec.claimRef.resourceVersion` (the claim's version, which moves with any change of the claim);
- a field present before and changed or gone after is a change; a field present only after is a
  change too (someone added a nodeSelector, an externalIP), except a field a newer release adds
  with its default value (NEW_DEFAULTS, with the value: 1.37 defaults a StatefulSet's
  `spec.updateStrategy.rollingUpdate.maxUnavailable` to 1).

A change is named as `field: before -> after`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

Spec = dict[str, Any]  # flat: dotted path -> JSON scalar (lists are indexed: ports.0.port)

SPEC_KEYS = ("spec", "data", "binaryData", "immutable")
IGNORED_ANNOTATIONS = (
    "deployment.kubernetes.io/",  # the Deployment controller's revision counters
    "deprecated.daemonset.template.generation",  # the DaemonSet controller's
    "pv.kubernetes.io/",  # binding and provisioning marks (PV controller, provisioners)
    "volume.kubernetes.io/",
    "volume.beta.kubernetes.io/",
    "kubectl.kubernetes.io/last-applied-configuration",
    "control-plane.alpha.kubernetes.io/",
    "endpoints.kubernetes.io/",
)
OWN_LABELS = "clusterproof.io/"
# fields never compared, with everything below them (`*`: one path segment)
IGNORED_PATHS = (
    "spec.template.metadata.creationTimestamp",
    "spec.volumeClaimTemplates.*.metadata.creationTimestamp",
    "spec.volumeClaimTemplates.*.status",
    "spec.claimRef.resourceVersion",
)
# fields a newer release defaults on objects made by an older one: present only after, and with
# exactly this value, not a change (another value is one: someone set it)
NEW_DEFAULTS: dict[str, Any] = {
    # 1.37: StatefulSet's maxUnavailable (MaxUnavailableStatefulSet) defaulted to 1 (seen 1.36.3 -> 1.37.2)
    "spec.updateStrategy.rollingUpdate.maxUnavailable": 1,
}
ABSENT = "(absent)"


def _pattern(globs: Iterable[str]) -> re.Pattern[str]:
    """A path matching one of `globs`, or below one."""
    parts = [re.escape(g).replace(r"\*", r"[^.]+") for g in globs]
    return re.compile(r"^(?:" + "|".join(parts) + r")(?:\..+)?$") if parts else re.compile(r"(?!)")


_IGNORED = _pattern(IGNORED_PATHS)


def flatten(value: Any, prefix: str = "") -> Spec:
    """Nested dicts and lists as `a.b.0.c -> scalar`; an empty dict or list is a value of its own."""
    if isinstance(value, Mapping) and value:
        out: Spec = {}
        for key, inner in value.items():
            out.update(flatten(inner, f"{prefix}.{key}" if prefix else str(key)))
        return out
    if isinstance(value, list) and value:
        out = {}
        for i, inner in enumerate(value):
            out.update(flatten(inner, f"{prefix}.{i}" if prefix else str(i)))
        return out
    return {prefix: value} if prefix else {}


def normalise(obj: Mapping[str, Any]) -> Spec:
    """What is compared of one object (an API object as a dict, camelCase keys as the API
    serves them): see the module's rule."""
    meta = obj.get("metadata") or {}
    kept: dict[str, Any] = {k: obj[k] for k in SPEC_KEYS if k in obj and obj[k] is not None}
    labels = {k: v for k, v in (meta.get("labels") or {}).items() if not k.startswith(OWN_LABELS)}
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items() if not k.startswith(IGNORED_ANNOTATIONS)}
    if labels:
        kept["metadata"] = {"labels": labels}
    if annotations:
        kept.setdefault("metadata", {})["annotations"] = annotations
    return {path: v for path, v in flatten(kept).items() if v is not None and not _IGNORED.match(path)}


def changes(before: Spec, after: Spec) -> list[str]:
    """`path: before -> after` for every field that differs (see the rule), in path order."""
    found = []
    for path in sorted(set(before) | set(after), key=_path_order):
        if path in before and path in after:
            if before[path] != after[path]:
                found.append(f"{path}: {_shown(before[path])} -> {_shown(after[path])}")
        elif path in before:
            found.append(f"{path}: {_shown(before[path])} -> {ABSENT}")
        elif path not in NEW_DEFAULTS or NEW_DEFAULTS[path] != after[path]:
            found.append(f"{path}: {ABSENT} -> {_shown(after[path])}")
    return found


def _path_order(path: str) -> list[tuple[int, str]]:
    return [(0, f"{int(p):09d}") if p.isdigit() else (1, p) for p in path.split(".")]


def _shown(value: Any) -> str:
    return json.dumps(value) if not isinstance(value, str) else value
