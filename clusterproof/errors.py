"""Errors of the framework. Each message is one line a person can act on."""


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
    pass


class ProbeError(ClusterproofError):
    pass


class WaitTimeout(ClusterproofError):
    """A wait reached its deadline; says what was expected and what was last seen."""

    def __init__(self, expected: str, last_seen: str, timeout: float) -> None:
        self.expected = expected
        self.last_seen = last_seen
        self.timeout = timeout
        super().__init__(f"timed out after {timeout:g}s waiting for {expected}; last seen: {last_seen}")
