"""The hooks a topic's plugin may implement (registered by clusterproof.plugin.configure)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from collections.abc import Iterable
    from pathlib import Path

    from clusterproof.claims import Claim
    from clusterproof.settings import Settings


@pytest.hookspec(firstresult=True)
def pytest_clusterproof_fixtures_dir(config: pytest.Config) -> Path | None:
    """Where the repository keeps the manifests the suites apply and the kind configs (its root
    conftest.py answers); default: <rootdir>/fixtures."""


@pytest.hookspec
def pytest_clusterproof_configure(config: pytest.Config, settings: Settings) -> None:
    """The run's settings are built: check the topic's own options against them (raise
    pytest.UsageError with one line) and keep the topic's settings (its own stash key)."""


@pytest.hookspec
def pytest_clusterproof_claims(config: pytest.Config, known: dict[str, Claim]) -> Iterable[str] | None:
    """Add the topic's claims to `known` (what a `claim` marker may name); return the IDs that are
    not rows of this run's claims table (e.g. the claims of an upgrade phase that does not run)."""


@pytest.hookspec
def pytest_clusterproof_access_checked(config: pytest.Config, settings: Settings) -> None:
    """The cluster is reachable (settings: kubeconfig and context resolved): a topic's check that
    needs the cluster (an IngressClass named on the command line) raises pytest.UsageError here."""
