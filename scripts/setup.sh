#!/usr/bin/env bash
# Installs everything the project needs on a machine that has Node, npm, Go and apt:
# Debian packages (qemu for the arm64 smoke test, iproute2 for network namespaces, xz, openssl;
# containerd, runc, the CNI plugins, iptables and busybox-static for the test cluster's real nodes;
# skopeo and ca-certificates for the release images)
# and the npm dependencies (Bun among them). Safe to run again: it installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

pkgs=()
command -v qemu-aarch64-static >/dev/null 2>&1 || pkgs+=(qemu-user-static)
[ -e /usr/aarch64-linux-gnu/lib/ld-linux-aarch64.so.1 ] || pkgs+=(libc6-arm64-cross)
command -v ip >/dev/null 2>&1 && command -v tc >/dev/null 2>&1 || pkgs+=(iproute2)
command -v xz >/dev/null 2>&1 || pkgs+=(xz-utils)
command -v openssl >/dev/null 2>&1 || pkgs+=(openssl)
command -v git >/dev/null 2>&1 || pkgs+=(git)
# A real edge node in the tests (test/support/real-node.ts): Debian's containerd 1.6 with runc, the
# CNI plugins (bridge, host-local, portmap), iptables for kube-proxy, and busybox-static, from which
# scripts/images/test-images.ts builds the pause and workload images (nothing can be pulled).
command -v containerd >/dev/null 2>&1 && command -v ctr >/dev/null 2>&1 || pkgs+=(containerd)
command -v runc >/dev/null 2>&1 || pkgs+=(runc)
[ -x /usr/lib/cni/bridge ] && [ -x /usr/lib/cni/host-local ] || pkgs+=(containernetworking-plugins)
command -v iptables >/dev/null 2>&1 && command -v iptables-save >/dev/null 2>&1 || pkgs+=(iptables)
dpkg -s busybox-static >/dev/null 2>&1 || pkgs+=(busybox-static) # static: it is copied into images
command -v nsenter >/dev/null 2>&1 || pkgs+=(util-linux)
# The release test reads the container images as users handle them (skopeo inspect/copy of oci-archive:).
command -v skopeo >/dev/null 2>&1 || pkgs+=(skopeo)
# The images carry the CA bundle of the machine that builds them (scripts/build/images.ts).
[ -e /etc/ssl/certs/ca-certificates.crt ] || pkgs+=(ca-certificates)
if [ ${#pkgs[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${pkgs[*]}" >&2
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${pkgs[@]}" >&2
fi
# test/prometheus.e2e.test.ts scrapes through the hub with Debian's Prometheus. Without its
# Recommends: prometheus-node-exporter would start a service listening on every interface.
if ! command -v prometheus >/dev/null 2>&1; then
  echo "setup: installing Debian package: prometheus" >&2
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >&2
fi

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "setup: Node.js >= 20 and npm are needed (Debian: apt-get install nodejs npm)" >&2
  exit 1
fi
if [ ! -x node_modules/.bin/bun ] || [ ! -e node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup: npm ci" >&2
  npm ci --no-audit --no-fund >&2
fi
