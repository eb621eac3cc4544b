"""Verbs for the namespace and ResourceQuota claims: put the notes' quota into a namespace,
create objects one by one and keep the API's answer to each, read used vs hard, and run
kubectl with a private kubeconfig whose context has a default namespace."""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from kubernetes import client

from clusterproof import causes, wait
from clusterproof.api_answers import ApiAnswer, answer_to
from clusterproof.cluster import Cluster
from clusterproof.jigs import Jig
from clusterproof.manifests import Doc
from clusterproof.run import RunContext

TEST_QUOTAS = "notes/quota/test-quotas.yaml"
ADMISSION_PROBE = "claims/quota/admission-probe.yaml"
QUOTA_TIMEOUT = 60.0
# admission catches up within its live-lookup cache TTL (30 s) unless the API server is broken
ADMISSION_TIMEOUT = 40.0
ADMISSION_GRACE = 10.0  # status.used follows an admitted create within a second when admission counts it
ADMISSION_HINT = (
    "the API server did not enforce the ResourceQuota: is the ResourceQuota admission plugin enabled "
    "(kube-apiserver --enable-admission-plugins / --disable-admission-plugins)?"
)


@dataclass(frozen=True)
class Admission(ApiAnswer):
    """The API server's answer to one create (an ApiAnswer), with what was created."""

    kind: str = ""
    name: str = ""

    @property
    def admitted(self) -> bool:
        return self.accepted

    def __str__(self) -> str:
        if self.admitted:
            return f"{self.kind} {self.name}: admitted"
        return f"{self.kind} {self.name}: HTTP {self.status} {self.reason}: {self.message}"


def quantity(value: str | int | None) -> int:
    """Object-count quota values are plain integers ("3"); "1k"-style counts do not occur here."""
    return int(str(value or "0"))


class QuotaJig(Jig):
    def apply_quota(
        self, namespace: str, source: str = TEST_QUOTAS, *, admission: bool = True
    ) -> client.V1ResourceQuota:
        """Create the quota (a refusal: SetupFailed), wait until the quota controller has counted
        the namespace, then (`admission`) until the API server's admission has seen it counted
        (see wait_admission_current). Both waits observe what the quota claims rest on: their end
        without success is a failure, not a set-up error. A claim that does not depend on
        admission (the quota's status) passes admission=False."""
        (quota,) = self.manifests.apply(source, namespace)
        counted = self.wait_counted(namespace, quota["metadata"]["name"])
        if admission:
            self.wait_admission_current(namespace)
        return counted

    def wait_admission_current(self, namespace: str, timeout: float = ADMISSION_TIMEOUT) -> None:
        """Quota admission reads quotas from the API server's informer (or, while that holds none
        for the namespace, from a list it keeps for 30 s), which may trail the read that saw a
        quota counted: a quota whose status.hard admission has not seen limits nothing, and an
        object over it is admitted. A probe quota (persistentvolumeclaims: 0) made after the ones
        under test refuses a dry-run claim once counted and seen: admission's view has then passed
        both (the informer sees changes in resourceVersion order)."""
        probe_quota, probe_claim = self.manifests.load(ADMISSION_PROBE, namespace)
        name = probe_quota["metadata"]["name"]
        self.manifests.create([probe_quota])
        try:
            wait.until_seen(
                lambda: self.create(probe_claim, dry_run=True),
                lambda answer: f"exceeded quota: {name}" in answer.message and answer,
                f"a dry-run PersistentVolumeClaim refused by ResourceQuota {namespace}/{name} "
                "(persistentvolumeclaims: 0)",
                timeout,
                describe=str,
                interval=0.2,
                hint=ADMISSION_HINT,
                # kube-apiserver's flags say the plugin is off: no need to wait for it
                final=lambda _: causes.admission_disabled(self.cluster, "ResourceQuota"),
            )
        finally:
            self.core.delete_namespaced_resource_quota(name, namespace)

    def wait_counted(self, namespace: str, name: str, timeout: float = QUOTA_TIMEOUT) -> client.V1ResourceQuota:
        """Until the quota controller has filled the quota's status (hard and used). Gives up when
        that controller is known not to run (causes.not_processed: its flags turn it off, or no
        status at all after causes.UNPROCESSED_LIMIT)."""
        started = time.monotonic()
        known = partial(causes.controller_cause, self.cluster, "resourcequota-controller")

        def not_counted(quota: client.V1ResourceQuota) -> str | None:
            if quota.status is not None and quota.status.hard:
                return None  # counted once: the controller runs
            what = f"ResourceQuota {namespace}/{name}"
            waited = time.monotonic() - started
            return causes.not_processed(self.cluster, what, "resourcequota controller", waited, known)

        return wait.until_seen(
            lambda: self.read(namespace, name),
            lambda quota: (
                quota.status is not None
                and quota.status.hard == quota.spec.hard
                and quota.status.used is not None
                and quota
            ),
            f"ResourceQuota {namespace}/{name} counted (status.hard and status.used set)",
            timeout,
            describe=describe_quota,
            interval=0.25,
            hint="is kube-controller-manager's resourcequota controller running?",
            final=not_counted,
        )

    def read(self, namespace: str, name: str) -> client.V1ResourceQuota:
        return self.core.read_namespaced_resource_quota(name, namespace)

    def used(self, namespace: str, name: str) -> dict[str, int]:
        return used_of(self.read(namespace, name))

    def hard(self, namespace: str, name: str) -> dict[str, int]:
        status = self.read(namespace, name).status
        return {k: quantity(v) for k, v in ((status.hard if status else None) or {}).items()}

    def wait_used(
        self, namespace: str, name: str, expected: dict[str, int], timeout: float = QUOTA_TIMEOUT
    ) -> dict[str, int]:
        # creations are charged by the ResourceQuota admission plugin; without it the quota
        # controller counts them only at its full resync (minutes): no use waiting for that
        off = causes.give_up_after(
            ADMISSION_GRACE, lambda: causes.admission_disabled(self.cluster, "ResourceQuota"), cluster=self.cluster
        )
        return wait.until_seen(
            lambda: self.read(namespace, name),
            lambda quota: used_of(quota) == expected and used_of(quota),
            f"ResourceQuota {namespace}/{name} status.used == {expected}",
            timeout,
            describe=describe_quota,
            final=off,
        )

    def pods(self, namespace: str, selector: str) -> list[str]:
        found = self.core.list_namespaced_pod(namespace, label_selector=selector).items
        return sorted(p.metadata.name for p in found)

    def event_messages(self, namespace: str, involved: str, reason: str) -> list[str]:
        events = self.core.list_namespaced_event(namespace, field_selector=f"involvedObject.name={involved}").items
        return [e.message for e in events if e.reason == reason]

    def create_each(self, source: str | list[Doc], namespace: str) -> list[Admission]:
        """Create the documents one by one, in order; a refusal does not stop the next ones."""
        docs = self.manifests.load(source, namespace) if isinstance(source, str) else source
        return [self.create(doc) for doc in docs]

    def create(self, doc: Doc, *, dry_run: bool = False) -> Admission:
        """Create one prepared document (dry_run: stored nothing); the API server's answer."""
        answer = answer_to(lambda: self.manifests.create([doc], dry_run=dry_run))
        return Admission(answer.status, answer.body, answer.warnings, doc["kind"], doc["metadata"]["name"])


def used_of(quota: client.V1ResourceQuota) -> dict[str, int]:
    status = quota.status
    return {k: quantity(v) for k, v in ((status.used if status else None) or {}).items()}


def describe_quota(quota: client.V1ResourceQuota) -> str:
    status = quota.status
    return f"hard {status.hard if status else None}, used {status.used if status else None}"


# --- kubectl with a context whose namespace is set ---------------------------------------------


class PrivateKubeconfig:
    """A 0600 copy of the cluster's kubeconfig (this context only, credentials inlined) in the
    run's private temp directory (RunContext.credentials_dir: removed at the end of the run, and by
    the sweep after a kill), for `kubectl config set-context` without touching the original. Never
    printed."""

    def __init__(self, cluster: Cluster, run: RunContext, name: str) -> None:
        self.cluster = cluster
        self.path = run.private_file(run.credentials_dir() / f"{name}.yaml")
        flat = cluster.kubectl("config", "view", "--raw", "--minify", "--flatten")
        self.path.write_text(flat.stdout, encoding="utf-8")

    def kubectl(self, *args: str, check: bool = True) -> str:
        done = self.cluster.kubectl(*args, check=False, kubeconfig=self.path)
        if check and done.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({done.returncode}): {done.stderr.strip()}")
        return done.stdout

    def set_namespace(self, namespace: str) -> None:
        """The notes' `kubectl config set-context <current context> --namespace=test`."""
        self.kubectl("config", "set-context", "--current", f"--namespace={namespace}")

    def context_namespace(self) -> str:
        return self.kubectl("config", "view", "--minify", "-o", "jsonpath={.contexts[0].context.namespace}")

    def pod_names(self, *flags: str) -> set[str]:
        out = self.kubectl("get", "pods", "-o", "name", *flags)
        return {line.removeprefix("pod/") for line in out.split()}

    def remove(self) -> None:
        Path(self.path).unlink(missing_ok=True)
