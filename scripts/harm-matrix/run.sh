#!/bin/bash
# The harm matrix of issue #20 ("Done when"): a kind cluster `staging` set up to look like a user's
# (its own Traefik ingress controller in namespace user-ingress, default IngressClass, Service with
# externalTrafficPolicy Local and externalIPs; namespace user-data with a Retain PV bound to a claim;
# node labels) and a bystander kind cluster `dev` on the same host, both made by runs that recorded
# them in another registry (so nothing of the runs below claims them). The suite then runs against
# staging as an existing cluster (a) to the end, (b) SIGKILLed mid-module then swept, (c) twice at
# once with one --run-id, (d) --phase after interrupted by SIGTERM. Before and after each, dump.py
# dumps every object no run made and the two kind clusters: the diffs (diff-*.txt) must be empty.
# Run from the repository, through /work/tools/cluster-slot: scripts/harm-matrix/run.sh [OUT_DIR]
set -u
S=$(cd "$(dirname "$0")" && pwd); OUT=${1:-/tmp/harm-matrix}; mkdir -p "$OUT"
export CLUSTERPROOF_RUNS_REGISTRY=$OUT/registry
PY=.tox/e2e/bin/python; PYTEST=.tox/e2e/bin/pytest
say() { echo "=== $(date +%T) $*"; }
user_cluster() {  # a cluster of the "user": made and kept by a run recorded elsewhere
  CLUSTERPROOF_RUNS_REGISTRY=$OUT/user-registry $PYTEST -o testpaths=suites suites/test_quota.py \
    -k test_names_are_per_namespace --cluster-scope session --keep-clusters --cluster-name "$@" 2>&1 | tail -1
}
say "the user's clusters"
user_cluster staging --run-id harm-user-staging
user_cluster dev --run-id harm-user-dev --kind-config "$S/one-node.yaml"
cp "$(ls -td .clusterproof/runs/harm-user-staging-*/clusters/staging/kubeconfig | head -1)" "$OUT/staging.kubeconfig"
K=$OUT/staging.kubeconfig; C=kind-staging
kc() { kubectl --kubeconfig "$K" --context $C "$@"; }
NODE_IP=$(kc get node staging-worker -o jsonpath='{.status.addresses[?(@.type=="InternalIP")].address}')
$PY "$S/user_objects.py" "$NODE_IP" staging-worker > "$OUT/user-objects.yaml" || exit 1
kc apply -f "$OUT/user-objects.yaml" > /dev/null || { say "the user's objects were not all applied"; exit 1; }
kc label node staging-worker team=payments tier=gold --overwrite; kc label node staging-worker2 team=search --overwrite
kc -n user-ingress rollout status deploy/traefik --timeout=120s || { say "the user's Traefik is not ready"; exit 1; }
kc -n user-data wait pod/ledger --for=condition=Ready --timeout=120s || { say "the user's ledger pod is not ready"; exit 1; }
E="--kubeconfig $K --context $C --allow-context $C"
dump() { $PY "$S/dump.py" --kubeconfig "$K" --context $C --kind staging,dev > "$OUT/$1.json"; }
check() { $PY "$S/dump.py" --diff "$OUT/$1.json" "$OUT/$2.json" > "$OUT/diff-$3.txt"; echo "diff $3: $(head -c 400 "$OUT/diff-$3.txt" | tr '\n' ' ')"; }
suite() { $PYTEST -c pyproject.toml -o testpaths=suites $E --offline yes -p no:cacheprovider "$@"; }
# in the background (`suite_bg ... & P=$!`): pytest itself is $P, so the signals below reach the run
# (with `suite ... &`, $P was the subshell running the function: SIGKILL and SIGTERM left pytest running)
suite_bg() { exec $PYTEST -c pyproject.toml -o testpaths=suites $E --offline yes -p no:cacheprovider "$@"; }

say "(a) to the end"; dump a0
suite --run-id harm-a > "$OUT/a.log" 2>&1; echo "rc $?"; tail -2 "$OUT/a.log"
dump a1; check a0 a1 a

say "(b) SIGKILL mid-module, then swept"; dump b0
suite_bg --run-id harm-b > "$OUT/b.log" 2>&1 & P=$!
sleep "${KILL_AFTER:-150}"; kill -9 $P; wait $P 2>/dev/null; echo "killed in: $(grep -o 'suites/test_[a-z_]*.py' "$OUT/b.log" | tail -1)"
$PY -m clusterproof.sweep $E 2>&1 | tail -15
dump b1; check b0 b1 b

say "(c) twice at once with one --run-id"; dump c0
M="suites/test_quota.py suites/test_pod_network.py suites/test_volumes.py"
suite_bg --run-id harm-c $M > "$OUT/c1.log" 2>&1 & P1=$!
suite_bg --run-id harm-c $M > "$OUT/c2.log" 2>&1 & P2=$!
wait $P1; echo "rc1 $?"; wait $P2; echo "rc2 $?"; tail -n 1 "$OUT/c1.log" "$OUT/c2.log"
dump c1; check c0 c1 c

say "(d) --phase after interrupted"; ST=$OUT/upgrade-state.json; rm -f "$ST"
suite suites/test_upgrade.py --phase before --state-file "$ST" --run-id harm-d0 > "$OUT/d0.log" 2>&1; echo "before rc $?"
dump d0
suite_bg suites/test_upgrade.py --phase after --state-file "$ST" --run-id harm-d1 > "$OUT/d1.log" 2>&1 & P=$!
# stopped once its checks run (after the cluster is found), not at a guessed time from the start
for _ in $(seq 120); do grep -q 'node access on' "$OUT/d1.log" 2>/dev/null && break; kill -0 $P 2>/dev/null || break; sleep 1; done
sleep "${STOP_AFTER:-5}"; kill -TERM $P; wait $P; echo "after rc $? (SIGTERM)"; tail -3 "$OUT/d1.log"
ls -la "$ST"*; kc get ns -l clusterproof.io/upgrade-state --no-headers
dump d1; check d0 d1 d
say "done: the clusters staging and dev are the user's (kept): kind delete cluster --name staging/dev when finished"
