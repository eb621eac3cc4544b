"""`python -m clusterproof.upgrade` (tox -e upgrade): an in-place upgrade of a kind cluster, proven.

1. the node images of every release on the way are built (or found cached);
2. a kind cluster boots at the first release and `--phase before` creates the durable state;
3. for each hop (one minor at a time, kubeadm's way: `--from 1.35` goes through 1.36 to 1.37):
   the monitor starts; the cluster is upgraded in place (clusterproof.offline.kind_upgrade); the
   monitor stops; `--phase after --expect-version <hop>` checks the state (kept for the next hop);
   after the last hop the suites run on the upgraded cluster too;
4. the cluster is deleted (unless --keep-cluster), also when stopped (SIGINT, SIGTERM, SIGHUP) at
   any stage; the monitor is stopped with it. Where the time went is printed at the end.
Extra arguments after `--` go to every pytest run (e.g. `-- -x`); `--suites PATH...` chooses what
runs again after the last hop (default: every suite).

The kind cluster outlives the `before` run (which keeps it), so this process takes it over when
that run ends: the cluster's claim (clusterproof.kind_clusters) is rewritten to name this run, not
kept (unless --keep-cluster), and this process records itself — once it is gone (even SIGKILLed),
a sweep deletes the cluster (clusterproof.sweep).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType

from clusterproof import liveness, stopping
from clusterproof import run as runs
from clusterproof.errors import ClusterproofError, WaitTimeout
from clusterproof.kind_clusters import (
    GONE_TIMEOUT,
    SETTLE_AFTER_STOPPED_CREATE,
    Claims,
    delete_until_gone,
    docker_host,
)
from clusterproof.offline import build, capabilities, kind_upgrade, releases
from clusterproof.progress import Progress
from clusterproof.run_records import HostRegistry, RunRecorder, registry_dir
from clusterproof.timings import Stopwatch
from clusterproof.upgrade.state import API_DISRUPTION_BUDGET, DISRUPTION_BUDGET

MONITOR_START_TIMEOUT = 60.0
MONITOR_STOP_TIMEOUT = 120.0
KIND_DELETE_TIMEOUT = 180.0


class Stopped(KeyboardInterrupt):
    """A stop signal: unwinds through every stage to the cleanup (a BaseException: nothing swallows
    it; a KeyboardInterrupt: the progress lines say "interrupted")."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def show(message: str) -> None:
    with contextlib.suppress(OSError):  # nobody reads any more (SIGHUP): the cleanup goes on
        print(f"[upgrade] {message}", flush=True)


def pytest_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args]


def hops_from(source: releases.Release) -> list[releases.Release]:
    """The releases an upgrade from `source` goes through, one minor at a time, to the default."""
    path = [source]
    while path[-1].minor != releases.DEFAULT:
        path.append(releases.upgrade_target(path[-1]))
    return path[1:]


class Stops:
    """SIGINT, SIGTERM, SIGHUP (and the parent's death, as SIGHUP) raise Stopped where the driver is,
    once, unless it is cleaning up already; later signals are counted and ignored (the cleanup is
    bounded). A pytest child started with `called` gets the signal itself, and the call says so."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.received: list[int] = []
        self.cleaning = False
        self.previous = {signum: signal.signal(signum, self.stop) for signum in stopping.STOP_SIGNALS}
        stopping.stop_with_parent()

    def restore(self) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)

    def stop(self, signum: int, frame: FrameType | None) -> None:
        if signum == signal.SIGHUP:
            stopping.divert_output(self.work / "hangup.log")
        self.received.append(signum)
        if len(self.received) == 1 and not self.cleaning:
            raise Stopped(signum)

    def called(self, command: list[str]) -> int:
        """A pytest run, stop signals handed on to it; a stop it was given stops the driver too."""
        rc, stopped_by = stopping.call(command, hangup_log=self.work / "hangup.log")
        if stopped_by is not None and not self.cleaning:
            self.received.append(stopped_by)
            raise Stopped(stopped_by)
        return rc


class Monitor:
    """The monitor child of one hop."""

    def __init__(self, state_file: Path, kubeconfig: Path, context: str, out: Path, stop_file: Path) -> None:
        self.out, self.stop_file = out, stop_file
        stop_file.unlink(missing_ok=True)
        self.process = subprocess.Popen(
            [
                sys.executable, "-m", "clusterproof.upgrade.monitor", "--state-file", str(state_file),
                "--kubeconfig", str(kubeconfig), "--context", context, "--out", str(out), "--stop-file", str(stop_file),
            ]
        )  # fmt: skip
        try:
            deadline = time.monotonic() + MONITOR_START_TIMEOUT
            while not out.exists() and self.process.poll() is None and time.monotonic() < deadline:
                time.sleep(0.2)  # the monitor creates its file once every target answered
            if not out.exists():
                raise ClusterproofError("the monitor did not start (see its line above): nothing upgraded")
        except BaseException:  # a stop while it starts, too: it does not outlive us
            self.stop()
            raise

    def stop(self) -> int | None:
        """Its stop file, then SIGTERM, then SIGKILL: its summary whenever it can write one."""
        self.stop_file.touch()
        for ask in (None, signal.SIGTERM, signal.SIGKILL):
            if ask is not None:
                with contextlib.suppress(ProcessLookupError):
                    self.process.send_signal(ask)
            try:
                return self.process.wait(timeout=MONITOR_STOP_TIMEOUT if ask is None else 30)
            except subprocess.TimeoutExpired:
                continue
        return None


def take_over(cluster: str, before_id: str, driver_id: str, keep: bool) -> RunRecorder:
    """The kind cluster the before run made (and kept) becomes this process's: its claim (see
    clusterproof.kind_clusters) names this run and is kept only with --keep-cluster, and this
    process records itself, so once it is gone (even SIGKILLed) a sweep deletes the cluster."""
    registry = registry_dir()
    recorder = RunRecorder(liveness.new_record(driver_id, "upgrade", provider="kind"), HostRegistry(registry))
    recorder.start()  # first: the claim then names a live run
    claims = Claims(registry)
    claim = claims.read(docker_host()).get(cluster)
    if claim is not None and claim.run_id.startswith(before_id):
        claims.write(dataclasses.replace(claim, run_id=driver_id, kept=keep))
    return recorder


def delete_cluster(
    name: str, work: Path, say: Callable[[str], None], timeout: float = GONE_TIMEOUT, *, settle: float = 0.0
) -> bool:
    """`kind delete cluster` until its nodes are gone (kind_clusters.delete_until_gone; `settle`
    after a kind create stopped midway); True when they are (and its claim with them)."""
    kind = str(capabilities.kind_command(Path(shutil.which("kind") or "kind"), work))
    attempts = 0

    def delete() -> None:
        nonlocal attempts
        attempts += 1
        try:
            done = subprocess.run(
                [kind, "delete", "cluster", "--name", name], capture_output=True, text=True, timeout=KIND_DELETE_TIMEOUT
            )
            rc, output = done.returncode, (done.stderr or done.stdout).strip()
        except subprocess.TimeoutExpired:
            rc, output = -1, f"still running after {KIND_DELETE_TIMEOUT:.0f}s"
        if rc != 0:
            last = output.splitlines()[-1:] or ""
            say(f"kind delete cluster --name {name} (attempt {attempts}): exit {rc}: {last}")

    try:
        delete_until_gone(name, delete, timeout, settle=settle)
    except WaitTimeout:
        say(f"kind cluster {name} is still there: delete it with `kind delete cluster --name {name}`")
        return False
    if attempts > 1:
        say(f"kind cluster {name} deleted at attempt {attempts}")
    Claims(registry_dir()).remove(name, docker_host())
    return True


def parse(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(prog="python -m clusterproof.upgrade", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--from",
        dest="source",
        default=None,
        help=f"release to start from (default: the one before {releases.DEFAULT}); older ones are upgraded one minor "
        "at a time, with the after-checks after each hop",
    )
    parser.add_argument(
        "--disruption-budget",
        type=float,
        default=DISRUPTION_BUDGET,
        metavar="SECONDS",
        help="seconds each data-plane target may be down",
    )
    parser.add_argument(
        "--api-disruption-budget",
        type=float,
        default=API_DISRUPTION_BUDGET,
        metavar="SECONDS",
        help="seconds the API server may be down (one control plane: down while replaced)",
    )
    parser.add_argument(
        "--suites",
        nargs="*",
        default=["suites"],
        metavar="PATH",
        help="what runs after the upgrade checks of the last hop (default: suites; none: --suites)",
    )
    parser.add_argument("--keep-cluster", action="store_true")
    parser.add_argument(
        "--leave-at-old",
        action="append",
        default=[],
        metavar="NODE",
        help="rehearse a bad upgrade: leave this node's kubelet at the old release",
    )
    parser.add_argument(
        "--no-upgrade",
        action="store_true",
        help="rehearse a bad upgrade: upgrade nothing (the after-checks still expect the target)",
    )
    parser.add_argument(
        "--during",
        default=None,
        metavar="SHELL",
        help="rehearse a bad upgrade: a shell command run after each in-place upgrade while the "
        "monitor still watches (env: KUBECONFIG, CONTEXT, NAMESPACE, CLUSTER, STATE_FILE, MONITOR_FILE, HOP)",
    )
    parser.add_argument(
        "--between",
        default=None,
        metavar="SHELL",
        help="rehearse a bad upgrade: a shell command run after the monitor stopped, before --phase after "
        "(the same env)",
    )
    args = parser.parse_args(argv)
    try:
        args.source = releases.release(args.source) if args.source else None
    except releases.UnknownRelease as e:
        parser.exit(2, f"python -m clusterproof.upgrade: --from: {e}\n")
    older = [m for m, r in releases.RELEASES.items() if r.source == "go" and m != releases.DEFAULT]
    if args.source is not None and args.source.minor not in older:
        parser.exit(
            2,
            f"python -m clusterproof.upgrade: --from {args.source.minor}: start from a Go-built release older "
            f"than {releases.DEFAULT} ({', '.join(older)})\n",
        )
    return args, extra


def main(argv: list[str] | None = None) -> int:
    args, extra = parse(list(sys.argv[1:] if argv is None else argv))
    target = releases.release(None)
    source = args.source or next(
        r for r in releases.RELEASES.values() if r.source == "go" and r.minor_number == target.minor_number - 1
    )
    hops = hops_from(source)
    run_id = runs.new_run_id()
    name = f"cpup-{runs.short_id(run_id)}"
    rootdir = Path.cwd()
    work = rootdir / ".clusterproof" / "upgrades" / run_id
    work.mkdir(parents=True, exist_ok=True)
    state_file = work / "state.json"
    stops = Stops(work)
    # each stage a step: shown as it starts and ends (the pytest runs show their own steps), in progress.log too
    progress = Progress(show=show, log_file=work / "progress.log")
    say = progress.say
    watch = Stopwatch(progress=progress)
    rc = 0
    monitor: Monitor | None = None
    recorder: RunRecorder | None = None
    booted = booting = False
    say(f"{' -> '.join(r.kube for r in [source, *hops])} on kind cluster {name}; state and monitor files in {work}")
    try:
        releases_used = ", ".join(r.kube for r in (source, *hops))
        with watch.measure(f"node images {releases_used} (build or cache check)", "the offline build"):
            builder = build.Builder(progress=progress)
            for release in (source, *hops):
                builder.build(release)
            say("offline images:\n" + builder.report())

        before_id = f"{run_id}-before"
        booted = booting = True  # from here on the cluster may exist: the cleanup deletes it
        with watch.measure(f"boot {source.kube} and --phase before", heartbeat=False):
            rc = stops.called(
                pytest_command(
                    "suites/test_upgrade.py", "--phase", "before", "--k8s-version", source.minor, "--offline", "yes",
                    "--cluster-scope", "session", "--keep-clusters", "--cluster-name", name,
                    "--state-file", str(state_file), "--run-id", before_id, *extra,
                )
            )  # fmt: skip
            recorder = take_over(name, before_id, run_id, args.keep_cluster)
        booting = False
        if rc != 0:
            raise ClusterproofError(f"--phase before failed (exit {rc}): nothing upgraded")
        [before_dir] = runs.run_dirs_of(rootdir / ".clusterproof" / "runs", before_id)[-1:]  # <before_id>-<random>
        kubeconfig = before_dir / "clusters" / name / "kubeconfig"
        context = f"kind-{name}"

        for number, hop in enumerate(hops, 1):
            last = number == len(hops)
            monitor_out = work / f"hop{number}-{hop.minor}.monitor.jsonl"
            env = {
                **os.environ, "KUBECONFIG": str(kubeconfig), "CONTEXT": context, "CLUSTER": name,
                "NAMESPACE": _durable_namespace(state_file), "STATE_FILE": str(state_file),
                "MONITOR_FILE": str(monitor_out), "HOP": hop.kube,
            }  # fmt: skip
            with watch.measure(f"hop {number}: in-place upgrade to {hop.kube} (monitored)", "the upgrade's stages"):
                monitor = Monitor(state_file, kubeconfig, context, monitor_out, work / "monitor.stop")
                if args.no_upgrade:
                    say(f"--no-upgrade: {hop.kube} is not installed (rehearsing an upgrade that did not happen)")
                else:
                    upgrade = kind_upgrade.KindUpgrade(name, hop, builder=builder)
                    log = upgrade.upgrade(leave=set(args.leave_at_old))
                    log.write(state_file.with_suffix(".steps.json"))
                    say(f"in-place upgrade to {hop.kube}:\n" + log.summary())
                if args.during:
                    say(f"--during: {args.during}")
                    subprocess.run(["bash", "-c", args.during], env=env)
                stopped = monitor.stop()
                monitor = None
            if stopped != 0:
                raise ClusterproofError(f"the monitor exited {stopped}: see its output above")
            if args.between:
                say(f"--between: {args.between}")
                subprocess.run(["bash", "-c", args.between], env=env)

            junit = rootdir / ".clusterproof" / ("junit-upgrade.xml" if last else f"junit-upgrade-hop{number}.xml")
            what = "--phase after and the suites" if last else "--phase after"
            with watch.measure(f"hop {number}: {what} on {hop.kube}", heartbeat=False):
                rc = stops.called(
                    pytest_command(
                        "suites/test_upgrade.py", *(args.suites if last else []), "--phase", "after",
                        *([] if last else ["--keep-upgrade-state"]), "--expect-version", hop.kube,
                        "--kubeconfig", str(kubeconfig), "--context", context, "--allow-context", context,
                        "--allow-disruptive", "--offline", "yes", "--state-file", str(state_file),
                        "--monitor-file", str(monitor_out),
                        "--disruption-budget", f"{args.disruption_budget:g}",
                        "--api-disruption-budget", f"{args.api_disruption_budget:g}",
                        "--run-id", f"{run_id}-after{number}", f"--junitxml={junit}", *extra,
                    )
                )  # fmt: skip
            if rc != 0 and not last:
                raise ClusterproofError(
                    f"hop {number} ({hop.kube}): the after-checks failed (exit {rc}): no further hop"
                )
    except Stopped as stop:
        say(f"{stop}: stopping; cleaning up")
        rc = 128 + stop.signum
    except ClusterproofError as e:
        say(str(e))
        rc = rc or 1
    finally:
        stops.cleaning = True
        # the before run keeps its cluster (--keep-clusters): stopped during its kind create, docker
        # may still be making the nodes when this process deletes it
        settle = SETTLE_AFTER_STOPPED_CREATE if booting else 0.0
        rc = cleanup(monitor, booted, args.keep_cluster, name, work, watch, rc, settle=settle)
        if recorder is not None:
            recorder.close()
        if len(stops.received) > 1:
            say(f"{len(stops.received) - 1} more stop signal(s) came during the cleanup: ignored (it is bounded)")
        progress.close()
        stops.restore()
    return rc


def cleanup(
    monitor: Monitor | None,
    booted: bool,
    keep: bool,
    name: str,
    work: Path,
    watch: Stopwatch,
    rc: int,
    *,
    settle: float = 0.0,
) -> int:
    """The monitor stopped, the cluster deleted (unless kept): the exit status says if it was not."""
    say = watch.progress.say if watch.progress else show
    if monitor is not None:
        monitor.stop()
        say("monitor stopped")
    if booted and not keep:
        with watch.measure(f"kind delete {name}", "kind delete cluster"):
            if not delete_cluster(name, work, say, settle=settle):
                rc = rc or 1
    elif booted:
        say(f"kept kind cluster {name}")
    say("where the time went:\n" + watch.table())
    return rc


def _durable_namespace(state_file: Path) -> str:
    with contextlib.suppress(OSError, ValueError):
        return str(json.loads(state_file.read_text()).get("namespace", ""))
    return ""


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
