"""`python -m clusterproof.upgrade` (tox -e upgrade): an in-place upgrade of a kind cluster, proven.

1. both releases' node images are built (or found cached);
2. a kind cluster boots at the older release and `--phase before` creates the durable state;
3. the monitor starts; the cluster is upgraded in place to the next minor (kubeadm's way:
   clusterproof.offline.kind_upgrade); the monitor stops;
4. `--phase after` checks the state, then the suites run on the upgraded cluster;
5. the cluster is deleted (unless --keep-cluster). Where the time went is printed at the end.
Extra arguments after `--` go to both pytest runs (e.g. `-- -x`); `--suites PATH...` chooses what
runs again after the upgrade (default: every suite).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from clusterproof import run as runs
from clusterproof import stopping
from clusterproof.errors import ClusterproofError
from clusterproof.offline import build, capabilities, kind_upgrade, releases
from clusterproof.progress import Progress
from clusterproof.timings import Stopwatch
from clusterproof.upgrade.state import API_DISRUPTION_BUDGET, DISRUPTION_BUDGET


def show(message: str) -> None:
    print(f"[upgrade] {message}", flush=True)


def pytest_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args]


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(prog="python -m clusterproof.upgrade", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--from",
        dest="source",
        default=None,
        help=f"release to start from (default: the one before {releases.DEFAULT})",
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
        help="what runs after the upgrade checks (default: suites; none: --suites)",
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
        "--during",
        default=None,
        metavar="SHELL",
        help="rehearse a bad upgrade: a shell command run after the in-place upgrade while the "
        "monitor still watches (env: KUBECONFIG, CONTEXT, NAMESPACE, CLUSTER)",
    )
    args = parser.parse_args(argv)

    target = releases.release(None)
    source = (
        releases.release(args.source)
        if args.source
        else next(
            r for r in releases.RELEASES.values() if r.source == "go" and r.minor_number == target.minor_number - 1
        )
    )
    target = releases.upgrade_target(source)
    run_id = runs.new_run_id()
    name = f"cpup-{runs.short_id(run_id)}"
    rootdir = Path.cwd()
    work = rootdir / ".clusterproof" / "upgrades" / run_id
    work.mkdir(parents=True, exist_ok=True)
    state_file = work / "state.json"
    stop_file = work / "monitor.stop"
    # each stage a step: shown as it starts and ends (the pytest runs show their own steps), in progress.log too
    progress = Progress(show=show, log_file=work / "progress.log")
    say = progress.say
    watch = Stopwatch(progress=progress)
    rc = 0
    say(f"{source.kube} -> {target.kube} on kind cluster {name}; state and monitor files in {work}")
    try:
        with watch.measure(f"node images {source.kube} and {target.kube} (build or cache check)", "the offline build"):
            builder = build.Builder(progress=progress)
            for release in (source, target):
                builder.build(release)
            say("offline images:\n" + builder.report())

        before_id = f"{run_id}-before"
        with watch.measure(f"boot {source.kube} and --phase before", heartbeat=False):
            rc, _ = stopping.call(
                pytest_command(
                    "suites/test_upgrade.py",
                    "--phase",
                    "before",
                    "--k8s-version",
                    source.minor,
                    "--offline",
                    "yes",
                    "--cluster-scope",
                    "session",
                    "--keep-clusters",
                    "--cluster-name",
                    name,
                    "--state-file",
                    str(state_file),
                    "--run-id",
                    before_id,
                    *extra,
                )
            )
        if rc != 0:
            raise ClusterproofError(f"--phase before failed (exit {rc}): nothing upgraded")
        [before_dir] = runs.run_dirs_of(rootdir / ".clusterproof" / "runs", before_id)[-1:]  # <before_id>-<random>
        kubeconfig = before_dir / "clusters" / name / "kubeconfig"
        context = f"kind-{name}"

        with watch.measure(f"in-place upgrade to {target.kube} (monitored)", "the upgrade's stages"):
            monitor = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "clusterproof.upgrade.monitor",
                    "--state-file",
                    str(state_file),
                    "--kubeconfig",
                    str(kubeconfig),
                    "--context",
                    context,
                    "--stop-file",
                    str(stop_file),
                ]
            )
            monitor_out = state_file.with_suffix(".monitor.jsonl")
            deadline = time.monotonic() + 60
            while not monitor_out.exists() and monitor.poll() is None and time.monotonic() < deadline:
                time.sleep(0.2)  # the monitor creates its file once every target answered
            if not monitor_out.exists():
                monitor.terminate()
                raise ClusterproofError("the monitor did not start (see its line above): nothing upgraded")
            try:
                upgrade = kind_upgrade.KindUpgrade(name, target, builder=builder)
                log = upgrade.upgrade(leave=set(args.leave_at_old))
                log.write(state_file.with_suffix(".steps.json"))
                say("in-place upgrade:\n" + log.summary())
                if args.during:
                    durable = json.loads(state_file.read_text())["namespace"]
                    say(f"--during: {args.during}")
                    subprocess.run(
                        ["bash", "-c", args.during],
                        env={
                            **os.environ,
                            "KUBECONFIG": str(kubeconfig),
                            "CONTEXT": context,
                            "NAMESPACE": durable,
                            "CLUSTER": name,
                        },
                    )
            finally:
                stop_file.touch()
                try:
                    monitor.wait(timeout=120)
                except subprocess.TimeoutExpired:
                    monitor.send_signal(signal.SIGTERM)
                    monitor.wait(timeout=30)
        if monitor.returncode not in (0, None):
            raise ClusterproofError(f"the monitor exited {monitor.returncode}: see its output above")

        with watch.measure("--phase after and the suites on the upgraded cluster", heartbeat=False):
            rc, _ = stopping.call(
                pytest_command(
                    "suites/test_upgrade.py",
                    *args.suites,
                    "--phase",
                    "after",
                    "--kubeconfig",
                    str(kubeconfig),
                    "--context",
                    context,
                    "--allow-context",
                    context,
                    "--allow-disruptive",
                    "--offline",
                    "yes",
                    "--state-file",
                    str(state_file),
                    "--disruption-budget",
                    f"{args.disruption_budget:g}",
                    "--api-disruption-budget",
                    f"{args.api_disruption_budget:g}",
                    "--run-id",
                    f"{run_id}-after",
                    f"--junitxml={rootdir / '.clusterproof' / 'junit-upgrade.xml'}",
                    *extra,
                )
            )
    except (ClusterproofError, kind_upgrade.UpgradeError) as e:
        say(str(e))
        rc = rc or 1
    except KeyboardInterrupt:
        say("interrupted")
        rc = 130
    finally:
        if not args.keep_cluster:
            kind = capabilities.kind_command(Path(shutil.which("kind") or "kind"), work)
            with watch.measure(f"kind delete {name}", "kind delete cluster"):
                subprocess.run([str(kind), "delete", "cluster", "--name", name], capture_output=True)
        else:
            say(f"kept kind cluster {name}")
        say("where the time went:\n" + watch.table())
        progress.close()
    return rc


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
