"""This repository's pytest wiring. The framework is the installed plugin (clusterproof.plugin,
loaded by its entry point); what is this checkout's own is here: where its manifests and kind
configs are, and what pytest should not collect."""

from pathlib import Path

import pytest

REPOSITORY = Path(__file__).parent

# manifests, scripts, docs and run artifacts hold no tests (the suites are suites/, the unit tests tests/)
collect_ignore = ["fixtures", "scripts", "docs", ".clusterproof", ".ci"]


@pytest.hookimpl(optionalhook=True)  # a no-op where the plugin is turned off
def pytest_clusterproof_fixtures_dir(config: pytest.Config) -> Path:
    """The notes' manifests (fixtures/claims/...), the kind configs (fixtures/kind/)."""
    return REPOSITORY / "fixtures"
