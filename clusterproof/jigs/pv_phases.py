"""A PersistentVolume's phases as they happen: recorded by a watch in a thread, so a test can act
(bind, use, release) meanwhile and then read the order they came in."""

from __future__ import annotations

import threading
from typing import Any

from kubernetes import client

from clusterproof import wait


class PhaseLog:
    """Records the phases a PV goes through, from before it exists until `final`, in a thread
    (a watch with a deadline), so a test can act meanwhile."""

    def __init__(self, core: client.CoreV1Api, name: str, final: str, timeout: float) -> None:
        self.core = core
        self.name = name
        self.final = final
        self.timeout = timeout
        self.phases: list[str] = []
        self.error: Exception | None = None
        self._thread = threading.Thread(target=self._run, name=f"phases-{name}", daemon=True)

    def __enter__(self) -> PhaseLog:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._thread.join(self.timeout)

    def _run(self) -> None:
        try:
            wait.watch_until(
                self.core.list_persistent_volume,
                self._seen,
                f"PV {self.name} {self.final}",
                lambda objs: " -> ".join(self.phases) or "nothing",
                self.timeout,
                field_selector=f"metadata.name={self.name}",
            )
        except Exception as e:  # reported by result()
            self.error = e

    def _seen(self, objs: dict[str, Any]) -> bool:
        pv = objs.get(self.name)
        phase = pv.status.phase if pv is not None and pv.status else None
        if phase and (not self.phases or self.phases[-1] != phase):
            self.phases.append(phase)
        return phase == self.final

    def result(self) -> list[str]:
        self._thread.join(self.timeout)
        if self.error is not None:
            raise AssertionError(f"watching PV {self.name}: {self.error}")
        return list(self.phases)
