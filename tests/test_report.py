"""report.html rendered from recorded run JSON (tests/data/report: a held run, a run with failures
and skips, an upgrade run, earlier runs' claims.json for history; see make_fixtures.py there)."""

import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pytest

from clusterproof.report import write_run_page
from clusterproof.report.__main__ import main
from clusterproof.report.model import PastRun, load_run
from clusterproof.report.page import clamp, history_of, write

DATA = Path(__file__).parent / "data" / "report"
JWT = "eyJhbGciOiJSUzI1NiIsImtpZCI6IjEifQ"  # in the failing run's diagnostics.txt


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    """A copy of the recorded runs (the page is written beside them)."""
    shutil.copytree(DATA, tmp_path / "runs", ignore=shutil.ignore_patterns("*.py"))
    return tmp_path / "runs"


def page_of(run_dir: Path, *history: Path, **kwargs) -> str:
    return write([run_dir], history, **kwargs).read_text(encoding="utf-8")


def text_of(html: str) -> str:
    """The page's visible text, whitespace folded (for reading order)."""

    class Text(HTMLParser):
        def __init__(self):
            super().__init__()
            self.parts, self.skip = [], 0

        def handle_starttag(self, tag, attrs):
            self.skip += tag in ("style", "title")

        def handle_endtag(self, tag):
            self.skip -= tag in ("style", "title")

        def handle_data(self, data):
            if not self.skip:
                self.parts.append(data)

    parser = Text()
    parser.feed(html)
    return " ".join(" ".join(parser.parts).split())


def section(html: str, start_id: str, end_id: str | None = None) -> str:
    start = html.index(">", html.index(f'id="{start_id}"')) + 1
    return html[start : html.index(f'id="{end_id}"', start) if end_id else None]


# --- a held run ------------------------------------------------------------------------------


def test_held_run_shows_cluster_facts_counts_and_every_area_in_order(runs):
    html = page_of(runs / "held")
    text = text_of(html)
    assert "clusterproof run 20261130-031700-a1b2" in text
    assert "No claim failed" in text and "Nothing failed" in text
    assert "66 held" in text
    for fact in ("v1.32.2", "kindnet", "nginx (k8s.io/ingress-nginx)", "standard (rancher.io/local-path, default)",
                 "3: 1 control-plane, 2 worker", "Clusters (8)"):
        assert fact in text, fact
    headings = re.findall(r'<h3 id="area-([A-Z]+)"', html)
    assert headings == ["SVC", "ING", "VOL", "PV", "WRK", "NS", "ERR"]
    assert "started 2026-11-30 03:17:01 UTC" in text  # the run's start (timings' whole run)


def two_clusters(tmp_path: Path, change_ingress, change_quota) -> str:
    """The held run with only the ingress and the quota module's clusters in cluster.json, each
    changed by its function; the page's text per cluster row: {module: text}."""
    artifacts = tmp_path / "run" / "artifacts"
    artifacts.mkdir(parents=True)
    shutil.copy(DATA / "held" / "artifacts" / "claims.json", artifacts)
    recorded = json.loads((DATA / "held" / "artifacts" / "cluster.json").read_text())["clusters"]
    ingress = next(c for c in recorded if c["key"] == "suites.test_ingress")
    quota = next(c for c in recorded if c["key"] == "suites.test_quota")
    change_ingress(ingress)
    change_quota(quota)
    (artifacts / "cluster.json").write_text(json.dumps({"schema": 1, "clusters": [ingress, quota]}))
    return page_of(tmp_path / "run")


def cluster_rows(html: str) -> dict[str, str]:
    rows = re.findall(r'<tr class="cluster" data-cluster="([^"]+)">(.*?)</tr>', html, re.S)
    return {name: text_of(row) for name, row in rows}


def test_each_cluster_shows_its_own_facts_beside_its_module(tmp_path):
    """Two clusters that differ in every fact of their own: each row states its cluster's, as
    cluster.json recorded them (the ingress module's controller, not the IngressClasses seen at
    hand-over); what they share is said once."""

    def traefik_installed(c):
        c["ingress_classes"] = []  # none when the cluster was handed over: the module installed one
        c["ingress_controller"] = {"name": "traefik", "version": "v3.6.12", "class": "traefik",
                                   "controller": "traefik.io/ingress-controller", "namespace": "traefik",
                                   "installed": True}

    def small_calico_cluster(c):
        c["nodes"] = [{**c["nodes"][0], "ready": False}]
        c["cni"] = {"name": "calico", "source": "DaemonSet kube-system/calico-node", "image": "calico/node:v3.30"}
        c["ingress_classes"] = []
        c["storage_classes"] = [{"name": "fast", "provisioner": "ebs.csi.aws.com", "default": True}]

    html = two_clusters(tmp_path, traefik_installed, small_calico_cluster)
    rows = cluster_rows(html)
    assert list(rows) == ["cp-031700a1b2-ingress", "cp-031700a1b2-quota"]
    ingress, quota = rows.values()
    for fact in ("test_ingress.py", "traefik v3.6.12 (IngressClass traefik, installed by the module)",
                 "3: 1 control-plane, 2 worker", "kindnet", "standard (rancher.io/local-path, default)"):
        assert fact in ingress, fact
    assert 'title="traefik.io/ingress-controller in namespace traefik"' in html  # where it runs, on hover
    for fact in ("test_quota.py", "1: 1 control-plane", "0 of 1 Ready", "calico", "none (no IngressClass)",
                 "fast (ebs.csi.aws.com, default)"):
        assert fact in quota, fact
    assert "calico" not in ingress and "traefik" not in quota and "standard" not in quota
    panel = text_of(section(html, "clusters", "areas"))
    assert "Kubernetes v1.32.2 kubelet v1.32.2" in panel  # shared: said once, above the rows
    assert "v1.32.2" not in ingress + quota
    assert "Clusters (2)" in panel


def test_a_fact_the_clusters_do_not_share_is_said_for_each(tmp_path):
    def older(c):
        c["server_version"] = "v1.31.4"

    def failed_install(c):
        c["ingress_controller"] = {"name": "traefik", "version": "v3.6.12", "class": "traefik", "installed": True,
                                   "error": "ingress controller traefik v3.6.12 did not become ready: ..."}

    html = two_clusters(tmp_path, failed_install, older)
    ingress, quota = cluster_rows(html).values()
    assert "v1.32.2" in ingress and "v1.31.4" in quota
    assert "not working" in ingress and "did not become ready" in ingress


def test_one_cluster_for_every_module_is_described_on_its_own(tmp_path):
    def session(c):
        c["key"] = "session"

    artifacts = tmp_path / "run" / "artifacts"
    artifacts.mkdir(parents=True)
    shutil.copy(DATA / "failures" / "artifacts" / "claims.json", artifacts)
    recorded = json.loads((DATA / "failures" / "artifacts" / "cluster.json").read_text())["clusters"]
    ingress = next(c for c in recorded if c["key"] == "suites.test_ingress")
    session(ingress)
    (artifacts / "cluster.json").write_text(json.dumps({"schema": 1, "clusters": [ingress]}))
    panel = text_of(section(page_of(tmp_path / "run"), "clusters", "areas"))
    assert "cluster cp-031700c3d4-ingress for every module (one cluster)" in panel
    assert "ingress controller none to test no ingress controller: ingress-nginx is not to be had offline" in panel
    assert "CNI ptp (clusterproof offline)" in panel and "nodes 3: 1 control-plane, 2 worker" in panel


def test_each_row_has_claim_text_badge_and_tests_with_durations(runs):
    html = page_of(runs / "held")
    row = html[html.index('id="claim-SVC-09"') :].split("</tr>")[0]
    assert "nodePort is optional" in row
    assert '<span class="badge held">held</span>' in row
    assert row.count('<span class="dot passed">') == 3
    assert re.search(r'test_<wbr>nodeport_<wbr>left_<wbr>out.*?<span class="dur">\d+\.\d s</span>', row)
    assert "setup " in row and "teardown " in row  # the whole breakdown in the tooltip


def test_timeline_draws_image_clusters_modules_and_tests(runs):
    html = page_of(runs / "failures")
    svg = section(html, "time")
    svg = svg[svg.index("<svg") : svg.index("</svg>")]
    lanes = re.findall(r'<text class="lane"[^>]*>(?:<title>[^<]*</title>)?([^<]+)</text>', svg)
    assert lanes[0] == "offline node image (build or cach…"
    assert lanes[1:5] == ["test_services.py", "cluster services", "test_service_discovery.py",
                          "cluster service-discovery"]
    assert len(lanes) == 1 + 8 * 2
    assert svg.count('class="p-create"') == 8 and svg.count('class="p-delete"') == 8
    assert svg.count('class="o-failed"') == 2 and 'class="o-error fixture"' in svg
    assert "test_clusterip_spreads_requests_over_exactly_the_ready_pods_from_every_node: failed, call 1 min 38 s" in svg
    text = text_of(section(html, "time", "history"))
    assert re.search(r"kind create 8 42\.\d s 5 min \d\d s", text)
    assert "Slowest tests" in text and "whole run 19 min 44 s" in text


# --- failures and skips ----------------------------------------------------------------------


def test_failures_come_first_at_the_top_and_in_their_area(runs):
    html = page_of(runs / "failures")
    text = text_of(html)
    assert "2 claims failed, 1 error" in text
    needs = text_of(section(html, "attention"))
    assert needs.startswith("Needs a look (3) failed SVC-03 A Service spreads requests")
    assert needs.index("SVC-03") < needs.index("VOL-03") < needs.index("PV-07")
    # before any held row of the page
    first_held = html.index('class="v-held"')
    assert html.index('href="#claim-SVC-03"') < first_held
    assert html.index('href="#claim-PV-07"') < first_held
    # in its area: failed, then partial, skipped, then held
    svc = re.findall(r'<tr id="claim-(SVC-\d+)" class="v-([a-z-]+)"', section(html, "area-SVC", "area-ING"))
    verdicts = [v for _, v in svc]
    assert verdicts[0] == "failed" and verdicts[1] == "partial" and set(verdicts[2:5]) == {"skipped"}
    assert verdicts[5:] == ["held"] * len(verdicts[5:])
    assert '<a href="#area-SVC" class="bad">' in html


def test_skip_reasons_and_failure_messages_are_shown_and_long_text_folds(runs):
    html = page_of(runs / "failures")
    ing = section(html, "claim-ING-01", "claim-ING-06")
    assert "no ingress controller: ingress-nginx is not to be had offline" in ing
    svc03 = section(html, "claim-SVC-03", "claim-SVC-13")
    assert "WaitTimeout: every backend of Service web" in svc03
    # the whole message (several lines) folded into <details>, the reason clamped above it
    folded = r"<details><summary>failure message of .*?</summary><pre>WaitTimeout.*Endpoints web: "
    assert re.search(folded, svc03, re.S)
    assert clamp("word " * 100)[1]  # long reasons fold
    assert clamp("short") == ("short", "")


def test_diagnostics_link_is_relative_and_the_text_is_clamped_and_redacted(runs):
    html = page_of(runs / "failures")
    svc03 = section(html, "claim-SVC-03", "claim-SVC-13")
    href = re.search(r'<a class="small" href="([^"]+)"[^>]*>diagnostics.txt</a>', svc03).group(1)
    assert not href.startswith(("/", "file:")) and href.endswith("/diagnostics.txt")
    assert (runs / "failures" / "artifacts" / href).is_file()
    assert re.search(r"diagnostics of .*\(\d+ lines, cut\)</summary>", svc03)
    assert "… cut here: the whole file is" in svc03
    assert JWT not in html and "Bearer [REDACTED]" in html
    # the long line without spaces is inside a <pre> (which wraps), not in a table cell of its own
    assert "-".join(["configmap-key-not-found"] * 40) in svc03[svc03.index("<pre>cluster cp-") :]


def test_the_upgrade_section_is_absent_without_upgrade_json(runs):
    html = page_of(runs / "failures")
    assert 'id="upgrade"' not in html and "UPG" not in re.findall(r'<h3 id="area-([A-Z]+)"', html)


# --- an upgrade run --------------------------------------------------------------------------


def test_upgrade_run_draws_disruptions_per_target_and_node_markers(runs):
    html = page_of(runs / "upgrade")
    text = text_of(html)
    assert "No claim failed · 1 upgrade check failed" in text
    assert '<header class="top bad">' in html
    up = section(html, "upgrade", "history")
    assert "Upgrade v1.31.6 → v1.32.2" in text_of(up)
    svg = up[up.index("<svg") : up.index("</svg>")]
    assert svg.count('class="u-down"') == 4
    assert svg.count('class="marker"') == 3  # one dashed line per node's upgrade
    assert svg.count('class="u-node"') == 3
    assert "node worker2" in svg
    assert "Ingress /app down: 4:23 – 4:51 (28.4 s) — HTTP 503 from ingress-nginx" in svg
    targets = text_of(up)
    assert "Service web ClusterIP (from a pod) never" in targets
    assert "NodePort 30080 on every node 2× 6.0 s 4.2 s" in targets
    # before/after: failed first, expected and observed side by side
    checks = re.findall(r'<tr class="v-([a-z-]+)"><td>([^<]+)</td>', up)
    assert checks[0] == ("failed", "hostPath file /var/local/cp-marker on the worker survives the node upgrade")
    assert len(checks) == 6


def test_upgrade_checks_are_upg_rows_and_a_failed_one_needs_a_look(runs):
    html = page_of(runs / "upgrade")
    assert re.findall(r'<h3 id="area-([A-Z]+)"', html)[-1] == "UPG"
    needs = text_of(section(html, "attention"))
    assert "Needs a look (1) failed UPG-check-5 hostPath file" in needs
    assert "expected present, sha256:51aa0c, observed missing" in needs


# --- history ---------------------------------------------------------------------------------


def test_history_shows_each_claims_verdicts_and_marks_changes_and_flips(runs):
    html = page_of(runs / "failures", runs / "history")
    hist = section(html, "history")
    assert "7 earlier runs and this one" in text_of(hist)
    row = hist[hist.index('<a href="#claim-SVC-03">') :].split("</tr>")[0]
    cells = re.findall(r'<td class="h ([a-z-]+)"', row)
    assert cells == ["held", "failed", "held", "failed", "held", "held", "held", "failed"]
    assert "changed: held → failed" in row and "flips (5 changes)" in row
    # steady claims fold away; changed ones come first, failures before skips
    changed_ids = re.findall(r'<tr><td><a href="#claim-([A-Z]+-\d+)">', hist.split("<details>")[0])
    assert changed_ids[:3] == ["SVC-03", "VOL-03", "PV-07"]
    assert "54 claims with the same verdict in every run" in hist
    assert "Changed since the previous run (12)" in text_of(section(html, "attention"))


def test_history_window_and_the_run_itself_counted_once():
    run = load_run(DATA / "failures")
    past = [PastRun(f"2026112{i}-031700-0a0{i}", 1_790_000_000 + i, {"SVC-03": "held"}) for i in range(1, 9)]
    past.append(PastRun(run.run_id, run.when, {"SVC-03": "failed"}))  # this run, also in the history dir
    history = history_of(run, past, last=4)
    assert [c["id"] for c in history["columns"]] == [p.run_id for p in past[5:8]] + [run.run_id]
    svc03 = next(r for r in history["changed"] if r["id"] == "SVC-03")
    assert [c["verdict"] for c in svc03["cells"]] == ["held", "held", "held", "failed"]
    assert svc03["changed"] and not svc03["flips"]


def test_a_run_that_did_not_run_a_claim_is_no_change_in_its_history():
    run = load_run(DATA / "failures")
    svc03 = next(c for c in run.claims if c.id == "SVC-03")
    svc03.verdict = "not run"
    past = [PastRun(f"2026112{i}-031700-0a0{i}", 1_790_000_000 + i, {"SVC-03": v})
            for i, v in enumerate(["held", "not run", "held"], 1)]
    row = next(r for r in [*history_of(run, past)["changed"], *history_of(run, past)["steady"]] if r["id"] == "SVC-03")
    assert not row["changed"] and not row["flips"]
    assert [c["letter"] for c in row["cells"]] == ["H", "R", "H", "R"]


def test_without_history_the_page_says_how_to_get_it(runs):
    assert "No earlier runs given." in text_of(page_of(runs / "held"))


# --- the page as a file ------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["held", "failures", "upgrade"])
def test_page_is_self_contained_and_light(runs, name):
    html = page_of(runs / name, runs / "history")
    assert html.startswith("<!doctype html>")
    assert not re.search(r"<script|<link|<img|<iframe|\bsrc=|url\(|@import", html, re.I)
    assert not re.search(r'href="(?!#)[a-z]+:', html)  # links are anchors or relative files
    assert set(re.findall(r"https?://[^\s\"'<]+", html)) <= {"http://www.w3.org/2000/svg"}  # a namespace only
    assert len(html.encode()) < 300_000


def test_secrets_in_any_json_are_redacted(runs):
    claims = runs / "held" / "artifacts" / "claims.json"
    data = json.loads(claims.read_text())
    data["claims"][0]["verdict"] = "failed"
    data["claims"][0]["reason"] = "login failed: password=hunter2 token: abcdef.0123456789abcdef"
    claims.write_text(json.dumps(data))
    facts = runs / "held" / "artifacts" / "cluster.json"
    leak = '"errors": ["nodes: Authorization: Bearer abcdefgh12345678"]'
    facts.write_text(facts.read_text().replace('"errors": []', leak, 1))
    html = page_of(runs / "held")
    assert "hunter2" not in html and "0123456789abcdef" not in html and "abcdefgh12345678" not in html
    assert "password=[REDACTED]" in html


def test_only_claims_json_is_enough(tmp_path):
    artifacts = tmp_path / "run" / "artifacts"
    artifacts.mkdir(parents=True)
    shutil.copy(DATA / "failures" / "artifacts" / "claims.json", artifacts)
    html = page_of(tmp_path / "run")
    text = text_of(html)
    assert "No cluster facts recorded" in text
    assert "took 19 min 41 s (tests only)" in text
    svg = section(html, "time")
    assert "<svg" in svg and "test_services.py" in svg and "cluster services" not in svg  # tests only


def test_timings_without_start_times_still_list_the_phases(runs):
    timings = runs / "held" / "artifacts" / "timings.json"
    rows = [{k: v for k, v in r.items() if k != "start"} for r in json.loads(timings.read_text())]
    claims = runs / "held" / "artifacts" / "claims.json"
    data = json.loads(claims.read_text())
    for c in data["claims"]:
        for t in c["tests"]:
            t.pop("start", None)
    claims.write_text(json.dumps(data))
    timings.write_text(json.dumps(rows))
    html = page_of(runs / "held")
    assert "timings.json has no start times" in html and "<svg" not in html
    assert "whole run" in text_of(section(html, "time"))


# --- writing it --------------------------------------------------------------------------------


def test_cli_writes_beside_the_newest_runs_claims_with_the_others_as_history(runs, capsys):
    assert main([str(runs / "held"), str(runs / "failures")]) == 0
    page = runs / "failures" / "artifacts" / "report.html"
    assert capsys.readouterr().out.strip() == str(page)
    assert "1 earlier run and this one" in text_of(page.read_text())
    out = runs / "out" / "page.html"
    assert main([str(runs / "upgrade" / "artifacts"), "--history", str(runs / "history"), "-o", str(out)]) == 0
    html = out.read_text()
    assert "7 earlier runs and this one" in text_of(html)
    # links from the page's own place
    assert "../upgrade/artifacts/" not in html or (out.parent / "../upgrade/artifacts").exists()


def test_cli_names_a_directory_without_a_run(tmp_path, capsys):
    assert main([str(tmp_path)]) == 2
    assert f"error: {tmp_path}: no claims.json" in capsys.readouterr().err


def test_the_run_never_fails_over_the_page(tmp_path):
    (tmp_path / "claims.json").write_text("{not json")
    message = write_run_page(tmp_path)
    assert message.startswith("not written (ReportError: ") and "not JSON" in message
    assert not (tmp_path / "report.html").exists()


def test_an_upgrade_json_of_the_wrong_shape_is_shown_as_far_as_it_goes(runs):
    path = runs / "upgrade" / "artifacts" / "upgrade.json"
    data = json.loads(path.read_text())
    data["phases"].append("not an object")
    data["nodes"].append({"node": "no-start"})
    data["disruptions"].append({"target": "x", "start": "03:40", "end": 5})
    data["checks"].append({"check": "dicts", "expected": {"uid": "a"}, "observed": ["b"], "verdict": "failed"})
    path.write_text(json.dumps(data))
    html = page_of(runs / "upgrade")
    assert "3 entries of upgrade.json not of the documented shape" in html
    assert html.count('class="u-node"') == 3
    assert "{&#39;uid&#39;: &#39;a&#39;}" in html
    path.write_text('["not", "an", "object"]')
    assert "1 entry of upgrade.json not of the documented shape" in page_of(runs / "upgrade")


def test_cluster_health_is_shown_at_the_top_clusters_with_the_same_findings_together(runs):
    """cluster.json `health` (what clusterproof.health found at hand-over) comes first on the page."""
    artifacts = runs / "failures" / "artifacts"
    data = json.loads((artifacts / "cluster.json").read_text())
    finding = "kube-proxy: 0 of 3 nodes ready (the DaemonSet was never processed)"
    for c in data["clusters"][:2]:
        c["health"] = [finding, "no DaemonSet has been processed (kube-proxy): is the DaemonSet controller running?"]
    (artifacts / "cluster.json").write_text(json.dumps(data))
    html = page_of(runs / "failures")
    text = text_of(html)

    assert text.index("Cluster health") < text.index("Needs a look")
    health = section(html, "health", "attention")
    assert health.count(finding) == 1  # two clusters, one list
    assert "cp-031700c3d4-services, cp-031700c3d4-service-discovery" in health
    assert "is the DaemonSet controller running?" in health


def test_no_health_section_when_nothing_was_found(runs):
    assert 'id="health"' not in page_of(runs / "held")


def test_a_stretch_the_monitor_did_not_observe_is_grey_and_counted_apart_from_downtime(runs):
    path = runs / "upgrade" / "artifacts" / "upgrade.json"
    data = json.loads(path.read_text())
    start = data["disruptions"][0]["start"]
    data["disruptions"].append(
        {
            "target": "Service web ClusterIP (from a pod)",
            "start": start,
            "end": start + 45.0,
            "not_observed": True,
            "detail": "no sample for 45.0s",
        }
    )
    data["version_rule"] = "v1.32.2 (--expect-version)"
    path.write_text(json.dumps(data))
    up = section(page_of(runs / "upgrade"), "upgrade", "history")
    svg = up[up.index("<svg") : up.index("</svg>")]
    assert svg.count('class="u-blind"') == 1 and svg.count('class="u-down"') == 4
    assert "Service web ClusterIP (from a pod) not observed" in svg
    assert "Service web ClusterIP (from a pod) never 45.0 s" in text_of(up)  # down never; 45 s not observed
    assert "UPG-08 required every component v1.32.2 (--expect-version)." in text_of(up)


def test_the_migration_view_puts_each_ingress_claim_beside_the_gateway_api_route_that_mirrors_it(tmp_path):
    """#21: for each of the notes' Ingress behaviours, the GW claim naming it ("mirrors ING-03"),
    both verdicts and what holds on both; no section without GW claims."""
    from clusterproof.claims import load_claims
    from clusterproof.settings import PACKAGE_DATA

    packaged = load_claims(PACKAGE_DATA / "CLAIMS.md")
    verdicts = {"ING-03": "held", "GW-02": "failed", "ING-05": "held", "GW-04": "held", "ING-06": "held"}
    claims = [
        {"id": cid, "section": packaged[cid].section, "claim": packaged[cid].text, "verdict": verdict, "reason": "",
         "tests": []}
        for cid, verdict in verdicts.items()
    ]
    artifacts = tmp_path / "run" / "artifacts"
    artifacts.mkdir(parents=True)
    (artifacts / "claims.json").write_text(json.dumps({"run_id": "r1", "claims": claims}))
    html = page_of(tmp_path / "run")
    view = text_of(section(html, "migration", "time"))
    assert "ING-03 One Ingress routes by path to different Services" in view
    assert "GW-02 HTTPRoute minimal-route sends each path prefix to its own Service" in view
    assert "held GW-02" in view and "failed holds on Ingress only" in view
    assert "ING-05" in view and "held holds on both" in view
    assert "ING-06" not in view  # GW-05 is not in this run: nothing to put beside it
    assert view.index("ING-03") < view.index("ING-05")

    (artifacts / "claims.json").write_text(json.dumps({"run_id": "r1", "claims": claims[:1]}))
    assert 'id="migration"' not in page_of(tmp_path / "run")
