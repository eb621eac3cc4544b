"""Test reports built by hand, as the plugin hands them to the claim ledger (no pytest run):
imported by the tests that feed the ledger or the verdicts."""

from collections.abc import Iterable

import pytest

from clusterproof.claims import CLAIM_PROPERTY


def claim_report(
    nodeid: str,
    when: str,
    outcome: str,
    claims: Iterable[str] = ("SVC-01",),
    longrepr: object = None,
    *,
    properties: Iterable[tuple[str, object]] = (),
    **timing: float,
) -> pytest.TestReport:
    """One phase (`when`) of a test tagged with `claims`: the claim ids as user properties, then
    `properties`; `timing`: duration, start, stop."""
    return pytest.TestReport(
        nodeid=nodeid,
        location=("x.py", 1, nodeid),
        keywords={},
        outcome=outcome,
        longrepr=longrepr,
        when=when,
        user_properties=[*((CLAIM_PROPERTY, c) for c in claims), *properties],
        **timing,
    )
