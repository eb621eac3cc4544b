"""Watch a cluster while it is being upgraded: `python -m clusterproof.upgrade.monitor --state-file S`.

Samples until stopped (SIGTERM, Ctrl-C, or the stop file appearing):
- `nodeport <node> new`: the web Service through that node's NodePort from this host, a new
  connection per request;
- `nodeport <node> reused`: the same through one kept-alive connection (re-opened after a failure);
- `clusterip from <node>`: the Service's ClusterIP asked from inside, by the prober DaemonSet's pod
  on that node (its log, read through the API: caught up whenever the API answers, complete at stop);
- `apiserver`: GET /readyz of the API server;
- `control`: a listener of this process on 127.0.0.1 — if it is down, the probing side is at
  fault, not the cluster.
Every outage becomes an interval in the output file (JSON lines); a summary line ends it. Live:
seconds down per target so far, every few seconds. A target that does not answer at the start is
reported at once and the monitor exits (an outage of the whole upgrade would be a lie).
"""

from __future__ import annotations

import argparse
import http.server
import json
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import requests
from kubernetes import client, config

from clusterproof import urls
from clusterproof.upgrade.state import StateError, UpgradeState

INTERVAL = 0.25
REQUEST_TIMEOUT = 1.0
LOG_EVERY = 5.0
PROBER_POLL = 2.0


@dataclass
class Target:
    name: str
    down_since: float | None = None
    last_error: str = ""
    samples: int = 0
    failures: int = 0
    outages: list[dict] = field(default_factory=list)

    def observe(self, at: float, ok: bool, error: str = "") -> dict | None:
        """Record one sample; returns a finished outage interval when this sample ends one."""
        self.samples += 1
        if ok:
            if self.down_since is not None:
                outage = {"target": self.name, "start": self.down_since, "end": at, "detail": self.last_error}
                self.outages.append(outage)
                self.down_since = None
                return outage
            return None
        self.failures += 1
        self.last_error = error
        if self.down_since is None:
            self.down_since = at
        return None

    def down_seconds(self, now: float) -> float:
        closed = sum(o["end"] - o["start"] for o in self.outages)
        return closed + (now - self.down_since if self.down_since is not None else 0.0)


def outages_from_samples(name: str, samples: list[tuple[float, bool, str]]) -> Target:
    """Rebuild a target's outages from time-ordered samples (the prober's log)."""
    target = Target(name)
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
        node_port = state.objects["Service web-np"]["nodePort"]
        for node, ip in sorted(state.node_ips.items()):
            url = urls.url(ip, node_port, "/hostname")
            self.probes[f"nodeport {node} new"] = http_probe(url)
            self.probes[f"nodeport {node} reused"] = http_probe(url, requests.Session())
        self.probes["apiserver"] = self.readyz
        self.targets = {name: Target(name) for name in self.probes}
        self.prober_samples: dict[str, list[tuple[float, bool, str]]] = {}
        self.started = time.time()
        self.lock = threading.Lock()

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

    def prober_pods(self) -> dict[str, str]:
        pods = self.core.list_namespaced_pod(
            self.state.namespace, label_selector="app=upgrade-prober", _request_timeout=REQUEST_TIMEOUT * 5
        ).items
        return {p.spec.node_name: p.metadata.name for p in pods if p.status.phase == "Running"}

    # --- sampling ------------------------------------------------------------------------------

    def sample_forever(self) -> None:
        with self.out.open("a") as out:
            next_log = time.monotonic() + LOG_EVERY
            while not self.should_stop():
                started = time.monotonic()
                for name, probe in self.probes.items():
                    ok, detail = probe()
                    with self.lock:
                        outage = self.targets[name].observe(time.time(), ok, detail)
                    if outage:
                        out.write(json.dumps(outage) + "\n")
                        out.flush()
                if time.monotonic() >= next_log:
                    self.say(self.live_line())
                    next_log += LOG_EVERY
                self.stopped.wait(max(0.0, INTERVAL - (time.monotonic() - started)))

    def poll_probers(self) -> None:
        """Catch up on the prober pods' logs while the API answers (the complete logs are read at stop)."""
        while not self.should_stop():
            self.read_prober_logs(since_seconds=30)
            self.stopped.wait(PROBER_POLL)

    def read_prober_logs(self, since_seconds: int | None = None) -> None:
        try:
            pods = self.prober_pods()
        except Exception:
            return
        for node, pod in pods.items():
            try:
                text = self.core.read_namespaced_pod_log(
                    pod, self.state.namespace, since_seconds=since_seconds, _request_timeout=10
                )
            except Exception:
                continue
            fresh = [s for line in text.splitlines() if (s := parse_prober_line(line)) and s[0] >= self.started]
            with self.lock:
                known = {s[0] for s in self.prober_samples.get(node, [])}
                merged = self.prober_samples.setdefault(node, [])
                merged.extend(s for s in fresh if s[0] not in known)
                merged.sort()

    def should_stop(self) -> bool:
        if self.stop_file is not None and self.stop_file.exists():
            self.stopped.set()
        return self.stopped.is_set()

    def all_targets(self, now: float) -> dict[str, Target]:
        with self.lock:
            found = dict(self.targets)
            for node, samples in self.prober_samples.items():
                found[f"clusterip from {node}"] = outages_from_samples(f"clusterip from {node}", samples)
        return found

    def live_line(self) -> str:
        now = time.time()
        targets = self.all_targets(now)
        parts = [f"{name} {t.down_seconds(now):.1f}s" for name, t in sorted(targets.items()) if t.down_seconds(now)]
        down = ", ".join(parts) if parts else "nothing"
        return f"[monitor {now - self.started:5.0f}s] down so far: {down} ({len(targets)} targets)"

    def finish(self) -> dict:
        """Close open outages, add the probers' complete logs, write the summary line."""
        now = time.time()
        self.read_prober_logs()
        targets = self.all_targets(now)
        with self.out.open("a") as out:
            for name, target in targets.items():
                if name.startswith("clusterip"):
                    for outage in target.outages:
                        out.write(json.dumps(outage) + "\n")
                if target.down_since is not None:
                    out.write(
                        json.dumps(
                            {
                                "target": name,
                                "start": target.down_since,
                                "end": now,
                                "detail": target.last_error,
                                "open_at_stop": True,
                            }
                        )
                        + "\n"
                    )
            summary = {
                "summary": {
                    name: {"down_seconds": round(t.down_seconds(now), 3), "samples": t.samples, "failures": t.failures}
                    for name, t in sorted(targets.items())
                },
                "started": self.started,
                "stopped": now,
            }
            out.write(json.dumps(summary) + "\n")
        self.control.close()
        return summary

    def run(self) -> dict:
        threading.Thread(target=self.poll_probers, daemon=True).start()
        try:
            self.sample_forever()
        except KeyboardInterrupt:
            self.stopped.set()
        return self.finish()


def read_monitor_file(path: Path) -> tuple[list[dict], dict | None]:
    """(outage intervals, summary line or None) of a monitor's output."""
    outages, summary = [], None
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        record = json.loads(line)
        if "summary" in record:
            summary = record
        else:
            outages.append(record)
    return outages, summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m clusterproof.upgrade.monitor", description=__doc__.split("\n")[0])
    parser.add_argument("--state-file", required=True, type=Path, help="what --phase before wrote")
    parser.add_argument("--kubeconfig", type=Path, default=None)
    parser.add_argument("--context", default=None, help="default: the context --phase before used")
    parser.add_argument("--out", type=Path, default=None, help="JSON lines (default: <state file>.monitor.jsonl)")
    parser.add_argument("--stop-file", type=Path, default=None, help="stop when this file appears")
    args = parser.parse_args(argv)
    say = lambda m: print(m, flush=True)  # noqa: E731
    try:
        state = UpgradeState.load(args.state_file)
    except StateError as e:
        print(f"monitor: {e}", file=sys.stderr)
        return 2
    out = args.out or args.state_file.with_suffix(".monitor.jsonl")
    try:
        api = config.new_client_from_config(
            config_file=str(args.kubeconfig) if args.kubeconfig else None,
            context=args.context or state.context,
            persist_config=False,
        )
    except Exception as e:
        print(f"monitor: cannot load the kubeconfig (context {args.context or state.context}): {e}", file=sys.stderr)
        return 2
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
    out.write_text("")
    signal.signal(signal.SIGTERM, lambda *_: monitor.stopped.set())
    say(
        f"monitor: sampling {len(monitor.probes)} targets and {len(state.node_ips)} in-cluster probers "
        f"every {INTERVAL}s into {out} (stop: SIGTERM, Ctrl-C"
        + (f", or {args.stop_file}" if args.stop_file else "")
        + ")"
    )
    summary = monitor.run()
    for name, numbers in summary["summary"].items():
        say(f"  {name:<40} down {numbers['down_seconds']:7.2f}s ({numbers['failures']}/{numbers['samples']} samples)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
