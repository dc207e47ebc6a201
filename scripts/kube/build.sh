#!/usr/bin/env bash
# Builds the upstream Kubernetes control plane (kube-apiserver, kube-controller-manager,
# kube-scheduler) and etcd from the Go module proxy into a cache folder outside the git tree.
# A second run with the same versions reuses the cache and builds nothing.
#
#   scripts/kube/build.sh            # prints the bin folder on its last line
#   TETHER_CACHE=/path scripts/kube/build.sh
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
k8s_version="$(awk '$1=="k8s.io/kubernetes"{print $2}' "$here/go.mod")"
etcd_version="$(awk '$1=="go.etcd.io/etcd/server/v3"{print $2}' "$here/go.mod")"
cache="${TETHER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tether}"
stamp="$(cat "$here/go.mod" "$here/go.sum" | sha256sum | cut -c1-12)"
bin="$cache/kube-$k8s_version-$stamp/bin"
targets=(
  "kube-apiserver:k8s.io/kubernetes/cmd/kube-apiserver"
  "kube-controller-manager:k8s.io/kubernetes/cmd/kube-controller-manager"
  "kube-scheduler:k8s.io/kubernetes/cmd/kube-scheduler"
  "kubectl:k8s.io/kubernetes/cmd/kubectl"
  "etcd:go.etcd.io/etcd/server/v3"
)

missing=()
for t in "${targets[@]}"; do [ -x "$bin/${t%%:*}" ] || missing+=("$t"); done
if [ ${#missing[@]} -eq 0 ]; then
  echo "kube: control plane $k8s_version (etcd $etcd_version) cached in $bin" >&2
  echo "$bin"
  exit 0
fi

if ! command -v go >/dev/null 2>&1; then
  echo "kube: Go is not installed, and the control plane is not cached in $bin." >&2
  echo "kube: install Go >= 1.26 (https://go.dev/doc/install or your distribution's golang package) and run again." >&2
  exit 1
fi

# Stamp the real version into the binaries, as the upstream release build does, so /version,
# kubectl's skew check and the components' compatibility version all see the real release.
ldflags=""
for v in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $v.gitVersion=$k8s_version -X $v.gitMajor=1 -X $v.gitMinor=$(echo "$k8s_version" | cut -d. -f2)"
  ldflags+=" -X $v.gitTreeState=clean -X $v.buildDate=1970-01-01T00:00:00Z"
done

mkdir -p "$bin"
start=$(date +%s)
echo "kube: building control plane $k8s_version and etcd $etcd_version into $bin (a cold build takes 10-25 min on 2 cores)" >&2
cd "$here"
go mod download
for t in "${missing[@]}"; do
  name="${t%%:*}" pkg="${t#*:}"
  t0=$(date +%s)
  echo "kube: go build $name …" >&2
  CGO_ENABLED=0 go build -trimpath -ldflags "-s -w $ldflags" -o "$bin/$name.tmp" "$pkg"
  mv "$bin/$name.tmp" "$bin/$name"
  echo "kube: built $name in $(( $(date +%s) - t0 ))s" >&2
done
echo "kube: control plane built in $(( $(date +%s) - start ))s" >&2
echo "$bin"
