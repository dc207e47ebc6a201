#!/bin/sh
# Tether installer: downloads tether-edge for this machine, checks the release's signature
# (with --release-key) and the binary against SHA256SUMS, and installs it. POSIX sh; needs curl or
# wget, sha256sum, shasum or openssl, and openssl for --release-key.
#
#   curl -fsSL <base>/install.sh | sh -s -- [--release-key FILE] [--version V] [--prefix DIR] [--base-url URL] [--no-deps] [--insecure]
#
#   --release-key FILE  the release public key (PEM, Ed25519; docs/install.md "Signed releases"):
#                   SHA256SUMS.sig must be its signature over SHA256SUMS before SHA256SUMS is used,
#                   and VERSION (listed in SHA256SUMS) must name the version asked for, so a
#                   mirror can neither change the files nor pass an older signed release off as
#                   this one. A missing or bad signature installs nothing. Without it SHA256SUMS
#                   is trusted as it comes (a warning says so)
#   --version V     a release (0.1.0); default: the latest
#   --prefix DIR    install into DIR/bin (default /usr/local, so /usr/local/bin/tether-edge)
#   --base-url URL  where the release files are: a directory as `npm run build` writes dist/
#                   (with --version: URL/v<V>/); default: the release location stamped at build time
#   --no-deps       armv7l: do not run npm for better-sqlite3, only say how
#   --insecure      allow a plain http:// release location. Without it only https:// is used, for
#                   every download and redirect: SHA256SUMS comes from the same place as the binary,
#                   so over plain http anyone on the path could replace both and the check would pass
#
# Which file: x86_64 → tether-edge-linux-x64, aarch64 → tether-edge-linux-arm64 (each with a
# -musl variant on musl systems such as Alpine), armv7l → tether-edge.mjs, a bundle for
# Node.js >= 20 installed to DIR/lib/tether with better-sqlite3 beside it. The .xz copy is
# downloaded when xz is present, the plain file otherwise; both are checked against SHA256SUMS
# and nothing is installed on a mismatch. Running it again is harmless: an identical binary is
# left alone, another one is replaced atomically.
#
# For tests: TETHER_INSTALL_ARCH, TETHER_INSTALL_OS and TETHER_INSTALL_LIBC (glibc|musl) replace
# what uname and the libc probe say.
set -eu

# Where releases are published: stamped into dist/install.sh by scripts/build.ts from the
# TETHER_RELEASE_BASE environment variable (a URL with <base>/latest/download/… and
# <base>/download/v<V>/… below it). Empty means --base-url is required.
RELEASES=""
BETTER_SQLITE3_VERSION="12.6.2"

version=""
prefix="/usr/local"
base_url=""
no_deps=""
insecure=""
release_key=""

say() { printf '%s\n' "tether install: $*" >&2; }
die() {
	printf '%s\n' "tether install: error: $*" >&2
	exit 1
}
need_value() { [ $# -ge 2 ] && [ -n "$2" ] || die "$1 needs a value (see the top of install.sh for usage)"; }

while [ $# -gt 0 ]; do
	case $1 in
	--version) need_value "$@"; version=$2; shift 2 ;;
	--version=*) version=${1#*=}; shift ;;
	--prefix) need_value "$@"; prefix=$2; shift 2 ;;
	--prefix=*) prefix=${1#*=}; shift ;;
	--base-url) need_value "$@"; base_url=$2; shift 2 ;;
	--base-url=*) base_url=${1#*=}; shift ;;
	--no-deps) no_deps=1; shift ;;
	--insecure) insecure=1; shift ;;
	--release-key) need_value "$@"; release_key=$2; shift 2 ;;
	--release-key=*) release_key=${1#*=}; shift ;;
	-h | --help)
		echo 'usage: install.sh [--release-key FILE] [--version V] [--prefix DIR (default /usr/local)] [--base-url URL] [--no-deps] [--insecure]' >&2
		exit 0
		;;
	*) die "unknown option $1 (options: --release-key FILE, --version V, --prefix DIR, --base-url URL, --no-deps, --insecure)" ;;
	esac
done
version=${version#v}
base_url=${base_url%/}

# --- the platform ---------------------------------------------------------------------------

os=${TETHER_INSTALL_OS:-$(uname -s)}
[ "$os" = Linux ] || die "unsupported operating system $os: tether-edge runs on Linux (x86_64, aarch64, armv7l)"

arch=${TETHER_INSTALL_ARCH:-$(uname -m)}
case $arch in
x86_64 | amd64) cpu=x64 ;;
aarch64 | arm64) cpu=arm64 ;;
armv7l | armv7* | armhf) cpu=node ;;
*) die "unsupported architecture $arch: release builds exist for x86_64, aarch64 and armv7l (with Node.js >= 20); on other machines build from source (docs/install.md)" ;;
esac

detect_libc() {
	if [ -f /etc/alpine-release ]; then
		echo musl
		return
	fi
	if (ldd --version 2>&1 || true) | grep -qi musl; then
		echo musl
		return
	fi
	for f in /lib/ld-musl-*.so.1; do
		if [ -e "$f" ]; then
			echo musl
			return
		fi
	done
	echo glibc
}
libc=${TETHER_INSTALL_LIBC:-$(detect_libc)}
case $libc in glibc | musl) ;; *) die "TETHER_INSTALL_LIBC must be glibc or musl, not $libc" ;; esac

if [ "$cpu" = node ]; then
	artifact=tether-edge.mjs
	command -v node >/dev/null 2>&1 || die "on $arch tether-edge runs under Node.js >= 20, and node is not installed; install Node.js 20 or newer (your distribution or nodejs.org), then run this again"
	node_version=$(node --version 2>/dev/null || true)
	node_major=${node_version#v}
	node_major=${node_major%%.*}
	case $node_major in '' | *[!0-9]*) die "cannot tell the version of node (node --version said: $node_version)" ;; esac
	[ "$node_major" -ge 20 ] || die "on $arch tether-edge needs Node.js >= 20; this node is $node_version: upgrade it, then run this again"
elif [ "$libc" = musl ]; then
	artifact=tether-edge-linux-$cpu-musl
else
	artifact=tether-edge-linux-$cpu
fi

if [ -n "$base_url" ]; then
	url=$base_url${version:+/v$version}
elif [ -z "$RELEASES" ]; then
	die "this install.sh names no release location: pass --base-url URL (the directory install.sh came from)"
elif [ -n "$version" ]; then
	url=$RELEASES/download/v$version
else
	url=$RELEASES/latest/download
fi

# The checksums are only as trustworthy as the channel they come over.
case $url in
https://*) ;;
http://*)
	[ -n "$insecure" ] || die "refusing to download the release and its SHA256SUMS over plain http ($url): anyone on the network path could replace both. Serve it over https, or pass --insecure if you trust this network"
	if [ -n "$release_key" ]; then
		say "warning: --insecure: downloading over plain http; the signature still detects tampering, but anyone on the path sees and can block the download"
	else
		say "warning: --insecure: downloading over plain http; SHA256SUMS only detects damage, not tampering"
	fi
	;;
*) die "the release location must be an https:// URL, not $url" ;;
esac

# --- the release key, checked before anything is downloaded --------------------------------

if [ -n "$release_key" ]; then
	[ -r "$release_key" ] || die "cannot read --release-key $release_key"
	command -v openssl >/dev/null 2>&1 || die "--release-key needs openssl to check the signature (install openssl, then run this again)"
	key_text=$(openssl pkey -pubin -in "$release_key" -noout -text 2>/dev/null) ||
		die "--release-key $release_key is not a PEM public key (make it with: openssl pkey -in release.key -pubout -out release.pub)"
	case $key_text in
	ED25519*) ;;
	*) die "--release-key $release_key is not an Ed25519 public key; Tether releases are signed with Ed25519" ;;
	esac
fi

# --- tools ----------------------------------------------------------------------------------

fetch() { # URL FILE
	if command -v curl >/dev/null 2>&1; then
		if [ -n "$insecure" ]; then
			curl -fsSL --retry 2 -o "$2" "$1"
		else
			curl -fsSL --retry 2 --proto '=https' --proto-redir '=https' -o "$2" "$1"
		fi
	elif command -v wget >/dev/null 2>&1; then
		if [ -n "$insecure" ]; then
			wget -q -O "$2" "$1"
		else
			wget -q --https-only -O "$2" "$1"
		fi
	else
		die "needs curl or wget to download"
	fi
}

sha256_of() { # FILE
	if command -v sha256sum >/dev/null 2>&1; then
		sha256sum "$1" | cut -d' ' -f1
	elif command -v shasum >/dev/null 2>&1; then
		shasum -a 256 "$1" | cut -d' ' -f1
	elif command -v openssl >/dev/null 2>&1; then
		openssl dgst -sha256 -r "$1" | cut -d' ' -f1
	else
		die "needs sha256sum, shasum or openssl to check the download"
	fi
}

tmp=$(mktemp -d 2>/dev/null || mktemp -d -t tether-install)
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM

# check NAME FILE: the file's SHA-256 must be the one SHA256SUMS gives for NAME.
check() {
	expected=$(awk -v f="$1" '$2 == f || $2 == "*" f { print $1; exit }' "$tmp/SHA256SUMS")
	[ -n "$expected" ] || die "SHA256SUMS at $url has no entry for $1; refusing to install"
	actual=$(sha256_of "$2")
	[ "$actual" = "$expected" ] || die "checksum mismatch for $1: SHA256SUMS says $expected, the download is $actual. The file is damaged or was tampered with; nothing was installed."
}

# --- download and verify --------------------------------------------------------------------

say "downloading $artifact from $url"
fetch "$url/SHA256SUMS" "$tmp/SHA256SUMS" || die "cannot download $url/SHA256SUMS; check --base-url and --version"
if [ -n "$release_key" ]; then
	# The signature first: until it verifies, nothing in SHA256SUMS is read.
	fetch "$url/SHA256SUMS.sig" "$tmp/SHA256SUMS.sig" ||
		die "cannot download $url/SHA256SUMS.sig: this release is not signed (or not reachable); nothing was installed"
	bad_signature="SHA256SUMS.sig at $url does not verify with the release key $release_key: the release was changed or signed by another key; nothing was installed"
	verdict=$(openssl pkeyutl -verify -pubin -inkey "$release_key" -rawin -in "$tmp/SHA256SUMS" -sigfile "$tmp/SHA256SUMS.sig" 2>&1) || die "$bad_signature"
	case $verdict in *"Signature Verified Successfully"*) ;; *) die "$bad_signature" ;; esac
	say "SHA256SUMS is signed by the release key"
	# VERSION binds the signature to a version: an older signed release cannot be served as this one.
	fetch "$url/VERSION" "$tmp/VERSION" || die "cannot download $url/VERSION (a signed release names its version); nothing was installed"
	check VERSION "$tmp/VERSION"
	release_version=$(head -n 1 "$tmp/VERSION")
	if [ -n "$version" ] && [ "$release_version" != "$version" ]; then
		die "the release at $url is version $release_version, not $version as asked; nothing was installed"
	fi
	say "release $release_version"
else
	say "warning: no --release-key: the release is not signature-checked, so SHA256SUMS only shows the download is intact, not who made it"
fi
if command -v xz >/dev/null 2>&1 && grep -q " \*\{0,1\}$artifact\.xz\$" "$tmp/SHA256SUMS"; then
	fetch "$url/$artifact.xz" "$tmp/$artifact.xz" || die "cannot download $url/$artifact.xz; this release may have no build for $arch ($libc)"
	check "$artifact.xz" "$tmp/$artifact.xz"
	xz -dc "$tmp/$artifact.xz" >"$tmp/$artifact" || die "cannot unpack $artifact.xz"
else
	fetch "$url/$artifact" "$tmp/$artifact" || die "cannot download $url/$artifact; this release may have no build for $arch ($libc)"
fi
check "$artifact" "$tmp/$artifact"

# --- install --------------------------------------------------------------------------------

# place FILE DEST: installs FILE as DEST (0755) unless DEST is identical; atomic via rename.
place() {
	if [ -f "$2" ] && [ "$(sha256_of "$2")" = "$(sha256_of "$1")" ]; then
		say "$2 is already this build; left as it is"
		return
	fi
	mkdir -p "$(dirname "$2")" || die "cannot create $(dirname "$2") (run as root, or choose --prefix)"
	cp "$1" "$2.new.$$" || die "cannot write $(dirname "$2") (run as root, or choose --prefix)"
	chmod 0755 "$2.new.$$"
	mv -f "$2.new.$$" "$2"
	say "installed $2"
}

bin=$prefix/bin/tether-edge
if [ "$cpu" = node ]; then
	lib=$prefix/lib/tether
	place "$tmp/$artifact" "$lib/tether-edge.mjs"
	mkdir -p "$prefix/bin"
	if [ "$(readlink "$bin" 2>/dev/null || true)" != "../lib/tether/tether-edge.mjs" ]; then
		ln -sfn ../lib/tether/tether-edge.mjs "$bin" || die "cannot link $bin"
	fi
	if [ ! -d "$lib/node_modules/better-sqlite3" ]; then
		deps="npm install --prefix '$lib' --no-save better-sqlite3@$BETTER_SQLITE3_VERSION"
		if [ -n "$no_deps" ] || ! command -v npm >/dev/null 2>&1; then
			say "next: the snapshot store needs better-sqlite3 beside the bundle: $deps"
		else
			say "installing better-sqlite3 $BETTER_SQLITE3_VERSION into $lib (npm)"
			npm install --prefix "$lib" --no-save "better-sqlite3@$BETTER_SQLITE3_VERSION" >&2 ||
				die "npm could not install better-sqlite3 (without a prebuilt binary it builds from source: install python3, make and a C++ compiler), then run: $deps"
		fi
	fi
else
	place "$tmp/$artifact" "$bin"
fi

if installed=$("$bin" --version 2>/dev/null); then
	say "tether-edge $installed"
fi
say "next: get a join command on the hub with \`tether-hub token create\` and run it here as root"
