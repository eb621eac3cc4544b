"""What a failing test's namespaces looked like: events, pods, container logs, node conditions,
and the cluster's own components in kube-system (pods not ready, recent error lines).

Collected before the namespace is deleted, attached to the test report and written to
<artifacts>/<test id slug>/diagnostics.txt. Secrets and kubeconfigs are never read; all
text goes through redact().
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from kubernetes import client

from clusterproof.redact import redact

if TYPE_CHECKING:
    from clusterproof.cluster import Cluster

LOG_TAIL_LINES = 50
REQUEST_TIMEOUT = 10
SYSTEM_NAMESPACE = "kube-system"
SYSTEM_LOG_TAIL_LINES = 300
SYSTEM_ERRORS_PER_CONTAINER = 5
KLOG_ERROR = re.compile(r"^[EF]\d{4} ")  # klog: E1122 19:15:41.731324 ...
# what deleting a test's namespace makes the controllers log: not a fault
TEARDOWN_NOISE = "because it is being terminated"
SYSTEM_ERROR_WIDTH = 300  # some components dump whole objects into one line


def collect(cluster: Cluster, namespaces: Iterable[str], since_seconds: int | None = None) -> str:
    """Everything below, redacted; kube-system errors from the last `since_seconds` only."""
    sections = [f"cluster {cluster.name} ({cluster.provider}, offline={cluster.offline})"]
    for namespace in namespaces:
        sections.append(_guarded(f"namespace {namespace}", lambda ns=namespace: _namespace(cluster, ns)))
    sections.append(_guarded("nodes", lambda: _nodes(cluster.core)))
    sections.append(_guarded(SYSTEM_NAMESPACE, lambda: _system(cluster.core, since_seconds)))
    return redact("\n\n".join(sections)) + "\n"


def write(text: str, directory: Path) -> Path:
    path = directory / "diagnostics.txt"
    path.write_text(text, encoding="utf-8")
    return path


def _guarded(title: str, fn) -> str:
    try:
        return fn()
    except Exception as e:  # diagnostics must never hide the test's own failure
        return f"== {title}: could not collect ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})"


def _namespace(cluster: Cluster, namespace: str) -> str:
    core = cluster.core
    pods = core.list_namespaced_pod(namespace, _request_timeout=REQUEST_TIMEOUT).items
    events = core.list_namespaced_event(namespace, _request_timeout=REQUEST_TIMEOUT).items
    lines = [f"== namespace {namespace}", "-- pods"]
    lines += [line for pod in pods for line in describe_pod(pod)] or ["(none)"]
    lines.append("-- events (oldest first)")
    lines += [describe_event(e) for e in sorted(events, key=_event_time)] or ["(none)"]
    for pod in pods:
        lines += _logs(core, pod)
    return "\n".join(lines)


def describe_pod(pod: client.V1Pod) -> list[str]:
    status = pod.status or client.V1PodStatus()
    lines = [
        f"pod {pod.metadata.name}: phase={status.phase} node={pod.spec.node_name} "
        f"ip={status.pod_ip}" + (" (deleting)" if pod.metadata.deletion_timestamp else "")
    ]
    for c in status.conditions or []:
        if c.status != "True":
            lines.append(f"  condition {c.type}={c.status} {c.reason or ''} {c.message or ''}".rstrip())
    statuses = (status.init_container_statuses or []) + (status.container_statuses or [])
    for s in statuses:
        lines.append(f"  container {s.name}: {_state(s.state)} ready={s.ready} restarts={s.restart_count}")
        if s.last_state and (s.last_state.terminated or s.last_state.waiting):
            lines.append(f"    last: {_state(s.last_state)}")
    return lines


def _state(state: client.V1ContainerState | None) -> str:
    if state is None:
        return "unknown"
    if state.running:
        return "running"
    if state.waiting:
        return f"waiting {state.waiting.reason or ''} {state.waiting.message or ''}".rstrip()
    if state.terminated:
        t = state.terminated
        return f"terminated {t.reason or ''} exit={t.exit_code} {t.message or ''}".rstrip()
    return "unknown"


def describe_event(event: client.CoreV1Event) -> str:
    obj = event.involved_object
    count = f" x{event.count}" if event.count and event.count > 1 else ""
    return f"{event.type} {event.reason} {obj.kind}/{obj.name}{count}: {event.message or ''}".rstrip()


def _event_time(event: client.CoreV1Event) -> str:
    when = event.last_timestamp or event.event_time or event.metadata.creation_timestamp
    return when.isoformat() if when else ""


def _logs(core: client.CoreV1Api, pod: client.V1Pod) -> list[str]:
    """Current and previous logs of containers that are not ready or have restarted."""
    status = pod.status or client.V1PodStatus()
    lines = []
    for s in (status.init_container_statuses or []) + (status.container_statuses or []):
        if s.ready and not s.restart_count:
            continue
        wanted = [False, True] if s.restart_count else [False]
        for previous in wanted:
            label = "previous" if previous else "current"
            try:
                text = _read_log(core, pod, s.name, previous=previous, tail_lines=LOG_TAIL_LINES)
            except client.ApiException as e:
                text = f"(no log: HTTP {e.status} {e.reason})"
            lines.append(f"-- log {pod.metadata.name}/{s.name} ({label}, last {LOG_TAIL_LINES} lines)")
            lines.append(text.rstrip() or "(empty)")
    return lines


def _read_log(
    core: client.CoreV1Api,
    pod: client.V1Pod,
    container: str,
    *,
    tail_lines: int,
    previous: bool = False,
    since_seconds: int | None = None,
) -> str:
    since = {"since_seconds": since_seconds} if since_seconds else {}
    return core.read_namespaced_pod_log(
        pod.metadata.name,
        pod.metadata.namespace,
        container=container,
        previous=previous,
        tail_lines=tail_lines,
        _request_timeout=REQUEST_TIMEOUT,
        **since,
    )


def _nodes(core: client.CoreV1Api) -> str:
    lines = ["== nodes"]
    for node in core.list_node(_request_timeout=REQUEST_TIMEOUT).items:
        conditions = (node.status.conditions if node.status else None) or []
        ready = next((c for c in conditions if c.type == "Ready"), None)
        lines.append(f"node {node.metadata.name}: Ready={ready.status if ready else '?'}")
        for c in conditions:
            unusual = (c.type == "Ready") != (c.status == "True")
            if unusual:
                lines.append(f"  condition {c.type}={c.status} {c.reason or ''} {c.message or ''}".rstrip())
        for t in node.spec.taints or []:
            lines.append(f"  taint {t.key}={t.value or ''}:{t.effect}")
    return "\n".join(lines)


def _system(core: client.CoreV1Api, since_seconds: int | None) -> str:
    """kube-system pods that are not ready, and the last error lines each component logged
    (a kube-proxy that fails to sync explains a Service that misroutes)."""
    window = f"the last {since_seconds}s" if since_seconds else f"the last {SYSTEM_LOG_TAIL_LINES} log lines"
    lines = [f"== {SYSTEM_NAMESPACE}: pods not ready; klog errors in {window}"]

    for pod in core.list_namespaced_pod(SYSTEM_NAMESPACE, _request_timeout=REQUEST_TIMEOUT).items:
        statuses = (pod.status.container_statuses if pod.status else None) or []
        if not statuses or not all(s.ready for s in statuses):
            lines += describe_pod(pod)
        for container in (pod.spec.containers if pod.spec else None) or []:
            try:
                text = _read_log(
                    core, pod, container.name, tail_lines=SYSTEM_LOG_TAIL_LINES, since_seconds=since_seconds
                )
            except client.ApiException:
                continue
            errors = [line for line in text.splitlines() if KLOG_ERROR.match(line) and TEARDOWN_NOISE not in line]
            if errors:
                lines.append(f"-- errors {pod.metadata.name}/{container.name} (last {SYSTEM_ERRORS_PER_CONTAINER})")
                lines += [_clip(line) for line in errors[-SYSTEM_ERRORS_PER_CONTAINER:]]
    if len(lines) == 1:
        lines.append("(all pods ready, no errors logged)")
    return "\n".join(lines)


def _clip(line: str) -> str:
    return line if len(line) <= SYSTEM_ERROR_WIDTH else line[: SYSTEM_ERROR_WIDTH - 1] + "…"
