"""What the plugin's parts share on config.stash and item.stash (per process)."""

from __future__ import annotations

import pytest

from clusterproof.claims import Claim
from clusterproof.cluster import Cluster
from clusterproof.images import ImageCatalogue
from clusterproof.run import RunContext
from clusterproof.settings import Settings
from clusterproof.timings import Stopwatch

SETTINGS = pytest.StashKey[Settings]()
RUN = pytest.StashKey[RunContext]()
CATALOGUE = pytest.StashKey[ImageCatalogue]()
CLAIMS = pytest.StashKey[dict[str, Claim]]()
ACCESS_CHECKED = pytest.StashKey[bool]()
STOPWATCH = pytest.StashKey[Stopwatch]()
MODULE_ORDER = pytest.StashKey[list[str]]()
ITEM_CLUSTER = pytest.StashKey[Cluster]()
ITEM_NAMESPACES = pytest.StashKey[list[str]]()
ITEM_DIAGNOSED = pytest.StashKey[list[str]]()  # namespaces the test did not make, diagnosed too
ITEM_STARTED = pytest.StashKey[float]()
