"""Running a command in a pod's container through the API server's exec (a websocket): its exit
code, stdout and stderr, standard input when given, and deadlines on the handshake and the run.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Callable
from typing import Any, NamedTuple

from kubernetes import client
from kubernetes.stream import stream
from kubernetes.stream.ws_client import ERROR_CHANNEL, STDIN_CHANNEL

from clusterproof.errors import ExecTimeout, ProbeError

EXEC_HANDSHAKE_TIMEOUT = 30.0


class ExecResult(NamedTuple):
    """rc, stdout, stderr = pod.exec([...])"""

    rc: int
    stdout: str
    stderr: str


def exec_in_pod(
    core: client.CoreV1Api,
    namespace: str,
    pod: str,
    argv: list[str],
    *,
    container: str | None = None,
    timeout: float = 60,
    stdin: bytes | None = None,
) -> ExecResult:
    """Run argv in a container (no tty); returns rc, stdout, stderr. `stdin`, when given, is
    written to the process's standard input, closed after it where the API server speaks the v5
    stream protocol (older ones cannot: the command must stop reading by itself, e.g. `head -c`).
    Raises ExecTimeout when the process has not ended within `timeout` seconds."""
    extra = {"container": container} if container else {}
    # an API client of its own: stream() swaps the client's call_api for the handshake's
    # duration, and a handshake given up on (below) would leave a shared client swapped
    exec_api = client.CoreV1Api(client.ApiClient(core.api_client.configuration))
    ws = _open_exec_stream(
        lambda: stream(
            exec_api.connect_get_namespaced_pod_exec,
            pod,
            namespace,
            command=argv,
            stdin=stdin is not None,
            stdout=True,
            stderr=True,
            tty=False,
            _preload_content=False,
            **extra,
        ),
        f"exec in {namespace}/{pod} {argv[:3]}",
    )
    deadline = time.monotonic() + timeout
    out: list[str] = []
    err: list[str] = []
    try:
        if stdin is not None:
            ws.write_stdin(stdin)
            ws.close_channel(STDIN_CHANNEL)  # v5 only; a no-op on older servers
        while ws.is_open():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ExecTimeout(f"exec in {namespace}/{pod} {argv[:3]}: no exit within {timeout:g}s")
            ws.update(timeout=min(remaining, 1.0))
            out.append(ws.read_stdout(timeout=0) or "")
            err.append(ws.read_stderr(timeout=0) or "")
        out.append(ws.read_stdout(timeout=0) or "")
        err.append(ws.read_stderr(timeout=0) or "")
        rc, failure = exit_status(ws.read_channel(ERROR_CHANNEL, timeout=0))
    finally:
        ws.close()
    return ExecResult(rc, "".join(out), "".join(err) + failure)


def exit_status(status: str | bytes | None) -> tuple[int, str]:
    """The exit code in an exec's status channel (a metav1.Status): 0 for Success, the ExitCode
    cause for NonZeroExitCode; otherwise (the command could not start, no status at all) -1 and
    the server's message, for stderr."""
    if isinstance(status, bytes):
        status = status.decode("utf-8", "replace")
    try:
        found = json.loads(status) if status else None
    except ValueError:
        found = None
    if not isinstance(found, dict):
        return -1, f"exec ended without an exit status{': ' + status if status else ''}"
    if found.get("status") == "Success":
        return 0, ""
    for cause in (found.get("details") or {}).get("causes") or []:
        if cause.get("reason") == "ExitCode" and str(cause.get("message", "")).lstrip("-").isdigit():
            return int(cause["message"]), ""
    return -1, str(found.get("message") or status)


def _open_exec_stream(open_stream: Callable[[], Any], what: str) -> Any:
    """kubernetes' stream() opens its websocket with no timeout (nor a way to pass one): a
    handshake the API server never answers would hang the run. Open it on a daemon thread and
    give up after EXEC_HANDSHAKE_TIMEOUT; a late stream is dropped with the thread."""
    opened: queue.Queue[Any] = queue.Queue(maxsize=1)

    def run() -> None:
        try:
            opened.put(open_stream())
        except BaseException as e:  # handed to the caller's thread
            opened.put(e)

    threading.Thread(target=run, name="exec-handshake", daemon=True).start()
    try:
        result = opened.get(timeout=EXEC_HANDSHAKE_TIMEOUT)
    except queue.Empty:
        raise ProbeError(f"{what}: no websocket handshake within {EXEC_HANDSHAKE_TIMEOUT:g}s") from None
    if isinstance(result, BaseException):
        raise result
    return result
