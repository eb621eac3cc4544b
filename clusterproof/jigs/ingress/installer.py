"""Installing a controller the bare-metal way, and waiting until it serves (its Jobs, pods, webhook, node port)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from kubernetes import client

from clusterproof import pod_states, wait
from clusterproof.api_answers import answer_to, unless_missing
from clusterproof.cluster import Cluster
from clusterproof.errors import Broken, ClusterproofError, SetupFailed, WaitTimeout
from clusterproof.jigs.ingress.classes import ClassInfo
from clusterproof.jigs.ingress.controller import Controller, find_controller
from clusterproof.jigs.ingress.installs import Install
from clusterproof.jigs.pods import start_failure_of
from clusterproof.manifests import CLUSTER_SCOPED_KINDS, Doc

if TYPE_CHECKING:
    from clusterproof.manifests import Manifests
    from clusterproof.timings import Stopwatch

INSTALL_TIMEOUT = 300.0  # image pulls (online), admission certificates, the first sync


def missing_images(cluster: Cluster, refs: Sequence[str]) -> list[str]:
    """Of `refs`, those no node has (as its kubelet reports the node's images)."""
    present = {
        name
        for node in cluster.core.list_node().items
        for image in ((node.status.images or []) if node.status else [])
        for name in image.names or []
    }
    return [ref for ref in refs if ref not in present]


def install(
    cluster: Cluster,
    what: Install,
    manifests: Manifests,
    stopwatch: Stopwatch,
    *,
    why: str = "",
    timeout: float = INSTALL_TIMEOUT,
) -> Controller:
    """Install `what` the bare-metal way and wait until it serves: its Jobs completed, a ready
    controller pod, its webhook admitting Ingresses of its class, its node port answering. Timed
    (a row of "where the time went"). What cannot start for reasons of this cluster's making (an
    image that cannot be pulled, a pod never scheduled, a refusal by the API server) is a set-up
    failure; a controller that does not become ready in `timeout` is Broken, naming the pod and
    its last state."""
    with stopwatch.measure(
        f"cluster {cluster.name}: install ingress controller {what.name} {what.version}",
        "its Jobs complete, a Ready controller pod, its webhook admitting, its node port answering",
    ):
        manifests.create(rendered(what, manifests))
        target = ClassInfo(what.class_name, what.controller)
        _wait_installed(cluster, what, find_controller(cluster, target, why=why, installed=what), timeout)
    # found again now that it runs: its version as its pod's image says
    return find_controller(cluster, target, why=why, installed=what)


def rendered(what: Install, manifests: Manifests) -> list[Doc]:
    """The install's documents, ready to create in order: the Namespace first (created at once,
    so the cluster-scoped objects can name it as their owner: deleting the namespace removes them)."""
    docs = manifests.load(what.fixture, what.namespace)
    namespace, rest = docs[0], docs[1:]
    if namespace["kind"] != "Namespace" or namespace["metadata"]["name"] != what.namespace:
        raise ClusterproofError(f"{what.fixture}: the first document must be Namespace {what.namespace}")
    created = manifests.create([namespace])[0]
    owner = {"apiVersion": "v1", "kind": "Namespace", "name": what.namespace, "uid": created["metadata"]["uid"]}
    for doc in rest:
        if doc["kind"] in CLUSTER_SCOPED_KINDS:
            doc["metadata"]["ownerReferences"] = [owner]
    return rest


def _wait_installed(cluster: Cluster, what: Install, controller: Controller, timeout: float) -> None:
    ns = what.namespace
    for job in what.jobs:
        _settled(cluster, what, lambda job=job: wait_job_complete(cluster, ns, job, timeout))
    refused = wait.failed_create(cluster.core, ns)  # Pod Security or a quota forbidding its pods: final
    _settled(cluster, what, lambda: wait.pods_ready(cluster.core, ns, what.pod_selector, 1, timeout, never=refused))
    if what.webhook:
        # the API server admits an Ingress of the class only once the webhook has its certificate
        probe = ingress_probe(what.class_name)
        _settled(
            cluster,
            what,
            lambda: wait.until_seen(
                lambda: answer_to(lambda: dry_run_create(cluster, ns, probe)),
                lambda answer: answer if answer.accepted else None,
                f"the admission webhook of {what.name} admitting an Ingress of class {what.class_name} (dry run)",
                timeout,
                describe=str,
            ),
        )
    port = controller.node_port(80)
    node, ip = controller.node_ips()[0]
    _settled(cluster, what, lambda: controller.assert_unknown_host_not_found(ip, port, node, timeout=timeout))


def _settled(cluster: Cluster, what: Install, step: Callable[[], Any]) -> None:
    """Run one wait of the install: a pod that cannot start for reasons no claim observes (not
    scheduled, its image not to be had: pods.start_failure_of) is a set-up failure; any other wait
    that came to nothing makes the controller Broken."""
    try:
        step()
    except WaitTimeout as e:
        pods = cluster.core.list_namespaced_pod(what.namespace).items
        cause = next(filter(None, (start_failure_of(pod, []) for pod in pods)), None)
        if cause:
            raise SetupFailed(f"install ingress controller {what.name} {what.version}", f"{cause} ({e})") from e
        raise Broken(f"ingress controller {what.name} {what.version} did not become ready: {e}") from e


def read_job(cluster: Cluster, namespace: str, name: str) -> client.V1Job | None:
    return unless_missing(lambda: cluster.batch.read_namespaced_job(name, namespace))


def wait_job_complete(cluster: Cluster, namespace: str, name: str, timeout: float) -> client.V1Job:
    def failed(job: client.V1Job | None) -> str | None:
        conditions = (job.status.conditions or []) if job and job.status else []
        return next((f"Job {name} failed: {c.message or c.reason}" for c in conditions if c.type == "Failed"), None)

    return wait.until_seen(
        lambda: read_job(cluster, namespace, name),
        lambda job: job if job and job.status and (job.status.succeeded or 0) >= 1 else None,
        f"Job {namespace}/{name} complete",
        timeout,
        describe=lambda job: "no such Job" if job is None else _job_state(cluster, namespace, name, job),
        final=failed,
    )


def _job_state(cluster: Cluster, namespace: str, name: str, job: client.V1Job) -> str:
    s = job.status
    pods = cluster.core.list_namespaced_pod(namespace, label_selector=f"job-name={name}").items
    return (
        f"active={s.active or 0} succeeded={s.succeeded or 0} failed={s.failed or 0}; "
        f"pods: {pod_states.describe_pods(pods)}"
    )


def ingress_probe(class_name: str) -> Doc:
    """An Ingress of the class, for dry-run creates (nothing is stored)."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": "clusterproof-admission-probe"},
        "spec": {
            "ingressClassName": class_name,
            "rules": [{"host": "admission-probe.clusterproof.test", "http": {"paths": [_path("/", "no-such-svc")]}}],
        },
    }


def _path(path: str, service: str) -> Doc:
    return {"path": path, "pathType": "Prefix", "backend": {"service": {"name": service, "port": {"number": 80}}}}


def dry_run_create(cluster: Cluster, namespace: str, doc: Doc) -> Any:
    return cluster.networking.create_namespaced_ingress(namespace, doc, dry_run="All")
