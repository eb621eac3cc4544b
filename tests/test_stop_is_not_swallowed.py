"""A stop (SIGTERM/SIGHUP) always stops: it is raised as stopping.Stopped, a KeyboardInterrupt, so
the broad `except Exception` handlers that keep a probe, a health look, diagnostics, the cluster
facts and the sweep going cannot swallow it (pytest.exit's Exit, an Exception, was swallowed and the
run went on after printing "cleaned up").

Each test installs the run's real signal handler (tracker.install_signal_cleanup) and sends the
signal to this process from inside a faked API call or exec (the fakes stand for the cluster; the
signal and its handler are real): the handler runs there, in the broad handler's `try`."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from types import SimpleNamespace

import pytest

from clusterproof import diagnostics, facts, health, stopping, sweep
from clusterproof.probe import ClientPod
from clusterproof.tracker import install_signal_cleanup


@pytest.fixture(params=[signal.SIGTERM, signal.SIGHUP])
def stop_signal(request, monkeypatch):
    """The run's handler installed; yields a function that sends the signal (and what it cleaned)."""
    monkeypatch.setattr(stopping, "divert_output", lambda path: [])  # SIGHUP would move this run's output
    cleaned: list[bool] = []
    restore = install_signal_cleanup(lambda: cleaned.append(True))
    try:
        yield lambda *a, **kw: os.kill(os.getpid(), request.param), request.param, cleaned
    finally:
        restore()


def stopped_by(signum: int, cleaned: list[bool], info: pytest.ExceptionInfo[stopping.Stopped]) -> bool:
    return info.value.signum == signum and info.value.returncode == 128 + signum and cleaned == [True]


class StoppingApi:
    """Any API call sends the stop signal (the handler raises where the call was made)."""

    def __init__(self, send) -> None:
        self.send = send

    def __getattr__(self, name: str):
        def call(*args, **kwargs):
            self.send()
            raise AssertionError("the stop was not raised at the call")

        return call


def a_cluster(send) -> SimpleNamespace:
    api = StoppingApi(send)
    return SimpleNamespace(
        name="c", provider="kind", offline=False, core=api, apps=api, storage=api, networking=api,
        custom=api, dynamic=api, server_version=(1, 37), kubeconfig=Path("k"), context="c",
    )


def test_a_stop_during_http_sampling_stops(stop_signal):
    send, signum, cleaned = stop_signal
    pod = ClientPod.__new__(ClientPod)
    pod.name = "client"
    pod.http_many = send  # the exec of the requests, in sample_backends' `except Exception`
    with pytest.raises(stopping.Stopped) as info:
        pod.sample_backends("http://svc/", ["a", "b"], settle=0.1, timeout=1)
    assert stopped_by(signum, cleaned, info)


def test_a_stop_during_a_health_read_stops(stop_signal):
    send, signum, cleaned = stop_signal
    with pytest.raises(stopping.Stopped) as info:
        health.Look(a_cluster(send)).nodes  # noqa: B018 (the read is the point)
    assert stopped_by(signum, cleaned, info)


def test_a_stop_during_diagnostics_stops(stop_signal):
    send, signum, cleaned = stop_signal
    with pytest.raises(stopping.Stopped) as info:
        diagnostics.collect(a_cluster(send), ["ns"])
    assert stopped_by(signum, cleaned, info)


def test_a_stop_while_recording_cluster_facts_stops(stop_signal, tmp_path):
    send, signum, cleaned = stop_signal
    with pytest.raises(stopping.Stopped) as info:
        facts.record(a_cluster(send), tmp_path / "cluster.json")
    assert stopped_by(signum, cleaned, info)


def test_a_stop_during_a_sweep_removal_stops(stop_signal):
    send, signum, cleaned = stop_signal
    item = sweep.Item("namespace x", "dead-run", send)
    with pytest.raises(stopping.Stopped) as info:
        sweep.apply([sweep.Decision(item, True, "dead")])
    assert stopped_by(signum, cleaned, info)


def test_a_stop_while_the_sweep_reads_a_cluster_stops(stop_signal):
    send, signum, cleaned = stop_signal
    side = sweep.ClusterSide("c", StoppingApi(send), StoppingApi(send), None)
    with pytest.raises(stopping.Stopped) as info:
        sweep.sweep_cluster(side, [])
    assert stopped_by(signum, cleaned, info)


def test_a_stopped_run_ends_at_once_with_128_plus_the_signal(plugin_project):
    """End to end: the stop comes inside a test's `except Exception`; the session ends there (the
    next test does not run) with exit status 143, as SIGTERM's."""
    project = plugin_project("## SVC\n| ID | claim | observable |\n|---|---|---|\n| SVC-01 | a | b |\n")
    project.makepyfile(
        """
        import os, signal

        def test_stopped(tracker):
            try:
                os.kill(os.getpid(), signal.SIGTERM)
            except Exception:
                pass
            raise AssertionError("went on after the stop")

        def test_after():
            raise AssertionError("ran after the stop")
        """
    )
    result = project.runpytest_subprocess("--claims-file", "CLAIMS.md", "--artifacts-dir", "art")
    assert result.ret == 128 + signal.SIGTERM
    result.stdout.fnmatch_lines(["*SIGTERM received: cleaned up*"])
    assert "went on after the stop" not in result.stdout.str()
    assert "ran after the stop" not in result.stdout.str()
