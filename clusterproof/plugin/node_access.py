"""The plugin's node access: each cluster gets its mechanism (clusterproof.hostexec.choose) for the
time it is in use, each command's cost goes to the run's timings, and a node check that meets a node
the user chose not to reach is skipped with the reason (one that meets a node that is down errors).

Each command's cost is logged at DEBUG by `clusterproof.node_access` and summed per cluster into
the run's timings: `cluster <name>: node commands via <mechanism> (n, median s)`.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Generator, Iterator
from typing import Any

import pytest

from clusterproof.cluster import Cluster
from clusterproof.errors import NodeDown, NodeExecUnavailable
from clusterproof.hostexec import HostExecPods, choose, describe, hostexec_namespace
from clusterproof.images import ImageCatalogue
from clusterproof.node_exec import NodeExec, TimedNodeExec
from clusterproof.run import RunContext
from clusterproof.settings import Settings
from clusterproof.timings import Stopwatch
from clusterproof.tracker import OWNER_LABEL, ResourceTracker

log = logging.getLogger("clusterproof.node_access")


@contextlib.contextmanager
def installed(
    cluster: Cluster,
    settings: Settings,
    *,
    tracker: ResourceTracker,
    run: RunContext,
    images: ImageCatalogue,
    note: Callable[[str], None],
    stopwatch: Stopwatch,
) -> Iterator[TimedNodeExec]:
    """Give `cluster` its node access for the time it is in use; then the commands' cost goes to
    the run's timings (the host exec pods themselves go with the tracker's cluster scope)."""

    def host_exec_pods() -> NodeExec:
        return HostExecPods(
            cluster,
            tracker,
            namespace=hostexec_namespace(run.run_id),
            image=images.ref("agnhost", offline=cluster.offline),
            labels={**run.labels, OWNER_LABEL: tracker.owner},
            stopwatch=stopwatch,
        )

    chosen = choose(
        settings.node_access, cluster, allow_privileged=settings.allow_privileged, host_exec_pods=host_exec_pods
    )
    timed = TimedNodeExec(chosen)
    cluster.use_node_exec(timed)
    note(f"node access on {cluster.name}: {describe(chosen)}")
    wall, started = time.time(), time.monotonic()
    try:
        yield timed
    finally:
        summary = timed.summary()
        if summary:
            stopwatch.phases.append(
                (f"cluster {cluster.name}: node commands via {chosen.mechanism} ({summary})", sum(timed.seconds), wall)
            )
            log.info("node access on %s via %s: %s (over %.0fs)", cluster.name, chosen.mechanism, summary,
                     time.monotonic() - started)




# --- node checks that meet an unreachable node -------------------------------------------------
# A test (or its fixture) whose node command meets a node the user or admin chose not to reach
# (NodeExecUnavailable: no mechanism, a refusal, a cordoned node) is skipped with that reason, so
# that node's checks skip and the others run; one that meets a node that is down (NodeDown: NotReady,
# its host exec pod never Ready) errors, naming the node and its condition. Also when a jig or a
# set-up step re-raised it as another error `from` it (its __cause__).


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[None]:
    return (yield from _judging_unreachable())


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    return (yield from _judging_unreachable())


def _judging_unreachable() -> Generator[None, Any, Any]:
    """Both wrappers' body: the hook's result, or its error turned into a skip where it is (or was
    raised from) NodeExecUnavailable, or into the NodeDown it was raised from."""
    try:
        return (yield)
    except Exception as e:
        unreachable = _unreachable_cause(e)
        if isinstance(unreachable, NodeDown):
            if unreachable is e:
                raise
            raise unreachable from e
        if unreachable is not None:
            pytest.skip(str(unreachable))
        raise


def _unreachable_cause(error: BaseException) -> NodeExecUnavailable | None:
    seen: set[int] = set()
    cause: BaseException | None = error
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, NodeExecUnavailable):
            return cause
        seen.add(id(cause))
        cause = cause.__cause__
    return None
