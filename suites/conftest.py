"""Fixtures shared by suite modules (the framework's own come from clusterproof.plugin)."""

from __future__ import annotations

import pytest

from clusterproof.cluster import Cluster
from clusterproof.jigs.pods import PodFiles
from clusterproof.jigs.volume import NodeFiles
from clusterproof.run import RunContext
from clusterproof.tracker import ResourceTracker


@pytest.fixture
def pod_files(cluster: Cluster, namespace: str) -> PodFiles:
    """Read and write files inside the test's pods."""
    return PodFiles(cluster, namespace)


@pytest.fixture
def node_files(cluster: Cluster, tracker: ResourceTracker, run: RunContext) -> NodeFiles:
    """Files on the nodes, under the run's own directory or named after the run: recorded before they
    are written, removed when the test ends. A test taking it needs node access (else skipped)."""
    files = NodeFiles(cluster, tracker, run.run_id)
    # registered before the test names its own files, so removed after them; only if empty: other
    # tests of the run may still have files there
    files.keep_clean([n.name for n in cluster.nodes], files.run_dir, rmdir_only=True)
    return files
