"""Waits and their timeout messages. Uses a FAKE watch (scripted events, no API server) and a
FAKE clock that advances per event, so deadlines pass without sleeping."""

import itertools
from types import SimpleNamespace

import pytest
from kubernetes import client

from clusterproof import pod_states, wait
from clusterproof.errors import WaitGaveUp, WaitTimeout


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


class FakeWatch:
    """Fake kubernetes.watch.Watch: each stream() replays the next scripted list of events,
    advancing the fake clock by `step` seconds per event."""

    def __init__(self, streams, clock: FakeClock, step: float = 1.0) -> None:
        self.streams = list(streams)
        self.clock = clock
        self.step = step
        self.calls = []

    def __call__(self):
        return self

    def stream(self, fn, **kwargs):
        self.calls.append(kwargs)
        events = self.streams.pop(0) if self.streams else []
        for event in events:
            self.clock.now += self.step
            yield event
        self.clock.now += self.step

    def stop(self) -> None:
        pass


def pod(name, ready=False, phase="Running", waiting=None):
    statuses = None
    if waiting:
        statuses = [
            client.V1ContainerStatus(
                name="c",
                image="i",
                image_id="",
                ready=False,
                restart_count=0,
                state=client.V1ContainerState(waiting=client.V1ContainerStateWaiting(reason=waiting)),
            )
        ]
    return client.V1Pod(
        metadata=client.V1ObjectMeta(name=name),
        status=client.V1PodStatus(
            phase=phase,
            conditions=[client.V1PodCondition(type="Ready", status="True" if ready else "False")],
            container_statuses=statuses,
        ),
    )


def seams(streams, clock, step=1.0):
    return {"clock": clock, "sleep": clock.sleep, "watcher": FakeWatch(streams, clock, step)}


def test_pods_ready_returns_when_enough_pods_are_ready():
    clock = FakeClock()
    events = [
        {"type": "ADDED", "object": pod("web-1")},
        {"type": "ADDED", "object": pod("web-2", ready=True)},
        {"type": "MODIFIED", "object": pod("web-1", ready=True)},
    ]
    ready = wait.pods_ready(None_core(), "ns", "app=web", 2, 30, **seams([events], clock))
    assert sorted(p.metadata.name for p in ready) == ["web-1", "web-2"]


def test_pods_ready_timeout_message_says_expected_and_last_seen():
    clock = FakeClock()
    events = [
        {"type": "ADDED", "object": pod("web-1", phase="Pending", waiting="ContainerCreating")},
        {"type": "ADDED", "object": pod("web-2", ready=True)},
    ] + [{"type": "MODIFIED", "object": pod("web-2", ready=True)}] * 10
    with pytest.raises(WaitTimeout) as info:
        wait.pods_ready(None_core(), "ns-1", "app=web", 2, 5, **seams([events], clock))
    assert str(info.value) == (
        "timed out after 5s waiting for 2 ready pod(s) matching app=web in ns-1; "
        "last seen: web-1: Pending (ContainerCreating), web-2: Ready"
    )


def test_deleted_pods_are_forgotten_and_reconnects_start_fresh():
    clock = FakeClock()
    first = [{"type": "ADDED", "object": pod("a")}, {"type": "DELETED", "object": pod("a")}]
    second = [{"type": "ADDED", "object": pod("b", ready=True)}]
    fake = seams([first, second], clock)
    ready = wait.pods_ready(None_core(), "ns", "x=y", 1, 60, **fake)
    assert [p.metadata.name for p in ready] == ["b"]
    assert len(fake["watcher"].calls) == 2
    assert fake["watcher"].calls[0]["timeout_seconds"] == 60


def test_transient_api_errors_reopen_the_watch():
    clock = FakeClock()

    class Flaky(FakeWatch):
        def stream(self, fn, **kwargs):
            if not self.calls:
                self.calls.append(kwargs)
                raise client.ApiException(status=503, reason="Service Unavailable")
            yield from super().stream(fn, **kwargs)

    watcher = Flaky([[{"type": "ADDED", "object": pod("a", ready=True)}]], clock)
    ready = wait.pods_ready(None_core(), "ns", "x=y", 1, 60, clock=clock, sleep=clock.sleep, watcher=watcher)
    assert [p.metadata.name for p in ready] == ["a"]


def test_permanent_api_errors_are_raised_at_once():
    clock = FakeClock()

    class Forbidden(FakeWatch):
        def stream(self, fn, **kwargs):
            raise client.ApiException(status=403, reason="Forbidden")
            yield

    with pytest.raises(client.ApiException):
        wait.pods_ready(None_core(), "ns", "x=y", 1, 60, clock=clock, sleep=clock.sleep, watcher=Forbidden([], clock))


def test_an_observation_window_is_quiet_only_when_the_watch_worked():
    """seen_within: a window that passes with the watch open answers the default (nothing came); a
    window whose watch kept failing is no observation at all (WatchFailed, naming the error)."""
    clock = FakeClock()
    quiet = seams([[{"type": "ADDED", "object": pod("a")}]], clock)
    assert wait.seen_within(lambda **kw: None, lambda objs: "b" in objs, 10, default=[], **quiet) == []

    class Broken(FakeWatch):
        def stream(self, fn, **kwargs):
            self.calls.append(kwargs)
            raise client.ApiException(status=503, reason="Service Unavailable")
            yield

    broken = {"clock": clock, "sleep": clock.sleep, "watcher": Broken([], clock)}
    with pytest.raises(wait.WatchFailed, match=r"the watch failed: ApiException: .*503"):
        wait.seen_within(lambda **kw: None, lambda objs: "b" in objs, 10, default=[], **broken)


def test_pvc_phase_timeout_message():
    clock = FakeClock()
    pvc = client.V1PersistentVolumeClaim(
        metadata=client.V1ObjectMeta(name="data"), status=client.V1PersistentVolumeClaimStatus(phase="Pending")
    )
    with pytest.raises(
        WaitTimeout, match=r"^timed out after 3s waiting for PVC ns/data Bound; last seen: phase Pending$"
    ):
        wait.pvc_phase(None_core(), "ns", "data", "Bound", 3, **seams([[{"type": "ADDED", "object": pvc}] * 5], clock))


def test_until_returns_the_first_truthy_value():
    clock = FakeClock()
    values = iter([None, 0, "ok"])
    assert wait.until(lambda: next(values), "a value", 10, clock=clock, sleep=clock.sleep) == "ok"


def test_until_timeout_reports_the_last_exception():
    clock = FakeClock()

    def failing():
        raise ConnectionError("refused")

    with pytest.raises(WaitTimeout) as info:
        wait.until(failing, "the service to answer", 3, clock=clock, sleep=clock.sleep)
    assert str(info.value) == (
        "timed out after 3s waiting for the service to answer; last seen: ConnectionError: refused"
    )


def test_gone_waits_for_404():
    clock = FakeClock()
    answers = iter([client.V1Namespace(metadata=client.V1ObjectMeta(name="n")), None])

    def read():
        obj = next(answers)
        if obj is None:
            raise client.ApiException(status=404)
        return obj

    wait.gone(read, "namespace n", 10, clock=clock, sleep=clock.sleep)


def test_gone_timeout_message():
    clock = FakeClock()
    terminating = client.V1Namespace(metadata=client.V1ObjectMeta(name="n", deletion_timestamp="2026-11-22T16:30:00Z"))
    with pytest.raises(
        WaitTimeout, match=r"waiting for namespace n to be gone; last seen: .*still there \(terminating\)"
    ):
        wait.gone(lambda: terminating, "namespace n", 2, clock=clock, sleep=clock.sleep)


class ListingCore:
    """A FAKE CoreV1Api whose list calls (the confirming listing before a wait gives up) answer
    `listing`; the fake watch never calls them."""

    def __init__(self, *listing):
        self.listing = list(listing)

    def list_namespaced_pod(self, **kwargs):
        return SimpleNamespace(items=self.listing)

    list_persistent_volume = list_namespaced_pod
    list_namespaced_persistent_volume_claim = list_namespaced_pod


def None_core():
    """A stand-in CoreV1Api: the fake watch never calls the list function it is given."""

    class Core:
        def __getattr__(self, name):
            return lambda *a, **k: pytest.fail(f"unexpected API call {name}")

    return Core()


class FakeApps:
    """Fake AppsV1Api: each list_namespaced_daemon_set() returns the next scripted list."""

    def __init__(self, *listings):
        self.listings = list(listings)

    def list_namespaced_daemon_set(self, namespace, _request_timeout=None):
        items = self.listings.pop(0) if len(self.listings) > 1 else self.listings[0]
        return SimpleNamespace(items=items)


def daemonset(name, ready, desired, observed=True):
    """A FAKE DaemonSet: only the fields daemonsets_ready reads."""
    status = SimpleNamespace(
        desired_number_scheduled=desired, number_ready=ready, observed_generation=1 if observed else None
    )
    return SimpleNamespace(metadata=SimpleNamespace(name=name, generation=1), status=status)


def test_daemonsets_ready_waits_for_every_daemonset_on_every_node():
    clock = FakeClock()
    apps = FakeApps(
        [daemonset("kube-proxy", 1, 3)],
        [daemonset("kube-proxy", 3, 3), daemonset("kindnet", 0, 0, observed=False)],
        [daemonset("kube-proxy", 3, 3), daemonset("kindnet", 3, 3)],
    )
    wait.daemonsets_ready(apps, "kube-system", 30, clock=clock, sleep=clock.sleep)
    assert apps.listings == [[daemonset("kube-proxy", 3, 3), daemonset("kindnet", 3, 3)]]


def test_daemonsets_ready_timeout_names_each_daemonset():
    clock = FakeClock()
    apps = FakeApps([daemonset("kube-proxy", 2, 3)])
    with pytest.raises(WaitTimeout) as info:
        wait.daemonsets_ready(apps, "kube-system", 5, clock=clock, sleep=clock.sleep)
    assert "every DaemonSet in kube-system Ready on its nodes" in str(info.value)
    assert "last seen: kube-proxy: 2/3 ready" in str(info.value)


def test_until_seen_reads_once_per_attempt_and_describes_the_last_state():
    clock = FakeClock()
    reads = iter(range(100))
    with pytest.raises(WaitTimeout) as info:
        wait.until_seen(
            lambda: next(reads),
            lambda n: None,
            "n to be done",
            3,
            describe=lambda n: f"n={n}",
            clock=clock,
            sleep=clock.sleep,
        )
    # attempts at t=0,1,2,3: four reads, and the message names the fourth without a fifth read
    assert next(reads) == 4
    assert str(info.value).endswith("last seen: n=3")


@pytest.mark.parametrize(("enough", "expected"), [(2, [0, 1, 2]), (99, [0, 1, 2, 3])])
def test_last_seen_returns_the_state_that_was_done_or_the_last_one_read_at_the_deadline(enough, expected):
    clock = FakeClock()
    reads = iter(range(100))

    def read() -> list[int]:
        return list(range(next(reads) + 1))

    seen = wait.last_seen(read, lambda lines: len(lines) > enough, "lines", 3, clock=clock, sleep=clock.sleep)

    assert seen == expected


# --- "not yet" and "never" ------------------------------------------------------------------


def stuck_pod(name, reason, message="", owned=False):
    """A FAKE pod whose only container waits with `reason` (e.g. ImagePullBackOff)."""
    fake = pod(name, phase="Pending", waiting=reason)
    fake.status.container_statuses[0].state.waiting.message = message or None
    if owned:
        fake.metadata.owner_references = [
            client.V1OwnerReference(api_version="apps/v1", kind="ReplicaSet", name="rs", uid="u", controller=True)
        ]
    return fake


def test_until_gives_up_at_once_when_the_check_sees_a_final_state():
    clock = FakeClock()
    calls = []

    def check():
        calls.append(clock.now)
        if len(calls) == 3:
            raise wait.Never("pod web-1: Failed")
        return None

    with pytest.raises(WaitGaveUp) as info:
        wait.until(check, "web-1 Ready", 120, clock=clock, sleep=clock.sleep, hint="is the image right?")
    assert len(calls) == 3 and clock.now == 1002.0  # two intervals, not the 120 s deadline
    assert str(info.value) == (
        "gave up after 2s waiting for web-1 Ready: final state pod web-1: Failed; hint: is the image right?"
    )
    assert isinstance(info.value, WaitTimeout)  # code judging "it came to nothing" judges both alike


@pytest.mark.parametrize("bug", [TypeError("unsupported operand"), KeyError("spec"), AttributeError("'NoneType'")])
def test_a_bug_in_the_check_propagates_at_once_instead_of_reading_as_a_timeout(bug):
    clock = FakeClock()

    def check():
        raise bug

    with pytest.raises(type(bug)):
        wait.until(check, "something", 60, clock=clock, sleep=clock.sleep)
    assert clock.now == 1000.0  # not a single retry


@pytest.mark.parametrize(
    ("error", "retried"),
    [
        (client.ApiException(status=404, reason="Not Found"), True),
        (client.ApiException(status=503, reason="Service Unavailable"), True),
        (client.ApiException(status=0, reason="Handshake status 500"), True),
        (ConnectionError("refused"), True),
        (AssertionError("2 lines, want 3"), True),
        (client.ApiException(status=403, reason="Forbidden"), False),
        (client.ApiException(status=422, reason="Unprocessable Entity"), False),
        (ValueError("too many values to unpack"), False),
    ],
)
def test_only_errors_that_may_go_away_count_as_not_yet(error, retried):
    assert wait.is_not_yet(error) is retried


def wait_for_phase(phases, wanted, what, timeout, **kwargs):
    """until_seen over scripted phases (FAKE reads, the last one repeated), on a fake clock."""
    clock = FakeClock()
    states = itertools.chain(phases, itertools.repeat(phases[-1]))
    return wait.until_seen(
        lambda: next(states),
        lambda phase: phase == wanted,
        f"{what} {wanted}",
        timeout,
        describe=lambda phase: f"phase {phase}",
        clock=clock,
        sleep=clock.sleep,
        **kwargs,
    )


def test_the_hint_ends_the_timeout_message_and_may_depend_on_the_last_state():
    def hint(last):
        return "is the PV controller running?" if last == "phase Pending" else None

    with pytest.raises(WaitTimeout) as info:
        wait_for_phase(["Pending"], "Bound", "claim data", 3, hint=hint)
    assert str(info.value) == (
        "timed out after 3s waiting for claim data Bound; last seen: phase Pending; hint: is the PV controller running?"
    )


def test_until_seen_gives_up_on_a_final_state_naming_it_and_the_last_state():
    def final(phase):
        return "a failed recycle" if phase == "Failed" else None

    with pytest.raises(WaitGaveUp) as info:
        wait_for_phase(["Pending", "Failed"], "Available", "PV sample", 90, final=final)
    assert str(info.value) == (
        "gave up after 1s waiting for PV sample Available: final state a failed recycle; last seen: phase Failed"
    )


def test_until_seen_gives_up_when_a_cause_outside_the_state_says_never():
    """`never()` is asked after a wrong state as after a read that raised a "not yet" error."""
    causes = iter([None, "the controller is scaled to zero"])
    with pytest.raises(WaitGaveUp) as info:
        wait_for_phase(["Pending"], "Available", "PV sample", 90, never=lambda: next(causes))
    assert str(info.value) == (
        "gave up after 1s waiting for PV sample Available: final state the controller is scaled to zero; "
        "last seen: phase Pending"
    )


def test_pod_wait_stops_at_once_on_image_pull_backoff_with_the_state_in_the_message():
    """Before: the wait sat out its whole deadline (120 s here). After: it ends on the event that
    shows the final state (the fake clock moves 1 s per event: 2 s)."""
    clock = FakeClock()
    events = [
        {"type": "ADDED", "object": pod("web-1", phase="Pending", waiting="ContainerCreating")},
        {"type": "MODIFIED", "object": stuck_pod("web-1", "ImagePullBackOff", 'Back-off pulling image "nope:1"')},
    ] + [{"type": "MODIFIED", "object": stuck_pod("web-1", "ImagePullBackOff")}] * 200
    core = ListingCore(stuck_pod("web-1", "ImagePullBackOff", 'Back-off pulling image "nope:1"'))
    with pytest.raises(WaitGaveUp) as info:
        wait.pod_ready(core, "ns", "web-1", 120, **seams([events], clock))
    assert clock.now - 1000.0 == 2.0
    assert str(info.value) == (
        "gave up after 2s waiting for 1 ready pod(s) matching metadata.name=web-1 in ns: final state pod web-1: "
        'container c ImagePullBackOff: Back-off pulling image "nope:1"; last seen: web-1: Pending (ImagePullBackOff)'
    )


@pytest.mark.parametrize("reason", sorted(pod_states.FINAL_WAITING_REASONS))
def test_every_final_waiting_reason_ends_a_pod_wait(reason):
    clock = FakeClock()
    events = [{"type": "ADDED", "object": stuck_pod("web-1", reason)}]
    with pytest.raises(WaitGaveUp, match=f"final state pod web-1: container c {reason}"):
        wait.pod_ready(ListingCore(events[0]["object"]), "ns", "web-1", 60, **seams([events], clock))


def test_a_failed_bare_pod_ends_the_wait_but_a_failed_owned_pod_is_waited_past():
    clock = FakeClock()
    failed = pod("job-1", phase="Failed")
    failed.status.reason, failed.status.message = "Evicted", "low on memory"
    with pytest.raises(WaitGaveUp, match=r"final state pod job-1: Failed \(Evicted low on memory\)"):
        wait.pod_ready(ListingCore(failed), "ns", "job-1", 60, **seams([[{"type": "ADDED", "object": failed}]], clock))

    # a ReplicaSet replaces its failed pod: the wait goes on and sees the replacement Ready
    owned_failed = pod("web-a", phase="Failed")
    owned_failed.metadata.owner_references = stuck_pod("x", "X", owned=True).metadata.owner_references
    events = [
        {"type": "ADDED", "object": owned_failed},
        {"type": "DELETED", "object": owned_failed},
        {"type": "ADDED", "object": pod("web-b", ready=True)},
    ]
    ready = wait.pods_ready(None_core(), "ns", "app=web", 1, 60, **seams([events], FakeClock()))
    assert [p.metadata.name for p in ready] == ["web-b"]


def test_pods_ready_goes_on_while_enough_pods_may_still_become_ready():
    """The watch's first event shows only the stuck pod; the confirming listing shows the others."""
    clock = FakeClock()
    stuck, starting, ready_one = (
        stuck_pod("web-1", "CrashLoopBackOff", owned=True),
        pod("web-2", phase="Pending", waiting="ContainerCreating"),
        pod("web-3", ready=True),
    )
    events = [
        {"type": "ADDED", "object": stuck},
        {"type": "ADDED", "object": starting},
        {"type": "ADDED", "object": ready_one},
        {"type": "MODIFIED", "object": pod("web-2", ready=True)},
    ]
    core = ListingCore(stuck, starting, ready_one)
    ready = wait.pods_ready(core, "ns", "app=web", 2, 60, **seams([events], clock))
    assert sorted(p.metadata.name for p in ready) == ["web-2", "web-3"]

    # two stuck of three: two ready pods can never be had
    core = ListingCore(stuck, stuck_pod("web-2", "ImagePullBackOff", owned=True), ready_one)
    with pytest.raises(WaitGaveUp, match="web-1: container c CrashLoopBackOff; pod web-2: container c Image"):
        wait.pods_ready(core, "ns", "app=web", 2, 60, **seams([events[:1]], FakeClock()))


def test_pod_phase_gives_up_when_the_pod_ended_in_a_phase_not_waited_for():
    clock = FakeClock()
    events = [{"type": "ADDED", "object": pod("server", phase="Succeeded")}]
    with pytest.raises(WaitGaveUp, match="final state pod server: Succeeded"):
        wait.pod_phase(ListingCore(events[0]["object"]), "ns", "server", "Running", 60, **seams([events], clock))


def test_pv_phase_gives_up_on_failed_unless_failed_is_wanted():
    def pv(phase, message=None):
        return client.V1PersistentVolume(
            metadata=client.V1ObjectMeta(name="pv-1"),
            status=client.V1PersistentVolumeStatus(phase=phase, message=message),
        )

    events = [
        {"type": "ADDED", "object": pv("Released")},
        {"type": "MODIFIED", "object": pv("Failed", "Recycle failed")},
    ]
    with pytest.raises(WaitGaveUp, match=r"final state PV pv-1 Failed \(Recycle failed\)"):
        wait.pv_phase(
            ListingCore(pv("Failed", "Recycle failed")), "pv-1", "Available", 60, **seams([events], FakeClock())
        )
    outcome = wait.pv_phase(None_core(), "pv-1", ("Available", "Failed"), 60, **seams([events], FakeClock()))
    assert outcome.status.phase == "Failed"


def test_watch_timeout_carries_the_hint():
    clock = FakeClock()
    pvc = client.V1PersistentVolumeClaim(
        metadata=client.V1ObjectMeta(name="data"), status=client.V1PersistentVolumeClaimStatus(phase="Pending")
    )
    with pytest.raises(WaitTimeout, match=r"last seen: phase Pending; hint: claim events: none$"):
        wait.pvc_phase(
            None_core(),
            "ns",
            "data",
            "Bound",
            3,
            hint="claim events: none",
            **seams([[{"type": "ADDED", "object": pvc}] * 5], clock),
        )
