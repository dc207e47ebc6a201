#!/usr/bin/env bash
# `npm test`: the whole test suite on a fresh clone. Installs what is missing (scripts/setup.sh),
# builds or reuses the cached control plane, starts one real cluster for the run, then runs
#   1. every bun:test suite (unit tests beside the code, end-to-end suites in test/),
#   2. the store contract under Node 20 against a Node bundle of the same code,
#   3. the tunnel session contract under Node 20 the same way,
#   4. the compatibility run: test/edge-agent.e2e.test.ts against the oldest supported Kubernetes
#      release (scripts/kube/compat, built by `build.sh --compat` into its own cache folder), on a
#      second cluster with that release's kubectl,
# and ends with one plain line "N passed, N failed". Exit status is non-zero on any failure.
#
#   npm test                     # everything
#   npm test -- edge/store       # only the bun suites under a path (the Node contracts always run,
#                                # the compatibility run only without a path)
#   npm test -- --compat         # only the compatibility run
set -uo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
work="$root/.tether/test"
mkdir -p "$work"

only_compat=""
if [ "${1:-}" = --compat ]; then only_compat=1; shift; fi

bash scripts/setup.sh || { echo "0 passed, 1 failed"; exit 1; }
bun="$root/node_modules/.bin/bun"

passed=0
failed=0
tally() { # <label> <passed> <failed>
  passed=$((passed + $2)); failed=$((failed + $3))
  echo "test: $1: $2 passed, $3 failed" >&2
}

# Clusters run by this script (scripts/cluster.ts up in the background), stopped on exit.
cluster_pids=()
stop_cluster() { # <pid>
  if kill -0 "$1" 2>/dev/null; then
    kill -TERM "$1" 2>/dev/null
    wait "$1" 2>/dev/null
  fi
}
cleanup() {
  for pid in "${cluster_pids[@]}"; do stop_cluster "$pid"; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM
start_cluster() { # <dir> <log>: starts a cluster with this environment's binaries; sets started_pid
  rm -rf "$1"
  "$bun" scripts/cluster.ts up --dir "$1" >"$2" 2>&1 &
  started_pid=$!
  cluster_pids+=("$started_pid")
  for _ in $(seq 1 180); do
    [ -s "$1/cluster.json" ] && break
    kill -0 "$started_pid" 2>/dev/null || break
    sleep 1
  done
  [ -s "$1/cluster.json" ]
}

# 1.–3. The main run, on the current release.
cluster_pid=""
main_run() {
  # The control plane: built once into a cache outside the tree, reused by later runs.
  if ! bin_dir="$(bash scripts/kube/build.sh | tail -n 1)"; then
    echo "test: the control plane could not be built (see above)" >&2
    echo "0 passed, 1 failed"
    exit 1
  fi
  export TETHER_KUBE_BIN="$bin_dir"

  # One cluster for the whole run; suites attach to it through TETHER_TEST_CLUSTER.
  if [ -z "${TETHER_TEST_CLUSTER:-}" ]; then
    cluster_dir="$work/cluster"
    if start_cluster "$cluster_dir" "$work/cluster.log"; then
      export TETHER_TEST_CLUSTER="$cluster_dir"
      echo "test: cluster up ($cluster_dir)" >&2
    else
      echo "test: the test cluster did not start; end-to-end suites start their own. Log:" >&2
      tail -n 30 "$work/cluster.log" >&2
    fi
    cluster_pid=$started_pid
  fi

  # 1. bun:test suites.
  "$bun" test --timeout 300000 "$@" 2>&1 | tee "$work/bun-test.log"
  bun_status=${PIPESTATUS[0]}
  bp=$(grep -Eo '^ *[0-9]+ pass$' "$work/bun-test.log" | tail -n 1 | grep -Eo '[0-9]+' || echo 0)
  bf=$(grep -Eo '^ *[0-9]+ fail$' "$work/bun-test.log" | tail -n 1 | grep -Eo '[0-9]+' || echo 0)
  if [ "$bun_status" -ne 0 ] && [ "$bf" -eq 0 ]; then bf=1; fi # crashed, or an error outside a test
  tally "bun test" "$bp" "$bf"

  # 2.–3. Contracts under Node, each against a Node bundle of the same code.
  node_contract() { # <label> <entry.ts> [bun build flags…]
    local label=$1 entry=$2; shift 2
    local out="$work/$label.node.mjs"
    if "$bun" build "$entry" --target=node --format=esm "$@" --outfile "$out" >"$work/$label-bundle.log" 2>&1; then
      node --test --test-reporter=tap "$out" 2>&1 | tee "$work/$label-node-test.log" | grep -E '^(not )?ok ' >&2
      local np nf
      np=$(grep -Eo '^# pass [0-9]+' "$work/$label-node-test.log" | grep -Eo '[0-9]+' || echo 0)
      nf=$(grep -Eo '^# fail [0-9]+' "$work/$label-node-test.log" | grep -Eo '[0-9]+' || echo 1)
      tally "$label contract under node $(node --version)" "$np" "$nf"
    else
      cat "$work/$label-bundle.log" >&2
      tally "$label contract under node (bundle failed)" 0 1
    fi
  }
  node_contract store edge/store/store.node.contract.ts --external better-sqlite3
  node_contract tunnel shared/tunnel/tunnel.node.contract.ts
}

# 4. Compatibility: the edge-agent suite against the oldest supported release, with that release's
# control plane and kubectl. TETHER_KUBE_COMPAT=1 makes every build.sh call below (cluster.ts,
# test/support) pick the compat folder; TETHER_KUBE_BIN points kubectl there.
compat_run() {
  local label="edge-agent suite against the oldest supported release"
  local compat_bin version
  compat_tally() { tally "$label" "$1" "$2"; compat_summary="$label: $1 passed, $2 failed"; }
  if ! compat_bin="$(TETHER_KUBE_COMPAT=1 bash scripts/kube/build.sh | tail -n 1)"; then
    echo "test: the compatibility control plane could not be built (see above)" >&2
    compat_tally 0 1
    return
  fi
  version="$(awk '$1=="k8s.io/kubernetes"{print $2}' scripts/kube/compat/go.mod)"
  label="edge-agent suite against $version"
  # The main cluster is no longer needed: free its CPU and memory first.
  [ -n "$cluster_pid" ] && stop_cluster "$cluster_pid"
  local dir="$work/compat-cluster"
  if ! TETHER_KUBE_COMPAT=1 TETHER_KUBE_BIN="$compat_bin" start_cluster "$dir" "$work/compat-cluster.log"; then
    echo "test: the $version cluster did not start. Log:" >&2
    tail -n 30 "$work/compat-cluster.log" >&2
    compat_tally 0 1
    return
  fi
  local compat_pid=$started_pid
  # The cluster and kubectl must really be the old release (a wrong folder would pass on v1.37).
  local served client
  served="$(grep -Eo '"kubernetesVersion": *"[^"]*"' "$dir/cluster.json" | grep -Eo 'v[0-9][^"]*')"
  client="$("$compat_bin/kubectl" version --client -o json 2>/dev/null | grep -Eo '"gitVersion": *"[^"]*"' | grep -Eo 'v[0-9][^"]*')"
  if [ "$served" != "$version" ] || [ "$client" != "$version" ]; then
    echo "test: the compatibility cluster serves ${served:-no version} with kubectl ${client:-of no version}, not $version" >&2
    stop_cluster "$compat_pid"
    compat_tally 0 1
    return
  fi
  echo "test: $version cluster up ($dir)" >&2
  TETHER_KUBE_COMPAT=1 TETHER_KUBE_BIN="$compat_bin" TETHER_TEST_CLUSTER="$dir" \
    "$bun" test --timeout 300000 test/edge-agent.e2e.test.ts 2>&1 | tee "$work/compat-test.log"
  local status=${PIPESTATUS[0]} np nf
  stop_cluster "$compat_pid"
  np=$(grep -Eo '^ *[0-9]+ pass$' "$work/compat-test.log" | tail -n 1 | grep -Eo '[0-9]+' || echo 0)
  nf=$(grep -Eo '^ *[0-9]+ fail$' "$work/compat-test.log" | tail -n 1 | grep -Eo '[0-9]+' || echo 0)
  if [ "$status" -ne 0 ] && [ "$nf" -eq 0 ]; then nf=1; fi # crashed, or an error outside a test
  # A run of no test (skipped, not root, suite renamed) proves nothing: it counts as a failure.
  if [ "$np" -eq 0 ] && [ "$nf" -eq 0 ]; then
    echo "test: the compatibility run passed no test" >&2
    nf=1
  fi
  compat_tally "$np" "$nf"
}
compat_summary=""
[ -z "$only_compat" ] && main_run "$@"
if [ $# -eq 0 ]; then
  compat_start=$(date +%s)
  compat_run
  echo "test: compatibility run took $(( $(date +%s) - compat_start ))s" >&2
else
  echo "test: compatibility run skipped (a path was given)" >&2
fi

[ -n "$compat_summary" ] && echo "test: $compat_summary" >&2
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
