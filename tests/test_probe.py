"""Probing: raw HTTP parsing, backend sampling (with a fake fetch), and http_get against a
throwaway HTTP server on 127.0.0.1 (no cluster)."""

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import cycle

import pytest
import requests

from clusterproof.errors import ProbeError, one_line
from clusterproof.probe import (
    ExecFailed,
    HttpAnswer,
    error_kind,
    http_get,
    parse_raw_responses,
    request_error,
    sample,
    sample_backends,
)

URL = "http://10.96.0.10:80/hostname"


def test_parse_curl_and_nc_output_with_errors():
    output = (
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\nweb-1\n"
        "@@clusterproof-end 0\n"
        "curl: (7) Failed to connect to 10.96.0.10 port 80: Connection refused\n\n"
        "@@clusterproof-end 7\n"
        "HTTP/1.0 503 Service Unavailable\r\n\r\n\n"
        "@@clusterproof-end 0\n"
        "\n@@clusterproof-end 1\n"
    )
    ok, refused, unavailable, nothing = parse_raw_responses(output, URL)
    assert ok == HttpAnswer(URL, 200, "web-1", {"Content-Type": "text/plain", "Connection": "close"})
    assert isinstance(refused, ProbeError) and "Connection refused" in str(refused)
    assert isinstance(unavailable, HttpAnswer) and unavailable.status == 503
    assert isinstance(nothing, ProbeError) and "exit code 1" in str(nothing)


def test_parse_keeps_the_last_response_after_100_continue():
    output = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n\r\nbody\n@@clusterproof-end 0\n"
    (answer,) = parse_raw_responses(output, URL)
    assert (answer.status, answer.body) == (200, "body")


def fake_fetch(answers: Iterator):
    """Fake fetch: hands out scripted answers instead of sending requests."""
    calls = []

    def fetch(n):
        calls.append(n)
        return [next(answers) for _ in range(n)]

    fetch.calls = calls
    return fetch


def test_sample_goes_on_after_every_backend_answered_to_the_budget_and_confirmation():
    fetch = fake_fetch(cycle([HttpAnswer(URL, 200, "a"), HttpAnswer(URL, 200, "b")]))
    result = sample(fetch, URL, {"a", "b"}, batch=10)
    assert result.complete and result.exact
    assert result.requests == 40 and fetch.calls == [10, 10, 10, 10]  # the budget for two backends
    assert result.requests_after == 38 and not result.failed_after and not result.too_many_failures
    # a small budget still gets CONFIRM_REQUESTS after completion
    small = sample(fake_fetch(cycle([HttpAnswer(URL, 200, "a"), HttpAnswer(URL, 200, "b")])), URL, {"a", "b"},
                   max_requests=4, batch=10)
    assert small.requests == 22 and small.requests_after == 20


def test_failures_once_every_backend_answered_count_against_the_target_past_the_tolerance():
    # a stale endpoint: one connection in three goes to a dead pod IP
    answers = cycle([HttpAnswer(URL, 200, "a"), HttpAnswer(URL, 200, "b"), ProbeError(f"GET {URL}: timed out")])
    result = sample(fake_fetch(answers), URL, {"a", "b"}, batch=10)
    assert result.complete and result.exact  # the set of answering pods alone would hold
    assert result.requests == 40 and result.requests_after == 38
    assert len(result.failed_after) == 13 and result.tolerated == 1 and result.too_many_failures
    assert result.failures_after() == (
        "13 of 38 requests failed once every backend had answered (tolerated: 1, one in 20): 13x timed out"
    )
    assert str(result).endswith("errors: 13x timed out (13 of them after every backend had answered)")


def test_failures_before_every_backend_answered_and_failed_execs_are_not_counted():
    # rules still being written: errors first; then a lost exec (nothing was sent), then one timeout
    answers = iter(
        [ProbeError("GET x: refused")] * 5
        + [HttpAnswer(URL, 200, "a"), HttpAnswer(URL, 200, "b")]
        + [ExecFailed("exec in pod client: ApiException: 500")] * 10
        + [ProbeError("GET x: timed out")]
        + [HttpAnswer(URL, 200, "a")] * 40
    )
    result = sample(fake_fetch(answers), URL, {"a", "b"}, batch=10)
    assert result.requests == 40 and result.requests_after == 23 and result.failed_after == ["GET x: timed out"]
    assert result.tolerated == 1 and not result.too_many_failures
    assert len(result.errors) == 16


def test_sample_reports_missing_unexpected_and_errors_within_budget():
    answers = cycle(
        [
            HttpAnswer(URL, 200, "a\n"),
            HttpAnswer(URL, 200, "old-pod"),
            ProbeError(f"GET {URL}: timed out"),
            HttpAnswer(URL, 502, ""),
        ]
    )
    result = sample(fake_fetch(answers), URL, {"a", "b"}, max_requests=8)
    assert not result.complete
    assert result.requests == 8
    assert result.missing == {"b"} and result.unexpected == {"old-pod"}
    assert str(result) == (
        f"{URL}: 8 requests in 0s, answered by {{a: 2, old-pod: 2}}, missing ['b'], "
        "unexpected ['old-pod'], errors: 2x timed out; 2x HTTP 502"
    )


class FakeClock:
    """Fake time for `sample`: the test's fetch moves it on."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_sample_keeps_going_within_the_settle_window_for_a_late_backend():
    # kube-proxy lagging behind Endpoints: "b" shows up only after 12 s of answers from "a"
    clock = FakeClock()

    def fetch(n):
        clock.now += 1.0
        return [HttpAnswer(URL, 200, "b" if clock.now > 12 else "a") for _ in range(n)]

    result = sample(fetch, URL, {"a", "b"}, max_requests=10, settle=30, batch=10, clock=clock)
    assert result.complete and result.seconds == 15  # 13 s until "b", then two batches to confirm
    assert result.requests == 141 and result.requests_after == 20


def test_sample_gives_up_after_budget_and_settle_window():
    clock = FakeClock()

    def fetch(n):
        clock.now += 1.0
        return [HttpAnswer(URL, 200, "a")] * n

    result = sample(fetch, URL, {"a", "b"}, max_requests=10, settle=5, batch=10, clock=clock)
    assert result.missing == {"b"} and result.seconds == 5
    assert "requests in 5s" in str(result)


def test_sample_with_never_spends_the_whole_budget_and_reports_who_answered():
    fetch = fake_fetch(cycle([HttpAnswer(URL, 200, "a"), HttpAnswer(URL, 200, "b")]))
    result = sample(fetch, URL, {"a", "b"}, never={"not-ready"}, batch=10)
    assert result.complete and result.requests == 60  # default budget for three backends
    assert result.expected == {"a", "b"} and not result.unexpected


class _Hostnames(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive offered: the client must still close

    def do_GET(self):
        server = self.server
        server.peers.add(self.client_address)
        server.connection_headers.append(self.headers.get("Connection"))
        body = next(server.names).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def hostname_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hostnames)
    server.names = cycle(["pod-a", "pod-b", "pod-c"])
    server.peers = set()
    server.connection_headers = []
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_http_get_uses_a_new_connection_per_request(hostname_server):
    url = f"http://127.0.0.1:{hostname_server.server_port}/hostname"
    answers = [http_get(url) for _ in range(3)]
    assert [a.body for a in answers] == ["pod-a", "pod-b", "pod-c"]
    assert len(hostname_server.peers) == 3  # three client ports: three connections
    assert hostname_server.connection_headers == ["close"] * 3


def test_sample_backends_from_the_host(hostname_server):
    url = f"http://127.0.0.1:{hostname_server.server_port}/hostname"
    result = sample_backends(url, {"pod-a", "pod-b", "pod-c"})
    assert result.exact, str(result)


def test_http_get_connection_refused_is_a_probe_error():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ProbeError, match=rf"GET http://127.0.0.1:{port}/: ConnectionError"):
        http_get(f"http://127.0.0.1:{port}/", timeout=1)


def test_exec_whose_websocket_handshake_never_comes_back_is_a_probe_error(monkeypatch):
    """A local TCP server that accepts and never answers stands in for a stuck API server."""
    import socket
    import time

    from kubernetes import client

    from clusterproof import pod_exec

    with socket.create_server(("127.0.0.1", 0)) as silent:
        configuration = client.Configuration()
        configuration.host = f"http://127.0.0.1:{silent.getsockname()[1]}"
        core = client.CoreV1Api(client.ApiClient(configuration))
        monkeypatch.setattr(pod_exec, "EXEC_HANDSHAKE_TIMEOUT", 0.5)
        started = time.monotonic()

        with pytest.raises(ProbeError, match=r"no websocket handshake within 0.5s"):
            pod_exec.exec_in_pod(core, "ns", "pod", ["true"])

        assert time.monotonic() - started < 5
        # the abandoned handshake holds a client of its own: the caller's still makes plain API calls
        assert "call_api" not in vars(core.api_client)


def test_exec_stream_opener_hands_back_the_stream_or_the_error_of_its_thread():
    from clusterproof.pod_exec import _open_exec_stream

    assert _open_exec_stream(lambda: "stream", "exec") == "stream"

    def refused():
        raise ValueError("HTTP 404: pod not found")

    with pytest.raises(ValueError, match="pod not found"):
        _open_exec_stream(refused, "exec")


def test_one_line_of_an_error_is_redacted_collapsed_and_cut():
    """errors.one_line, as the probe's messages use it (first_line) and as the default (all lines)."""
    text = "  GET failed:   connection   refused\nAuthorization: Bearer abcdefghijklmnop\ntraceback ..."
    assert one_line(text, 200, first_line=True) == "GET failed: connection refused"
    assert one_line(ValueError(text)) == (
        "GET failed: connection refused Authorization: Bearer [REDACTED] traceback ..."
    )
    long = "ab " * 100  # 300 characters
    assert one_line(long, 200, first_line=True) == long[:197] + "..."
    assert one_line(long, None) == long.strip()
    assert one_line("A" * 130) == "[REDACTED BLOB]"  # a long base64-like run may be a credential
    assert one_line("", first_line=True) == "" and one_line("\n \n", first_line=True) == ""
    assert one_line("token: s3cr3t-value", redacted=False) == "token: s3cr3t-value"


def test_request_errors_read_in_their_causes_words_and_alike_failures_count_alike():
    refused = requests.ConnectionError(
        "HTTPConnectionPool(host='127.0.0.1', port=1): Max retries exceeded with url: / (Caused by NewConnectionError("
        "\"HTTPConnection(host='127.0.0.1', port=1): Failed to establish a new connection: [Errno 111] Connection "
        "refused\"))"
    )
    assert request_error(refused) == (
        "ConnectionError: Failed to establish a new connection: [Errno 111] Connection refused"
    )
    timeouts = [
        requests.ConnectTimeout(
            "HTTPConnectionPool(host='172.20.0.3', port=30000): Max retries exceeded with url: / (Caused by "
            f"ConnectTimeoutError(<HTTPConnection(host='172.20.0.3', port=30000) at 0x7f4d6c95{n}>, 'Connection to "
            "172.20.0.3 timed out. (connect timeout=2.0)'))"
        )
        for n in ("ec90", "de10")
    ]
    assert {request_error(e) for e in timeouts} == {
        "ConnectTimeout: Connection to 172.20.0.3 timed out. (connect timeout=2.0)"
    }
    read = requests.ReadTimeout("HTTPConnectionPool(host='127.0.0.1', port=60525): Read timed out. (read timeout=3)")
    assert request_error(read) == "ReadTimeout: Read timed out. (read timeout=3)"
    # curl's durations differ by a millisecond from one timeout to the next: one kind
    curl = [f"no HTTP answer (curl: (28) Connection timed out after {ms} milliseconds)" for ms in (3000, 3001, 3006)]
    assert {error_kind(e) for e in curl} == {"no HTTP answer (curl: (28) Connection timed out after N milliseconds)"}
