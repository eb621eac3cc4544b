"""Fixtures shared by suite modules (the framework's own come from clusterproof.plugin)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from clusterproof.cluster import Cluster
from clusterproof.jigs.volume import NodeFiles, PodFiles
from clusterproof.run import RunContext
from clusterproof.tracker import ResourceTracker


@pytest.fixture
def pod_files(cluster: Cluster, namespace: str) -> PodFiles:
    """Read and write files inside the test's pods."""
    return PodFiles(cluster, namespace)


@pytest.fixture
def node_files(cluster: Cluster, tracker: ResourceTracker, run: RunContext) -> Iterator[NodeFiles]:
    """Files on the nodes under the run's own directory, removed after the test."""
    files = NodeFiles(cluster, tracker, run.run_id)
    # removed last (cleanup runs latest first), and only if no other test still has files there
    files.keep_clean([n.name for n in cluster.nodes], files.run_dir, rmdir_only=True)
    yield files
    files.cleanup()
