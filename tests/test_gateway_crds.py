"""The Gateway API CRDs of the standard channel, as the offline build makes them from controller-gen's
output (clusterproof.offline.gateway_api). The CRDs here are small hand-written stand-ins of
controller-gen's (its shape: marks left in the descriptions), not generated ones."""

from __future__ import annotations

import pytest

from clusterproof.offline import build, gateway_api, releases

STAMP = gateway_api.Stamp("v1.6.1", "https://example.test/approved")


def crd(kind: str, versions: list[dict]) -> dict:
    plural = kind.lower() + "s"
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{plural}.gateway.networking.k8s.io",
            "annotations": {"controller-gen.kubebuilder.io/version": "v0.21.0"},
        },
        "spec": {"group": "gateway.networking.k8s.io", "names": {"kind": kind, "plural": plural}, "versions": versions},
    }


def version(name: str, properties: dict) -> dict:
    schema = {
        "type": "object",
        "properties": {"spec": {"type": "object", "description": "Spec.", "properties": properties}},
    }
    return {"name": name, "served": True, "storage": name == "v1", "schema": {"openAPIV3Schema": schema}}


def test_only_the_standard_kinds_stamped_with_the_bundle_version_the_channel_and_the_api_approval():
    found = gateway_api.standard_channel([crd("HTTPRoute", []), crd("XBackendTrafficPolicy", [])], STAMP)
    assert [c["spec"]["names"]["kind"] for c in found] == ["HTTPRoute"]
    annotations = found[0]["metadata"]["annotations"]
    assert annotations["gateway.networking.k8s.io/bundle-version"] == "v1.6.1"
    assert annotations["gateway.networking.k8s.io/channel"] == "standard"
    assert annotations["api-approved.kubernetes.io"] == "https://example.test/approved"


def test_experimental_fields_go_alpha_versions_are_not_served_and_the_marks_leave_the_descriptions():
    properties = {
        "hostnames": {
            "type": "array",
            "description": "Hostnames to match.\n\n<gateway:util:excludeFromCRD>\nNotes.\n"
            "</gateway:util:excludeFromCRD>",
        },
        "useDefaultGateways": {"type": "string", "description": "<gateway:experimental>\nUse the default Gateways."},
        "rules": {
            "type": "array",
            "description": "Rules.\n<gateway:experimental:description>\nOnly experimental.\n"
            "</gateway:experimental:description>",
            "items": {
                "type": "object",
                "properties": {"name": {"type": "string", "description": "<gateway:experimental>"}},
            },
        },
    }
    versions = [version("v1", properties), version("v1alpha2", properties)]
    (found,) = gateway_api.standard_channel([crd("HTTPRoute", versions)], STAMP)
    v1, alpha = found["spec"]["versions"]
    spec = v1["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
    assert sorted(spec) == ["hostnames", "rules"]
    assert spec["hostnames"]["description"] == "Hostnames to match."
    assert spec["rules"]["description"] == "Rules." and spec["rules"]["items"]["properties"] == {}
    assert v1["served"] is True and alpha["served"] is False and alpha["storage"] is False


def test_the_standard_channels_own_validations_are_added_and_the_experimental_ones_are_not():
    rule = '<gateway:standard:validation:XValidation:message="sectionName must be unique",rule="self.all(p, true)">'
    other = '<gateway:experimental:validation:XValidation:message="experimental",rule="false">'
    enum = "<gateway:experimental:validation:Enum=A;B;C>"
    properties = {
        "parentRefs": {"type": "array", "description": f"References.\n{rule}\n{other}"},
        "type": {"type": "string", "enum": ["A", "B"], "description": f"Type.\n{enum}"},
        "addresses": {
            "type": "array",
            "items": {"type": "object"},
            "description": "Addresses.\n<gateway:validateIPAddress>",
        },
    }
    (found,) = gateway_api.standard_channel([crd("Gateway", [version("v1", properties)])], STAMP)
    spec = found["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
    assert spec["parentRefs"]["x-kubernetes-validations"] == [
        {"message": "sectionName must be unique", "rule": "self.all(p, true)"}
    ]
    assert spec["parentRefs"]["description"] == "References."
    assert spec["type"]["enum"] == ["A", "B"] and spec["type"]["description"] == "Type."
    assert len(spec["addresses"]["items"]["oneOf"]) == 2


def test_differences_from_the_modules_own_standard_channel_are_named_by_crd_and_path():
    ours = gateway_api.standard_channel([crd("Gateway", [version("v1", {"a": {"type": "string"}})])], STAMP)
    same = gateway_api.standard_channel([crd("Gateway", [version("v1", {"a": {"type": "string"}})])], STAMP)
    assert gateway_api.compare(ours, same) == []
    other = gateway_api.standard_channel(
        [crd("Gateway", [version("v1", {"a": {"type": "integer"}})]), crd("HTTPRoute", [])], STAMP
    )
    assert gateway_api.compare(ours, other) == [
        "httproutes.gateway.networking.k8s.io: only in the module's config/crd/standard",
        "gateways.gateway.networking.k8s.io: "
        "spec.versions[0].schema.openAPIV3Schema.properties.spec.properties.a.type: "
        "'string' in ours, 'integer' in theirs",
    ]


def test_the_gateway_api_version_is_the_one_traefik_requires_and_its_stamp_comes_from_the_module():
    assert gateway_api.version_for("module t\n\nrequire (\n\tsigs.k8s.io/gateway-api v1.6.1\n)\n") == "v1.6.1"
    with pytest.raises(ValueError, match="requires no sigs.k8s.io/gateway-api"):
        gateway_api.version_for("module t\n")
    consts = (
        'const (\n\tBundleVersionAnnotation = "gateway.networking.k8s.io/bundle-version"\n'
        '\tChannelAnnotation = "gateway.networking.k8s.io/channel"\n\tBundleVersion = "v1.6.1"\n'
        '\tApprovalLink = "https://github.com/kubernetes-sigs/gateway-api/pull/4530"\n)\n'
    )
    assert gateway_api.stamp_of(consts) == gateway_api.Stamp(
        "v1.6.1", "https://github.com/kubernetes-sigs/gateway-api/pull/4530"
    )


def test_the_crds_are_a_step_of_the_go_built_releases_keyed_on_traefiks_version():
    graph = build.steps(releases.release("1.37"))
    step = graph[build.GATEWAY_API_CRDS]
    assert step.env == {"TRAEFIK_VERSION": releases.TRAEFIK} and step.go is not None
    assert step.hash == build.steps(releases.release("1.36"))[build.GATEWAY_API_CRDS].hash
    assert build.GATEWAY_API_CRDS not in build.steps(releases.release("1.20"))
