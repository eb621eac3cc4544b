"""Waits that give up as soon as the cause is known (#24 5b, 7): a controller's FailedCreate
event, a controller known to be off. FAKE clients and clocks: no API server."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from kubernetes import client

from clusterproof import causes, wait
from clusterproof.errors import WaitGaveUp

PSA_REFUSAL = (
    'Error creating: pods "fluentd-elasticsearch-x2x9q" is forbidden: violates PodSecurity "baseline:latest": '
    'hostPath volumes (volume "varlog")'
)


def event(kind, name, message, reason="FailedCreate", count=1):
    return client.CoreV1Event(
        metadata=client.V1ObjectMeta(name=f"{name}.1"),
        involved_object=client.V1ObjectReference(kind=kind, name=name),
        reason=reason,
        message=message,
        count=count,
    )


def core_with(events):
    def list_namespaced_event(namespace, field_selector="", **_):
        assert field_selector == "reason=FailedCreate"
        return SimpleNamespace(items=[e for e in events if e.reason == "FailedCreate"])

    return SimpleNamespace(list_namespaced_event=list_namespaced_event, list_namespaced_pod=lambda **_: None)


def test_a_controllers_forbidden_failed_create_is_a_final_answer_naming_it():
    """WRK-01/02 waited 240 s for pods the DaemonSet controller said from the first second it
    could not create (Pod Security). Only an admission refusal counts, and only the controller
    waited on (a Deployment's pods come from its ReplicaSets)."""
    core = core_with(
        [
            event("DaemonSet", "fluentd-elasticsearch", PSA_REFUSAL),
            event("ReplicaSet", "np-pods-5d8f7c", 'Error creating: pods "np-pods-x" is forbidden: exceeded quota: q'),
            event("Job", "migrate", "Error creating: Timeout: request did not complete"),
        ]
    )
    assert wait.failed_create(core, "ns", "DaemonSet", "fluentd-elasticsearch")() == (
        f"DaemonSet fluentd-elasticsearch: FailedCreate: {PSA_REFUSAL}"
    )
    assert wait.failed_create(core, "ns", "DaemonSet", "fluentd-cp")() is None
    replica_set = wait.failed_create(core, "ns", "Deployment", "np-pods")()
    assert replica_set.startswith("ReplicaSet np-pods-5d8f7c: FailedCreate")
    assert wait.failed_create(core, "ns", "Job", "migrate")() is None  # not a refusal: may pass
    assert wait.failed_create(core, "ns")() is not None  # any controller of the namespace


def test_a_pod_wait_ends_on_the_refusal_though_no_pod_ever_comes():
    """No pod is ever made, so no watch event comes: the watch is cut into slices of
    `check_every` seconds and the cause asked between them."""
    now = [0.0]

    def no_events(list_fn, **kwargs):  # FAKE watch: nothing happens within the slice
        now[0] += kwargs["timeout_seconds"]
        return iter(())

    refused = wait.failed_create(core_with([event("DaemonSet", "fluentd", PSA_REFUSAL)]), "ns", "DaemonSet", "fluentd")
    with pytest.raises(WaitGaveUp) as info:
        wait.pods_ready(
            SimpleNamespace(list_namespaced_pod=None),
            "ns",
            "name=fluentd",
            2,
            240,
            never=refused,
            clock=lambda: now[0],
            sleep=lambda s: now.__setitem__(0, now[0] + s),
            watcher=lambda: SimpleNamespace(stream=no_events, stop=lambda: None),
        )
    assert now[0] < 10  # one slice of 5 s, not 240 s
    assert 'violates PodSecurity "baseline:latest"' in str(info.value)


def test_a_controller_known_off_ends_the_wait_after_the_grace_once_then_at_once():
    """The quota module waited 60 s per test for a status the stopped resourcequota controller
    never writes: the first wait gets the grace, later ones on the same cause end at once."""
    cluster = SimpleNamespace(name="fake-confirmed")
    off = "kube-controller-manager runs with --controllers=*,-resourcequota: the resourcequota controller is off"
    causes.forget(cluster)
    assert causes.not_processed(cluster, "ResourceQuota ns/q", "resourcequota controller", 3, lambda: off) is None
    assert causes.not_processed(cluster, "ResourceQuota ns/q", "resourcequota controller", 15, lambda: off) == off
    assert causes.not_processed(cluster, "ResourceQuota ns2/q", "resourcequota controller", 0.5, lambda: off) == off
    unknown = causes.not_processed(cluster, "StatefulSet ns/web", "StatefulSet controller", 45, lambda: None)
    assert unknown == "the StatefulSet controller has not processed StatefulSet ns/web in 45 s: is it running?"
    assert causes.not_processed(cluster, "StatefulSet ns/web", "StatefulSet controller", 20, lambda: None) is None


def test_a_cause_confirmed_once_spares_later_waits_their_grace():
    """Every Service and DNS test of a module waited its grace out on the same known cause: the
    first one confirms it, the later ones give up at once (on that cluster only)."""
    now = [0.0]
    one, other = SimpleNamespace(name="fake-one"), SimpleNamespace(name="fake-other")
    causes.forget(one)
    causes.forget(other)
    off = "Services have Endpoints but no EndpointSlices (...): is the EndpointSlice controller running?"
    first = causes.give_up_after(5, lambda: off, cluster=one, clock=lambda: now[0])
    assert first() is None  # within its grace
    now[0] = 5.0
    assert first() == off and causes.confirmed(one, off)
    later = causes.give_up_after(5, lambda: off, cluster=one, clock=lambda: now[0])
    assert later() == off  # at once
    assert causes.give_up_after(5, lambda: off, cluster=other, clock=lambda: now[0])() is None
    assert causes.grace_for(one, off, 5) == 0.0 and causes.grace_for(other, off, 5) == 5
    causes.forget(one)
    assert not causes.confirmed(one, off)
