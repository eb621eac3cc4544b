"""report.html: the run's JSON turned into what the template shows, then rendered.

The template (templates/report.html.j2) only lays out; the choices (what comes first, what is
grouped, what is clamped) are made here. Every value the template prints goes through
redact() (the environment's finalize), and the drawings redact their own text.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup, escape

from clusterproof.redact import redact
from clusterproof.report import PAGE, svg
from clusterproof.report.cluster_panel import cluster_panel, health_groups
from clusterproof.report.model import (
    ClaimRow,
    PastRun,
    Run,
    TestRow,
    area_order,
    diagnostics_excerpt,
    find_claims_files,
    load_past,
    load_run,
    relative_link,
    severity,
)

HISTORY_RUNS = 10  # columns of the history table, this run included
REASON_CLAMP = 240  # characters of a reason shown before the rest folds into <details>
SLOWEST = 10
AREA_TITLES = {"UPG": "UPG: the upgrade (upgrade.json)"}
_GENERATED_ID = re.compile(r"^(\d{4})(\d{2})(\d{2})-(\d{2})(\d{2})(\d{2})-[0-9a-f]{4}$")


def write(
    run_dirs: Sequence[Path],
    history_dirs: Sequence[Path] = (),
    output: Path | None = None,
    last: int = HISTORY_RUNS,
) -> Path:
    """The page of the newest of `run_dirs`; the others and every claims.json under
    `history_dirs` are its history. Written to `output` or `<artifacts>/report.html`."""
    runs = sorted((load_run(d) for d in run_dirs), key=lambda r: r.when)
    run = runs[-1]
    past = [PastRun(r.run_id, r.when, {c.id: c.verdict for c in r.claims}) for r in runs[:-1]]
    for directory in history_dirs:
        past += [load_past(p) for p in find_claims_files(directory)]
    page = output or run.artifacts / PAGE
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text(render(run, past, page, last, history_given=bool(history_dirs) or len(runs) > 1), "utf-8")
    return page


def render(run: Run, past: list[PastRun], page: Path, last: int = HISTORY_RUNS, history_given: bool = False) -> str:
    history = history_of(run, past, last) if history_given else None
    upgrade = upgrade_view(run.upgrade) if run.upgrade else None
    groups = claim_groups(run, page, upgrade)
    return _environment().get_template("report.html.j2").render(
        run=run,
        run_when=when_text(run.when) if run.when else "unknown",
        run_length=svg.duration(run.whole_run["seconds"]) if run.whole_run else _test_span(run),
        counts=verdict_counts(run.counts),
        clusters=cluster_panel(run.clusters),
        health=health_groups(run.clusters),
        attention=attention(groups),
        groups=groups,
        timeline=svg.run_timeline(run),
        timing_rows=run.timings,
        slowest=slowest(run),
        phase_totals=phase_totals(run),
        upgrade=upgrade,
        history=history,
        migration=migration(run),
    )


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("clusterproof.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        finalize=_redacted,
    )
    env.filters["duration"] = svg.duration
    env.filters["when"] = when_text
    env.filters["breakable"] = breakable
    return env


def breakable(text: str) -> Markup:
    """Long identifiers (test names, paths) may wrap after _ / - (no mid-word breaks)."""
    escaped = str(escape(redact(str(text))))
    return Markup(re.sub(r"([_/-])", r"\1<wbr>", escaped))


def _redacted(value: Any) -> Any:
    """Every printed value: our own markup (drawings) as is, any text redacted."""
    if isinstance(value, Markup) or not isinstance(value, str):
        return value
    return redact(value)


# --- verdicts at a glance --------------------------------------------------------------------

VERDICT_ORDER = ("failed", "error", "partial", "skipped", "not run", "no test", "held")
# the history table's one letter per verdict (first letters, but "not run" and "no test" both start with n)
VERDICT_LETTER = {"not run": "R", "no test": "N"}


def verdict_counts(counts: dict[str, int]) -> list[tuple[str, int]]:
    known = [(v, counts[v]) for v in VERDICT_ORDER if counts.get(v)]
    return known + [(v, n) for v, n in counts.items() if v not in VERDICT_ORDER and n]


def css_verdict(verdict: str) -> str:
    return re.sub(r"[^a-z]+", "-", verdict.lower()).strip("-") or "unknown"


@dataclass
class TestView:
    test: TestRow
    diagnostics_href: str = ""
    diagnostics_text: str = ""
    diagnostics_cut: bool = False
    diagnostics_lines: int = 0


@dataclass
class RowView:
    id: str
    text: str
    verdict: str
    reason: str
    reason_rest: str = ""  # the part of a long reason folded into <details>
    tests: list[TestView] = field(default_factory=list)
    messages: list[tuple[str, str]] = field(default_factory=list)  # (test name, whole failure message)
    source: str = ""  # where the row comes from when not from claims.json (upgrade.json)

    @property
    def css(self) -> str:
        return css_verdict(self.verdict)

    @property
    def anchor(self) -> str:
        return "claim-" + re.sub(r"[^A-Za-z0-9-]+", "-", self.id)


@dataclass
class Group:
    area: str
    title: str
    rows: list[RowView]

    @property
    def counts(self) -> list[tuple[str, int]]:
        counts: dict[str, int] = {}
        for row in self.rows:
            counts[row.verdict] = counts.get(row.verdict, 0) + 1
        return verdict_counts(counts)

    @property
    def all_held(self) -> bool:
        return all(r.verdict == "held" for r in self.rows)


def claim_groups(run: Run, page: Path, upgrade: dict[str, Any] | None) -> list[Group]:
    """Claims by area (CLAIMS.md's order), in each the failed and errored first."""
    by_area: dict[str, list[RowView]] = {}
    titles: dict[str, str] = {}
    for claim in run.claims:
        by_area.setdefault(claim.area, []).append(_row(claim, page))
        titles.setdefault(claim.area, claim.section or claim.area)
    if upgrade:
        by_area.setdefault("UPG", []).extend(upgrade["rows"])
    groups = []
    for area in sorted(by_area, key=area_order):
        rows = sorted(by_area[area], key=lambda r: (severity(r.verdict), _id_order(r.id)))
        groups.append(Group(area, AREA_TITLES.get(area) or titles.get(area, area), rows))
    return groups


def _id_order(claim_id: str) -> tuple[str, int]:
    found = re.match(r"^(.*?)(\d+)$", claim_id)
    return (found.group(1), int(found.group(2))) if found else (claim_id, 0)


def _row(claim: ClaimRow, page: Path) -> RowView:
    row = RowView(claim.id, claim.text, claim.verdict, claim.reason)
    for test in claim.tests:
        view = TestView(test)
        if test.diagnostics is not None:
            view.diagnostics_href = relative_link(test.diagnostics, page)
            text, cut = diagnostics_excerpt(test.diagnostics)
            view.diagnostics_text, view.diagnostics_cut = text, cut
            view.diagnostics_lines = text.count("\n") + 1
        row.tests.append(view)
        if test.message and test.outcome in ("failed", "error"):
            row.messages.append((test.name, test.message))
    # a long reason folds away; into the failure message when there is one (it starts the same)
    row.reason, row.reason_rest = clamp(claim.reason)
    if row.messages and row.reason_rest:
        row.reason, row.reason_rest = row.reason + " …", ""
    return row


def clamp(text: str, limit: int = REASON_CLAMP) -> tuple[str, str]:
    """(what shows, what folds away): cut at a space near the limit."""
    if len(text) <= limit:
        return text, ""
    cut = text.rfind(" ", limit // 2, limit)
    cut = cut if cut > 0 else limit
    return text[:cut], text[cut:]


@dataclass
class Attention:
    anchor: str
    id: str
    verdict: str
    text: str
    why: str

    @property
    def css(self) -> str:
        return css_verdict(self.verdict)


def attention(groups: list[Group]) -> list[Attention]:
    """What needs a look, at the top of the page: failed and errored rows (claims and upgrade
    checks); the history's changes are listed under them."""
    items = [
        Attention(row.anchor, row.id, row.verdict, row.text, (row.reason + row.reason_rest).removesuffix(" …"))
        for group in groups
        for row in group.rows
        if row.verdict in ("failed", "error")
    ]
    items.sort(key=lambda a: severity(a.verdict))
    return items


# --- the Ingress -> Gateway API migration view ----------------------------------------------

_MIRRORS = re.compile(r"\(mirrors (ING-\d+)")


@dataclass
class Migration:
    """One of the notes' Ingress behaviours and the Gateway API route claim that mirrors it."""

    ingress: ClaimRow | None
    route: ClaimRow

    @property
    def together(self) -> str:
        """Both held, both not held, or which of the two holds."""
        held = {
            "Ingress": self.ingress is not None and self.ingress.verdict == "held",
            "Gateway API": self.route.verdict == "held",
        }
        if all(held.values()):
            return "holds on both"
        if not any(held.values()):
            return "holds on neither"
        return f"holds on {next(k for k, v in held.items() if v)} only"


def migration(run: Run) -> list[Migration]:
    """For each GW claim, the ING claim it names as its mirror ("(mirrors ING-03)" in its text),
    side by side: what holds on both, for a team moving off ingress-nginx."""
    by_id = {c.id: c for c in run.claims}
    rows = []
    for claim in run.claims:
        found = _MIRRORS.search(claim.text) if claim.area == "GW" else None
        if found:
            rows.append(Migration(by_id.get(found.group(1)), claim))
    return sorted(rows, key=lambda m: _id_order(m.ingress.id if m.ingress else m.route.id))


# --- where the time went -------------------------------------------------------------------------


def slowest(run: Run) -> list[dict[str, Any]]:
    """The longest tests (their call: setup holds the module's cluster; the phases are summed
    in phase_totals)."""
    items = [
        {"what": t.name, "kind": t.outcome, "seconds": t.call, "title": t.nodeid}
        for t in run.tests
        if t.start is not None
    ]
    items.sort(key=lambda i: -i["seconds"])
    items = items[:SLOWEST]
    top = max((i["seconds"] for i in items), default=0) or 1
    for item in items:
        item["pct"] = round(100 * item["seconds"] / top, 1)
    return items


def phase_totals(run: Run) -> list[dict[str, Any]]:
    """Cluster phases summed over the run's clusters: `kind create` 8 × 42 s = 5 min 36 s."""
    totals: dict[str, list[float]] = {}
    for row in run.timings:
        found = re.match(r"^cluster [^:]+: (.+)$", str(row.get("what", "")))
        if found:
            totals.setdefault(found.group(1), []).append(float(row.get("seconds", 0)))
    tests = [t for t in run.tests if t.start is not None]
    rows = [
        {"phase": phase, "count": len(s), "mean": sum(s) / len(s), "total": sum(s), "css": svg.phase_class(phase)}
        for phase, s in totals.items()
    ]
    if tests:
        calls = [t.call for t in tests]
        rows.append(
            {"phase": "tests (call)", "count": len(calls), "mean": sum(calls) / len(calls), "total": sum(calls),
             "css": "o-passed"}
        )
    return rows


def _test_span(run: Run) -> str:
    if run.started and run.finished:
        return svg.duration(run.finished - run.started) + " (tests only)"
    return "unknown"


# --- upgrade -----------------------------------------------------------------------------------


def upgrade_view(upgrade: dict[str, Any]) -> dict[str, Any]:
    """upgrade.json (schema in docs/DESIGN.md) as shown: the drawing, downtime per target, the
    before/after checks, and the checks as UPG rows of the claims table."""
    disruptions = [d for d in upgrade.get("disruptions", []) if isinstance(d, dict)]
    targets = []
    for target in svg.upgrade_targets(upgrade):
        mine = [d for d in disruptions if d.get("target") == target and _span(d)]
        down = [d["end"] - d["start"] for d in mine if not d.get("not_observed")]
        blind = [d["end"] - d["start"] for d in mine if d.get("not_observed")]
        targets.append(
            {
                "target": target,
                "intervals": len(down),
                "total": svg.duration(sum(down)) if down else "",
                "longest": svg.duration(max(down)) if down else "",
                "blind": svg.duration(sum(blind)) if blind else "",
            }
        )
    checks = [c for c in upgrade.get("checks", []) if isinstance(c, dict)]
    numbered = sorted(enumerate(checks, 1), key=lambda ic: severity(str(ic[1].get("verdict", "?"))))
    checks = [c for _, c in numbered]
    rows = []
    for i, check in numbered:
        verdict = str(check.get("verdict", "?"))
        reason = f"expected {check.get('expected', '?')}, observed {check.get('observed', '?')}"
        shown, rest = clamp(reason)
        row = RowView(str(check.get("claim") or f"UPG-check-{i}"), str(check.get("check", "?")), verdict, shown, rest)
        row.source = "upgrade.json"
        rows.append(row)
    counts: dict[str, int] = {}
    for c in checks:
        counts[str(c.get("verdict", "?"))] = counts.get(str(c.get("verdict", "?")), 0) + 1
    phases = [p for p in upgrade.get("phases", []) if isinstance(p, dict)]
    return {
        "from": upgrade.get("from", ""),
        "to": upgrade.get("to", ""),
        "version_rule": upgrade.get("version_rule", ""),
        "cluster": upgrade.get("cluster", ""),
        "phases": phases,
        "started": min((p["start"] for p in phases if _span(p)), default=None),
        "drawing": svg.upgrade_timeline(upgrade),
        "targets": targets,
        "checks": [{**c, "css": css_verdict(str(c.get("verdict", "?")))} for c in checks],
        "counts": verdict_counts(counts),
        "rows": rows,
        "nodes": upgrade.get("nodes", []),
        "dropped": upgrade.get("dropped", 0),
    }


def _span(item: dict[str, Any]) -> bool:
    return isinstance(item.get("start"), int | float) and isinstance(item.get("end"), int | float)


# --- history -------------------------------------------------------------------------------------


def history_of(run: Run, past: list[PastRun], last: int = HISTORY_RUNS) -> dict[str, Any]:
    """Each claim's verdict over the last `last` runs (this one last). A claim whose verdict
    differs from the run before is `changed`; one that changed twice or more `flips`."""
    earlier = {p.run_id: p for p in past if p.run_id != run.run_id}  # a run given twice counts once
    window = sorted(earlier.values(), key=lambda p: p.when)[-(max(last, 2) - 1):]
    columns = [{"id": p.run_id, "label": run_label(p.run_id, p.when), "when": p.when} for p in window]
    columns.append({"id": run.run_id, "label": "this run", "when": run.when})
    changed, steady = [], []
    for claim in run.claims:
        cells = [p.verdicts.get(claim.id) for p in window] + [claim.verdict]
        known = [v for v in cells if v and v != "not run"]  # a run that did not run it says nothing of it
        changes = sum(1 for a, b in zip(known, known[1:], strict=False) if a != b)
        previous = next((v for v in reversed(cells[:-1]) if v and v != "not run"), None)
        row = {
            "id": claim.id,
            "anchor": "claim-" + re.sub(r"[^A-Za-z0-9-]+", "-", claim.id),
            "text": claim.text,
            "verdict": claim.verdict,
            "previous": previous,
            "changed": bool(window) and claim.verdict != "not run" and previous != claim.verdict,
            "flips": changes >= 2,
            "changes": changes,
            "cells": [
                {"verdict": v or "", "letter": VERDICT_LETTER.get(v or "", (v or "")[:1].upper()),
                 "css": css_verdict(v) if v else "absent"}
                for v in cells
            ],
        }
        (changed if row["changed"] or row["flips"] else steady).append(row)
    changed.sort(key=lambda r: (not r["changed"], severity(r["verdict"]), _id_order(r["id"])))
    return {"columns": columns, "changed": changed, "steady": steady, "runs": len(window)}


def run_label(run_id: str, when: float) -> str:
    """A column head: the date of a generated run id (20261122-163000-ab12 -> 11-22 16:30)."""
    found = _GENERATED_ID.match(run_id)
    if found:
        return f"{found.group(2)}-{found.group(3)} {found.group(4)}:{found.group(5)}"
    if when:
        return datetime.fromtimestamp(when, UTC).strftime("%m-%d %H:%M")
    return run_id[:12]


def when_text(epoch: float | None) -> str:
    if not epoch:
        return "unknown"
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")

