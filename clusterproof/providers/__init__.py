"""Where clusters come from: kind (made and deleted by the run) or an existing cluster."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from clusterproof.cluster import Cluster
    from clusterproof.run import RunContext
    from clusterproof.settings import Settings
    from clusterproof.timings import Stopwatch
    from clusterproof.tracker import ResourceTracker

Note = Callable[[str], None]


class Provider(Protocol):
    def acquire(self, key: str) -> Cluster:
        """The cluster for `key` (a module name, or "session")."""

    def release(self, cluster: Cluster) -> None:
        """The fixture is done with it (kind: delete unless kept)."""

    def close(self) -> None:
        """End of session."""


def make_provider(
    settings: Settings, run: RunContext, tracker: ResourceTracker, note: Note, stopwatch: Stopwatch | None = None
) -> Provider:
    if settings.provider == "kind":
        from clusterproof.providers.kind import KindProvider

        return KindProvider(settings, run, tracker, note, stopwatch=stopwatch)
    from clusterproof.providers.existing import ExistingProvider

    return ExistingProvider(settings, tracker, note)
