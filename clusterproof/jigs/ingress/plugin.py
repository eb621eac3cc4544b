"""The ingress topic's pytest plugin: --ingress-class (which IngressClass an existing cluster's
Ingress checks test), checked against the cluster once it is reachable. Loaded by clusterproof.plugin."""

from __future__ import annotations

from pathlib import Path

import pytest
from kubernetes import client, config

from clusterproof.jigs.ingress.classes import ClassInfo, IngressClassNotFound, check_class
from clusterproof.preflight import API_PROBE_TIMEOUT
from clusterproof.settings import Settings

CLASS = pytest.StashKey[str | None]()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.getgroup("clusterproof").addoption(
        "--ingress-class",
        default=None,
        metavar="NAME",
        help="existing clusters: the IngressClass whose controller the ingress checks test (default: the "
        "cluster's default IngressClass); kind clusters get the controller the suite installs",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "ingress_nginx(what): the claim is ingress-nginx's own: skipped on another controller, also when that "
        "controller does not become ready",
    )


def pytest_clusterproof_configure(config: pytest.Config, settings: Settings) -> None:
    name = config.getoption("ingress_class") or None
    if name and settings.provider == "kind":
        raise pytest.UsageError(
            f"--ingress-class {name}: picks the class of an existing cluster (--kubeconfig/--context); on a "
            "kind cluster of the run the suite installs its own controller (ingress-nginx, offline Traefik)"
        )
    config.stash[CLASS] = name


def pytest_clusterproof_access_checked(config: pytest.Config, settings: Settings) -> None:
    """--ingress-class must name an IngressClass of the cluster: one line listing them otherwise."""
    wanted = config.stash.get(CLASS, None)
    if wanted and settings.kubeconfig and settings.context:
        try:
            check_class(wanted, list_ingress_classes(settings.kubeconfig, settings.context, API_PROBE_TIMEOUT))
        except IngressClassNotFound as e:
            raise pytest.UsageError(str(e)) from None


def list_ingress_classes(kubeconfig: Path, context: str, timeout: float) -> list[ClassInfo]:
    """The cluster's IngressClasses, one request, no retries."""
    api = config.new_client_from_config(config_file=str(kubeconfig), context=context, persist_config=False)
    api.configuration.retries = False
    try:
        found = client.NetworkingV1Api(api).list_ingress_class(_request_timeout=(timeout, timeout)).items
    except client.ApiException as e:
        raise pytest.UsageError(
            f"--ingress-class: listing the IngressClasses of context {context!r} was refused: "
            f"HTTP {e.status} {e.reason}"
        ) from None
    finally:
        api.close()
    return [ClassInfo.of(c) for c in found]


@pytest.fixture(scope="session")
def ingress_class(pytestconfig: pytest.Config) -> str | None:
    """--ingress-class: the IngressClass an existing cluster's Ingress checks test (None: its default)."""
    return pytestconfig.stash.get(CLASS, None)
