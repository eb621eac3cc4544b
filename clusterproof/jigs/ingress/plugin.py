"""The ingress topic's pytest plugin: --ingress-class and --gateway-class (which IngressClass and
GatewayClass an existing cluster's Ingress and Gateway API checks test), checked against the cluster
once it is reachable; the GW claims (the notes' Ingress examples as Gateway API routes), known to
every run. Loaded by clusterproof.plugin."""

from __future__ import annotations

from pathlib import Path

import pytest
from kubernetes import client, config

from clusterproof.claims import Claim, load_claims
from clusterproof.jigs.ingress.classes import ClassInfo, IngressClassNotFound, check_class
from clusterproof.jigs.ingress.gateway import GatewayClassNotFound, check_gateway_class, list_gateway_classes
from clusterproof.preflight import API_PROBE_TIMEOUT
from clusterproof.settings import PACKAGE_DATA, Settings

CLASS = pytest.StashKey[str | None]()
GATEWAY_CLASS = pytest.StashKey[str | None]()
GW_AREA, ING_AREA = "GW-", "ING-"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.getgroup("clusterproof").addoption(
        "--ingress-class",
        default=None,
        metavar="NAME",
        help="existing clusters: the IngressClass whose controller the ingress checks test (default: the "
        "cluster's default IngressClass); kind clusters get the controller the suite installs",
    )
    parser.getgroup("clusterproof").addoption(
        "--gateway-class",
        default=None,
        metavar="NAME",
        help="existing clusters: the GatewayClass whose controller the Gateway API checks (GW) test (default: one "
        "its controller accepted; none: they skip); offline kind clusters get the suite's Traefik",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "ingress_nginx(what, annotations=False): the claim is ingress-nginx's own (annotations: one of its "
        "annotations, also served by another controller of its class): skipped on another controller, also when "
        "that controller does not become ready",
    )


def pytest_clusterproof_configure(config: pytest.Config, settings: Settings) -> None:
    kind_has = {
        "ingress_class": "the suite installs its own controller (ingress-nginx, offline Traefik)",
        "gateway_class": "the suite's own Traefik (offline) serves the Gateway API checks",
    }
    for option, key in (("ingress_class", CLASS), ("gateway_class", GATEWAY_CLASS)):
        name = config.getoption(option) or None
        if name and settings.provider == "kind":
            raise pytest.UsageError(
                f"--{option.replace('_', '-')} {name}: picks the class of an existing cluster (--kubeconfig/"
                f"--context); on a kind cluster of the run {kind_has[option]}"
            )
        config.stash[key] = name


def pytest_clusterproof_claims(config: pytest.Config, known: dict[str, Claim]) -> list[str]:
    """The GW claims (beyond the notes) are the suite's own: taken from the packaged CLAIMS.md when
    the claims file in use (the project's shared list) has none; rows of the claims table beside the
    ING claims they mirror (a claims file without ING rows shows none of them)."""
    added: dict[str, Claim] = {}
    if not any(cid.startswith(GW_AREA) for cid in known):
        packaged = load_claims(PACKAGE_DATA / "CLAIMS.md")
        added = {cid: claim for cid, claim in packaged.items() if cid.startswith(GW_AREA)}
        ing = [cid for cid in known if cid.startswith(ING_AREA)]
        rows = list(known.items())
        at = next((i + 1 for i, (cid, _) in enumerate(rows) if ing and cid == ing[-1]), len(rows))
        known.clear()
        known.update([*rows[:at], *added.items(), *rows[at:]])  # after the ING rows they mirror
    return [] if any(cid.startswith(ING_AREA) for cid in known) else list(added)


def pytest_clusterproof_access_checked(config: pytest.Config, settings: Settings) -> None:
    """--ingress-class and --gateway-class must name classes of the cluster: one line listing them otherwise."""
    if not (settings.kubeconfig and settings.context):
        return
    wanted = config.stash.get(CLASS, None)
    if wanted:
        try:
            check_class(wanted, list_ingress_classes(settings.kubeconfig, settings.context, API_PROBE_TIMEOUT))
        except IngressClassNotFound as e:
            raise pytest.UsageError(str(e)) from None
    wanted_gateway = config.stash.get(GATEWAY_CLASS, None)
    if wanted_gateway:
        api = _client(settings.kubeconfig, settings.context)
        try:
            check_gateway_class(wanted_gateway, list_gateway_classes(api, API_PROBE_TIMEOUT))
        except GatewayClassNotFound as e:
            raise pytest.UsageError(str(e)) from None
        except client.ApiException as e:
            raise pytest.UsageError(
                f"--gateway-class: listing the GatewayClasses of context {settings.context!r} was refused: "
                f"HTTP {e.status} {e.reason}"
            ) from None
        finally:
            api.close()


def _client(kubeconfig: Path, context: str) -> client.ApiClient:
    api = config.new_client_from_config(config_file=str(kubeconfig), context=context, persist_config=False)
    api.configuration.retries = False
    return api


def list_ingress_classes(kubeconfig: Path, context: str, timeout: float) -> list[ClassInfo]:
    """The cluster's IngressClasses, one request, no retries."""
    api = _client(kubeconfig, context)
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


@pytest.fixture(scope="session")
def gateway_class(pytestconfig: pytest.Config) -> str | None:
    """--gateway-class: the GatewayClass an existing cluster's Gateway API checks test (None: one accepted)."""
    return pytestconfig.stash.get(GATEWAY_CLASS, None)
