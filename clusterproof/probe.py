"""Traffic checks: HTTP from the test host and from a client pod inside the cluster.

Every request uses a new connection (a new Session, `Connection: close`; in-cluster a new
curl/nc process), so a Service's load balancing is sampled per connection, as upstream's
reachability checks do. One answer proves nothing about spreading: sample until the set of
answering backends is complete, within a request budget; then on, counting the requests that fail
once the rules are in place (a stale endpoint, a black hole), against a stated tolerance.
"""

from __future__ import annotations

import re
import shlex
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import requests
from kubernetes import client

from clusterproof import wait
from clusterproof.api_answers import unless_missing
from clusterproof.errors import ProbeError, one_line
from clusterproof.pod_exec import ExecResult, exec_in_pod

if TYPE_CHECKING:
    from clusterproof.cluster import Cluster

CONNECT_TIMEOUT = 2.0
READ_TIMEOUT = 3.0


@dataclass(frozen=True)
class HttpAnswer:
    url: str
    status: int
    body: str
    headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


def http_get(
    url: str,
    *,
    timeout: float = READ_TIMEOUT,
    headers: Mapping[str, str] | None = None,
    verify: bool | str = True,
) -> HttpAnswer:
    """One GET on a fresh connection. Raises ProbeError when no HTTP answer comes back."""
    with requests.Session() as session:
        try:
            response = session.get(
                url,
                headers={"Connection": "close", **(headers or {})},
                timeout=(min(CONNECT_TIMEOUT, timeout), timeout),
                verify=verify,
                allow_redirects=False,
            )
        except requests.RequestException as e:
            raise ProbeError(f"GET {url}: {request_error(e)}") from None
        return HttpAnswer(url, response.status_code, response.text, dict(response.headers))


def request_error(error: requests.RequestException) -> str:
    """requests' error in its cause's words, without urllib3's wrapping and object addresses, so
    that alike failures read (and are counted) alike: `ConnectTimeout: Connection to 172.20.0.3
    timed out. (connect timeout=2.0)`, `ConnectionError: Failed to establish a new connection:
    [Errno 111] Connection refused`, `ReadTimeout: Read timed out. (read timeout=3.0)`."""
    text = str(error)
    caused = re.search(r"\(Caused by \w+\((.*)\)\)$", text, re.S)
    if caused:
        text = caused.group(1)
    text = re.sub(r"<[^<>]*>[:,]?\s*", "", text).strip("'\" ")
    text = re.sub(r"^\w*Connection\w*\(host=[^)]*\):\s*", "", text).strip("'\" ")
    return f"{type(error).__name__}: {one_line(text, 200, first_line=True)}"


# --- sampling backends ---------------------------------------------------------------------


# Once every expected backend has answered, the Service's rules are in place: a request failing
# after that (refused, timed out, no HTTP answer) is evidence against the claim, e.g. a stale
# endpoint or a black hole taking a share of the connections. Tolerated: one in this many of them.
TOLERATED_ONE_IN = 20
# requests sampled after the set of backends is complete, at least (the budget may ask more)
CONFIRM_REQUESTS = 20


class ExecFailed(ProbeError):
    """No request was sent: the exec into the client pod failed (an API hiccup on a loaded node).
    Says nothing of the target, so it never counts against it."""


@dataclass
class SampleResult:
    """What `sample_backends` saw; str() is one line for an assertion message."""

    url: str
    expected: frozenset[str]
    seen: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    requests: int = 0
    seconds: float = 0.0
    requests_after: int = 0  # requests sent once every expected backend had answered
    failed_after: list[str] = field(default_factory=list)  # the errors of those (not of the probing side)

    @property
    def complete(self) -> bool:
        """Every expected backend answered at least once."""
        return self.expected <= set(self.seen)

    @property
    def exact(self) -> bool:
        """The answering set is exactly the expected set."""
        return set(self.seen) == set(self.expected)

    @property
    def missing(self) -> set[str]:
        return set(self.expected) - set(self.seen)

    @property
    def unexpected(self) -> set[str]:
        return set(self.seen) - set(self.expected)

    @property
    def tolerated(self) -> int:
        """Failed requests tolerated after completion: one in TOLERATED_ONE_IN."""
        return self.requests_after // TOLERATED_ONE_IN

    @property
    def too_many_failures(self) -> bool:
        return len(self.failed_after) > self.tolerated

    def failures_after(self) -> str:
        """`k of n requests failed once every backend had answered (tolerated: t): 3x refused; ...`"""
        kinds = Counter(map(error_kind, self.failed_after))
        first = "; ".join(f"{n}x {e}" for e, n in kinds.most_common(3))
        return (
            f"{len(self.failed_after)} of {self.requests_after} requests failed once every backend had answered "
            f"(tolerated: {self.tolerated}, one in {TOLERATED_ONE_IN}): {first}"
        )

    def __str__(self) -> str:
        seen = ", ".join(f"{k}: {v}" for k, v in sorted(self.seen.items())) or "none"
        text = f"{self.url}: {self.requests} requests in {self.seconds:.0f}s, answered by {{{seen}}}"
        if self.missing:
            text += f", missing {sorted(self.missing)}"
        if self.unexpected:
            text += f", unexpected {sorted(self.unexpected)}"
        if self.errors:
            kinds = Counter(map(error_kind, self.errors))
            text += ", errors: " + "; ".join(f"{n}x {e}" for e, n in kinds.most_common(3))
        if self.failed_after:
            text += f" ({len(self.failed_after)} of them after every backend had answered)"
        return text


def error_kind(error: str) -> str:
    """An error as counted: durations left out (curl's "timed out after 3001 milliseconds")."""
    return re.sub(r"\b\d+ (milliseconds|ms)\b", r"N \1", error)


def require_ok(answer: HttpAnswer) -> HttpAnswer:
    """The answer, if 2xx; else ProbeError (a wait retries it)."""
    if not answer.ok:
        raise ProbeError(f"HTTP {answer.status}")
    return answer


def default_budget(expected: Iterable[str]) -> int:
    # a backend missed by chance after 20 tries per backend: n * (1 - 1/n)^(20n) < 1e-8 for n <= 10
    return max(30, 20 * len(set(expected)))


# kube-proxy rewrites its rules on its own loop after Endpoints/EndpointSlices change, so a
# backend the API already lists may be missing from a node's rules for a few seconds
SETTLE_SECONDS = 30.0
# the first answer through a Service, a node port or a new route (same reason)
ANSWER_TIMEOUT = 60.0


def hostname_of(answer: HttpAnswer) -> str:
    """agnhost serve-hostname / netexec /hostname answer with the pod's hostname."""
    return answer.body.strip()


def sample(
    fetch: Callable[[int], Iterable[HttpAnswer | ProbeError]],
    url: str,
    expected: Iterable[str],
    *,
    never: Iterable[str] = (),
    max_requests: int | None = None,
    settle: float = 0.0,
    batch: int = 10,
    backend_of: Callable[[HttpAnswer], str] = hostname_of,
    clock: Callable[[], float] = time.monotonic,
) -> SampleResult:
    """Drive `fetch(n)` (n fresh requests) until every expected backend answered, then on until
    the request budget is spent and at least CONFIRM_REQUESTS more were sent: a request failing
    then is counted against the target (`failed_after`). Gives up, incomplete, once the budget is
    spent and `settle` seconds have passed. With `never` (backends that must not answer) the whole
    budget is spent, so their absence means something. Non-2xx answers and connection failures
    are recorded as errors; an ExecFailed (nothing was sent) counts against nothing."""
    never = frozenset(never)
    result = SampleResult(url, frozenset(expected))
    budget = max_requests or default_budget(result.expected | never)
    started = clock()

    def finished() -> bool:
        if result.complete:
            return result.requests >= budget and result.requests_after >= CONFIRM_REQUESTS
        return result.requests >= budget and clock() - started >= settle

    while not finished():
        left = budget - result.requests
        if result.complete:
            left = max(left, CONFIRM_REQUESTS - result.requests_after)
        for answer in fetch(min(batch, left) if left > 0 else batch):
            result.requests += 1
            after = result.complete and not isinstance(answer, ExecFailed)
            result.requests_after += after
            if isinstance(answer, ProbeError):
                error = _strip_url(str(answer), url)
            elif not answer.ok:
                error = f"HTTP {answer.status}"
            else:
                result.seen[backend_of(answer)] += 1
                continue
            result.errors.append(error)
            if after:
                result.failed_after.append(error)
        result.seconds = clock() - started
    return result


def sample_backends(
    url: str,
    expected: Iterable[str],
    *,
    never: Iterable[str] = (),
    max_requests: int | None = None,
    settle: float = SETTLE_SECONDS,
    timeout: float = READ_TIMEOUT,
    headers: Mapping[str, str] | None = None,
    backend_of: Callable[[HttpAnswer], str] = hostname_of,
) -> SampleResult:
    """From the test host: GET url on new connections until every expected hostname answered
    (see `sample` for `never` and `settle`)."""

    def fetch(n: int) -> list[HttpAnswer | ProbeError]:
        answers: list[HttpAnswer | ProbeError] = []
        for _ in range(n):
            try:
                answers.append(http_get(url, timeout=timeout, headers=headers))
            except ProbeError as e:
                answers.append(e)
        return answers

    return sample(fetch, url, expected, never=never, max_requests=max_requests, settle=settle, backend_of=backend_of)


# --- inside the cluster ----------------------------------------------------------------------


_END = "@@clusterproof-end"


class ClientPod:
    """A pod running `agnhost pause` to send requests from inside the cluster.

    HTTP uses curl when the image has it (upstream's agnhost does), else netcat with a
    hand-written HTTP/1.0 request (the offline agnhost image has busybox + netcat-openbsd).
    """

    def __init__(
        self,
        cluster: Cluster,
        namespace: str,
        image: str,
        *,
        name: str = "client",
        node_name: str | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> None:
        self.cluster = cluster
        self.namespace = namespace
        self.image = image
        self.name = name
        self.node_name = node_name
        self.labels = dict(labels or {})
        self.pod: client.V1Pod | None = None
        self._http_tool: str | None = None

    def manifest(self) -> dict:
        spec: dict = {
            "containers": [{"name": "client", "image": self.image, "args": ["pause"]}],
            "terminationGracePeriodSeconds": 0,
        }
        if self.node_name:
            spec["nodeName"] = self.node_name
        labels = {"app.kubernetes.io/name": "clusterproof-client", **self.labels}
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": self.name, "namespace": self.namespace, "labels": labels},
            "spec": spec,
        }

    def start(self, timeout: float = 120) -> ClientPod:
        self.cluster.core.create_namespaced_pod(self.namespace, self.manifest())
        self.pod = wait.pod_ready(self.cluster.core, self.namespace, self.name, timeout)
        return self

    @property
    def ip(self) -> str:
        if self.pod is None:
            raise ProbeError(f"client pod {self.name} not started")
        return self.pod.status.pod_ip

    def exec(self, argv: list[str], *, timeout: float = 60) -> ExecResult:
        return exec_in_pod(self.cluster.core, self.namespace, self.name, argv, timeout=timeout)

    def sh(self, script: str, *, timeout: float = 60) -> ExecResult:
        return self.exec(["sh", "-c", script], timeout=timeout)

    def http(self, url: str, *, timeout: float = READ_TIMEOUT) -> HttpAnswer:
        """One GET on a fresh connection from inside the pod; raises ProbeError on no answer."""
        answer = self.http_many(url, 1, timeout=timeout)[0]
        if isinstance(answer, ProbeError):
            raise answer
        return answer

    def await_answer(self, url: str, what: str, timeout: float = ANSWER_TIMEOUT) -> HttpAnswer:
        """GET until a 2xx answer comes: a Service's rules or a route may lag behind the API."""

        return wait.until(
            lambda: require_ok(self.http(url)),
            f"an HTTP answer from {what} ({url}) inside pod {self.name}",
            timeout,
            describe=str,
        )

    def http_many(self, url: str, count: int, *, timeout: float = READ_TIMEOUT) -> list[HttpAnswer | ProbeError]:
        """`count` GETs, each a new process and connection, in one exec (exec is the slow part)."""
        one = self._request_command(url, timeout)
        script = f'for i in $(seq {int(count)}); do {one} 2>&1; rc=$?; echo; echo "{_END} $rc"; done'
        result = self.sh(script, timeout=count * (timeout + 2) + 30)
        answers = parse_raw_responses(result.stdout, url)
        if len(answers) != count:
            raise ProbeError(
                f"GET {url} from pod {self.name}: expected {count} answers, parsed {len(answers)} "
                f"(rc {result.rc}: {one_line(result.stderr or result.stdout, 200, first_line=True)})"
            )
        return answers

    def sample_backends(
        self,
        url: str,
        expected: Iterable[str],
        *,
        never: Iterable[str] = (),
        max_requests: int | None = None,
        settle: float = SETTLE_SECONDS,
        timeout: float = READ_TIMEOUT,
        backend_of: Callable[[HttpAnswer], str] = hostname_of,
    ) -> SampleResult:
        """Fresh connections from this pod until every expected backend answered (see `sample`)."""

        def fetch(n: int) -> list[HttpAnswer | ProbeError]:
            try:
                return self.http_many(url, n, timeout=timeout)
            except Exception as e:  # one failed exec (API hiccup on a loaded node) is n errors, not the end
                return [
                    ExecFailed(f"exec in pod {self.name}: {type(e).__name__}: {one_line(e, 200, first_line=True)}")
                ] * n

        return sample(
            fetch,
            url,
            expected,
            never=never,
            max_requests=max_requests,
            settle=settle,
            backend_of=backend_of,
        )

    def _request_command(self, url: str, timeout: float) -> str:
        if self._http_tool is None:
            found = self.sh("command -v curl >/dev/null 2>&1 && echo curl || echo nc")
            self._http_tool = found.stdout.strip() or "nc"
        if self._http_tool == "curl":
            return f"curl -sS -g -i --max-time {timeout:g} -H 'Connection: close' {shlex.quote(url)}"
        parts = urlsplit(url)
        if parts.scheme != "http":
            raise ProbeError(f"{url}: the client image has no curl, netcat speaks plain http only")
        host = parts.hostname or ""
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        lines = [f"GET {path} HTTP/1.0", f"Host: {parts.netloc}", "Connection: close", ""]
        request = " ".join(shlex.quote(line) for line in lines)
        return f"printf '%s\\r\\n' {request} | nc -w {max(1, int(timeout))} {shlex.quote(host)} {parts.port or 80}"

    def delete(self) -> None:
        core = self.cluster.core
        unless_missing(lambda: core.delete_namespaced_pod(self.name, self.namespace, grace_period_seconds=0))


def parse_raw_responses(output: str, url: str) -> list[HttpAnswer | ProbeError]:
    """Split `<raw HTTP response or error>\\n@@clusterproof-end <rc>` chunks into answers."""
    answers: list[HttpAnswer | ProbeError] = []
    chunk: list[str] = []
    for line in output.split("\n"):
        if line.startswith(_END):
            rc = line[len(_END) :].strip()
            answers.append(_parse_one("\n".join(chunk).rstrip("\n"), url, rc))
            chunk = []
        else:
            chunk.append(line)
    return answers


_STATUS = re.compile(r"^HTTP/\d(?:\.\d)?\s+(\d{3})")


def _parse_one(raw: str, url: str, rc: str) -> HttpAnswer | ProbeError:
    text = raw.replace("\r\n", "\n")
    # curl -i prints one header block per response, a 100 Continue included: keep the last
    blocks = [m.start() for m in re.finditer(r"^HTTP/\d", text, re.M)]
    if not blocks:
        detail = one_line(text, 200, first_line=True) or f"exit code {rc}"
        return ProbeError(f"GET {url}: no HTTP answer ({detail})")
    text = text[blocks[-1] :]
    head, _, body = text.partition("\n\n")
    status = _STATUS.match(head)
    headers = {}
    for line in head.split("\n")[1:]:
        key, sep, value = line.partition(":")
        if sep:
            headers[key.strip()] = value.strip()
    if status is None:
        return ProbeError(f"GET {url}: unreadable status line {one_line(head, 200, first_line=True)!r}")
    return HttpAnswer(url, int(status.group(1)), body, headers)


def _strip_url(message: str, url: str) -> str:
    return message.replace(f"GET {url}: ", "")
