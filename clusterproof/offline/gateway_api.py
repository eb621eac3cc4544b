"""The Gateway API CRDs (standard channel), generated at build time from the Go module's API types.

Never committed, never downloaded as YAML: controller-gen (sigs.k8s.io/controller-tools) reads the
types of sigs.k8s.io/gateway-api, at the version Traefik's go.mod requires (the one its Gateway
provider is built against), and writes a CRD per kind; `standard_channel` then makes of them what the
project ships as its standard channel. Gateway API marks, in the types' comments, what differs by
channel (`<gateway:experimental>` fields, `<gateway:standard:validation:...>` rules, descriptions
only one channel shows): controller-gen leaves those marks in the descriptions, and this module
reads them. The module's own `config/crd/standard` is compared with the result, and the build log
says whether they agree (`compare`).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from clusterproof.offline import gomod
from clusterproof.offline.releases import CONTROLLER_TOOLS

MODULE = "sigs.k8s.io/gateway-api"
CONTROLLER_TOOLS_MODULE = "sigs.k8s.io/controller-tools"
# every API package of the module: a kind's CRD holds all its versions, served or not
API_PACKAGES = tuple(
    f"{MODULE}/{p}" for p in ("apis/v1", "apis/v1beta1", "apis/v1alpha2", "apis/v1alpha3", "apisx/v1alpha1")
)
# the kinds of the standard channel (what the module's config/crd/standard holds)
STANDARD_KINDS = frozenset(
    {
        "GatewayClass",
        "Gateway",
        "HTTPRoute",
        "GRPCRoute",
        "ReferenceGrant",
        "BackendTLSPolicy",
        "ListenerSet",
        "TCPRoute",
        "TLSRoute",
        "UDPRoute",
    }
)
CHANNEL = "standard"
CONSTS_FILE = "pkg/consts/consts.go"

_EXPERIMENTAL = "<gateway:experimental>"
_VALIDATE_IP = "<gateway:validateIPAddress>"


@dataclass(frozen=True)
class Stamp:
    """The annotations the project puts on its CRDs, read from its pkg/consts."""

    bundle_version: str
    approval_link: str
    bundle_annotation: str = "gateway.networking.k8s.io/bundle-version"
    channel_annotation: str = "gateway.networking.k8s.io/channel"


def stamp_of(consts_go: str) -> Stamp:
    """BundleVersion and ApprovalLink of the module's pkg/consts/consts.go."""

    def constant(name: str) -> str:
        found = re.search(rf'^\s*{name}\s*=\s*"([^"]*)"', consts_go, re.M)
        if not found:
            raise ValueError(f"{CONSTS_FILE}: no constant {name}")
        return found.group(1)

    return Stamp(
        constant("BundleVersion"),
        constant("ApprovalLink"),
        constant("BundleVersionAnnotation"),
        constant("ChannelAnnotation"),
    )


def version_for(traefik_go_mod: str) -> str:
    """The Gateway API version Traefik's go.mod requires."""
    found = gomod.required_version(traefik_go_mod, MODULE)
    if not found:
        raise ValueError(f"Traefik's go.mod requires no {MODULE}: its Gateway provider's CRDs cannot be matched")
    return found


def controller_gen() -> gomod.GoProgram:
    return gomod.GoProgram(
        component=f"controller-gen {CONTROLLER_TOOLS}",
        module=CONTROLLER_TOOLS_MODULE,
        version=CONTROLLER_TOOLS,
        packages=(f"{CONTROLLER_TOOLS_MODULE}/cmd/controller-gen",),
    )


def api_types(version: str) -> gomod.GoProgram:
    """A wrapper module whose main imports every API package: its directory is where controller-gen
    finds the types (at `version`, resolved as Go resolves them)."""
    imports = "\n".join(f'\t_ "{p}"' for p in API_PACKAGES)
    return gomod.GoProgram(
        component=f"gateway-api {version} types",
        module=MODULE,
        version=version,
        packages=(),
        main_go=f"package main\n\nimport (\n{imports}\n)\n\nfunc main() {{}}\n",
        main_name="gateway-api-types",
    )


def controller_gen_args(out_dir: str) -> list[str]:
    return ["crd", f"paths={';'.join(API_PACKAGES)}", f"output:crd:dir={out_dir}"]


# --- the standard channel (pure: the unit tests' subject) ---------------------------------------


def standard_channel(crds: Iterable[dict[str, Any]], stamp: Stamp) -> list[dict[str, Any]]:
    """Of controller-gen's CRDs, the standard channel's, sorted by name: only its kinds; alpha versions
    not served; experimental fields left out; the standard channel's own validations added; the
    marks removed from descriptions; stamped with the bundle version, channel and API approval."""
    found = []
    for crd in crds:
        if crd.get("kind") != "CustomResourceDefinition" or crd["spec"]["names"]["kind"] not in STANDARD_KINDS:
            continue
        crd = copy.deepcopy(crd)
        annotations = crd.setdefault("metadata", {}).setdefault("annotations", {}) or {}
        annotations.update(
            {
                "api-approved.kubernetes.io": stamp.approval_link,
                stamp.bundle_annotation: stamp.bundle_version,
                stamp.channel_annotation: CHANNEL,
            }
        )
        crd["metadata"]["annotations"] = annotations
        crd.pop("status", None)
        for version in crd["spec"]["versions"]:
            if "alpha" in version["name"]:
                version["served"] = False
            schema = (version.get("schema") or {}).get("openAPIV3Schema")
            if schema is not None:
                version["schema"]["openAPIV3Schema"] = _standard(schema) or {}
        found.append(crd)
    return sorted(found, key=lambda c: c["metadata"]["name"])


def _standard(node: dict[str, Any]) -> dict[str, Any] | None:
    """A schema node as the standard channel has it; None: the node is experimental."""
    description = node.get("description", "")
    if _EXPERIMENTAL in description:
        return None
    node = dict(node)
    if _VALIDATE_IP in description and isinstance(node.get("items"), dict):
        node["items"] = {**node["items"], "oneOf": _IP_ADDRESS_ONE_OF}
    for kind, value in _channel_validations(description, CHANNEL):
        if kind == "Enum":
            node["enum"] = value.split(";")
        elif kind == "Pattern" and not node.get("pattern"):
            node["pattern"] = value
        elif kind == "XValidation":
            node["x-kubernetes-validations"] = [*(node.get("x-kubernetes-validations") or []), value]
    if node.get("format") == "date-time":
        node["type"] = "string"
    if "description" in node:
        node["description"] = _description(description)
    if isinstance(node.get("properties"), dict):
        kept = {name: _standard(prop) for name, prop in node["properties"].items()}
        node["properties"] = {name: prop for name, prop in kept.items() if prop is not None}
        if isinstance(node.get("required"), list):
            node["required"] = [r for r in node["required"] if r in node["properties"]]
    elif isinstance(node.get("items"), dict):
        node["items"] = _standard(node["items"]) or {}
    return node


_IP_ADDRESS_ONE_OF = [
    {"properties": {"type": {"enum": ["IPAddress"]}, "value": {"anyOf": [{"format": "ipv4"}, {"format": "ipv6"}]}}},
    {"properties": {"type": {"not": {"enum": ["IPAddress"]}}}},
]
_XVALIDATION = re.compile(r'XValidation:message="([^"]*)",rule="([^"]*)">')


def _channel_validations(description: str, channel: str) -> list[tuple[str, Any]]:
    """`<gateway:CHANNEL:validation:...>` marks: ("Enum", "A;B"), ("Pattern", "re"), ("XValidation", rule)."""
    found: list[tuple[str, Any]] = []
    prefix = f"<gateway:{channel}:validation:"
    for part in description.split(prefix)[1:]:
        if part.startswith("Enum="):
            found.append(("Enum", part[len("Enum=") :].split(">", 1)[0]))
        elif part.startswith("Pattern=`"):
            found.append(("Pattern", part[len("Pattern=`") :].split("`", 1)[0]))
        else:
            rule = _XVALIDATION.match(part)
            if rule:
                found.append(("XValidation", {"message": rule.group(1), "rule": rule.group(2)}))
    return found


def _description(text: str) -> str:
    """The description the standard channel shows: the experimental channel's own passages and the
    passages excluded from CRDs taken out, every other mark removed, runs of blank lines shortened."""
    text = re.sub(
        r"\n*<gateway:experimental:description>.*?</gateway:experimental:description>\n*", "\n\n", text, flags=re.S
    )
    text = re.sub(r"\n*<gateway:util:excludeFromCRD>.*?</gateway:util:excludeFromCRD>\n*", "\n\n\n", text, flags=re.S)
    text = re.sub(r"<gateway:.*>", "", text)
    text = re.sub(r"\n\n\n+", "\n\n\n", text)
    return text.strip("\n")


# --- comparing with the module's own config/crd/standard ----------------------------------------


def compare(ours: Iterable[dict[str, Any]], shipped: Iterable[dict[str, Any]]) -> list[str]:
    """Where our CRDs differ from the module's own standard channel (by CRD name and JSON path of the
    first difference in each); [] when they agree. Printed in the build log: informative only."""
    theirs = {c["metadata"]["name"]: c for c in shipped if c.get("kind") == "CustomResourceDefinition"}
    mine = {c["metadata"]["name"]: c for c in ours}
    found = [f"{name}: only in the module's config/crd/standard" for name in sorted(set(theirs) - set(mine))]
    found += [f"{name}: not in the module's config/crd/standard" for name in sorted(set(mine) - set(theirs))]
    for name in sorted(set(mine) & set(theirs)):
        where = _first_difference(mine[name]["spec"], theirs[name]["spec"], "spec")
        if where:
            found.append(f"{name}: {where}")
    return found


def _first_difference(a: Any, b: Any, path: str) -> str | None:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            if key not in a or key not in b:
                return f"{path}.{key} only {'in ours' if key in a else 'in theirs'}"
            found = _first_difference(a[key], b[key], f"{path}.{key}")
            if found:
                return found
        return None
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return f"{path}: {len(a)} items in ours, {len(b)} in theirs"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            found = _first_difference(x, y, f"{path}[{i}]")
            if found:
                return found
        return None
    return None if a == b else f"{path}: {str(a)[:60]!r} in ours, {str(b)[:60]!r} in theirs"
