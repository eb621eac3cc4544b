"""The topics' own plugins and the hooks they implement (clusterproof.plugin.hookspecs): each
declares its options, checks them against the run's settings, and hands them to its tests through
its own fixture. In pytester (in-process pytest runs) and on FAKE IngressClass lists: no cluster."""

from pathlib import Path
from types import SimpleNamespace

import pytest

from clusterproof.jigs.ingress import plugin as ingress_plugin
from clusterproof.jigs.ingress.classes import ClassInfo
from clusterproof.upgrade import plugin as upgrade_plugin

CLAIMS_MD = """\
## SVC
| ID | claim | observable |
|---|---|---|
| SVC-01 | first | a |
"""


@pytest.fixture
def project(plugin_project) -> pytest.Pytester:
    return plugin_project(CLAIMS_MD)


def one_usage_error(result: pytest.RunResult) -> str:
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    lines = [line for line in result.stderr.lines if line.strip()]
    assert len(lines) == 1, lines
    return lines[0]


def test_ingress_class_is_for_existing_clusters_only(project):
    project.makepyfile("def test_x():\n    pass\n")
    line = one_usage_error(project.runpytest("--ingress-class", "traefik"))
    assert line.startswith("ERROR: --ingress-class traefik: picks the class of an existing cluster")


def test_the_ingress_class_reaches_the_tests_through_the_topics_fixture(project, tmp_path):
    project.makepyfile("def test_x(ingress_class):\n    assert ingress_class is None\n")
    assert project.runpytest("--claims-file", str(project.path / "CLAIMS.md")).ret == 0


def test_an_ingress_class_the_cluster_lacks_is_one_line_listing_its_classes(monkeypatch):
    classes = [ClassInfo("nginx", "k8s.io/ingress-nginx", default=True), ClassInfo("traefik", "traefik.io/x")]
    monkeypatch.setattr(ingress_plugin, "list_ingress_classes", lambda k, c, t: classes)  # FAKE cluster answer
    config = SimpleNamespace(stash={ingress_plugin.CLASS: "contour"})
    settings = SimpleNamespace(kubeconfig=Path("kc"), context="kind-dev")
    with pytest.raises(pytest.UsageError) as refused:
        ingress_plugin.pytest_clusterproof_access_checked(config, settings)
    assert str(refused.value) == (
        "--ingress-class contour: the cluster has no IngressClass 'contour' "
        "(IngressClasses: nginx (k8s.io/ingress-nginx, default), traefik (traefik.io/x))"
    )
    config.stash[ingress_plugin.CLASS] = "traefik"
    assert ingress_plugin.pytest_clusterproof_access_checked(config, settings) is None


def test_an_upgrade_phase_needs_a_cluster_that_outlives_the_run(project):
    project.makepyfile("def test_x():\n    pass\n")
    line = one_usage_error(project.runpytest("--phase", "before"))
    assert line.startswith("ERROR: --phase before needs a cluster that outlives the run")


def test_a_negative_disruption_budget_is_refused(project):
    project.makepyfile("def test_x():\n    pass\n")
    line = one_usage_error(project.runpytest("--disruption-budget", "-1"))
    assert line == "ERROR: --disruption-budget -1: seconds, 0 or more"


def test_upgrade_settings_reach_the_tests_through_the_topics_fixture(project):
    project.makepyfile(
        "def test_x(upgrade_settings):\n"
        "    assert upgrade_settings.phase is None\n"
        "    assert (upgrade_settings.disruption_budget, upgrade_settings.api_disruption_budget) == (30.0, 180.0)\n"
    )
    assert project.runpytest("--claims-file", str(project.path / "CLAIMS.md")).ret == 0


def test_the_upgrade_claims_are_known_but_rows_only_of_the_phase_that_runs():
    known = {"SVC-01": "claim"}
    config = SimpleNamespace(stash={upgrade_plugin.SETTINGS: upgrade_plugin.UpgradeSettings(phase=None)})
    hidden = set(upgrade_plugin.pytest_clusterproof_claims(config, known))
    assert "UPG-01" in known and "UPG-09" in known
    assert hidden == {cid for cid in known if cid.startswith("UPG-")}
    config.stash[upgrade_plugin.SETTINGS] = upgrade_plugin.UpgradeSettings(phase="before")
    assert set(known) - set(upgrade_plugin.pytest_clusterproof_claims(config, known)) == {"UPG-01"}


def test_the_repository_conftest_says_where_the_fixtures_are(pytester):
    """A project's conftest answers pytest_clusterproof_fixtures_dir: manifests and the default kind
    config are looked for there (this repository's root conftest.py does the same)."""
    pytester.makeconftest(
        """
        import pytest
        from pathlib import Path

        pytest_plugins = ["clusterproof.plugin"]

        @pytest.hookimpl
        def pytest_clusterproof_fixtures_dir(config):
            return Path(str(config.rootpath)) / "elsewhere"
        """
    )
    pytester.makefile(".md", CLAIMS=CLAIMS_MD)
    pytester.makepyfile(
        "def test_x(settings):\n"
        "    assert settings.fixtures_dir.name == 'elsewhere'\n"
        "    assert settings.kind_config == settings.fixtures_dir / 'kind' / 'three-nodes.yaml'\n"
    )
    assert pytester.runpytest("--claims-file", "CLAIMS.md", "-p", "no:cacheprovider").ret == 0


def test_gateway_class_is_for_existing_clusters_only(project):
    project.makepyfile("def test_x():\n    pass\n")
    line = one_usage_error(project.runpytest("--gateway-class", "eg"))
    assert line.startswith("ERROR: --gateway-class eg: picks the class of an existing cluster")


def test_a_gateway_class_the_cluster_lacks_is_one_line_listing_its_classes(monkeypatch):
    from clusterproof.jigs.ingress.gateway import GatewayClassInfo

    listed = {"answer": [GatewayClassInfo("eg", "gateway.envoyproxy.io/gatewayclass-controller", accepted=True)]}
    monkeypatch.setattr(ingress_plugin, "list_gateway_classes", lambda api, timeout: listed["answer"])  # FAKE answer
    monkeypatch.setattr(ingress_plugin, "_client", lambda kubeconfig, context: SimpleNamespace(close=lambda: None))
    config = SimpleNamespace(stash={ingress_plugin.CLASS: None, ingress_plugin.GATEWAY_CLASS: "traefik"})
    settings = SimpleNamespace(kubeconfig=Path("kc"), context="kind-dev")
    with pytest.raises(pytest.UsageError) as refused:
        ingress_plugin.pytest_clusterproof_access_checked(config, settings)
    assert str(refused.value) == (
        "--gateway-class traefik: the cluster has no GatewayClass 'traefik' "
        "(GatewayClasses: eg (gateway.envoyproxy.io/gatewayclass-controller, accepted))"
    )
    listed["answer"] = None  # the cluster does not serve the Gateway API
    with pytest.raises(pytest.UsageError, match=r"does not serve the Gateway API \(gateway.networking.k8s.io/v1\)$"):
        ingress_plugin.pytest_clusterproof_access_checked(config, settings)
