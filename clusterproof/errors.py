"""Errors of the framework, and `one_line`: any text or error as one line of a message a person can act on."""

from __future__ import annotations

from clusterproof.redact import redact

ONE_LINE_LIMIT = 160


def one_line(
    text_or_error: object, limit: int | None = ONE_LINE_LIMIT, *, first_line: bool = False, redacted: bool = True
) -> str:
    """`text_or_error` (an error: its str()) as one line of a message: credentials redacted (unless
    `redacted=False`); every run of whitespace, line breaks too, made one space, or with `first_line`
    only the first line that is not blank (the rest of a traceback or an HTTP answer dropped); longer
    than `limit` characters: cut to `limit`, ending in "..." (`limit=None`: never cut)."""
    text = str(text_or_error)
    if redacted:
        text = redact(text)
    if first_line:
        lines = text.strip().splitlines()
        text = lines[0] if lines else ""
    line = " ".join(text.split())
    return line if limit is None or len(line) <= limit else line[: limit - 3] + "..."


class ClusterproofError(Exception):
    """Base class; str(error) is the whole, single-line explanation."""


class ManifestNotFound(ClusterproofError):
    pass


class ManifestError(ClusterproofError):
    """A manifest that cannot be prepared (not YAML, no kind, ...)."""


class ImageNotFound(ClusterproofError):
    pass


class ImageMapError(ClusterproofError):
    pass


class ClaimsError(ClusterproofError):
    pass


class NodeExecUnavailable(ClusterproofError):
    """No shell on a node, for a reason the user or the cluster's admin chose (--node-access none,
    no --allow-privileged, a policy refusing privileged pods, a cordoned or NoExecute-tainted
    node): the node check that meets it is skipped, saying so."""


class ProbeError(ClusterproofError):
    pass


class ExecTimeout(ProbeError):
    """A command run through the API's exec that had not ended by its deadline."""


class WaitTimeout(ClusterproofError):
    """A wait ended without what it waited for: its deadline passed. Says what was expected, what
    was last seen and, when the wait has one, a hint of what to check."""

    def __init__(self, expected: str, last_seen: str, timeout: float, *, hint: str | None = None) -> None:
        self.expected = expected
        self.last_seen = last_seen
        self.timeout = timeout
        self.hint = hint
        super().__init__(self._text())

    def _text(self) -> str:
        return f"timed out after {self.timeout:g}s waiting for {self.expected}; last seen: {self.last_seen}" + (
            f"; hint: {self.hint}" if self.hint else ""
        )


class WaitGaveUp(WaitTimeout):
    """A wait stopped before its deadline: what it saw is final (a Failed pod, ImagePullBackOff)
    and waiting longer cannot bring what was expected. A WaitTimeout too, so code that judges a
    wait that came to nothing judges both alike."""

    def __init__(
        self, expected: str, final: str, elapsed: float, *, last_seen: str | None = None, hint: str | None = None
    ) -> None:
        self.final = final
        super().__init__(expected, last_seen or final, elapsed, hint=hint)

    def _text(self) -> str:
        text = f"gave up after {self.timeout:.0f}s waiting for {self.expected}: final state {self.final}"
        if self.last_seen != self.final:
            text += f"; last seen: {self.last_seen}"
        return text + (f"; hint: {self.hint}" if self.hint else "")


class SetupFailed(ClusterproofError):
    """A set-up step failed, so the claim's observable was never reached: the test's outcome is
    `error` ("could not evaluate"), never `failed`. Names the step and why, in the API server's
    (or the command's) own words."""

    def __init__(self, step: str, cause: str) -> None:
        self.step = step
        self.cause = cause
        Exception.__init__(self, self.text)

    @property
    def text(self) -> str:
        return f"could not evaluate (set-up: {self.step}): {self.cause}"

    def __str__(self) -> str:
        return self.text


class Broken(AssertionError):
    """The claim's observable itself is broken on this cluster, found before the test body ran
    (in a fixture, e.g. cluster DNS does not answer): the test's outcome is `failed`, not the
    `error` pytest gives any failing fixture."""


class ClusterUnreachable(ClusterproofError):
    """The cluster's API server does not answer at all: nothing can be judged (a module error)."""


class NodeDown(SetupFailed, NodeExecUnavailable):
    """A node that should answer and does not (NotReady, gone, its host exec pod never Ready): not
    a skip, which is only for what the user chose not to reach. The check that meets it errors,
    "could not evaluate (set-up: reach node N): <the node's condition>"."""

    def __init__(self, node: str, condition: str) -> None:
        self.node = node
        super().__init__(f"reach node {node}", condition)
