"""Watch a cluster while it is being upgraded: `python -m clusterproof.upgrade.monitor --state-file S`.

Samples until stopped (SIGTERM, SIGHUP, Ctrl-C, or the stop file appearing), each target on its
own thread (a target that times out delays no other):
- `nodeport <node> new`: the web Service through that node's NodePort from this host, a new
  connection per request;
- `nodeport <node> reused`: the same through one kept-alive connection (re-opened after a failure);
- `clusterip from <node>`: the Service's ClusterIP asked from inside, by the prober DaemonSet's pod
  on that node (its log, read through the API: caught up whenever the API answers, complete at stop);
- `apiserver`: GET /readyz of the API server;
- `control`: a listener of this process on 127.0.0.1 — while it is down the probing side is blind
  (a loaded host), and every target counts that spell as not observed.

The output file (JSON lines, appended: a restarted monitor adds a session, never truncates) holds
per session: a header `{"monitor": {"state_id", "started", "targets", ...}}` (the state it watches
for), every outage as an interval `{target, start, end, detail}`, every stretch longer than
GAP_TOLERANCE without a sample of a target as `{target, start, end, "not_observed": true}` (a
prober stopped, the monitor frozen, the API away when a prober's log had to be read), an
`{"alive": t}` line every few seconds, and a summary line at the stop. Live: seconds down per
target so far. A target that does not answer at the start is reported at once and the monitor
exits (an outage of the whole upgrade would be a lie).
"""

from __future__ import annotations

import argparse
import contextlib
import http.server
import json
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import requests
from kubernetes import client, config

from clusterproof import stopping, urls
from clusterproof.upgrade.state import StateError, UpgradeState

INTERVAL = 0.25
REQUEST_TIMEOUT = 1.0
LOG_EVERY = 5.0
PROBER_POLL = 2.0
PROBER_STOP_TIMEOUT = 60.0
# longer than this without a sample of a target is "not observed" (a host probe samples at least
# every REQUEST_TIMEOUT + INTERVAL, a prober every curl -m 1 + 0.25 s)
GAP_TOLERANCE = 3.0
SCHEMA = 2


def targets_of(state: UpgradeState) -> list[str]:
    """Every target a monitor of `state` samples, the control listener aside."""
    names = ["apiserver"]
    for node in sorted(state.node_ips):
        names += [f"nodeport {node} new", f"nodeport {node} reused", f"clusterip from {node}"]
    return names


@dataclass
class Target:
    name: str
    last_at: float | None = None  # the last sample (or the session's start)
    down_since: float | None = None
    last_error: str = ""
    samples: int = 0
    failures: int = 0
    outages: list[dict] = field(default_factory=list)
    gaps: list[dict] = field(default_factory=list)

    def observe(self, at: float, ok: bool, error: str = "") -> list[dict]:
        """Record one sample; returns the intervals it ends (a gap before it, an outage)."""
        ended = []
        if self.last_at is not None and at - self.last_at > GAP_TOLERANCE:
            ended.append(self._gap(self.last_at, at))
        self.last_at = at
        self.samples += 1
        if ok:
            if self.down_since is not None:
                outage = {"target": self.name, "start": self.down_since, "end": at, "detail": self.last_error}
                self.outages.append(outage)
                self.down_since = None
                ended.append(outage)
            return ended
        self.failures += 1
        self.last_error = error
        if self.down_since is None:
            self.down_since = at
        return ended

    def _gap(self, start: float, end: float) -> dict:
        gap = {
            "target": self.name,
            "start": start,
            "end": end,
            "not_observed": True,
            "detail": f"no sample for {end - start:.1f}s",
        }
        self.gaps.append(gap)
        return gap

    def close(self, now: float) -> list[dict]:
        """At the stop: the unobserved tail and the outage still open."""
        ended = []
        if self.last_at is not None and now - self.last_at > GAP_TOLERANCE:
            ended.append(self._gap(self.last_at, now))
        if self.down_since is not None:
            outage = {
                "target": self.name,
                "start": self.down_since,
                "end": now,
                "detail": self.last_error,
                "open_at_stop": True,
            }
            self.outages.append(outage)
            self.down_since = None
            ended.append(outage)
        return ended

    def down_seconds(self, now: float) -> float:
        closed = sum(o["end"] - o["start"] for o in self.outages)
        return closed + (now - self.down_since if self.down_since is not None else 0.0)

    def unobserved_seconds(self) -> float:
        return sum(g["end"] - g["start"] for g in self.gaps)


def outages_from_samples(name: str, samples: list[tuple[float, bool, str]], started: float | None = None) -> Target:
    """Rebuild a target's outages and gaps from time-ordered samples (the prober's log)."""
    target = Target(name, last_at=started)
    for at, ok, error in samples:
        target.observe(at, ok, error)
    return target


def parse_prober_line(line: str) -> tuple[float, bool, str] | None:
    parts = line.strip().split(" ", 2)
    if len(parts) < 2:
        return None
    try:
        at = float(parts[0])
    except ValueError:
        return None
    return at, parts[1] == "up", parts[2] if len(parts) > 2 else ""


class ControlListener:
    """A local HTTP server: the monitor's own health, sampled like the cluster's targets."""

    def __init__(self) -> None:
        class Quiet(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


def http_probe(url: str, session: requests.Session | None = None) -> Callable[[], tuple[bool, str]]:
    def probe() -> tuple[bool, str]:
        try:
            if session is None:
                answer = requests.get(url, timeout=REQUEST_TIMEOUT, headers={"Connection": "close"})
            else:
                answer = session.get(url, timeout=REQUEST_TIMEOUT)
            return answer.status_code == 200, f"HTTP {answer.status_code}"
        except requests.RequestException as e:
            if session is not None:
                session.close()  # the next request opens a new kept-alive connection
            return False, type(e).__name__

    return probe


class Monitor:
    def __init__(
        self,
        state: UpgradeState,
        api: client.ApiClient,
        out: Path,
        say: Callable[[str], None] = print,
        stop_file: Path | None = None,
    ) -> None:
        self.state = state
        self.api = api
        self.core = client.CoreV1Api(api)
        self.out = out
        self.say = say
        self.stop_file = stop_file
        self.stopped = threading.Event()
        self.control = ControlListener()
        self.probes: dict[str, Callable[[], tuple[bool, str]]] = {"control": http_probe(self.control.url)}
        node_port = state.objects["Service web-np"]["spec"]["spec.ports.0.nodePort"]
        for node, ip in sorted(state.node_ips.items()):
            url = urls.url(ip, node_port, "/hostname")
            self.probes[f"nodeport {node} new"] = http_probe(url)
            self.probes[f"nodeport {node} reused"] = http_probe(url, requests.Session())
        self.probes["apiserver"] = self.readyz
        self.started = time.time()
        self.targets = {name: Target(name, last_at=self.started) for name in self.probes}
        self.prober_samples: dict[str, list[tuple[float, bool, str]]] = {}
        self.prober_logs: dict[str, str] = {}  # node -> the prober's log as read at the stop
        self.lock = threading.Lock()
        self.file: IO[str] | None = None

    def readyz(self) -> tuple[bool, str]:
        try:
            method, url, headers, _, _ = self.api.param_serialize("GET", "/readyz", auth_settings=["BearerToken"])
            answer = self.api.call_api(method, url, header_params=headers, _request_timeout=REQUEST_TIMEOUT)
            answer.read()
            return answer.status == 200, f"HTTP {answer.status}"
        except Exception as e:  # any failure to answer is downtime
            return False, type(e).__name__

    # --- start: every target must answer before anything is recorded ---------------------------

    def check_start(self) -> list[str]:
        problems = [
            f"{name}: {detail}" for name, probe in self.probes.items() if not (r := probe())[0] for detail in [r[1]]
        ]
        try:
            pods = self.prober_pods()
            missing = sorted(set(self.state.node_ips) - set(pods))
            if missing:
                problems.append(f"no prober pod on {', '.join(missing)} (DaemonSet prober in {self.state.namespace})")
        except client.ApiException as e:
            problems.append(f"prober pods: HTTP {e.status} {e.reason}")
        return problems

    def prober_pods(self) -> dict[str, client.V1Pod]:
        pods = self.core.list_namespaced_pod(
            self.state.namespace, label_selector="app=upgrade-prober", _request_timeout=REQUEST_TIMEOUT * 5
        ).items
        return {p.spec.node_name: p for p in pods if p.status.phase == "Running"}

    # --- the file -------------------------------------------------------------------------------

    def write(self, record: dict) -> None:
        """One JSON line, flushed (the caller holds self.lock, or is alone)."""
        assert self.file is not None
        self.file.write(json.dumps(record) + "\n")
        self.file.flush()

    def header(self) -> dict:
        return {
            "monitor": {
                "schema": SCHEMA,
                "state_id": self.state.run_id,
                "started": self.started,
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "targets": sorted([*self.probes, *(f"clusterip from {n}" for n in self.state.node_ips)]),
                "interval": INTERVAL,
                "gap_tolerance": GAP_TOLERANCE,
            }
        }

    # --- sampling ------------------------------------------------------------------------------

    def sample(self, name: str, probe: Callable[[], tuple[bool, str]]) -> None:
        """One target, on its own thread, until the stop."""
        while not self.should_stop():
            began = time.monotonic()
            ok, detail = probe()
            with self.lock:
                if self.stopped.is_set():
                    return
                for interval in self.targets[name].observe(time.time(), ok, detail):
                    self.write(interval)
            self.stopped.wait(max(0.0, INTERVAL - (time.monotonic() - began)))

    def poll_probers(self) -> None:
        """Catch up on the prober pods' logs while the API answers (the complete logs are read at stop)."""
        while not self.should_stop():
            self.read_prober_logs(since_seconds=30)
            self.stopped.wait(PROBER_POLL)

    def read_prober_logs(self, since_seconds: int | None = None) -> set[str]:
        """Merge what the prober pods logged (the last `since_seconds`, or all of it); the nodes
        whose prober could not be read (every node when the pods cannot be listed)."""
        try:
            pods = self.prober_pods()
        except Exception:
            return set(self.state.node_ips)
        unread = set(self.state.node_ips) - set(pods)
        for node, pod in pods.items():
            texts = []
            restarted = any(s.restart_count for s in pod.status.container_statuses or [])
            for previous in (True, False) if restarted else (False,):  # also the container before the restart
                try:
                    texts.append(
                        self.core.read_namespaced_pod_log(
                            pod.metadata.name,
                            self.state.namespace,
                            since_seconds=since_seconds,
                            previous=previous,
                            _request_timeout=10,
                        )
                    )
                except Exception:
                    if not previous:
                        unread.add(node)
            fresh = [
                s
                for text in texts
                for line in text.splitlines()
                if (s := parse_prober_line(line)) and s[0] >= self.started
            ]
            if since_seconds is None and node not in unread:
                self.prober_logs[node] = "".join(texts)
            with self.lock:
                known = {s[0] for s in self.prober_samples.get(node, [])}
                merged = self.prober_samples.setdefault(node, [])
                merged.extend(s for s in fresh if s[0] not in known)
                merged.sort()
        return unread

    def read_prober_logs_at_stop(self) -> set[str]:
        """The probers' complete logs, read again until every one was read or PROBER_STOP_TIMEOUT
        passed (a kubelet just restarted by the upgrade does not serve logs at once): else what
        was polled while sampling is all there is, and the rest is not observed."""
        deadline = time.monotonic() + PROBER_STOP_TIMEOUT
        unread = self.read_prober_logs()
        while unread and time.monotonic() < deadline:
            time.sleep(PROBER_POLL)
            unread = self.read_prober_logs()
        return unread

    def should_stop(self) -> bool:
        if self.stop_file is not None and self.stop_file.exists():
            self.stopped.set()
        return self.stopped.is_set()

    def all_targets(self, until: float | None = None) -> dict[str, Target]:
        """The host's targets, and each prober's rebuilt from its samples (up to `until`)."""
        with self.lock:
            found = dict(self.targets)
            for node in self.state.node_ips:
                name = f"clusterip from {node}"
                samples = [s for s in self.prober_samples.get(node, []) if until is None or s[0] <= until]
                found[name] = outages_from_samples(name, samples, self.started)
        return found

    def live_line(self) -> str:
        now = time.time()
        targets = self.all_targets()
        parts = [f"{name} {t.down_seconds(now):.1f}s" for name, t in sorted(targets.items()) if t.down_seconds(now)]
        down = ", ".join(parts) if parts else "nothing"
        return f"[monitor {now - self.started:5.0f}s] down so far: {down} ({len(targets)} targets)"

    def finish(self, why: str, now: float | None = None) -> dict:
        """Close open outages and gaps at the stop (`now`), add the probers' complete logs (read
        after it: that takes a while, and is no stretch without samples), write the summary line."""
        self.stopped.set()
        now = time.time() if now is None else now
        unread = self.read_prober_logs_at_stop()
        targets = self.all_targets(until=now)
        with self.lock:
            for name, target in sorted(targets.items()):
                if name.startswith("clusterip"):
                    for interval in target.outages + target.gaps:
                        self.write(interval)
                for interval in target.close(now):
                    self.write(interval)
            summary = {
                "summary": {
                    name: {
                        "down_seconds": round(t.down_seconds(now), 3),
                        "not_observed_seconds": round(t.unobserved_seconds(), 3),
                        "samples": t.samples,
                        "failures": t.failures,
                    }
                    for name, t in sorted(targets.items())
                },
                "state_id": self.state.run_id,
                "started": self.started,
                "stopped": now,
                "stop": why,
                **({"probers_unread": sorted(unread)} if unread else {}),
            }
            self.write(summary)
        self.keep_prober_logs()
        self.control.close()
        return summary

    def keep_prober_logs(self) -> None:
        """The probers' own logs beside the output (`<out>.probers/<node>.log`): what a "not
        observed" stretch of `clusterip from <node>` is made of."""
        folder = self.out.with_name(self.out.name + ".probers")
        with contextlib.suppress(OSError):
            folder.mkdir(exist_ok=True)
            for node, text in self.prober_logs.items():
                (folder / f"{node}.log").write_text(text)

    def run(self, why: Callable[[], str]) -> dict:
        """Sample until the stop; the summary. `why()` names what stopped it."""
        self.started = time.time()  # the probes ran to check the start: the sampling starts now
        for target in self.targets.values():
            target.last_at = self.started
        with self.out.open("a") as self.file:
            self.write(self.header())
            threads = [threading.Thread(target=self.poll_probers, daemon=True)]
            threads += [threading.Thread(target=self.sample, args=item, daemon=True) for item in self.probes.items()]
            for thread in threads:
                thread.start()
            while not self.should_stop():
                self.stopped.wait(LOG_EVERY)
                with self.lock:
                    self.write({"alive": time.time()})
                self.say(self.live_line())
            stopped = time.time()
            for thread in threads:
                thread.join(timeout=REQUEST_TIMEOUT * 12)
            return self.finish(why(), stopped)


def api_client(kubeconfig: Path | None, context: str) -> client.ApiClient:
    """A client that does not retry: a request that fails is a sample that failed (urllib3's
    default retries made one sample of an API server that was away last 4 s: a gap)."""
    configuration = client.Configuration()
    config.load_kube_config(
        config_file=str(kubeconfig) if kubeconfig else None,
        context=context,
        client_configuration=configuration,
        persist_config=False,
    )
    configuration.retries = False
    return client.ApiClient(configuration)


def stop_on_signals(monitor: Monitor, out: Path) -> list[str]:
    """SIGTERM, SIGHUP, SIGINT (and the parent's death, as SIGHUP) end the sampling: the monitor then
    writes its summary. Returns the names of the signals received, as they come."""
    stops: list[str] = []

    def stop(signum: int, _frame: object) -> None:
        if signum == signal.SIGHUP:  # the terminal closed: nobody reads the live lines
            stopping.divert_output(out.with_name(out.name + ".hangup.log"))
        stops.append(signal.Signals(signum).name)
        monitor.stopped.set()

    for signum in stopping.STOP_SIGNALS:
        signal.signal(signum, stop)
    stopping.stop_with_parent()
    return stops


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m clusterproof.upgrade.monitor", description=__doc__.split("\n")[0])
    parser.add_argument("--state-file", required=True, type=Path, help="what --phase before wrote")
    parser.add_argument("--kubeconfig", type=Path, default=None)
    parser.add_argument("--context", default=None, help="default: the context --phase before used")
    parser.add_argument("--out", type=Path, default=None, help="JSON lines (default: <state file>.monitor.jsonl)")
    parser.add_argument("--stop-file", type=Path, default=None, help="stop when this file appears")
    args = parser.parse_args(argv)
    try:
        state = UpgradeState.load(args.state_file)
    except StateError as e:
        print(f"monitor: {e}", file=sys.stderr)
        return 2
    if "spec.ports.0.nodePort" not in state.objects.get("Service web-np", {}).get("spec", {}):
        print(
            f"monitor: {args.state_file} records no Service web-np with a nodePort: nothing to watch", file=sys.stderr
        )
        return 2
    out = args.out or args.state_file.with_suffix(".monitor.jsonl")
    if out.exists() and not out.is_file():
        print(f"monitor: --out {out} is not a file", file=sys.stderr)
        return 2
    try:
        api = api_client(args.kubeconfig, args.context or state.context)
    except Exception as e:
        print(f"monitor: cannot load the kubeconfig (context {args.context or state.context}): {e}", file=sys.stderr)
        return 2

    def say(message: str) -> None:
        with contextlib.suppress(OSError):  # nobody reads any more (a closed terminal): the file is what counts
            print(message, flush=True)

    monitor = Monitor(state, api, out, say, args.stop_file)
    problems = monitor.check_start()
    if problems:
        monitor.control.close()
        print(
            "monitor: not starting: targets that do not answer now would read as an outage of the whole "
            "upgrade: " + "; ".join(problems),
            file=sys.stderr,
        )
        return 3
    stops = stop_on_signals(monitor, out)
    say(
        f"monitor: sampling {len(monitor.probes)} targets and {len(state.node_ips)} in-cluster probers "
        f"every {INTERVAL}s into {out} (stop: SIGTERM, SIGHUP, Ctrl-C"
        + (f", or {args.stop_file}" if args.stop_file else "")
        + ")"
    )
    summary = monitor.run(lambda: stops[0] if stops else "stop file")
    for name, numbers in summary["summary"].items():
        say(
            f"  {name:<40} down {numbers['down_seconds']:7.2f}s, not observed {numbers['not_observed_seconds']:6.1f}s "
            f"({numbers['failures']}/{numbers['samples']} samples failed)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
