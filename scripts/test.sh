#!/usr/bin/env bash
# `npm test`: the whole test suite on a fresh clone. Installs what is missing (scripts/setup.sh),
# builds or reuses the cached control plane, starts one real cluster for the run, then runs
#   1. every bun:test suite (unit tests beside the code, end-to-end suites in test/),
#   2. the store contract under Node 20 against a Node bundle of the same code,
#   3. the tunnel session contract under Node 20 the same way,
# and ends with one plain line "N passed, N failed". Exit status is non-zero on any failure.
#
#   npm test                     # everything
#   npm test -- edge/store       # only the bun suites under a path (the Node contract always runs)
set -uo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
work="$root/.tether/test"
mkdir -p "$work"

bash scripts/setup.sh || { echo "0 passed, 1 failed"; exit 1; }
bun="$root/node_modules/.bin/bun"

passed=0
failed=0
tally() { # <label> <passed> <failed>
  passed=$((passed + $2)); failed=$((failed + $3))
  echo "test: $1: $2 passed, $3 failed" >&2
}

# The control plane: built once into a cache outside the tree, reused by later runs.
if ! bin_dir="$(bash scripts/kube/build.sh | tail -n 1)"; then
  echo "test: the control plane could not be built (see above)" >&2
  echo "0 passed, 1 failed"
  exit 1
fi
export TETHER_KUBE_BIN="$bin_dir"

# One cluster for the whole run; suites attach to it through TETHER_TEST_CLUSTER.
cluster_pid=""
cleanup() {
  if [ -n "$cluster_pid" ] && kill -0 "$cluster_pid" 2>/dev/null; then
    kill -TERM "$cluster_pid" 2>/dev/null
    wait "$cluster_pid" 2>/dev/null
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
if [ -z "${TETHER_TEST_CLUSTER:-}" ]; then
  cluster_dir="$work/cluster"
  rm -rf "$cluster_dir"
  "$bun" scripts/cluster.ts up --dir "$cluster_dir" >"$work/cluster.log" 2>&1 &
  cluster_pid=$!
  for _ in $(seq 1 180); do
    [ -s "$cluster_dir/cluster.json" ] && break
    kill -0 "$cluster_pid" 2>/dev/null || break
    sleep 1
  done
  if [ -s "$cluster_dir/cluster.json" ]; then
    export TETHER_TEST_CLUSTER="$cluster_dir"
    echo "test: cluster up ($cluster_dir)" >&2
  else
    echo "test: the test cluster did not start; end-to-end suites start their own. Log:" >&2
    tail -n 30 "$work/cluster.log" >&2
  fi
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

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
