"""Jigs: one small object per topic holding the verbs its suite needs (see docs/DESIGN.md)."""

from __future__ import annotations

from dataclasses import dataclass

from kubernetes import client

from clusterproof.cluster import Cluster
from clusterproof.manifests import Manifests
from clusterproof.tracker import ResourceTracker


@dataclass
class Jig:
    """What every jig works with: the test's cluster and its Manifests (namespace, tracker)."""

    cluster: Cluster
    manifests: Manifests

    @property
    def namespace(self) -> str:
        return self.manifests.namespace

    @property
    def core(self) -> client.CoreV1Api:
        return self.cluster.core

    @property
    def tracker(self) -> ResourceTracker:
        return self.manifests.tracker
