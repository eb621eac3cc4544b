"""The least-privilege run (clusterproof.rbac): what the audit log says was refused, the kind config
that makes the API server write it, the role's grants nobody used, and fixtures/rbac/ itself.
Audit events are written here by hand in the API server's format (audit.k8s.io/v1 Event, level
Metadata); no cluster."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from clusterproof import rbac
from clusterproof.rbac import USER, Request, allowed, kind_config, refusals, unused_rules

RBAC_DIR = Path(__file__).resolve().parent.parent / "fixtures" / "rbac"


def event(verb, resource, *, decision="allow", namespace=None, group="", subresource=None, user=USER, code=200):
    ref = {"resource": resource, "apiGroup": group, "apiVersion": "v1", "name": "x"}
    if namespace:
        ref["namespace"] = namespace
    if subresource:
        ref["subresource"] = subresource
    return json.dumps({
        "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Metadata", "stage": "ResponseComplete",
        "verb": verb, "user": {"username": user}, "objectRef": ref, "responseStatus": {"code": code},
        "annotations": {"authorization.k8s.io/decision": decision, "authorization.k8s.io/reason": ""},
    })  # fmt: skip


def test_refusals_are_the_authorizers_forbid_decisions_of_the_service_account_each_once():
    lines = [
        event("create", "pods", subresource="exec", namespace="cp-1", decision="forbid", code=403),
        event("create", "pods", subresource="exec", namespace="cp-1", decision="forbid", code=403),
        event("patch", "nodes", decision="forbid", code=403),
        event("create", "leases", group="coordination.k8s.io", namespace="clusterproof-runs"),
        # refused by admission (a quota), not by RBAC: the role is not the cause
        event("create", "pods", namespace="cp-1", code=403),
        event("delete", "nodes", decision="forbid", user="someone-else", code=403),
        '{"torn line',
    ]
    found = refusals(lines)
    assert found == [Request("create", "", "pods/exec", "cp-1"), Request("patch", "", "nodes", "")]
    assert [str(r) for r in found] == ["create pods/exec in namespace cp-1", "patch nodes (cluster-wide)"]
    assert Request("create", "coordination.k8s.io", "leases", "clusterproof-runs") in allowed(lines)


def test_a_websocket_exec_allowed_as_get_but_refused_its_create_check_is_a_refusal():
    """As the audit log has it (1.37): decision allow for the GET, then 403 with an empty reason."""
    upgraded = json.loads(event("get", "pods", subresource="exec", namespace="cp-1", code=403))
    upgraded["responseStatus"]["message"] = 'pods "web-0" is forbidden: '
    quota = json.loads(event("create", "pods", namespace="cp-1", code=403))
    quota["responseStatus"]["message"] = 'pods "p4" is forbidden: exceeded quota: pods, requested: pods=1'
    assert refusals([json.dumps(upgraded), json.dumps(quota)]) == [Request("create", "", "pods/exec", "cp-1")]


def test_a_role_granting_more_than_its_creator_holds_names_each_missing_permission():
    """The RBAC registry's escalation check, as the API server words it (1.37)."""
    made = json.loads(event("create", "clusterroles", group="rbac.authorization.k8s.io", code=403))
    made["responseStatus"]["message"] = (
        'clusterroles.rbac.authorization.k8s.io "traefik" is forbidden: user "system:serviceaccount:x:y" '
        '(groups=["system:authenticated"]) is attempting to grant RBAC permissions not currently held:\n'
        '{APIGroups:[""], Resources:["nodes"], Verbs:["watch"]}\n'
        '{APIGroups:["networking.k8s.io"], Resources:["ingresses" "ingresses/status"], Verbs:["get" "update"]}'
    )
    assert refusals([json.dumps(made)]) == [
        Request("watch", "", "nodes", ""),
        Request("get", "networking.k8s.io", "ingresses", ""),
        Request("update", "networking.k8s.io", "ingresses", ""),
        Request("get", "networking.k8s.io", "ingresses/status", ""),
        Request("update", "networking.k8s.io", "ingresses/status", ""),
    ]


def test_grants_no_request_needed_are_listed():
    role = {"rules": [
        {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list", "patch"]},
        {"apiGroups": ["storage.k8s.io"], "resources": ["storageclasses"], "verbs": ["create"]},
    ]}  # fmt: skip
    made = event("create", "storageclasses", group="storage.k8s.io")
    used = allowed([event("get", "nodes"), event("list", "nodes"), made])
    assert unused_rules(role, used) == ["patch nodes"]


def test_the_kind_config_makes_the_control_plane_write_the_audit_log(tmp_path):
    base = yaml.safe_load((RBAC_DIR.parent / "kind" / "three-nodes.yaml").read_text())
    config = kind_config(base, tmp_path)
    control_plane = config["nodes"][0]
    assert control_plane["extraMounts"] == [
        {"hostPath": str(tmp_path.resolve()), "containerPath": rbac.AUDIT_DIR, "readOnly": True}
    ]
    (patch,) = config["kubeadmConfigPatchesJSON6902"]
    assert patch["kind"] == "ClusterConfiguration" and patch["version"] == "v1beta4"
    ops = yaml.safe_load(patch["patch"])
    # appended to kubeadm's extraArgs list (kind's own runtime-config stays)
    assert {"op": "add", "path": "/apiServer/extraArgs/-",
            "value": {"name": "audit-log-path", "value": rbac.AUDIT_LOG}} in ops  # fmt: skip
    assert [n["role"] for n in config["nodes"]] == ["control-plane", "worker", "worker"]
    assert "extraMounts" not in base["nodes"][0]  # the base is not changed
    policy = rbac.audit_policy()
    assert policy["rules"][0] == {"level": "Metadata", "users": [USER]} and policy["rules"][-1] == {"level": "None"}


def test_fixtures_bind_the_service_account_to_exactly_the_shipped_roles():
    docs = rbac.rbac_docs(RBAC_DIR, RBAC_DIR / "ingress-install")
    roles = {(d["kind"], d["metadata"]["name"]) for d in docs if d["kind"] in ("ClusterRole", "Role")}
    bindings = [d for d in docs if d["kind"] in ("ClusterRoleBinding", "RoleBinding")]
    assert {(b["roleRef"]["kind"], b["roleRef"]["name"]) for b in bindings} == roles
    namespace, name = rbac.SERVICE_ACCOUNT
    for binding in bindings:
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": name, "namespace": namespace}]
    assert any(d["kind"] == "ServiceAccount" and d["metadata"] == {"name": name, "namespace": namespace} for d in docs)
    for role in (d for d in docs if d["kind"] in ("ClusterRole", "Role")):
        for rule in role["rules"]:
            assert "*" not in rule.get("verbs", []) and "*" not in rule.get("resources", []), rule


def test_the_admin_kubeconfig_is_the_boot_runs_own_whatever_random_part_its_id_got(tmp_path):
    boot = tmp_path / ".clusterproof/runs/20261206-040000-aa11bb-boot-c0ffee/clusters/cprbac-x"
    boot.mkdir(parents=True)
    (boot / "kubeconfig").write_text("{}")
    other = tmp_path / ".clusterproof/runs/20261206-050000-cc22dd-boot-123456/clusters/cprbac-x"
    other.mkdir(parents=True)
    (other / "kubeconfig").write_text("{}")

    assert rbac.admin_kubeconfig(tmp_path, "20261206-040000-aa11bb-boot", "cprbac-x") == boot / "kubeconfig"
    with pytest.raises(SystemExit, match="0 found"):
        rbac.admin_kubeconfig(tmp_path, "20261206-040000-aa11bb-boot", "cprbac-y")
