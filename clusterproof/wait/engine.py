"""Waiting with deadlines: kubernetes watches for object state, polling for everything else.

A wait ends in one of three ways:
- what it waits for is there: its value is returned;
- the deadline passes: WaitTimeout("timed out after Ns waiting for <expected>; last seen: <state>");
- what it sees is final and can never become what it waits for (a Failed pod, a container in
  ImagePullBackOff): WaitGaveUp at once ("gave up after Ns waiting for <expected>: <final state>"),
  a WaitTimeout too. A check says so by raising `Never(state)`; `until_seen` and `watch_until`
  take a `final(state)` that names such a state (or returns None).
Every wait takes `hint=`: what to check when it comes to nothing (a string, or a function of the
last state seen that returns one or None); it ends the message ("; hint: ...").

"Not yet" is only what can still change. A check that raises one of the errors of a cluster still
settling (`is_not_yet`: a 404 or 5xx from the API, a connection or probe failure, a failed command,
an AssertionError of the check) is tried again, and that error is the last state seen. Anything
else (a TypeError, KeyError, AttributeError: a bug in the check; a 403 or 422 from the API: an
answer that waiting does not change) propagates at once.

What an object's state means (Ready, stuck for good, rolled out) is clusterproof.pod_states'; the
waits here only judge what they see with it.

`clock` and `watcher` are seams for unit tests (fake clock, fake watch); suites never pass them.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Callable
from typing import Any, TypeVar

import requests
import tenacity
import urllib3
import websocket
from kubernetes import client, watch

from clusterproof.errors import ProbeError, WaitGaveUp, WaitTimeout, one_line

T = TypeVar("T")
S = TypeVar("S")
Clock = Callable[[], float]
Watcher = Callable[[], watch.Watch]
Hint = str | Callable[[str], str | None] | None

DEFAULT_TIMEOUT = 120.0
# transient trouble on the wire: the watch is simply opened again until the deadline
_TRANSIENT = (urllib3.exceptions.HTTPError, ConnectionError, TimeoutError)
_RETRY_STATUS = {410, 429, 500, 502, 503, 504}
# API answers that may change by waiting: no answer (0: an exec handshake, a dropped connection),
# not there yet, conflict, gone (an expired watch), throttled, server trouble
_NOT_YET_STATUS = {0, 404, 409, 410, 429}
# what a check may raise while the cluster is still settling
_NOT_YET_ERRORS = (
    ProbeError,
    OSError,  # ConnectionError, TimeoutError, socket errors
    urllib3.exceptions.HTTPError,
    requests.RequestException,
    websocket.WebSocketException,
    subprocess.SubprocessError,  # a node command that failed or timed out
    AssertionError,  # a check's own "not as expected (yet)"
)


class WatchFailed(WaitTimeout):
    """A watch's window ended on an error of the watch itself (the API server unreachable, a stream
    that kept breaking), not quietly: nothing can be concluded from what it did not see."""


class Never(Exception):
    """Raised by a check: what it sees is final and will never become what the wait expects.
    `state` names it for the message; `last_seen`, when given, describes everything seen."""

    def __init__(self, state: str, last_seen: str | None = None) -> None:
        super().__init__(state)
        self.state = state
        self.last_seen = last_seen


def is_not_yet(error: BaseException) -> bool:
    """Whether a check's error may go away by waiting (see the module docstring)."""
    if isinstance(error, WaitGaveUp):
        return False
    if isinstance(error, WaitTimeout):  # a wait inside the check ran out: the outer one may go on
        return True
    if isinstance(error, client.ApiException):
        return error.status in _NOT_YET_STATUS or (error.status or 0) >= 500
    return isinstance(error, _NOT_YET_ERRORS)


def until(
    fn: Callable[[], T | None],
    description: str,
    timeout: float = DEFAULT_TIMEOUT,
    *,
    interval: float = 1.0,
    describe: Callable[[Any], str] = repr,
    hint: Hint = None,
    clock: Clock = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Call fn until it returns something truthy (returned) or the deadline passes. fn raises
    `Never(state)` when what it sees is final; a "not yet" error (`is_not_yet`) is retried and
    shows up as the last state seen; any other error propagates at once."""
    started = clock()
    deadline = started + timeout
    last = "nothing yet"
    while True:
        try:
            value = fn()
        except Never as e:
            seen = e.last_seen or e.state
            raise WaitGaveUp(
                description, e.state, clock() - started, last_seen=e.last_seen, hint=hint_text(hint, seen)
            ) from None
        except Exception as e:
            if not is_not_yet(e):
                raise
            last = f"{type(e).__name__}: {e}"
        else:
            if value:
                return value
            last = describe(value)
        if clock() >= deadline:
            raise WaitTimeout(description, last, timeout, hint=hint_text(hint, last))
        sleep(interval)


def hint_text(hint: Hint, last_seen: str) -> str | None:
    return hint(last_seen) if callable(hint) else hint


def until_seen(
    read: Callable[[], S],
    done: Callable[[S], T | None],
    description: str,
    timeout: float = DEFAULT_TIMEOUT,
    *,
    describe: Callable[[S], str],
    final: Callable[[S], str | None] | None = None,
    never: Callable[[], str | None] | None = None,
    interval: float = 1.0,
    **seams: Any,
) -> T:
    """until() for a condition on state read once per attempt: `done(state)` decides, `final(state)`
    names a state that can never become done (the wait gives up at once), and a timeout describes
    the last state read (without reading it again). `never()` names a cause outside what is read
    (a controller scaled to zero): asked after every attempt that failed, also when the read
    itself raised a "not yet" error (no answer at all), it ends the wait at once too."""
    last: list[S] = []

    def attempt() -> T | None:
        try:
            last[:] = [read()]
        except Exception as e:
            reason = never() if never is not None and is_not_yet(e) else None
            if reason:
                raise Never(reason, f"{type(e).__name__}: {e}") from None
            raise
        result = done(last[0])
        if not result:
            reason = (final(last[0]) if final is not None else None) or (never() if never is not None else None)
            if reason:
                raise Never(reason, describe(last[0]))
        return result

    return until(
        attempt,
        description,
        timeout,
        interval=interval,
        describe=lambda _: describe(last[0]) if last else "nothing read yet",
        **seams,
    )


def last_seen(
    read: Callable[[], S],
    done: Callable[[S], bool],
    description: str,
    timeout: float = DEFAULT_TIMEOUT,
    *,
    interval: float = 1.0,
    **seams: Any,
) -> S:
    """Read until `done(state)` or the deadline, and return the last state read either way: for
    checks that judge what was seen themselves (and name what is missing)."""
    last: list[S] = []

    def attempt() -> bool | None:
        last[:] = [read()]
        return done(last[0]) or None

    with contextlib.suppress(WaitTimeout):
        until(attempt, description, timeout, interval=interval, **seams)
    return last[0] if last else read()


def watch_until(
    list_fn: Callable[..., Any],
    done: Callable[[dict[str, Any]], Any],
    expected: str,
    describe: Callable[[dict[str, Any]], str],
    timeout: float = DEFAULT_TIMEOUT,
    *,
    final: Callable[[dict[str, Any]], str | None] | None = None,
    never: Callable[[], str | None] | None = None,
    check_every: float = 5.0,
    hint: Hint = None,
    clock: Clock = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    watcher: Watcher = watch.Watch,
    **list_kwargs: Any,
) -> Any:
    """Watch objects of `list_fn` (filtered by list_kwargs) into a name -> object dict until
    `done(objects)` returns something truthy, which is returned; `final(objects)` names a state
    that can never become done (WaitGaveUp at once, once a fresh listing confirms it: the first
    events of a watch may show only part of the objects). `never()` names a cause outside the
    objects watched (a controller refusing to create them: `failed_create`), asked every
    `check_every` seconds while nothing is done (the watch is cut into slices that long: objects
    that never come send no event). A new watch starts with the full current state (synthetic
    ADDED events), so each reconnect starts from a fresh dict."""
    started = clock()
    deadline = started + timeout
    objects: dict[str, Any] = {}
    last = "nothing seen yet"
    slices = [0]

    failure: BaseException | None = None  # the error that ended the latest stream, if one did

    def one_stream() -> Any:
        nonlocal failure
        remaining = deadline - clock()
        if remaining <= 0:
            return None
        if never is not None and slices[0]:
            reason = never()
            if reason:
                raise WaitGaveUp(expected, reason, clock() - started, last_seen=last, hint=hint_text(hint, last))
        slices[0] += 1
        try:
            found = streamed(remaining)
        except Exception as e:
            failure = e if _transient(e) else None
            raise
        failure = None
        return found

    def streamed(remaining: float) -> Any:
        nonlocal objects, last
        objects = {}
        last = describe(objects)
        w = watcher()
        seconds = min(remaining, check_every) if never is not None else remaining
        stream = w.stream(
            list_fn,
            timeout_seconds=max(1, int(seconds)),
            _request_timeout=remaining + 5,
            **list_kwargs,
        )
        for event in stream:
            obj = event["object"]
            name = _name(obj)
            if event["type"] == "DELETED":
                objects.pop(name, None)
            elif event["type"] in ("ADDED", "MODIFIED"):
                objects[name] = obj
            result = done(objects)
            last = describe(objects)
            if result:
                w.stop()
                return result
            if final is not None and final(objects):
                # confirmed on a full listing: during a watch's first events the view may be partial
                objects = {_name(o): o for o in list_fn(**list_kwargs, _request_timeout=30).items}
                result = done(objects)
                last = describe(objects)
                if result:
                    w.stop()
                    return result
                reason = final(objects)
                if reason:
                    w.stop()
                    raise WaitGaveUp(expected, reason, clock() - started, last_seen=last, hint=hint_text(hint, last))
            if clock() >= deadline:
                w.stop()
                break
        return None

    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception(_transient) | tenacity.retry_if_result(lambda r: not r),
        stop=lambda state: clock() >= deadline,
        wait=tenacity.wait_exponential(multiplier=0.2, max=2),
        sleep=sleep,
        reraise=True,
    )
    try:
        return retrying(one_stream)
    except tenacity.RetryError:
        if failure is None:
            raise WaitTimeout(expected, last, timeout, hint=hint_text(hint, last)) from None
        error: BaseException = failure
    except Exception as e:
        if not _transient(e):
            raise
        error = e
    seen = f"{last} (the watch failed: {type(error).__name__}: {one_line(error)})"
    raise WatchFailed(expected, seen, timeout, hint=hint_text(hint, seen)) from None


def seen_within(
    list_fn: Callable[..., Any],
    done: Callable[[dict[str, Any]], Any],
    window: float,
    *,
    default: Any = None,
    **kwargs: Any,
) -> Any:
    """Watch for `window` seconds: what `done(objects)` returned once truthy, or `default` when
    nothing came. For observations of something that should *not* happen (no load-balancer
    address, no Ingress address), where the window ending is the expected outcome. A window that
    ended on the watch's own error is no observation: WatchFailed is raised."""
    try:
        return watch_until(list_fn, done, f"an observation window of {window:g}s", lambda objs: "-", window, **kwargs)
    except WatchFailed:
        raise
    except WaitTimeout:
        return default


def _transient(e: BaseException) -> bool:
    if isinstance(e, client.ApiException):
        return e.status in _RETRY_STATUS
    return isinstance(e, _TRANSIENT)


def _name(obj: Any) -> str:
    meta = obj.metadata if hasattr(obj, "metadata") else obj.get("metadata", {})
    return meta.name if hasattr(meta, "name") else meta.get("name", "?")
