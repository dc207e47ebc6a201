#!/usr/bin/env bash
# Builds upstream Kubernetes and etcd from the Go module proxy into a cache folder outside the git
# tree. A second run with the same versions reuses the cache and builds nothing.
#
#   scripts/kube/build.sh            # the current release (scripts/kube/go.mod): kube-apiserver,
#                                    # kube-controller-manager, kube-scheduler, kubectl, etcd,
#                                    # kubelet and kube-proxy
#   scripts/kube/build.sh --compat   # the oldest supported release (scripts/kube/compat/go.mod):
#                                    # the control plane, etcd and kubectl only
#   TETHER_KUBE_COMPAT=1 …           # the same as --compat, for callers that run build.sh without
#                                    # arguments (scripts/cluster/binaries.ts, test/support/kubectl.ts)
#   TETHER_CACHE=/path scripts/kube/build.sh
#
# Prints the bin folder on its last line. Concurrent runs for the same folder wait for each other
# (a lock beside the folder), so two test runs never write the same binary at once.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

compat="${TETHER_KUBE_COMPAT:-}"
for arg in "$@"; do
  case "$arg" in
    --compat) compat=1 ;;
    *) echo "kube: unknown argument $arg (usage: build.sh [--compat])" >&2; exit 2 ;;
  esac
done
[ "$compat" = 0 ] && compat=""

targets=(
  "kube-apiserver:k8s.io/kubernetes/cmd/kube-apiserver"
  "kube-controller-manager:k8s.io/kubernetes/cmd/kube-controller-manager"
  "kube-scheduler:k8s.io/kubernetes/cmd/kube-scheduler"
  "kubectl:k8s.io/kubernetes/cmd/kubectl"
  "etcd:go.etcd.io/etcd/server/v3"
)
if [ -n "$compat" ]; then
  # The compatibility run needs only what the edge-agent suite talks to.
  module="$here/compat"
  what="compatibility control plane"
else
  module="$here"
  what="control plane, kubelet and kube-proxy"
  targets+=(
    "kubelet:k8s.io/kubernetes/cmd/kubelet"
    "kube-proxy:k8s.io/kubernetes/cmd/kube-proxy"
  )
fi

k8s_version="$(awk '$1=="k8s.io/kubernetes"{print $2}' "$module/go.mod")"
etcd_version="$(awk '$1=="go.etcd.io/etcd/server/v3"{print $2}' "$module/go.mod")"
cache="${TETHER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tether}"
stamp="$(cat "$module/go.mod" "$module/go.sum" | sha256sum | cut -c1-12)"
bin="$cache/kube-$k8s_version-$stamp/bin"

missing_targets() {
  missing=()
  for t in "${targets[@]}"; do [ -x "$bin/${t%%:*}" ] || missing+=("$t"); done
}
cached() {
  echo "kube: $what $k8s_version (etcd $etcd_version) cached in $bin" >&2
  echo "$bin"
  exit 0
}

missing_targets
[ ${#missing[@]} -eq 0 ] && cached

if ! command -v go >/dev/null 2>&1; then
  echo "kube: Go is not installed, and the $what is not cached in $bin." >&2
  echo "kube: install Go >= 1.26 (https://go.dev/doc/install or your distribution's golang package) and run again." >&2
  exit 1
fi

mkdir -p "$bin"
# One build per folder at a time: a second caller waits here, then finds the binaries.
exec 9>"$bin.lock"
if ! flock -n 9; then
  echo "kube: another build of $bin is running; waiting for it" >&2
  flock 9
fi
missing_targets
[ ${#missing[@]} -eq 0 ] && cached

# Stamp the real version into the binaries, as the upstream release build does, so /version,
# kubectl's skew check and the components' compatibility version all see the real release.
ldflags=""
for v in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $v.gitVersion=$k8s_version -X $v.gitMajor=1 -X $v.gitMinor=$(echo "$k8s_version" | cut -d. -f2)"
  ldflags+=" -X $v.gitTreeState=clean -X $v.buildDate=1970-01-01T00:00:00Z"
done

start=$(date +%s)
echo "kube: building $what $k8s_version and etcd $etcd_version into $bin (a cold build takes 10-25 min on 2 cores)" >&2
cd "$module"
go mod download
for t in "${missing[@]}"; do
  name="${t%%:*}" pkg="${t#*:}"
  echo "kube: go build $name …" >&2
  # Wall and CPU time of each binary (CPU time says more on a machine shared with other work).
  TIMEFORMAT="kube: built $name in %0Rs (cpu %0Us user, %0Ss sys)"
  # Static. Upstream releases all of these static except the kubelet, whose only cgo users are
  # the standard library's net and os/user: without cgo it uses Go's own DNS resolver and
  # /etc/passwd lookup, which is all a kubelet here needs.
  time CGO_ENABLED=0 go build -trimpath -ldflags "-s -w $ldflags" -o "$bin/$name.tmp" "$pkg"
  mv "$bin/$name.tmp" "$bin/$name"
done
echo "kube: $what built in $(( $(date +%s) - start ))s" >&2
echo "$bin"
