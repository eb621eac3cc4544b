"""Benchmark: how long the offline images, each cluster and each suite module take; and a soak.

    python -m clusterproof.bench [pytest options...]                   (tox -e bench)
    python -m clusterproof.bench --soak N [pytest options and paths]    (tox -e bench -- --soak 20 suites/test_quota.py)
    python -m clusterproof.bench --compare [pytest options and paths]   (tox -e bench -- --compare)

--compare runs the same tests twice, a cluster per module booted when the module starts, then
booted while the previous module runs, and prints both side by side with their ratio.

Runs the suites (or the modules named) with the given options and prints the run's own
timings: the offline image build or cache check, each cluster's create / pod network /
nodes ready / delete, each module, the whole run. Writes bench.json beside claims.json.
Timing lives here, never in a test: a slow cluster is a finding, not a failure.

--soak N runs them N times, each a run of its own (a new run id: fresh kind clusters), and
reports after each: tests passed, failed (with their claims and message), skipped, and the
leftovers — kind clusters, kind's docker containers and docker networks that were not there before
the soak, and on an existing cluster (--kubeconfig/--context in the options) the namespaces
labelled with that run's id. At the end: how many runs had a failure, each failing test with its
count, and soak.json (`.clusterproof/soak-<first run id>.json`).

A stop (SIGINT, SIGTERM, SIGHUP: tox's death when CLUSTERPROOF_STOP_WITH_PARENT=1) is handed
to pytest, which cleans up; the soak then ends with what it has.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, Protocol

from clusterproof import stopping
from clusterproof.run import RUN_LABEL, new_run_id, run_dirs_of

# -c: see tox.ini (a --kubeconfig outside the checkout would be taken for the rootdir)
PYTEST = [sys.executable, "-m", "pytest", "-c", "pyproject.toml", "-o", "testpaths=suites", "-p", "no:cacheprovider"]
RUNS = Path(".clusterproof/runs")
KIND_CLUSTER_LABEL = "io.x-k8s.kind.cluster"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m clusterproof.bench", add_help=False)
    parser.add_argument("--soak", type=int, default=0, metavar="N")
    parser.add_argument("--compare", action="store_true")
    ours, pytest_args = parser.parse_known_args(argv)
    if ours.soak and _option(pytest_args, "--run-id") is not None:
        print("bench: --soak gives each run its own --run-id: do not pass one", file=sys.stderr)
        return 2
    stops: list[int] = []
    _stop_between_runs(stops)
    stopping.stop_with_parent()
    if ours.soak:
        iterations = soak(ours.soak, pytest_args, MachineProbes(pytest_args), stops=stops)
        return 0 if iterations and all(i.rc == 0 for i in iterations) else 1
    if ours.compare:
        return compare(pytest_args, stops)
    return timed_run(pytest_args)


def timed_run(argv: list[str]) -> int:
    rows: list[dict] = []
    started = time.monotonic()
    # testpaths apply when no path is given: the suites, unless the arguments name modules
    rc, _ = stopping.call([*PYTEST, *argv], hangup_log=RUNS.parent / "bench-hangup.log")
    total = time.monotonic() - started
    timings = Path(".clusterproof/latest/artifacts/timings.json")
    if timings.exists():
        rows += json.loads(timings.read_text())
    rows.append({"what": "pytest process (incl. start-up)", "seconds": round(total, 2)})
    width = max(len(r["what"]) for r in rows)
    print("\nbench: where the time went")
    for r in rows:
        print(f"  {r['what']:<{width}}  {r['seconds']:8.1f}s")
    out = timings.with_name("bench.json") if timings.exists() else Path("bench.json")
    out.write_text(json.dumps(rows, indent=2) + "\n")
    print(f"bench: {out}")
    return rc


# --- two cluster strategies, side by side ------------------------------------------------------

STRATEGIES = (
    ("a cluster per module, booted when the module starts", ["--cluster-prefetch", "off"]),
    ("a cluster per module, booted while the previous module runs", ["--cluster-prefetch", "on"]),
)


def module_rows(timings: list[dict]) -> dict[str, float]:
    """What each strategy is compared on: every module (incl. its cluster), the cluster phases
    summed, the whole run."""
    rows: dict[str, float] = {}
    for r in timings:
        what = r["what"]
        if what.startswith("module ") or what == "whole run":
            rows[what] = r["seconds"]
        elif what.startswith("cluster "):
            # "node commands via docker (67 commands, median …)": the phase, not its details
            phase = what.split(": ", 1)[-1].split(" (", 1)[0]
            rows[f"clusters: {phase} (sum)"] = rows.get(f"clusters: {phase} (sum)", 0.0) + r["seconds"]
    return rows


def side_by_side(results: list[tuple[str, dict[str, float], int]]) -> str:
    (name_a, a, rc_a), (name_b, b, rc_b) = results
    keys = list(dict.fromkeys([*a, *b]))
    width = max(len(k) for k in keys)
    lines = [f"  {'':<{width}}  {'A':>9}  {'B':>9}  {'B/A':>6}"]
    for k in keys:
        x, y = a.get(k), b.get(k)
        ratio = f"{y / x:6.2f}" if x and y is not None else "     -"
        lines.append(f"  {k:<{width}}  {_s(x)}  {_s(y)}  {ratio}")
    lines += [f"  A: {name_a} (exit {rc_a})", f"  B: {name_b} (exit {rc_b})"]
    return "\n".join(lines)


def _say_now(line: str) -> None:
    """A line as soon as it is known: under tox or CI our stdout is a pipe (block-buffered)."""
    print(line, flush=True)


def _s(value: float | None) -> str:
    return f"{value:8.1f}s" if value is not None else "        -"


def compare(pytest_args: list[str], stops: list[int]) -> int:
    """The same tests under both strategies, one after the other, on the same commit and machine."""
    results = []
    for name, flags in STRATEGIES:
        if stops:
            break
        print(f"bench: {name}", flush=True)
        rc, _ = stopping.call([*PYTEST, *pytest_args, *flags], hangup_log=RUNS.parent / "bench-hangup.log")
        timings = Path(".clusterproof/latest/artifacts/timings.json")
        rows = module_rows(json.loads(timings.read_text())) if timings.exists() else {}
        results.append((name, rows, rc))
    if len(results) < 2:
        return 1
    table = side_by_side(results)
    print("\nbench: the two strategies side by side\n" + table)
    out = Path(".clusterproof/bench-compare.json")
    out.write_text(json.dumps([{"strategy": n, "rows": r, "rc": rc} for n, r, rc in results], indent=2) + "\n")
    print(f"bench: {out}")
    return max(rc for _, _, rc in results)


def _stop_between_runs(stops: list[int]) -> None:
    """Between pytest runs a stop ends the soak after the current step (during one, stopping.call
    hands it to pytest). SIGHUP: nobody reads our output any more; it goes to a file."""

    def stop(signum: int, frame: FrameType | None) -> None:
        if signum == signal.SIGHUP:
            stopping.divert_output(RUNS.parent / "bench-hangup.log")
        stops.append(signum)

    for signum in stopping.STOP_SIGNALS:
        signal.signal(signum, stop)


# --- soak --------------------------------------------------------------------------------------


@dataclass
class Failure:
    nodeid: str
    claims: list[str]
    outcome: str  # failed | error
    message: str


@dataclass
class Iteration:
    index: int
    run_id: str
    rc: int
    seconds: float
    passed: int = 0
    skipped: int = 0
    failures: list[Failure] = field(default_factory=list)
    leftovers: dict[str, list[str]] = field(default_factory=dict)  # what -> names
    stopped_by: str | None = None
    note: str = ""  # e.g. no claims.json: pytest ended before any test


class Probes(Protocol):
    """What the soak asks of the machine (unit tests pass fakes)."""

    def pytest(self, args: list[str]) -> tuple[int, int | None]: ...
    def kind_clusters(self) -> list[str]: ...
    def kind_containers(self) -> list[str]: ...
    def docker_networks(self) -> list[str]: ...
    def run_namespaces(self, run_id: str) -> list[str] | None: ...  # None: no existing cluster named


def soak(
    n: int,
    args: list[str],
    probes: Probes,
    *,
    stops: list[int] | None = None,
    say: Callable[[str], None] | None = None,
    runs: Path = RUNS,
    clock: Callable[[], float] = time.monotonic,
) -> list[Iteration]:
    stops = [] if stops is None else stops
    say = say or _say_now
    before = _host_things(probes)
    iterations: list[Iteration] = []
    for index in range(1, n + 1):
        if stops:
            break
        given = new_run_id()
        started = clock()
        rc, stop = probes.pytest([*args, "--run-id", given])
        run_id = next((d.name for d in reversed(run_dirs_of(runs, given))), given)  # <given>-<random>
        iteration = Iteration(index, run_id, rc, round(clock() - started, 1))
        if stop is not None:
            iteration.stopped_by = signal.Signals(stop).name
            stops.append(stop)
        _read_outcomes(iteration, _artifacts(args, runs, run_id) / "claims.json")
        iteration.leftovers = _leftovers(probes, before, run_id)
        iterations.append(iteration)
        for line in describe(iteration, n):
            say(line)
    for line in summary(iterations, n):
        say(line)
    if iterations:
        out = runs.parent / f"soak-{iterations[0].run_id}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"args": args, "iterations": [asdict(i) for i in iterations]}, indent=2) + "\n")
        say(f"soak.json: {out}")
    return iterations


def _artifacts(args: list[str], runs: Path, run_id: str) -> Path:
    given = _option(args, "--artifacts-dir")
    return Path(given) if given else runs / run_id / "artifacts"


def _option(args: Sequence[str], name: str) -> str | None:
    for i, arg in enumerate(args):
        if arg == name and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


def _read_outcomes(iteration: Iteration, claims_json: Path) -> None:
    try:
        data = json.loads(claims_json.read_text())
    except (OSError, ValueError):
        iteration.note = f"no claims.json ({claims_json}): pytest ended before reporting any test"
        return
    tests: dict[str, dict[str, Any]] = {}
    for claim in data.get("claims") or []:
        for test in claim.get("tests") or []:
            entry = tests.setdefault(test["nodeid"], {**test, "claims": []})
            entry["claims"].append(claim["id"])
    for nodeid, test in sorted(tests.items()):
        outcome = test.get("outcome")
        if outcome == "passed":
            iteration.passed += 1
        elif outcome == "skipped":
            iteration.skipped += 1
        else:
            message = test.get("message") or test.get("reason") or outcome or ""
            iteration.failures.append(Failure(nodeid, sorted(test["claims"]), str(outcome), message))


def _host_things(probes: Probes) -> dict[str, set[str]]:
    return {
        "kind cluster": set(_safely(probes.kind_clusters)),
        "kind container": set(_safely(probes.kind_containers)),
        "docker network": set(_safely(probes.docker_networks)),
    }


def _leftovers(probes: Probes, before: dict[str, set[str]], run_id: str) -> dict[str, list[str]]:
    now = _host_things(probes)
    found = {what: sorted(names - before[what]) for what, names in now.items()}
    namespaces = _safely(lambda: probes.run_namespaces(run_id) or [])
    found["namespace"] = sorted(namespaces)
    return {what: names for what, names in found.items() if names}


def _safely(read: Callable[[], list[str]]) -> list[str]:
    try:
        return list(read())
    except Exception as e:  # a leftover we cannot list is said, not fatal
        return [f"(could not list: {type(e).__name__}: {e})"]


def describe(iteration: Iteration, n: int) -> list[str]:
    leftovers = sum(len(v) for v in iteration.leftovers.values())
    head = (
        f"soak {iteration.index}/{n} (run {iteration.run_id}): {iteration.passed} passed, "
        f"{len(iteration.failures)} failed, {iteration.skipped} skipped, exit {iteration.rc}, "
        f"{iteration.seconds:.0f}s; leftovers: {leftovers or 'none'}"
    )
    lines = [head + (f"; stopped by {iteration.stopped_by}" if iteration.stopped_by else "")]
    if iteration.note:
        lines.append(f"  {iteration.note}")
    for f in iteration.failures:
        first = f.message.strip().splitlines()[0] if f.message.strip() else ""
        lines.append(f"  {f.outcome.upper()} {f.nodeid} [{', '.join(f.claims)}]: {first}")
    for what, names in iteration.leftovers.items():
        lines += [f"  LEFTOVER {what} {name}" for name in names]
    return lines


def summary(iterations: list[Iteration], n: int) -> list[str]:
    if not iterations:
        return ["soak: stopped before the first run"]
    failing = [i for i in iterations if i.failures or i.rc != 0]
    with_leftovers = [i for i in iterations if i.leftovers]
    lines = [
        f"soak: {len(iterations)} of {n} runs done; {sum(i.passed for i in iterations)} tests passed, "
        f"{sum(len(i.failures) for i in iterations)} failed; runs with a failure: {len(failing)}/{len(iterations)}; "
        f"runs with leftovers: {len(with_leftovers)}/{len(iterations)}"
    ]
    counts: dict[str, list[Failure]] = {}
    for i in iterations:
        for f in i.failures:
            counts.setdefault(f.nodeid, []).append(f)
    for nodeid, fs in sorted(counts.items(), key=lambda kv: -len(kv[1])):
        first = fs[0].message.strip().splitlines()[0] if fs[0].message.strip() else ""
        lines.append(f"  {len(fs)}x {nodeid} [{', '.join(fs[0].claims)}]: {first}")
    return lines


class MachineProbes:
    """The real machine: pytest through stopping.call, docker and kind, and the existing cluster
    the options name (if any)."""

    def __init__(self, args: list[str]) -> None:
        self.kubeconfig = _option(args, "--kubeconfig")
        self.context = _option(args, "--context")

    def pytest(self, args: list[str]) -> tuple[int, int | None]:
        return stopping.call([*PYTEST, *args], hangup_log=RUNS.parent / "bench-hangup.log")

    def kind_clusters(self) -> list[str]:
        return _lines(["kind", "get", "clusters"])

    def kind_containers(self) -> list[str]:
        return _lines(["docker", "ps", "-a", "--filter", f"label={KIND_CLUSTER_LABEL}", "--format", "{{.Names}}"])

    def docker_networks(self) -> list[str]:
        return _lines(["docker", "network", "ls", "--format", "{{.Name}}"])

    def run_namespaces(self, run_id: str) -> list[str] | None:
        if not (self.kubeconfig or self.context):
            return None
        from kubernetes import client, config

        api = config.new_client_from_config(config_file=self.kubeconfig, context=self.context, persist_config=False)
        try:
            found = client.CoreV1Api(api).list_namespace(label_selector=f"{RUN_LABEL}={run_id}", _request_timeout=10)
            # Terminating: the run's cleanup already deleted it (deletion is not waited for)
            return [ns.metadata.name for ns in found.items if not (ns.status and ns.status.phase == "Terminating")]
        finally:
            api.close()


def _lines(command: list[str]) -> list[str]:
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=True)
    return [line.strip() for line in done.stdout.splitlines() if line.strip()]


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
