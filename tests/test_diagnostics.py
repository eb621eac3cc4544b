"""diagnostics.collect on a FAKE cluster whose CoreV1Api returns canned objects (no API server)."""

from datetime import UTC, datetime
from types import SimpleNamespace

from kubernetes import client

from clusterproof import diagnostics

TOKEN = "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJrdWJlcm5ldGVzIn0.c2lnbmF0dXJlLXNpZ25hdHVyZQ"


def container_status(name, ready, restarts, waiting=None):
    state = client.V1ContainerState(
        waiting=client.V1ContainerStateWaiting(reason=waiting) if waiting else None,
        running=None if waiting else client.V1ContainerStateRunning(),
    )
    last = client.V1ContainerState(terminated=client.V1ContainerStateTerminated(exit_code=1, reason="Error"))
    return client.V1ContainerStatus(
        name=name,
        image="i",
        image_id="",
        ready=ready,
        restart_count=restarts,
        state=state,
        last_state=last if restarts else None,
    )


class FakeCore:
    """Fake CoreV1Api: canned pods, events, logs and nodes; records log requests."""

    def __init__(self):
        self.log_requests = []

    def list_namespaced_pod(self, namespace, _request_timeout=None):
        pods = [
            client.V1Pod(
                metadata=client.V1ObjectMeta(name="web-1", namespace=namespace),
                spec=client.V1PodSpec(containers=[], node_name="kind-worker"),
                status=client.V1PodStatus(
                    phase="Running",
                    pod_ip="10.244.1.5",
                    conditions=[client.V1PodCondition(type="Ready", status="False", reason="ContainersNotReady")],
                    container_statuses=[container_status("web", False, 2, waiting="CrashLoopBackOff")],
                ),
            ),
            client.V1Pod(
                metadata=client.V1ObjectMeta(name="ok-1", namespace=namespace),
                spec=client.V1PodSpec(containers=[], node_name="kind-worker2"),
                status=client.V1PodStatus(phase="Running", container_statuses=[container_status("c", True, 0)]),
            ),
        ]
        return SimpleNamespace(items=pods)

    def list_namespaced_event(self, namespace, _request_timeout=None):
        event = client.CoreV1Event(
            metadata=client.V1ObjectMeta(name="e1"),
            involved_object=client.V1ObjectReference(kind="Pod", name="web-1"),
            reason="BackOff",
            type="Warning",
            message="Back-off restarting failed container",
            count=3,
            last_timestamp=datetime(2026, 11, 22, tzinfo=UTC),
        )
        return SimpleNamespace(items=[event])

    def read_namespaced_pod_log(self, name, namespace, container, previous, tail_lines, _request_timeout):
        self.log_requests.append((name, container, previous))
        return f"starting\nusing token: {TOKEN}\n"

    def list_node(self, _request_timeout=None):
        node = client.V1Node(
            metadata=client.V1ObjectMeta(name="kind-worker"),
            spec=client.V1NodeSpec(taints=[client.V1Taint(key="k", value="v", effect="NoSchedule")]),
            status=client.V1NodeStatus(conditions=[client.V1NodeCondition(type="Ready", status="True")]),
        )
        return SimpleNamespace(items=[node])


def test_collect_shows_pods_events_logs_nodes_and_redacts(tmp_path):
    core = FakeCore()
    cluster = SimpleNamespace(name="cp-x", provider="kind", offline=True, core=core)
    text = diagnostics.collect(cluster, ["ns-1"])
    assert "pod web-1: phase=Running node=kind-worker ip=10.244.1.5" in text
    assert "container web: waiting CrashLoopBackOff ready=False restarts=2" in text
    assert "last: terminated Error exit=1" in text
    assert "Warning BackOff Pod/web-1 x3: Back-off restarting failed container" in text
    assert "-- log web-1/web (previous, last 50 lines)" in text
    assert "node kind-worker: Ready=True" in text and "taint k=v:NoSchedule" in text
    assert TOKEN not in text and "[REDACTED]" in text
    # only the failing/restarted container's logs, current and previous
    assert core.log_requests == [("web-1", "web", False), ("web-1", "web", True)]
    path = diagnostics.write(text, tmp_path)
    assert path.read_text() == text


def test_collect_survives_api_errors():
    class Broken(FakeCore):
        def list_namespaced_pod(self, namespace, _request_timeout=None):
            raise client.ApiException(status=403, reason="Forbidden")

    cluster = SimpleNamespace(name="cp-x", provider="existing", offline=False, core=Broken())
    text = diagnostics.collect(cluster, ["ns-1"])
    assert "== namespace ns-1: could not collect (ApiException" in text
    assert "node kind-worker" in text
    assert "== kube-system: could not collect (ApiException" in text


def test_collect_shows_the_last_klog_errors_of_kube_system_components():
    class WithKubeProxy(FakeCore):
        def list_namespaced_pod(self, namespace, _request_timeout=None):
            if namespace != "kube-system":
                return SimpleNamespace(items=[])
            proxy = client.V1Pod(
                metadata=client.V1ObjectMeta(name="kube-proxy-abc", namespace=namespace),
                spec=client.V1PodSpec(containers=[client.V1Container(name="kube-proxy")], node_name="kind-worker"),
                status=client.V1PodStatus(
                    phase="Running", container_statuses=[container_status("kube-proxy", True, 0)]
                ),
            )
            return SimpleNamespace(items=[proxy])

        def read_namespaced_pod_log(self, name, namespace, container, previous, tail_lines, _request_timeout, **kw):
            self.log_requests.append((name, container, previous, kw.get("since_seconds")))
            errors = [f"E1122 19:15:{n:02d}.000000       1 proxier.go:882] sync {n} failed" for n in range(8)]
            return "\n".join(
                ["I1122 19:13:06.000000       1 server.go:1] started", *errors, "/usr/sbin/ip6tables: oops"]
            )

    core = WithKubeProxy()
    text = diagnostics.collect(
        SimpleNamespace(name="cp-x", provider="kind", offline=True, core=core), [], since_seconds=42
    )
    assert core.log_requests == [("kube-proxy-abc", "kube-proxy", False, 42)]
    assert "klog errors in the last 42s" in text
    assert "-- errors kube-proxy-abc/kube-proxy (last 5)" in text
    assert "sync 7 failed" in text and "sync 3 failed" in text and "sync 2 failed" not in text
    assert "started" not in text and "oops" not in text
    assert "pod kube-proxy-abc" not in text  # ready pods are not listed
