"""The sweep at the start of a run (registered by the plugin): this process recorded, then what dead
runs left on this host and on each cluster acquired removed."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

from clusterproof import liveness
from clusterproof.run_records import ClusterRecords, HostRegistry, RunRecorder, registry_dir
from clusterproof.sweep.cluster_side import ClusterSide, sweep_cluster
from clusterproof.sweep.decide import Report, error_line
from clusterproof.sweep.host import KindHost, sweep_credentials, sweep_host

if TYPE_CHECKING:
    from clusterproof.cluster import Cluster
    from clusterproof.run import RunContext
    from clusterproof.settings import Settings


class SweepAtStart:
    """Records this process (host: when the cluster provider is set up; each cluster: when it is
    acquired, before anything is made there) and sweeps what dead runs left: the kind clusters of
    this host (kind provider) and each cluster acquired. Never fails the run: what cannot be done
    (no docker, an unreachable cluster) is said in one line and skipped."""

    def __init__(
        self,
        settings: Callable[[], Settings],
        run: RunContext,
        note: Callable[[str], None],
        *,
        registry: HostRegistry | None = None,
    ) -> None:
        self.settings = settings
        self.run = run
        self.note = note
        self.registry = registry or HostRegistry(registry_dir())
        self.owner = os.environ.get("PYTEST_XDIST_WORKER", "main")  # as ResourceTracker.owner
        self.recorder: RunRecorder | None = None

    @pytest.hookimpl(wrapper=True)
    def pytest_fixture_setup(self, fixturedef: pytest.FixtureDef[Any], request: pytest.FixtureRequest) -> Any:
        result = yield
        if fixturedef.argname == "cluster_provider" and self.recorder is None:
            self._started()
        elif fixturedef.argname == "cluster":
            self._acquired(result)
        return result

    def pytest_fixture_post_finalizer(self, fixturedef: pytest.FixtureDef[Any]) -> None:
        if fixturedef.argname == "cluster" and self.recorder is not None and fixturedef.cached_result:
            self.recorder.let_go(getattr(fixturedef.cached_result[0], "name", ""))

    def pytest_unconfigure(self) -> None:
        if self.recorder is not None:
            self.recorder.close()
            self.recorder = None

    def _say(self, report: Report) -> None:
        for line in report.lines():
            self.note(f"sweep: {line}")

    def _started(self) -> None:
        settings = self.settings()
        kind = settings.provider == "kind"
        try:
            record = liveness.new_record(
                self.run.run_id,
                self.owner,
                provider=settings.provider,
                keep_clusters=settings.keep_clusters,
                run_dir=str(self.run.run_dir),
            )
            self.recorder = RunRecorder(record, self.registry)
            self.recorder.start()
        except Exception as e:
            self.note(f"sweep: could not record this run in {self.registry.path}: {error_line(e)}")
            return
        try:
            self._say(sweep_credentials(self.registry, this_run=self.run.run_id))
        except Exception as e:
            self.note(f"sweep: credential copies of this host not swept: {error_line(e)}")
        if kind:
            try:
                kind_host = KindHost(str(settings.kind_bin or "kind"))
                self._say(sweep_host(kind_host, self.registry, this_run=self.run.run_id))
            except Exception as e:
                self.note(f"sweep: kind clusters of this host not swept: {error_line(e)}")

    def _acquired(self, cluster: Cluster) -> None:
        if self.recorder is None:
            return
        try:
            records = ClusterRecords.for_cluster(cluster)
        except Exception as e:
            self.note(f"sweep: cluster {cluster.name} not swept: {error_line(e)}")
            return
        try:
            self.recorder.on_cluster(records)  # first: from now on a sweeper elsewhere sees us alive
        except Exception as e:  # others then see our objects as unrecorded: left alone for a day
            self.note(f"sweep: could not record this run on cluster {cluster.name}: {error_line(e)}")
        try:
            side = ClusterSide.of(cluster, records)
            self._say(sweep_cluster(side, self.registry.records(), this_run=self.run.run_id))
        except Exception as e:
            self.note(f"sweep: cluster {cluster.name} not swept: {error_line(e)}")
