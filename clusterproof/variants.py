"""The variants matrix: healthy kind clusters unlike kind's defaults, each run through the suite
modules it concerns; every one should end with no claim failed, and every skip and error said.

    python -m clusterproof.variants [--only NAME[,NAME...]] [--list] [pytest options]   (tox -e variants)

Each variant is one pytest run of its own (a run id, kind clusters from its kind config under
fixtures/kind/, the modules named, its artifacts in `.clusterproof/variants/<run id>-<variant>/`).
At the end a table: variant, modules, verdicts (counted over the claims those modules test),
time; then each claim that failed, errored or was skipped, with its reason; written to
`.clusterproof/variants-<first run id>.json`. Exit 1 when a claim failed (or a run ended without
claims.json), else 0: errors and skips are for a reader to judge, with their reasons.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from clusterproof import stopping
from clusterproof.bench import PYTEST, RUNS
from clusterproof.run import new_run_id

SUITES = "suites"
VARIANT_RUNS = RUNS.parent / "variants"  # each variant's artifacts: <run id>-<variant>/
VERDICTS = ("held", "partial", "failed", "error", "skipped")  # in the table's order


@dataclass(frozen=True)
class Variant:
    name: str
    what: str
    kind_config: str  # under fixtures/kind/
    modules: tuple[str, ...]  # suite modules, without suites/ and .py

    def pytest_args(self, fixtures: Path) -> list[str]:
        modules = [f"{SUITES}/test_{m}.py" for m in self.modules]
        return ["--kind-config", str(fixtures / "kind" / self.kind_config), *modules]


VARIANTS = (
    Variant(
        "dns-domain",
        "cluster DNS domain corp.internal",
        "dns-domain.yaml",
        ("service_discovery", "services", "ingress"),
    ),
    Variant(
        "psa-baseline",
        "Pod Security baseline enforced cluster-wide (admission configuration; kube-system exempt)",
        "psa-baseline.yaml",
        ("volumes", "workloads", "quota", "persistent_volumes"),
    ),
    Variant("nftables", "kube-proxy in nftables mode", "nftables.yaml", ("services", "service_discovery", "ingress")),
    Variant(
        "ipv6",
        "IPv6 single-stack",
        "ipv6.yaml",
        ("services", "service_discovery", "pod_network", "ingress"),
    ),
    Variant(
        "single-node",
        "one node (the control plane, untainted by kind)",
        "one-node.yaml",
        ("services", "pod_network", "volumes", "workloads", "persistent_volumes"),
    ),
    Variant(
        "pod-subnet",
        "pod subnet 10.250.0.0/16, Service subnet 10.112.0.0/16",
        "pod-subnet.yaml",
        ("pod_network",),
    ),
)


@dataclass
class Outcome:
    """One claim of a variant's run, as claims.json has it."""

    claim: str
    verdict: str
    reason: str


@dataclass
class Row:
    variant: str
    what: str
    modules: list[str]
    run_id: str
    rc: int
    seconds: float
    counts: dict[str, int] = field(default_factory=dict)
    outcomes: list[Outcome] = field(default_factory=list)  # not held: failed, error, skipped, partial
    note: str = ""
    stopped: bool = False  # a stop signal came during its run

    @property
    def failed(self) -> bool:
        return bool(self.counts.get("failed")) or bool(self.note)


def read_claims(path: Path) -> tuple[dict[str, int], list[Outcome]] | None:
    """Counts per verdict and the claims not held, over the claims whose tests ran (claims of
    other modules, 'no test' or 'not run', are left out); None without claims.json."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    counts: Counter[str] = Counter()
    outcomes = []
    for claim in data.get("claims") or []:
        ran = [t for t in claim.get("tests") or [] if t.get("outcome") not in (None, "unfinished")]
        if not ran:
            continue
        verdict = claim.get("verdict", "")
        counts[verdict] += 1
        if verdict != "held":
            outcomes.append(Outcome(claim["id"], verdict, claim.get("reason") or ""))
    return dict(counts), outcomes


def run_variant(
    variant: Variant,
    extra: Sequence[str],
    fixtures: Path,
    *,
    pytest: Callable[[list[str]], tuple[int, int | None]],
    runs: Path = VARIANT_RUNS,
    clock: Callable[[], float] = time.monotonic,
) -> Row:
    run_id = new_run_id()
    artifacts = runs / f"{run_id}-{variant.name}"
    started = clock()
    rc, stop = pytest([*variant.pytest_args(fixtures), "--run-id", run_id, "--artifacts-dir", str(artifacts), *extra])
    row = Row(variant.name, variant.what, list(variant.modules), run_id, rc, round(clock() - started, 1))
    row.stopped = stop is not None
    found = read_claims(artifacts / "claims.json")
    if found is None:
        row.note = f"no claims.json (exit {rc}): the run ended before reporting any claim"
    else:
        row.counts, row.outcomes = found
    return row


def table(rows: Sequence[Row]) -> list[str]:
    lines = [f"  {'variant':<13} {'verdicts':<44} {'time':>7}  modules"]
    for r in rows:
        counts = ", ".join(f"{r.counts[v]} {v}" for v in VERDICTS if r.counts.get(v)) or r.note or "-"
        lines.append(f"  {r.variant:<13} {counts:<44} {r.seconds:6.0f}s  {', '.join(r.modules)}")
    for r in rows:
        if r.outcomes or r.note:
            lines.append(f"  {r.variant} ({r.what}; run {r.run_id}):")
            lines += [f"    {o.verdict.upper():<8} {o.claim}: {o.reason}" for o in r.outcomes]
            if r.note:
                lines.append(f"    {r.note}")
    return lines


def main(argv: list[str], *, say: Callable[[str], None] = print) -> int:
    parser = argparse.ArgumentParser(prog="python -m clusterproof.variants", add_help=False)
    parser.add_argument("--only", default="", metavar="NAME[,NAME...]")
    parser.add_argument("--list", action="store_true")
    ours, extra = parser.parse_known_args(argv)
    by_name = {v.name: v for v in VARIANTS}
    wanted = [n.strip() for n in ours.only.split(",") if n.strip()] or list(by_name)
    unknown = [n for n in wanted if n not in by_name]
    if unknown:
        say(f"variants: unknown variant {', '.join(unknown)} (known: {', '.join(by_name)})")
        return 2
    if ours.list:
        for v in VARIANTS:
            say(f"{v.name:<13} {v.what}; kind config fixtures/kind/{v.kind_config}; modules {', '.join(v.modules)}")
        return 0
    fixtures = Path("fixtures")
    stopping.stop_with_parent()
    rows: list[Row] = []
    for name in wanted:
        variant = by_name[name]
        say(f"variants: {variant.name}: {variant.what} ({', '.join(variant.modules)})")
        row = run_variant(variant, extra, fixtures, pytest=_pytest)
        rows.append(row)
        say(f"variants: {variant.name}: exit {row.rc}, {row.seconds:.0f}s")
        if row.stopped:  # stopped from outside: no more variants
            break
    say("\nvariants: the matrix")
    for line in table(rows):
        say(line)
    if rows:
        out = RUNS.parent / f"variants-{rows[0].run_id}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps([asdict(r) for r in rows], indent=2) + "\n")
        say(f"variants: {out}")
    return 1 if not rows or any(r.failed for r in rows) else 0


def _pytest(args: list[str]) -> tuple[int, int | None]:
    return stopping.call([*PYTEST, *args], hangup_log=RUNS.parent / "variants-hangup.log")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
