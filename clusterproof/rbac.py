"""`python -m clusterproof.rbac` (tox -e rbac): suites run under the least role a run needs
(fixtures/rbac/), proven by the API server's own audit log.

1. a kind cluster boots through the suite (one quick test, as cluster-admin; the cluster is kept),
   its API server writing an audit log of every request of the ServiceAccount below;
2. as cluster-admin: fixtures/rbac/ applied (the ClusterRole `clusterproof`, the records'
   namespace `clusterproof-runs` with its Role, the ServiceAccount `clusterproof` there, bound to
   exactly those);
3. a kubeconfig for that ServiceAccount (a TokenRequest of an hour; 0600, in the run's directory);
4. the suites chosen (default: the PersistentVolume module: PVs, StorageClasses, node labels, node
   files, host exec pods) run against the cluster as an existing cluster with that kubeconfig
   (`--allow-privileged --node-access pod`: node access through pods, as on a cluster elsewhere);
5. the audit log is read: every request refused for want of a permission (decision `forbid`) is
   printed, verb, resource and namespace, and fails the run, however the suite took the refusal;
   `--unused` also lists the role's rules no request needed;
6. the cluster is deleted (unless --keep-cluster).
Extra arguments after `--` go to the pytest run under the role.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from clusterproof import run as runs
from clusterproof import stopping

SERVICE_ACCOUNT = ("clusterproof-runs", "clusterproof")  # namespace, name: fixtures/rbac/bindings.yaml
USER = f"system:serviceaccount:{SERVICE_ACCOUNT[0]}:{SERVICE_ACCOUNT[1]}"
CONTEXT = "clusterproof"
RBAC_DIR = Path("fixtures/rbac")
INGRESS_INSTALL = RBAC_DIR / "ingress-install"  # bound only with --ingress-install
BASE_KIND_CONFIG = Path("fixtures/kind/three-nodes.yaml")
BOOT_TEST = "suites/test_quota.py::test_fourth_pod_is_refused_under_a_quota_of_three_pods"  # a quick one
DEFAULT_SUITES = ("suites/test_persistent_volumes.py",)
AUDIT_DIR = "/etc/kubernetes/clusterproof-audit"  # on the control-plane node: the policy
AUDIT_LOG = "/var/log/kubernetes/clusterproof-audit.log"
TOKEN_SECONDS = 3600


def say(message: str) -> None:
    print(f"[rbac] {message}", flush=True)


def pytest_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args]


# --- the cluster: an audit log of the ServiceAccount's requests ----------------------------------


def audit_policy(user: str = USER) -> dict[str, Any]:
    """Metadata (who, verb, resource, answer, the authorizer's decision) of the user's requests only."""
    return {
        "apiVersion": "audit.k8s.io/v1",
        "kind": "Policy",
        "omitStages": ["RequestReceived"],
        "rules": [{"level": "Metadata", "users": [user]}, {"level": "None"}],
    }


def kind_config(base: dict[str, Any], policy_dir: Path) -> dict[str, Any]:
    """`base` with the control plane's API server writing the audit log (kubeadm v1beta4's
    extraArgs list, appended to, not replaced), the policy mounted from `policy_dir`."""
    config = json.loads(json.dumps(base))
    control_plane = next(n for n in config["nodes"] if n.get("role") == "control-plane")
    control_plane.setdefault("extraMounts", []).append(
        {"hostPath": str(policy_dir.resolve()), "containerPath": AUDIT_DIR, "readOnly": True}
    )
    args = [("audit-policy-file", f"{AUDIT_DIR}/policy.yaml"), ("audit-log-path", AUDIT_LOG)]
    volumes = [
        {"name": "clusterproof-audit", "hostPath": AUDIT_DIR, "mountPath": AUDIT_DIR, "readOnly": True,
         "pathType": "Directory"},
        {"name": "clusterproof-audit-log", "hostPath": "/var/log/kubernetes", "mountPath": "/var/log/kubernetes",
         "pathType": "DirectoryOrCreate"},
    ]  # fmt: skip
    patch = [{"op": "add", "path": "/apiServer/extraArgs/-", "value": {"name": k, "value": v}} for k, v in args]
    patch += [{"op": "add", "path": "/apiServer/extraVolumes", "value": volumes}]
    target = {"group": "kubeadm.k8s.io", "version": "v1beta4", "kind": "ClusterConfiguration"}
    config.setdefault("kubeadmConfigPatchesJSON6902", []).append({**target, "patch": yaml.safe_dump(patch)})
    return config


# --- what the audit log says ----------------------------------------------------------------------


@dataclass(frozen=True, order=True)
class Request:
    """A request as RBAC sees it."""

    verb: str
    group: str
    resource: str  # with its subresource: pods/exec
    namespace: str  # "" for cluster-scoped (or all namespaces)
    name: str = ""

    @classmethod
    def from_event(cls, event: dict[str, Any]) -> Request | None:
        ref = event.get("objectRef") or {}
        if not ref.get("resource"):
            return None  # a non-resource URL (/version, /readyz)
        resource = ref["resource"] + (f"/{ref['subresource']}" if ref.get("subresource") else "")
        return cls(event.get("verb", ""), ref.get("apiGroup", ""), resource, ref.get("namespace", ""),
                   ref.get("name", ""))  # fmt: skip

    def __str__(self) -> str:
        group = f"{self.group}/" if self.group else ""
        where = f" in namespace {self.namespace}" if self.namespace else " (cluster-wide)"
        return f"{self.verb} {group}{self.resource}{where}"


# Opening exec, attach or port-forward over a websocket is a GET the authorizer allows (its decision in
# the audit log), then a second check wants `create` on the subresource: refused, it is a 403 with an
# empty reason and no decision of its own.
UPGRADED = ("exec", "attach", "portforward")
# Creating a role or binding that grants more than its creator holds (RBAC's escalation check): the
# authorizer allowed the create, the registry refuses it naming each permission not held.
NOT_HELD = "is attempting to grant RBAC permissions not currently held"
HELD_RULE = re.compile(r'\{APIGroups:\[([^\]]*)\], Resources:\[([^\]]*)\], Verbs:\[([^\]]*)\]')


def refusals(lines: Iterable[str], user: str = USER) -> list[Request]:
    """Requests of `user` refused for want of a permission, each once, in order: the authorizer's
    decision forbid, and a websocket upgrade's create check (UPGRADED)."""
    found: dict[Request, None] = {}
    for event in _events(lines, user):
        request = Request.from_event(event)
        if request is None:
            continue
        decision = (event.get("annotations") or {}).get("authorization.k8s.io/decision")
        status = event.get("responseStatus") or {}
        upgraded = (event.get("objectRef") or {}).get("subresource") in UPGRADED
        if decision == "forbid":
            found[_without_name(request)] = None
        elif upgraded and status.get("code") == 403 and status.get("message", "").endswith("forbidden: "):
            found[Request("create", request.group, request.resource, request.namespace)] = None
        elif status.get("code") == 403 and NOT_HELD in status.get("message", ""):
            for wanted in not_held(status["message"]):
                found[wanted] = None
    return list(found)


def not_held(message: str) -> list[Request]:
    """The permissions an escalation refusal names (each verb on each resource, cluster-wide)."""
    def names(text: str) -> list[str]:
        return [n.strip().strip('"') for n in text.split(" ") if n.strip()]

    return [
        Request(verb, group, resource, "")
        for groups, resources, verbs in HELD_RULE.findall(message)
        for group in names(groups) or [""]
        for resource in names(resources)
        for verb in names(verbs)
    ]


def allowed(lines: Iterable[str], user: str = USER) -> set[Request]:
    return {
        _without_name(r)
        for e in _events(lines, user)
        if (e.get("annotations") or {}).get("authorization.k8s.io/decision") == "allow"
        and (r := Request.from_event(e)) is not None
    }


def _without_name(request: Request) -> Request:
    return Request(request.verb, request.group, request.resource, request.namespace)


def _events(lines: Iterable[str], user: str) -> Iterable[dict[str, Any]]:
    for line in lines:
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict) and (event.get("user") or {}).get("username") == user:
            yield event


def unused_rules(role: dict[str, Any], used: set[Request]) -> list[str]:
    """The role's (group, resource, verb) grants no request in `used` needed."""
    unused = []
    for rule in role.get("rules") or []:
        for group in rule.get("apiGroups") or [""]:
            for resource in rule.get("resources") or []:
                for verb in rule.get("verbs") or []:
                    if not any(r.group == group and r.resource == resource and r.verb == verb for r in used):
                        unused.append(f"{verb} {group + '/' if group else ''}{resource}")
    return unused


# --- the ServiceAccount's kubeconfig -------------------------------------------------------------


def service_account_kubeconfig(admin: Path, context: str, out: Path, *, seconds: int = TOKEN_SECONDS) -> Path:
    """A kubeconfig (0600) reaching the cluster of `context` in `admin` as the ServiceAccount,
    with a token of `seconds` (TokenRequest): no Secret is made."""
    from kubernetes import client, config

    api = config.new_client_from_config(config_file=str(admin), context=context, persist_config=False)
    request = client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(
        audiences=[], expiration_seconds=seconds))  # fmt: skip
    namespace, name = SERVICE_ACCOUNT
    token = client.CoreV1Api(api).create_namespaced_service_account_token(name, namespace, request).status.token
    doc = yaml.safe_load(admin.read_text())
    wanted = next(c for c in doc["contexts"] if c["name"] == context)["context"]["cluster"]
    cluster = next(c for c in doc["clusters"] if c["name"] == wanted)["cluster"]
    body = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": CONTEXT, "cluster": cluster}],
        "users": [{"name": CONTEXT, "user": {"token": token}}],
        "contexts": [{"name": CONTEXT, "context": {"cluster": CONTEXT, "user": CONTEXT}}],
        "current-context": CONTEXT,
    }
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        yaml.safe_dump(body, f)
    return out


def rbac_docs(*directories: Path) -> list[dict[str, Any]]:
    paths = [p for d in directories for p in sorted(d.glob("*.yaml"))]
    return [doc for p in paths for doc in yaml.safe_load_all(p.read_text()) if doc]


def apply_rbac(admin: Path, context: str, *directories: Path) -> list[str]:
    """The objects of `directories` (default fixtures/rbac/), applied as cluster-admin (server-side
    apply: a changed rule replaces the old one); their names."""
    from kubernetes import config
    from kubernetes.dynamic import DynamicClient

    api = config.new_client_from_config(config_file=str(admin), context=context, persist_config=False)
    dynamic = DynamicClient(api)
    made = []
    docs = rbac_docs(*(directories or (RBAC_DIR,)))
    for doc in sorted(docs, key=lambda d: d["kind"] != "Namespace"):  # namespaces first
        resource = dynamic.resources.get(api_version=doc["apiVersion"], kind=doc["kind"])
        dynamic.server_side_apply(resource, body=doc, field_manager="clusterproof-rbac", force_conflicts=True)
        made.append(f"{doc['kind']} {doc['metadata']['name']}")
    return made


# --- the run --------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(prog="python -m clusterproof.rbac", description=__doc__.split("\n")[0])
    parser.add_argument("--suites", nargs="*", default=list(DEFAULT_SUITES), help="what runs under the role")
    parser.add_argument("--unused", action="store_true", help="also list the role's grants no request needed")
    parser.add_argument(
        "--ingress-install", action="store_true", help=f"also bind {INGRESS_INSTALL}/ (the run installs a controller)"
    )
    parser.add_argument("--keep-cluster", action="store_true", help="keep the kind cluster")
    args = parser.parse_args(argv)

    run_id = runs.new_run_id()
    name = f"cprbac-{runs.short_id(run_id)}"
    rootdir = Path.cwd()
    work = rootdir / ".clusterproof" / "rbac" / run_id
    (work / "audit").mkdir(parents=True, exist_ok=True)
    (work / "audit" / "policy.yaml").write_text(yaml.safe_dump(audit_policy()))
    config_path = work / "kind-config.yaml"
    config_path.write_text(yaml.safe_dump(kind_config(yaml.safe_load(BASE_KIND_CONFIG.read_text()), work / "audit")))
    rows: list[tuple[str, float]] = []
    rc = 0
    booted = False
    try:
        started = time.monotonic()
        boot_id = f"{run_id}-boot"
        rc, _ = stopping.call(pytest_command(
            BOOT_TEST, "--kind-config", str(config_path), "--cluster-scope", "session", "--keep-clusters",
            "--cluster-name", name, "--offline", "yes", "--run-id", boot_id,
        ))  # fmt: skip
        booted = True
        rows.append(("boot (one test as cluster-admin)", time.monotonic() - started))
        if rc != 0:
            say(f"the boot run failed (exit {rc}): nothing ran under the role")
            return rc
        admin = admin_kubeconfig(rootdir, boot_id, name)
        admin_context = f"kind-{name}"

        started = time.monotonic()
        directories = (RBAC_DIR, INGRESS_INSTALL) if args.ingress_install else (RBAC_DIR,)
        made = apply_rbac(admin, admin_context, *directories)
        say(f"applied {RBAC_DIR}: {', '.join(made)}")
        kubeconfig = service_account_kubeconfig(admin, admin_context, work / "kubeconfig")
        say(f"kubeconfig of {USER}: {kubeconfig}")
        rows.append(("role, ServiceAccount, kubeconfig", time.monotonic() - started))

        started = time.monotonic()
        rc, _ = stopping.call(pytest_command(
            *args.suites, "--kubeconfig", str(kubeconfig), "--context", CONTEXT, "--allow-context", CONTEXT,
            "--allow-privileged", "--node-access", "pod", "--offline", "yes", "--run-id", f"{run_id}-role",
            f"--junitxml={rootdir / '.clusterproof' / 'junit-rbac.xml'}", *extra,
        ))  # fmt: skip
        rows.append((f"{' '.join(args.suites)} under the role", time.monotonic() - started))

        lines = read_audit_log(name)
        refused = refusals(lines)
        for request in refused:
            say(f"RBAC refused {USER}: {request}")
        if refused:
            say(f"{len(refused)} request(s) refused for want of a permission: fixtures/rbac/ is not enough")
            rc = rc or 1
        else:
            say(f"no request of {USER} was refused for want of a permission ({len(lines)} requests audited)")
        if args.unused:
            used = allowed(lines)
            for doc in rbac_docs(*directories):
                if doc["kind"] in ("ClusterRole", "Role"):
                    for grant in unused_rules(doc, used):
                        say(f"{doc['kind']} {doc['metadata']['name']}: not needed by this run: {grant}")
    except KeyboardInterrupt:
        say("interrupted")
        rc = 130
    finally:
        if booted and not args.keep_cluster:
            started = time.monotonic()
            subprocess.run([shutil.which("kind") or "kind", "delete", "cluster", "--name", name], capture_output=True)
            rows.append((f"kind delete {name}", time.monotonic() - started))
        elif booted:
            say(f"kept kind cluster {name}")
        say("where the time went:\n" + "\n".join(f"  {w:<58} {s:7.1f}s" for w, s in rows))
    return rc


def admin_kubeconfig(rootdir: Path, boot_id: str, cluster: str) -> Path:
    """The boot run's cluster-admin kubeconfig of the kind cluster. Its run directory is named by
    its id, `--run-id` plus a random part: the one run given `boot_id` (itself unique)."""
    found = sorted(rootdir.glob(f".clusterproof/runs/{boot_id}-*/clusters/{cluster}/kubeconfig"))
    if len(found) != 1:
        raise SystemExit(f"[rbac] the boot run's kubeconfig of {cluster}: {len(found)} found under .clusterproof/runs/")
    return found[0]


def read_audit_log(cluster: str) -> list[str]:
    done = subprocess.run(
        ["docker", "exec", f"{cluster}-control-plane", "cat", AUDIT_LOG], capture_output=True, text=True, timeout=60
    )
    if done.returncode != 0:
        raise SystemExit(f"[rbac] cannot read the audit log of {cluster}: {done.stderr.strip()}")
    return done.stdout.splitlines()


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
