"""HTTP through the controller: a GET with a Host header, and the wait for the answer a route should give."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from clusterproof import urls, wait
from clusterproof.probe import HttpAnswer, http_get

ROUTE_TIMEOUT = 90.0  # a controller syncs a new Ingress within seconds; nginx reloads can lag

A = TypeVar("A")  # HttpAnswer or TlsAnswer: both have .status and .body


def get(ip: str, port: int, path: str, host: str, *, timeout: float = 3) -> HttpAnswer:
    return http_get(urls.url(ip, port, path), headers={"Host": host}, timeout=timeout)


def wait_answer(
    fetch: Callable[[], A],
    matches: Callable[[A], bool],
    expected: str,
    timeout: float = ROUTE_TIMEOUT,
    *,
    hint: wait.Hint = None,
    never: Callable[[], str | None] | None = None,
) -> A:
    """Repeat `fetch` (an HttpAnswer or TlsAnswer; no answer at all is a ProbeError, retried)
    until its answer matches; a timeout names the last answer (and the hint, when given).
    `never()`, asked whenever the answer is wrong or missing, names a cause no waiting cures
    (the controller scaled to zero): the wait gives up at once with it."""
    return wait.until_seen(
        fetch,
        lambda answer: answer if matches(answer) else None,
        expected,
        timeout,
        describe=lambda answer: f"HTTP {answer.status} {answer.body.strip()[:120]!r}",
        never=never,
        hint=hint,
    )


def answers_with(name: str) -> Callable[[HttpAnswer], bool]:
    return lambda answer: answer.ok and answer.body.strip() == name
