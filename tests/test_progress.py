"""Live progress (clusterproof.progress): start and end lines, heartbeats of quiet steps, the log
file; and in pytest's path, lines that reach a piped stdout while a fixture's step still runs.
The clock is FAKE in the unit tests (no ticker thread: they call beat() themselves)."""

import queue
import re
import subprocess
import sys
import threading
import time

import pytest

from clusterproof.progress import Progress, duration
from clusterproof.redact import redact
from clusterproof.timings import Stopwatch


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def made(tmp_path):
    """(progress, shown lines, clock, log path): a Progress with a FAKE clock and no ticker."""
    shown: list[str] = []
    clock = Clock()
    log = tmp_path / "progress.log"
    return Progress(show=shown.append, log_file=log, clock=clock, ticker=False), shown, clock, log


def test_a_step_says_when_it_starts_and_ends_with_its_duration(made):
    progress, shown, clock, _ = made
    with progress.step("cluster cp-1-quota: kind create", "kind create cluster"):
        assert shown == ["cluster cp-1-quota: kind create: started"]
        clock.now += 31.24
    assert shown[-1] == "cluster cp-1-quota: kind create: done in 31.2s"


def test_a_failed_step_says_so_with_its_error_and_the_error_goes_on(made):
    progress, shown, clock, _ = made
    with pytest.raises(RuntimeError), progress.step("offline build go-etcd (Go)"):
        clock.now += 125
        raise RuntimeError("go build failed:\nmissing module")
    assert shown[-1] == "offline build go-etcd (Go): failed after 2m05s (RuntimeError: go build failed: missing module)"


def test_a_step_may_end_otherwise_than_done(made):
    progress, shown, clock, _ = made
    with progress.step("cluster c: nodes ready") as step:
        clock.now += 180
        step.end_as("not within its window, going on", "timed out after 180s waiting for 3 nodes Ready")
    assert shown[-1] == (
        "cluster c: nodes ready: not within its window, going on after 3m00s "
        "(timed out after 180s waiting for 3 nodes Ready)"
    )


def test_a_quiet_step_gets_a_heartbeat_naming_what_it_waits_for_and_its_last_line(made):
    progress, shown, clock, _ = made
    with progress.step("offline build go-kubernetes-1.37 (Go)", "go mod tidy, go build"):
        progress.say("[go-kubernetes-1.37] go build k8s.io/kubernetes/cmd/kube-apiserver")
        clock.now += 29
        progress.beat()
        assert len(shown) == 2  # not quiet for 30 s yet
        clock.now += 2
        progress.beat()
        assert shown[-1] == (
            "offline build go-kubernetes-1.37 (Go): still running after 31.0s, waiting for go mod tidy, go build; "
            "last: [go-kubernetes-1.37] go build k8s.io/kubernetes/cmd/kube-apiserver"
        )
        progress.beat()
        assert len(shown) == 3  # the next one 30 s after this one
        clock.now += 30
        progress.beat()
        assert shown[-1].startswith("offline build go-kubernetes-1.37 (Go): still running after 1m01s")


def test_a_line_of_the_step_counts_as_activity(made):
    progress, shown, clock, _ = made
    with progress.step("cluster c: kind create"):
        for _ in range(4):
            clock.now += 20
            progress.say("something happened")
            progress.beat()
    assert not any("still running" in line for line in shown)


def test_the_heartbeat_names_the_innermost_step_and_what_it_waits_for_now(made):
    progress, shown, clock, _ = made
    with progress.step("offline node image (build or cache check)"), progress.step("offline build node-1.37") as inner:
        inner.waiting("docker build of the node image")
        clock.now += 40
        progress.beat()
    beats = [line for line in shown if "still running" in line]
    assert beats == ["offline build node-1.37: still running after 40.0s, waiting for docker build of the node image"]


def test_a_step_whose_lines_come_from_elsewhere_gets_no_heartbeat(made):
    progress, shown, clock, _ = made
    with progress.step("--phase after and the suites", heartbeat=False):
        clock.now += 300
        progress.beat()
    assert not any("still running" in line for line in shown)


def test_the_same_words_go_to_the_log_with_their_time_and_credentials_redacted(made):
    progress, shown, clock, log = made
    with progress.step("cluster c: kind create"):
        progress.say("kubeconfig token: abcdefghijklmnop1234")
        clock.now += 1
    progress.close()
    lines = log.read_text().splitlines()
    assert len(lines) == len(shown) == 3
    for logged, said in zip(lines, shown, strict=True):
        day, time_of_day, words = logged.split(" ", 2)
        assert re.fullmatch(r"\d{4}-\d\d-\d\d", day) and re.fullmatch(r"\d\d:\d\d:\d\d[+-]\d{4}", time_of_day)
        assert words == redact(said)
    assert "abcdefghijklmnop1234" not in log.read_text()
    assert lines[-1].endswith(" cluster c: kind create: done in 1.0s")


def test_other_threads_lines_go_to_the_log_only_when_asked(tmp_path):
    shown: list[str] = []
    log = tmp_path / "progress.log"
    progress = Progress(show=shown.append, log_file=log, show_other_threads=False, ticker=False)

    def boot_ahead() -> None:
        with progress.step("cluster cp-1-volumes: kind create"):
            pass

    thread = threading.Thread(target=boot_ahead)
    thread.start()
    thread.join()
    progress.say("on the main thread")
    assert shown == ["on the main thread"]
    assert "cluster cp-1-volumes: kind create: done in" in log.read_text()


def test_a_stopwatch_phase_is_a_progress_step_and_a_row():
    shown: list[str] = []
    watch = Stopwatch(progress=Progress(show=shown.append, ticker=False))
    with watch.measure("cluster c: health probe", "the system components healthy"):
        pass
    assert shown[0] == "cluster c: health probe: started" and shown[1].startswith("cluster c: health probe: done in")
    assert [row[0] for row in watch.phases] == ["cluster c: health probe"]
    assert "total" in watch.table()


def test_durations_read_as_a_person_says_them():
    assert duration(0.42) == "0.4s"
    assert duration(59.94) == "59.9s"
    assert duration(61) == "1m01s"
    assert duration(1346) == "22m26s"


def test_nobody_reading_any_more_does_not_break_a_step(tmp_path):
    def gone(line: str) -> None:
        raise BrokenPipeError(32, "Broken pipe")

    progress = Progress(show=gone, log_file=tmp_path / "progress.log", ticker=False)
    with progress.step("cluster c: kind delete"):
        pass
    assert "kind delete: done in" in (tmp_path / "progress.log").read_text()


SLOW_FIXTURE = """
import os, pathlib, time
import pytest

@pytest.fixture(scope="module")
def built(stopwatch):
    stopwatch.progress.heartbeat = 2
    go = pathlib.Path(os.environ["GO_FILE"])
    with stopwatch.measure("offline build slow-step (Go)", "go build of the slow thing"):
        deadline = time.monotonic() + 60
        while not go.exists() and time.monotonic() < deadline:
            time.sleep(0.05)

def test_after_the_build(built):
    pass
"""


def test_in_pytest_the_lines_of_a_fixture_s_step_reach_a_pipe_while_it_runs(pytester: pytest.Pytester, tmp_path):
    """The build runs in a module's setup, under pytest's capture, with stdout a pipe (CI): its
    start line and heartbeat must be read from the pipe before the step ends (here: the step
    ends only once they were read)."""
    pytester.makeconftest('pytest_plugins = ["clusterproof.plugin"]')
    pytester.makepyfile(test_slow=SLOW_FIXTURE)
    go = tmp_path / "go"
    pytester._monkeypatch.setenv("GO_FILE", str(go))
    pytester._monkeypatch.delenv("PYTHONUNBUFFERED", raising=False)  # as under tox: stdout block-buffered
    artifacts = pytester.path / "art"
    proc = pytester.popen(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--artifacts-dir", str(artifacts)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line.decode()) for line in proc.stdout], daemon=True).start()

    def read_until(words: str, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        seen = []
        while time.monotonic() < deadline:
            try:
                line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            seen.append(line)
            if words in line:
                return line
        raise AssertionError(f"no line with {words!r} within {timeout}s; read: {''.join(seen)[-2000:]}")

    try:
        # a pipe's buffer (8 KiB) would take minutes of heartbeats to fill: these come at once or never
        assert read_until("offline build slow-step (Go): started", 30).startswith("[clusterproof] ")
        beat = read_until("offline build slow-step (Go): still running after", 30)
        assert "waiting for go build of the slow thing" in beat
        go.touch()  # only now may the step end
        read_until("offline build slow-step (Go): done in")
        read_until("1 passed")
    finally:
        proc.kill() if proc.poll() is None else None
        proc.wait(timeout=30)
    logged = (artifacts / "progress.log").read_text()
    assert "offline build slow-step (Go): started" in logged and "offline build slow-step (Go): done in" in logged
