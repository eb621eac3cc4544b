"""The plugin end to end in pytester (in-process pytest runs on generated test files).
No cluster: these tests use no `cluster` fixture, or fail before one would be made."""

import json
from importlib.metadata import entry_points
from pathlib import Path

import pytest

CLAIMS_MD = """\
## SVC
| ID | claim | observable |
|---|---|---|
| SVC-01 | first | a |
| SVC-02 | second | b |
| SVC-03 | third | c |
"""


@pytest.fixture
def project(plugin_project) -> pytest.Pytester:
    return plugin_project(CLAIMS_MD)


def claims_args(pytester: pytest.Pytester, *extra: str) -> list[str]:
    return ["--claims-file", str(pytester.path / "CLAIMS.md"), "--artifacts-dir", str(pytester.path / "art"), *extra]


def test_unknown_claim_id_is_a_usage_error_naming_test_and_id(project):
    project.makepyfile(
        """
        import pytest

        @pytest.mark.claim("SVC-99")
        def test_nope():
            pass
        """
    )
    result = project.runpytest(*claims_args(project))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["ERROR: test_unknown_claim_id_is_a_usage_error_naming_test_and_id.py::test_nope: unknown claim id 'SVC-99'*"]
    )


def test_claim_table_is_printed_and_claims_json_written(project):
    project.makepyfile(
        """
        import pytest

        @pytest.mark.claim("SVC-01")
        def test_holds():
            pass

        @pytest.mark.claim("SVC-02")
        def test_fails():
            assert 1 == 2, "backend missing"

        @pytest.mark.claim("SVC-02", "SVC-01")
        def test_skips():
            pytest.skip("no CoreDNS on the offline cluster")

        def test_untagged():
            pass
        """
    )
    result = project.runpytest(*claims_args(project))
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "*= claims =*",
            "claim*verdict*test(s)*reason*",
            "SVC-01*partial*test_holds, test_skips*no CoreDNS on the offline cluster*",
            "SVC-02*failed*test_fails, test_skips*backend missing*",
            "SVC-03*no test*",
            "*claims.json: *",
        ]
    )
    data = json.loads((project.path / "art" / "claims.json").read_text())
    assert {c["id"]: c["verdict"] for c in data["claims"]} == {
        "SVC-01": "partial",
        "SVC-02": "failed",
        "SVC-03": "no test",
    }


def test_no_claim_table_without_tagged_tests(project):
    project.makepyfile("def test_plain():\n    pass\n")
    result = project.runpytest(*claims_args(project))
    assert result.ret == 0
    assert "claims" not in result.stdout.str().split("passed")[-1]
    assert not (project.path / "art").exists()


def test_markers_are_registered_for_strict_markers(project):
    project.makepyfile(
        """
        import pytest

        @pytest.mark.needs_node_exec
        @pytest.mark.disruptive
        def test_marked():
            pass
        """
    )
    assert project.runpytest(*claims_args(project)).ret == 0


def test_cluster_access_is_checked_once_before_any_test(project):
    project.makepyfile("def test_needs(cluster):\n    pass\n")
    result = project.runpytest(*claims_args(project), "--kubeconfig", str(project.path / "missing.yaml"))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: kubeconfig {project.path / 'missing.yaml'}: no such file"])


def test_collect_only_needs_no_cluster(project):
    project.makepyfile("def test_needs(cluster):\n    pass\n")
    result = project.runpytest(*claims_args(project), "--kubeconfig", "missing.yaml", "--collect-only")
    assert result.ret == 0


def test_claims_reach_the_xdist_controller(project):
    project.makepyfile(
        """
        import pytest

        @pytest.mark.claim("SVC-01")
        def test_a():
            pass

        @pytest.mark.claim("SVC-02")
        def test_b():
            pass
        """
    )
    result = project.runpytest_subprocess(*claims_args(project), "-n", "2")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["SVC-01*held*test_a*", "SVC-02*held*test_b*"])


@pytest.mark.parametrize("xdist", [(), ("-n", "2")], ids=["one process", "xdist"])
def test_deselected_tests_make_a_claim_partial_and_modules_not_run_say_not_run(project, xdist):
    project.makepyfile(
        test_services="""
        import pytest

        @pytest.mark.claim("SVC-01")
        def test_a():
            pass

        @pytest.mark.claim("SVC-01")
        def test_b_slow():
            pass
        """,
        test_quota="""
        import pytest

        @pytest.mark.claim("SVC-02")
        def test_c():
            pass
        """,
    )
    run = project.runpytest_subprocess if xdist else project.runpytest
    result = run(*claims_args(project), "test_services.py", "-k", "not slow", *xdist)
    assert result.ret == 0
    result.stdout.fnmatch_lines(["SVC-01*partial*test_a, test_b_slow*1 of 2 ran; test_b_slow: not run (deselected)*"])
    claims = json.loads((project.path / "art" / "claims.json").read_text())["claims"]
    assert [(c["id"], c["verdict"], c["reason"]) for c in claims[1:]] == [
        ("SVC-02", "not run", "none of its tests was selected in this run (tests in test_quota.py)"),
        ("SVC-03", "no test", ""),
    ]


def test_bad_option_values_fail_with_one_line(project):
    project.makepyfile("def test_x():\n    pass\n")
    result = project.runpytest("--image-map", "nope.map")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --image-map nope.map: no such file"])
    assert len([line for line in result.stderr.lines if line.strip()]) == 1


def test_packaged_claims_file_is_the_default_without_shared(project):
    project.makepyfile(
        """
        import pytest

        @pytest.mark.claim("WRK-06")
        def test_runtime():
            pass
        """
    )
    result = project.runpytest("--artifacts-dir", str(Path(project.path) / "art"))
    assert result.ret == 0
    result.stdout.fnmatch_lines(["WRK-06*held*test_runtime*"])


def test_usage_errors_under_xdist_become_one_collection_error(project):
    project.makepyfile("import pytest\n\n@pytest.mark.claim('SVC-99')\ndef test_a():\n    pass\n")
    result = project.runpytest_subprocess(*claims_args(project), "-n", "2")
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*ERROR collecting test session*", "*test_a: unknown claim id 'SVC-99'*"])
    assert "INTERNALERROR" not in result.stdout.str()


def test_the_run_writes_report_html_beside_claims_json_and_prints_its_path(project):
    project.makepyfile(
        """
        import pytest

        @pytest.mark.claim("SVC-01")
        def test_holds():
            pass

        @pytest.mark.claim("SVC-02")
        def test_fails():
            assert 1 == 2, "backend missing"
        """
    )
    result = project.runpytest(*claims_args(project))
    art = project.path / "art"
    result.stdout.fnmatch_lines(["*claims.json: *", "*= where the time went =*", f"report.html: {art / 'report.html'}"])
    html = (art / "report.html").read_text()
    assert "Needs a look (1)" in html and 'id="claim-SVC-02"' in html and "backend missing" in html
    tests = [t for c in json.loads((art / "claims.json").read_text())["claims"] for t in c["tests"]]
    assert all(t["start"] > 0 and {"setup", "call", "teardown"} <= set(t) for t in tests)
    assert all("start" in row for row in json.loads((art / "timings.json").read_text()))


def test_an_installed_clusterproof_loads_its_plugin_without_any_conftest(pytester: pytest.Pytester):
    """The pytest11 entry point: no conftest wires the plugin, yet its markers, options and claims
    table are there (pytest loads it as it loads every installed plugin)."""
    if not any(ep.value == "clusterproof.plugin" for ep in entry_points(group="pytest11")):
        pytest.skip("clusterproof is not installed (pip install -e .): no pytest11 entry point to load")
    pytester.makefile(".md", CLAIMS=CLAIMS_MD)
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.claim("SVC-01")
        def test_holds():
            pass
        """
    )
    result = pytester.runpytest("--strict-markers", "-p", "no:cacheprovider", *claims_args(pytester))
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*= claims =*", "SVC-01*held*"])


def test_the_junit_xml_is_redacted(project):
    """Captured logs, stdout and the traceback go into the JUnit XML (junit_logging=all): a token
    in any of them is redacted there, and the file is still XML."""
    project.makepyfile(
        """
        import logging

        def test_leaks():
            print("server: https://admin:pw0rd@api.example:6443")
            logging.getLogger("x").warning("Cookie: session=abcdef0123")
            token = "--token s3cr3tvalue"
            assert token == "", "Authorization: Bearer abcdefghijklmnop"
        """
    )
    xml = project.path / "junit.xml"
    result = project.runpytest(*claims_args(project), f"--junitxml={xml}", "-o", "junit_logging=all")
    assert result.ret == 1
    import xml.etree.ElementTree as ElementTree

    text = xml.read_text()
    ElementTree.fromstring(text)
    for secret in ("pw0rd", "abcdef0123", "s3cr3tvalue", "abcdefghijklmnop"):
        assert secret not in text
    assert "[REDACTED]" in text and "test_leaks" in text


BAD_INPUTS = {
    "kubeconfig not UTF-8": (
        {"bad.yaml": b"\xff\xfe not utf-8"},
        ["--kubeconfig", "bad.yaml", "--allow-context", "x"],
        "ERROR: kubeconfig bad.yaml: not UTF-8 text",
    ),
    "kubeconfig contexts: 5": (
        {"bad.yaml": b"kind: Config\ncontexts: 5\n"},
        ["--kubeconfig", "bad.yaml", "--allow-context", "x"],
        "ERROR: kubeconfig bad.yaml: `contexts` is not a list of named contexts",
    ),
    "kind config bad YAML": (
        {"kind.yaml": b"kind: Cluster\nnodes: [\n"},
        ["--cluster-provider", "kind", "--kind-config", "kind.yaml"],
        "ERROR: --kind-config kind.yaml: not YAML (line 3): *",
    ),
    "image map not UTF-8": (
        {"map.txt": b"agnhost=\xff\n"},
        ["--image-map", "map.txt"],
        "ERROR: --image-map map.txt: not UTF-8 text",
    ),
    "claims file not UTF-8": (
        {"c.md": b"| SVC-01 | \xff | x |\n"},
        ["--claims-file", "c.md"],
        "ERROR: claims file c.md: not UTF-8 text",
    ),
    "claims file of garbage": (
        {"c.md": b"\x00garbage\nnot a table\n"},
        ["--claims-file", "c.md"],
        "ERROR: claims file c.md: no claims in it *",
    ),
    "artifacts dir a file": (
        {"art": b"a file"},
        ["--artifacts-dir", "art"],
        "ERROR: --artifacts-dir art: not a directory",
    ),
}


@pytest.mark.parametrize("files, args, line", BAD_INPUTS.values(), ids=BAD_INPUTS)
def test_every_bad_input_is_one_line_and_a_quick_exit(project, files, args, line):
    """Checked before any build or boot: one line, no traceback, at once."""
    import time

    project.makepyfile("def test_needs(cluster):\n    pass\n")
    for name, content in files.items():
        (project.path / name).write_bytes(content)
    started = time.monotonic()
    result = project.runpytest(*claims_args(project), *args)  # the later option wins
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([line])
    assert len([x for x in result.stderr.lines if x.strip()]) == 1, result.stderr.lines
    assert time.monotonic() - started < 5
