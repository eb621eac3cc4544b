"""The page's drawings as inline SVG, built here (no plotting library, no script): the run's
timeline and an upgrade's disruption timeline. Lanes of time segments over one time axis;
each segment has a <title> (the browser shows it on hover). Colours are CSS classes of the
page. Every text drawn goes through redact()."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from markupsafe import Markup, escape

from clusterproof.redact import redact
from clusterproof.report.model import Run
from clusterproof.run import slug

WIDTH = 1200
LABEL = 230  # the lanes' names, left of the plot
LANE = 16
GAP = 5
AXIS = 22
TICKS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200)

# a cluster phase's colour class, from its name in timings.json
PHASE_CLASSES = (
    ("kind create", "p-create"),
    ("pod network", "p-net"),
    ("nodes ready", "p-nodes"),
    ("daemonsets", "p-ds"),
    ("delete", "p-delete"),
    ("image", "p-image"),
)
OUTCOME_CLASSES = {"passed": "o-passed", "failed": "o-failed", "error": "o-error", "skipped": "o-skipped"}
_CLUSTER_ROW = re.compile(r"^cluster (?P<name>[^:]+): (?P<phase>.+)$")


@dataclass
class Segment:
    start: float
    end: float
    css: str
    title: str
    label: str = ""


@dataclass
class Lane:
    label: str
    segments: list[Segment | list[Segment]] = field(default_factory=list)  # a list: one thing, one tooltip
    order: tuple[float, int] = (0.0, 0)
    title: str = ""


# --- the run ---------------------------------------------------------------------------------


def run_timeline(run: Run) -> Markup | None:
    """Node image, each cluster's phases, each module with its tests; None without start times
    (timings of a run from before they were recorded)."""
    lanes = _run_lanes(run)
    starts = [s.start for lane in lanes for s in _flat(lane.segments)]
    if not starts:
        return None
    whole = run.whole_run
    t0 = min(starts + ([whole["start"]] if whole and whole.get("start") else []))
    ends = [s.end for lane in lanes for s in _flat(lane.segments)]
    if whole and whole.get("start"):
        ends.append(whole["start"] + whole.get("seconds", 0))
    lanes.sort(key=lambda lane: lane.order)
    return _draw(lanes, t0, max(ends), "run timeline")


def _run_lanes(run: Run) -> list[Lane]:
    modules: dict[str, Lane] = {}
    clusters: dict[str, Lane] = {}
    others: dict[str, Lane] = {}
    for row in run.timings:
        what, seconds, start = str(row.get("what", "")), float(row.get("seconds", 0)), row.get("start")
        if start is None or what == "whole run":
            continue
        segment = Segment(start, start + seconds, "", f"{what}: {duration(seconds)}")
        if what.startswith("module "):
            module = what.removeprefix("module ")
            lane = modules.setdefault(module, Lane(_module_label(module), order=(start, 0)))
            segment.css = "module-span"
            lane.segments.insert(0, segment)
            lane.title = f"{module}: {duration(seconds)}"
            continue
        found = _CLUSTER_ROW.match(what)
        if found:
            name, phase = found.group("name"), found.group("phase")
            lane = clusters.setdefault(name, Lane(f"cluster {_short_cluster(name)}", order=(start, 0), title=name))
            segment.css = phase_class(phase)
            segment.title = f"{name}: {phase}, {duration(seconds)}"
        else:
            lane = others.setdefault(what, Lane(_fit(what), order=(start, 0), title=what))
            segment.css = phase_class(what)
        lane.order = (min(lane.order[0], start), 0)
        lane.segments.append(segment)
    for test in run.tests:
        if test.start is None:
            continue
        lane = modules.setdefault(test.module, Lane(_module_label(test.module), order=(test.start, 0)))
        lane.order = (min(lane.order[0], test.start), 0)
        lane.segments.append(_test_segments(test))
    # a module's own cluster goes right under the module
    for module, mlane in modules.items():
        stem = slug(module.rsplit("/", 1)[-1].removesuffix(".py").removeprefix("test_"), 50)
        for name, clane in clusters.items():
            if stem and name.endswith(f"-{stem}"):
                clane.order = (mlane.order[0], 1)
    return [*others.values(), *clusters.values(), *modules.values()]


def _test_segments(test) -> list[Segment]:
    css = OUTCOME_CLASSES.get(test.outcome, "o-error")
    title = (
        f"{test.name}: {test.outcome}, call {duration(test.call)} "
        f"(setup {duration(test.setup)}, teardown {duration(test.teardown)})"
        + (f" — {test.reason}" if test.reason else "")
    )
    start = test.start
    call_start = start + test.setup
    call_end = call_start + test.call
    segments = []
    if test.setup > 0:
        segments.append(Segment(start, call_start, f"{css} fixture", title))
    segments.append(Segment(call_start, call_end, css, title))
    if test.teardown > 0:
        segments.append(Segment(call_end, call_end + test.teardown, f"{css} fixture", title))
    return segments


def _flat(segments: list[Segment | list[Segment]]) -> list[Segment]:
    return [s for item in segments for s in (item if isinstance(item, list) else [item])]


def phase_class(phase: str) -> str:
    lowered = phase.lower()
    return next((css for key, css in PHASE_CLASSES if key in lowered), "p-other")


def _fit(label: str, width: int = 34) -> str:
    """A lane's name cut to the label column (the whole name is its tooltip)."""
    return label if len(label) <= width else label[: width - 1] + "…"


def _module_label(module: str) -> str:
    return module.rsplit("/", 1)[-1]


def _short_cluster(name: str) -> str:
    """cp-163000ab12-services -> services (the run's id is on the page already)."""
    found = re.match(r"^cp-[a-z0-9]{1,10}-(.+)$", name)
    return found.group(1) if found else name


# --- an upgrade ------------------------------------------------------------------------------


def upgrade_timeline(upgrade: dict[str, Any]) -> Markup | None:
    """Phases, each node's upgrade, each target's downtime (red) and unobserved stretches (grey)
    over the upgrade window."""
    phases = [p for p in upgrade.get("phases", []) if _has_span(p)]
    nodes = [n for n in upgrade.get("nodes", []) if n.get("start") is not None]
    disruptions = [d for d in upgrade.get("disruptions", []) if _has_span(d)]
    times = [p["start"] for p in phases] + [p["end"] for p in phases]
    times += [n["start"] for n in nodes] + [n.get("end") or n["start"] for n in nodes]
    times += [d["start"] for d in disruptions] + [d["end"] for d in disruptions]
    if not times:
        return None
    t0, t1 = min(times), max(times)
    lanes = []
    if phases:
        segments = [
            Segment(p["start"], p["end"], f"u-phase u-phase-{i % 2}", _span_title(p["name"], p, t0), p["name"])
            for i, p in enumerate(phases)
        ]
        lanes.append(Lane("phases", segments))
    for node in nodes:
        end = node.get("end") or node["start"]
        versions = " → ".join(v for v in (node.get("from"), node.get("to")) if v)
        title = f"node {node['node']} upgraded {versions}".rstrip() + f" at {clock(node['start'] - t0)}"
        if node.get("end"):
            title += f", took {duration(end - node['start'])}"
        name = str(node["node"]).removeprefix(f"{upgrade.get('cluster')}-") if upgrade.get("cluster") else node["node"]
        lanes.append(Lane(_fit(f"node {name}"), [Segment(node["start"], end, "u-node", title)], title=node["node"]))
    for target in upgrade_targets(upgrade):
        down = [d for d in disruptions if d["target"] == target]
        segments = [Segment(t0, t1, "u-up", f"{target}: answering")]
        segments += [
            Segment(d["start"], d["end"], "u-blind", _span_title(f"{target} not observed", d, t0) + _detail(d))
            if d.get("not_observed")
            else Segment(d["start"], d["end"], "u-down", _span_title(f"{target} down", d, t0) + _detail(d))
            for d in down
        ]
        lanes.append(Lane(_fit(target), segments, title=target))
    markers = [(n["start"], f"node {n['node']}") for n in nodes]
    return _draw(lanes, t0, t1, "upgrade timeline", markers=markers)


def upgrade_targets(upgrade: dict[str, Any]) -> list[str]:
    """The targets probed: those listed, then any only named by a disruption."""
    names = [str(t) for t in upgrade.get("targets", [])]
    names += [str(d.get("target")) for d in upgrade.get("disruptions", []) if d.get("target")]
    return list(dict.fromkeys(names))


def _has_span(item: dict[str, Any]) -> bool:
    return isinstance(item.get("start"), int | float) and isinstance(item.get("end"), int | float)


def _span_title(what: str, span: dict[str, Any], t0: float) -> str:
    return f"{what}: {clock(span['start'] - t0)} – {clock(span['end'] - t0)} ({duration(span['end'] - span['start'])})"


def _detail(d: dict[str, Any]) -> str:
    return f" — {d['detail']}" if d.get("detail") else ""


# --- drawing ---------------------------------------------------------------------------------


def _draw(
    lanes: list[Lane], t0: float, t1: float, name: str, markers: list[tuple[float, str]] | None = None
) -> Markup:
    span = max(t1 - t0, 1.0)
    plot = WIDTH - LABEL - 10
    height = AXIS + len(lanes) * (LANE + GAP) + 4

    def x(t: float) -> float:
        return LABEL + (t - t0) / span * plot

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="timeline" viewBox="0 0 {WIDTH} {height}" '
        f'width="{WIDTH}" height="{height}" role="img" aria-label="{_text(name)}">'
    ]
    step = next((s for s in TICKS if span / s <= 12), TICKS[-1] * math.ceil(span / TICKS[-1] / 12))
    tick = 0.0
    while tick <= span + 1e-6:
        tx = x(t0 + tick)
        out.append(f'<line class="tick" x1="{tx:.1f}" y1="{AXIS - 4}" x2="{tx:.1f}" y2="{height}"/>')
        out.append(f'<text class="axis" x="{tx:.1f}" y="{AXIS - 8}">{clock(tick)}</text>')
        tick += step
    for i, lane in enumerate(lanes):
        y = AXIS + i * (LANE + GAP)
        title = f"<title>{_text(lane.title)}</title>" if lane.title else ""
        out.append(f'<text class="lane" x="{LABEL - 8}" y="{y + LANE - 4}">{title}{_text(lane.label)}</text>')
        for item in lane.segments:
            group = item if isinstance(item, list) else [item]
            shapes = []
            for s in group:
                left, right = x(s.start), x(max(s.end, s.start))
                w = max(right - left, 1.5)
                shapes.append(f'<rect class="{s.css}" x="{left:.1f}" y="{y}" width="{w:.1f}" height="{LANE}"/>')
                if s.label and w > 7 * len(s.label):
                    shapes.append(f'<text class="inbar" x="{left + 4:.1f}" y="{y + LANE - 4}">{_text(s.label)}</text>')
            out.append(f"<g><title>{_text(group[0].title)}</title>{''.join(shapes)}</g>")
    for t, label in markers or []:
        mx = x(t)
        out.append(
            f'<line class="marker" x1="{mx:.1f}" y1="{AXIS}" x2="{mx:.1f}" y2="{height}">'
            f"<title>{_text(label)}</title></line>"
        )
    out.append("</svg>")
    return Markup("\n".join(out))


def _text(text: str) -> Markup:
    return escape(redact(str(text)))


# --- times as people read them -----------------------------------------------------------------


def duration(seconds: float) -> str:
    """0.4 s, 41.2 s, 2 min 05 s, 1 h 02 min."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def clock(seconds: float) -> str:
    """Offset from the start of a timeline: 0:00, 1:30, 1:02:05."""
    whole = max(round(seconds), 0)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
