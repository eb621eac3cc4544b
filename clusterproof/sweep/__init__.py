"""What runs that are no longer alive left behind, removed: at the start of a run, and on demand.

    python -m clusterproof.sweep [--dry-run] [--kubeconfig PATH --context NAME --allow-context NAME]
                                 [--dead RUN_ID] [--no-kind] [--kind-bin PATH]

A run stopped by SIGKILL (an OOM kill, a CI runner torn down) cannot undo what it made. Every run
records itself (clusterproof.run_records) and a later one judges it (clusterproof.liveness). When a
run starts (and on demand) it removes, of runs judged dead:
- on this host: its credential copies (a flattened kubeconfig, in a private temp directory); the
  kind clusters it created, as recorded then (clusterproof.kind_clusters: a claim
  written before `kind create`, with the node containers' IDs once made; never by name), unless the
  run kept them (--keep-clusters); then the records of dead runs;
- on each cluster it uses: the Services it was changing, put back from their journal
  (clusterproof.journal), namespaces, PersistentVolumes and StorageClasses labelled
  `clusterproof.io/run-id=<run id>`, the node-label leases it held (released: the last holder
  out puts the label back as it was), then its record there.

Never touched: anything of a live run; anything without the suite's run label, and kind clusters
no run claimed when it created them, or whose node containers are not the ones it made; anything
labelled `clusterproof.io/upgrade-state` (an upgrade's state, kept on purpose from `--phase before`
to `--phase after`). A run id found on a cluster with no record anywhere (a run of an older
clusterproof, or one whose record could not be written) counts as dead once its newest object is
UNRECORDED_AFTER old; until then it is named and left (`--dead RUN_ID`).
"""

from clusterproof.sweep.at_start import SweepAtStart
from clusterproof.sweep.cli import main
from clusterproof.sweep.cluster_side import ClusterSide, sweep_cluster
from clusterproof.sweep.decide import Decision, Item, Report, apply, decide, decide_kind
from clusterproof.sweep.host import KindHost, sweep_credentials, sweep_host

__all__ = [
    "ClusterSide",
    "Decision",
    "Item",
    "KindHost",
    "Report",
    "SweepAtStart",
    "apply",
    "decide",
    "decide_kind",
    "main",
    "sweep_cluster",
    "sweep_credentials",
    "sweep_host",
]
