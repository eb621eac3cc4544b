"""Unit tests only: pytester (in-process pytest runs) for the plugin's end-to-end tests. Not
loaded by `pytest suites`, so e2e runs go without it."""

import tempfile
from collections.abc import Callable

import pytest

pytest_plugins = ["pytester"]


@pytest.fixture(autouse=True)
def _private_temp_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """tempfile's directory (where runs put credential copies, and the sweep looks for them) is the
    test's own: no unit test reads or removes this host's real runs' copies."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path_factory.mktemp("tmp")))


@pytest.fixture
def plugin_project(pytester: pytest.Pytester) -> Callable[[str], pytest.Pytester]:
    """`plugin_project(claims_md)`: a pytester project that runs the plugin, with that text as its
    CLAIMS.md (--claims-file CLAIMS.md), --strict-markers and no cache."""

    def make(claims_md: str) -> pytest.Pytester:
        # a no-op where clusterproof is installed (its entry point loads the plugin under this name);
        # lets these tests run from a checkout that is not
        pytester.makeconftest('pytest_plugins = ["clusterproof.plugin"]')
        pytester.makefile(".md", CLAIMS=claims_md)
        pytester.makeini("[pytest]\naddopts = --strict-markers -p no:cacheprovider\n")
        return pytester

    return make
