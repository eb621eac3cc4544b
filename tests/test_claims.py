"""CLAIMS.md parsing and the claim ledger's verdicts and table (reports built by hand)."""

from pathlib import Path
from types import SimpleNamespace

import pytest
from reports_by_hand import claim_report

from clusterproof.claims import ClaimLedger, claims_in_test_files, files_beside, load_claims, parse_claims
from clusterproof.errors import ClaimsError

CLAIMS_MD = """\
# Claims
## SVC: Services
| ID | claim | observable |
|---|---|---|
| SVC-01 | A Service without `type` is ClusterIP [002] | spec.type == ClusterIP |
| SVC-02 | Second claim | obs |
## NS: Namespaces
| ID | claim | observable |
|---|---|---|
| NS-01 | Quota refuses the 4th pod | API error |
| NS-02 | Services quota | API error |
| NS-03 | RC quota | API error |
## ERR: as written
- [001] a broken example, numbered ERR-01
"""


def passed(nodeid, claims):
    return [claim_report(nodeid, w, "passed", claims) for w in ("setup", "call", "teardown")]


def test_parse_claims_reads_rows_in_order_with_sections():
    claims = parse_claims(CLAIMS_MD)
    assert list(claims) == ["SVC-01", "SVC-02", "NS-01", "NS-02", "NS-03", "ERR-01"]
    assert claims["ERR-01"].text == "[001] a broken example, numbered ERR-01"
    assert claims["SVC-01"].text == "A Service without `type` is ClusterIP [002]"
    assert claims["SVC-01"].observable == "spec.type == ClusterIP"
    assert claims["NS-01"].section == "NS: Namespaces"


def test_project_claims_file_parses():
    claims = load_claims(Path(__file__).parents[1] / "clusterproof" / "data" / "CLAIMS.md")
    assert {"SVC-01", "SVC-20", "ING-06", "VOL-09", "PV-11", "WRK-06", "NS-06"} <= set(claims)


def test_duplicate_ids_are_refused():
    with pytest.raises(ClaimsError, match="SVC-01 is listed twice"):
        parse_claims(CLAIMS_MD + "| SVC-01 | again | x |\n")


def test_verdicts_held_failed_error_skipped_partial_and_no_test():
    ledger = ClaimLedger(parse_claims(CLAIMS_MD))
    for r in passed("t.py::test_a", ("SVC-01",)):
        ledger.record(r)
    ledger.record(claim_report("t.py::test_b", "setup", "passed", ("SVC-02",)))
    ledger.record(claim_report("t.py::test_b", "call", "failed", ("SVC-02",), longrepr="E  assert 1 == 2"))
    ledger.record(claim_report("t.py::test_c", "setup", "skipped", ("NS-01",), ("t.py", 3, "Skipped: no CoreDNS")))
    for r in passed("t.py::test_d", ("NS-02",)):
        ledger.record(r)
    ledger.record(claim_report("t.py::test_e", "setup", "skipped", ("NS-02",), ("t.py", 3, "Skipped: needs 2 workers")))
    ledger.record(claim_report("t.py::test_f", "call", "passed", ("NS-03",)))
    ledger.record(claim_report("t.py::test_f", "teardown", "failed", ("NS-03",), longrepr="cleanup broke"))
    verdicts = {v.claim.id: v for v in ledger.verdicts()}
    assert {k: v.verdict for k, v in verdicts.items()} == {
        "SVC-01": "held",
        "SVC-02": "failed",
        "NS-01": "skipped",
        "NS-02": "partial",
        "NS-03": "error",
        "ERR-01": "no test",
    }
    assert verdicts["SVC-02"].reason == "E  assert 1 == 2"
    assert verdicts["NS-01"].reason == "no CoreDNS"
    assert verdicts["NS-02"].reason == "1 of 2 ran; needs 2 workers"


def test_claim_without_any_test_is_listed_as_no_test():
    ledger = ClaimLedger(parse_claims(CLAIMS_MD))
    for r in passed("t.py::test_a", ("SVC-01",)):
        ledger.record(r)
    assert ledger.counts() == {"held": 1, "no test": 5}


def test_one_test_may_carry_several_claims():
    ledger = ClaimLedger(parse_claims(CLAIMS_MD))
    for r in passed("t.py::test_a", ("SVC-01", "SVC-02")):
        ledger.record(r)
    verdicts = {v.claim.id: v.verdict for v in ledger.verdicts()}
    assert verdicts["SVC-01"] == verdicts["SVC-02"] == "held"


def test_table_has_one_row_per_claim_and_json_has_the_tests():
    ledger = ClaimLedger(parse_claims(CLAIMS_MD))
    ledger.record(claim_report("t.py::test_b", "call", "failed", ("SVC-02",), longrepr="E  boom"))
    lines = ledger.table(width=100).splitlines()
    assert lines[0].split() == ["claim", "verdict", "test(s)", "reason"]
    assert len(lines) == 7
    row = next(line for line in lines if line.startswith("SVC-02"))
    assert "failed" in row and "test_b" in row and "E boom" in row
    data = ledger.to_json()
    svc02 = next(c for c in data["claims"] if c["id"] == "SVC-02")
    assert svc02["tests"] == [{"nodeid": "t.py::test_b", "outcome": "failed", "reason": "E  boom"}]


def test_reports_without_claims_are_ignored():
    ledger = ClaimLedger(parse_claims(CLAIMS_MD))
    ledger.record(claim_report("t.py::test_x", "call", "failed", ()))
    assert not ledger.has_tests


def test_a_test_interrupted_after_setup_is_an_error_not_held():
    ledger = ClaimLedger(parse_claims(CLAIMS_MD))
    ledger.record(claim_report("t.py::test_slow", "setup", "passed", ("SVC-01",)))
    ledger.record(claim_report("t.py::test_slow", "teardown", "passed", ("SVC-01",)))
    verdict = {v.claim.id: v for v in ledger.verdicts()}["SVC-01"]
    assert verdict.verdict == "error"
    assert verdict.reason == "did not finish (interrupted)"


DIAGNOSTICS = "/a/t-py-test-b-1/diagnostics.txt"


def test_json_carries_each_tests_times_message_and_diagnostics_redacted():
    ledger = ClaimLedger(parse_claims(CLAIMS_MD))
    timed = [("setup", "passed", 1000.0, 2.0), ("call", "failed", 1002.0, 5.5), ("teardown", "passed", 1007.5, 0.5)]
    crash = SimpleNamespace(
        reprcrash=SimpleNamespace(message="WaitTimeout: backend missing\nlast seen: token=abc123secret"),
    )
    for when, outcome, start, seconds in timed:
        ledger.record(
            claim_report(
                "t.py::test_b",
                when,
                outcome,
                ("SVC-02",),
                crash if outcome == "failed" else None,
                properties=[("diagnostics", DIAGNOSTICS)] * (when == "call"),
                duration=seconds,
                start=start,
                stop=start + seconds,
            )
        )
    data = ledger.to_json()
    assert data["started"] == 1000.0 and data["finished"] == 1008.0
    test = next(c for c in data["claims"] if c["id"] == "SVC-02")["tests"][0]
    assert test == {
        "nodeid": "t.py::test_b",
        "outcome": "failed",
        "reason": "WaitTimeout: backend missing",
        "message": "WaitTimeout: backend missing\nlast seen: token=[REDACTED]",
        "diagnostics": DIAGNOSTICS,
        "start": 1000.0,
        "setup": 2.0,
        "call": 5.5,
        "teardown": 0.5,
    }


# --- partial evidence: held only when every test ran and passed ---------------------------------


def xpassed(nodeid, claims, reason="flaky on 1.20"):
    report = claim_report(nodeid, "call", "passed", claims)
    report.wasxfail = reason
    return report


def test_a_deselected_test_makes_the_claim_partial_n_of_m_ran():
    ledger = ClaimLedger(parse_claims(CLAIMS_MD))
    ledger.expect("t.py::test_a", ("SVC-01",))
    ledger.expect("t.py::test_b", ("SVC-01",), selected=False)  # -k left it out
    for r in passed("t.py::test_a", ("SVC-01",)):
        ledger.record(r)
    verdict = {v.claim.id: v for v in ledger.verdicts()}["SVC-01"]
    assert verdict.verdict == "partial"
    assert verdict.reason == "1 of 2 ran; test_b: not run (deselected)"
    assert [t["outcome"] for t in ledger.to_json()["claims"][0]["tests"]] == ["passed", "not run"]


def test_a_non_strict_xpass_is_not_a_pass():
    ledger = ClaimLedger(parse_claims(CLAIMS_MD))
    for r in passed("t.py::test_a", ("SVC-01",)):
        ledger.record(r)
    ledger.record(xpassed("t.py::test_b", ("SVC-01",)))
    ledger.record(xpassed("t.py::test_c", ("SVC-02",)))
    verdicts = {v.claim.id: v for v in ledger.verdicts()}
    assert verdicts["SVC-01"].verdict == "partial"
    assert verdicts["SVC-01"].reason.startswith("1 of 2 ran; xpass (flaky on 1.20): passed against its xfail mark")
    assert verdicts["SVC-02"].verdict == "partial" and verdicts["SVC-02"].reason.startswith("0 of 1 ran")


def test_a_selected_test_the_run_never_reached_is_not_run_and_a_reached_one_unfinished():
    ledger = ClaimLedger(parse_claims(CLAIMS_MD))
    ledger.expect("t.py::test_a", ("SVC-01",))
    ledger.expect("t.py::test_b", ("SVC-02",))
    ledger.record(claim_report("t.py::test_b", "setup", "passed", ("SVC-02",)))  # then Ctrl-C
    verdicts = {v.claim.id: v for v in ledger.verdicts()}
    assert verdicts["SVC-01"].verdict == "not run"
    assert verdicts["SVC-01"].reason == "test_a: not run (the run ended before it)"
    assert verdicts["SVC-02"].verdict == "error"
    assert ledger.has_tests


def test_claims_whose_tests_were_not_collected_are_not_run_and_only_claims_without_any_test_no_test():
    ledger = ClaimLedger(parse_claims(CLAIMS_MD))
    for r in passed("t.py::test_a", ("SVC-01",)):
        ledger.record(r)
    ledger.tests_elsewhere({"NS-01": ["test_quota.py"], "NS-02": ["test_quota.py", "test_more.py"], "XX-9": ["x.py"]})
    verdicts = {v.claim.id: v for v in ledger.verdicts()}
    assert verdicts["NS-01"].verdict == "not run"
    assert verdicts["NS-02"].reason == (
        "none of its tests was selected in this run (tests in test_quota.py, test_more.py)"
    )
    assert verdicts["SVC-02"].verdict == "no test" and verdicts["ERR-01"].verdict == "no test"
    assert "XX-9" not in verdicts  # a file may name claims outside this run's table
    assert ledger.counts() == {"held": 1, "no test": 3, "not run": 2}


def test_expected_tests_of_claims_outside_the_table_are_left_out():
    ledger = ClaimLedger(parse_claims(CLAIMS_MD))
    ledger.expect("t.py::test_upgrade", ("UPG-01",), selected=False)
    assert "UPG-01" not in {v.claim.id for v in ledger.verdicts()}
    assert not ledger.has_tests


def test_claim_marks_are_read_from_the_files_beside_the_collected_ones(tmp_path):
    (tmp_path / "test_one.py").write_text(
        "import pytest\n"
        "pytestmark = pytest.mark.claim('NS-03')\n"
        "@pytest.mark.claim('SVC-01', 'SVC-02')\n"
        "def test_a(): pass\n"
    )
    (tmp_path / "test_two.py").write_text("import pytest\n@pytest.mark.claim('SVC-01')\ndef test_b(): pass\n")
    (tmp_path / "test_broken.py").write_text("def (:\n")
    (tmp_path / "helpers.py").write_text("import pytest\n@pytest.mark.claim('NS-01')\ndef test_c(): pass\n")
    files = files_beside([tmp_path / "test_one.py"], ["test_*.py"])
    assert [f.name for f in files] == ["test_broken.py", "test_one.py", "test_two.py"]
    assert claims_in_test_files(files) == {
        "NS-03": ["test_one.py"],
        "SVC-01": ["test_one.py", "test_two.py"],
        "SVC-02": ["test_one.py"],
    }
