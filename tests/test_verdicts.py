"""Failed or could not evaluate: set-up steps, the API server's words, and how the plugin, the
ledger and the terminal tell them apart. No cluster: exceptions are built by hand, and the
plugin runs in pytester on generated test files."""

import json
import subprocess

import pytest
from kubernetes import client
from reports_by_hand import claim_report

from clusterproof import verdicts
from clusterproof.api_answers import ApiRefusal, answer_to
from clusterproof.claims import ClaimLedger, parse_claims
from clusterproof.errors import Broken, SetupFailed, WaitTimeout

NODE_PORT_REFUSAL = {
    "kind": "Status",
    "status": "Failure",
    "reason": "Invalid",
    "message": 'Service "svc-nodeport" is invalid: spec.ports[0].nodePort: Invalid value: 30000: provided port '
    "is not in the valid range. The range of valid ports is 31000-31999",
    "details": {
        "causes": [
            {
                "field": "spec.ports[0].nodePort",
                "reason": "FieldValueInvalid",
                "message": "Invalid value: 30000: provided port is not in the valid range. The range of valid "
                "ports is 31000-31999",
            },
            {"field": "metadata.labels", "reason": "FieldValueInvalid", "message": "a cause the message omits"},
        ]
    },
}


def api_error(status=422, body=NODE_PORT_REFUSAL):
    e = client.ApiException(status=status, reason="Unprocessable Entity")
    e.body = json.dumps(body)
    return e


def test_a_refused_create_reads_as_the_api_servers_words_with_the_object_and_its_causes():
    refusal = ApiRefusal("create Service svc-nodeport", api_error())
    text = str(refusal)
    assert text.startswith(
        "could not evaluate (set-up: create Service svc-nodeport): HTTP 422 Invalid: Service \"svc-nodeport\" is "
        "invalid: spec.ports[0].nodePort: Invalid value: 30000"
    )
    assert "The range of valid ports is 31000-31999" in text
    assert text.endswith("[causes: metadata.labels: a cause the message omits]")  # only what the message lacks
    assert "UnprocessibleEntityError" not in text and "422\nReason" not in text
    # still an ApiException: code that judges refusals itself reads it as before
    assert isinstance(refusal, client.ApiException) and refusal.status == 422
    answer = answer_to(lambda: (_ for _ in ()).throw(refusal))
    assert answer.status == 422 and answer.cause_for("spec.ports[0].nodePort") is not None


def test_setup_step_turns_any_error_into_setup_failed_naming_the_step():
    with pytest.raises(SetupFailed) as info, verdicts.setup_step("start 2 backend pod(s) app=pod"):
        raise WaitTimeout("2 ready pod(s) matching app=pod", "pod-1: Pending", 120)
    assert str(info.value) == (
        "could not evaluate (set-up: start 2 backend pod(s) app=pod): timed out after 120s waiting for 2 ready "
        "pod(s) matching app=pod; last seen: pod-1: Pending"
    )
    assert isinstance(info.value.__cause__, WaitTimeout)  # kept for the traceback (and node-access skips)

    expected = r"\(set-up: create Service np-svc\): HTTP 403 Forbidden: quota"
    with pytest.raises(SetupFailed, match=expected), verdicts.setup_step("create Service np-svc"):
        raise api_error(403, {"reason": "Forbidden", "message": "quota"})


def test_setup_step_gives_a_commands_exit_code_and_stderr_not_its_credentials():
    error = subprocess.CalledProcessError(
        1,
        ["kubectl", "--kubeconfig=/secret/kubeconfig", "--context=kind-x", "expose", "deployment", "np-pods"],
        stderr='error: Service "np-svc-v2" is invalid: spec.ports[0].nodePort: Invalid value\n',
    )
    with pytest.raises(SetupFailed) as info, verdicts.setup_step("kubectl expose deployment np-pods"):
        raise error
    text = str(info.value)
    assert "`kubectl --context=kind-x expose deployment np-pods` exited 1: error: Service \"np-svc-v2\"" in text
    assert "/secret/kubeconfig" not in text


def test_skips_broken_observables_and_nested_steps_pass_through_unchanged():
    with pytest.raises(pytest.skip.Exception), verdicts.setup_step("outer"):
        pytest.skip("no git on the node")
    with pytest.raises(Broken, match="cluster DNS"), verdicts.setup_step("outer"):
        raise Broken("cluster DNS cannot answer")
    with pytest.raises(SetupFailed) as info, verdicts.setup_step("outer"), verdicts.setup_step("inner"):
        raise RuntimeError("boom")
    assert info.value.step == "inner"


def report(when, outcome="failed", claims=("SVC-01",)):
    return claim_report(f"t.py::test_{claims[0]}", when, outcome, claims, longrepr="E   something")


def test_classify_marks_setup_failures_in_the_body_as_errors_and_broken_fixtures_as_failures():
    body = report("call")
    verdicts.classify(body, SetupFailed("create Service svc-1", "HTTP 403 Forbidden: exceeded quota"))
    assert verdicts.teststatus(body) == ("error", "E", "ERROR")
    fixture = report("setup")
    verdicts.classify(fixture, Broken("cluster DNS cannot answer: CoreDNS pods not ready: coredns-1: Running"))
    assert verdicts.teststatus(fixture) == ("failed", "F", "FAILED")
    typed = report("call")
    verdicts.classify(typed, api_error(404, {"reason": "NotFound", "message": 'services "svc-1" not found'}))
    assert verdicts.teststatus(typed) is None  # a failure as before, in the server's words
    assert verdicts.reason_of(typed) == 'ApiException: HTTP 404 NotFound: services "svc-1" not found'
    plain = report("call")
    verdicts.classify(plain, AssertionError("backend missing"))
    assert verdicts.outcome_of(plain) is None and verdicts.teststatus(plain) is None


def test_the_ledger_tells_could_not_evaluate_from_failed():
    claims = parse_claims("## SVC\n| ID | c | o |\n|---|---|---|\n| SVC-01 | a | x |\n| SVC-07 | b | y |\n")
    ledger = ClaimLedger(claims)
    errored = report("call", claims=("SVC-07",))
    verdicts.classify(errored, SetupFailed("create NodePort Service svc-nodeport", "HTTP 422 Invalid: range"))
    ledger.record(report("setup", "passed", ("SVC-07",)))
    ledger.record(errored)
    broken = report("setup", claims=("SVC-01",))
    verdicts.classify(broken, Broken("cluster DNS cannot answer: Deployment kube-system/coredns scaled to 0"))
    ledger.record(broken)
    found = {v.claim.id: v for v in ledger.verdicts()}
    assert found["SVC-07"].verdict == "error"
    assert found["SVC-07"].reason == (
        "could not evaluate (set-up: create NodePort Service svc-nodeport): HTTP 422 Invalid: range"
    )
    assert found["SVC-01"].verdict == "failed"
    assert found["SVC-01"].reason == "cluster DNS cannot answer: Deployment kube-system/coredns scaled to 0"
    # a fixture error of pytest's own (not a set-up step) reads as "could not evaluate" too
    other = ClaimLedger(claims)
    other.record(report("setup", claims=("SVC-01",)))
    assert next(v for v in other.verdicts() if v.claim.id == "SVC-01").reason.startswith("could not evaluate: ")


def test_the_verdict_travels_to_the_xdist_controller_with_the_report(pytestconfig):
    errored = report("call")
    verdicts.classify(errored, SetupFailed("start client pod client", "pod client not scheduled"))
    data = pytestconfig.hook.pytest_report_to_serializable(config=pytestconfig, report=errored)
    back = pytestconfig.hook.pytest_report_from_serializable(config=pytestconfig, data=json.loads(json.dumps(data)))
    assert verdicts.outcome_of(back) == "error"
    assert verdicts.reason_of(back) == "could not evaluate (set-up: start client pod client): pod client not scheduled"


# --- the plugin end to end ---------------------------------------------------------------------

CLAIMS_MD = """\
## SVC
| ID | claim | observable |
|---|---|---|
| SVC-01 | first | a |
| SVC-07 | second | b |
| SVC-15 | third | c |
"""


@pytest.fixture
def project(plugin_project) -> pytest.Pytester:
    return plugin_project(CLAIMS_MD)


def test_terminal_and_claims_json_say_error_for_a_failed_set_up_step_and_failed_for_a_broken_cluster(project):
    project.makepyfile(
        """
        import pytest
        from clusterproof.errors import Broken
        from clusterproof.verdicts import setup_step

        @pytest.fixture
        def dns():
            raise Broken("cluster DNS cannot answer: CoreDNS pods not ready: coredns-1: Running (CrashLoopBackOff)")

        @pytest.mark.claim("SVC-07")
        def test_nodeport():
            with setup_step("create NodePort Service svc-nodeport"):
                raise RuntimeError("refused")
            assert False, "never reached"

        @pytest.mark.claim("SVC-15")
        def test_dns(dns):
            pass

        @pytest.mark.claim("SVC-01")
        def test_type():
            assert "ClusterIP" == "NodePort", "svc-default was created without type; stored type NodePort"
        """
    )
    art = project.path / "art"
    art.mkdir()
    (art / "cluster.json").write_text(
        json.dumps(
            {
                "schema": 1,
                "clusters": [
                    {"name": "cp-a-services", "health": ["kube-proxy: 0 of 3 nodes ready"]},
                    {"name": "cp-a-other", "health": []},
                ],
            }
        )
    )
    result = project.runpytest("--claims-file", str(project.path / "CLAIMS.md"), "--artifacts-dir", str(art))
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(failed=2, errors=1)
    out = result.stdout.str()
    result.stdout.fnmatch_lines(
        [
            "*= cluster health =*",
            "cp-a-services: kube-proxy: 0 of 3 nodes ready",
            "*= claims =*",
            "SVC-01*failed*test_type*svc-default was created without type*",
            "SVC-07*error*test_nodeport*could not evaluate (set-up: create NodePort Service svc-nodeport)*",
            "SVC-15*failed*test_dns*cluster DNS cannot answer*",
            "failed: the cluster broke the claim*error: could not evaluate*",
        ]
    )
    assert out.index("= cluster health =") < out.index("= claims =")
    data = json.loads((art / "claims.json").read_text())
    assert data["health"] == [{"cluster": "cp-a-services", "findings": ["kube-proxy: 0 of 3 nodes ready"]}]
    by_id = {c["id"]: c for c in data["claims"]}
    assert by_id["SVC-07"]["verdict"] == "error"
    assert by_id["SVC-07"]["reason"] == "could not evaluate (set-up: create NodePort Service svc-nodeport): " \
        "RuntimeError: refused"
    assert by_id["SVC-15"]["verdict"] == "failed" and by_id["SVC-01"]["verdict"] == "failed"


def test_health_section_is_left_out_without_cluster_facts(project):
    project.makepyfile(
        """
        import pytest

        @pytest.mark.claim("SVC-01")
        def test_ok():
            pass
        """
    )
    result = project.runpytest("--claims-file", str(project.path / "CLAIMS.md"), "--artifacts-dir", "art")
    assert "cluster health" not in result.stdout.str()
    assert json.loads((project.path / "art" / "claims.json").read_text())["health"] == []


def test_words_of_other_errors_name_their_type():
    assert verdicts.words(RuntimeError("refused\nmore")) == "RuntimeError: refused"
    assert verdicts.words(KeyError("x")) == "KeyError: 'x'"
