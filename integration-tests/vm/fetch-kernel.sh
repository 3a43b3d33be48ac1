#!/usr/bin/env bash
# Fetches the guest kernel of the cgroup-v2 lane: Debian's linux-image-amd64 (the 6.1 series) and
# the versioned image it depends on, unpacked with `dpkg -x` into a cache directory (never
# installed on the host), plus the uncompressed vmlinux that qemu boots through its PVH entry
# (skipping the bzImage decompressor saves ~2 s under TCG).
#
# Usage: fetch-kernel.sh            prints the kernel directory (holding vmlinux and lib/modules)
# Cache: $HULL_VM_CACHE, else ${CARGO_TARGET_DIR:-<repo>/target}/hull-vm. Once a kernel is there
# it is reused without network access; delete the directory to get a newer one.
set -euo pipefail

repo="$(cd "$(dirname "$0")/../.." && pwd)"
cache="${HULL_VM_CACHE:-${CARGO_TARGET_DIR:-$repo/target}/hull-vm}"
mkdir -p "$cache"
cache="$(cd "$cache" && pwd)"

# Tests of several processes may ask at once: one fetch, the others wait for it.
exec 9>"$cache/.fetch.lock"
flock 9

if [ -e "$cache/current" ] && [ -f "$cache/current/vmlinux" ]; then
    readlink -f "$cache/current"
    exit 0
fi

for tool in apt-get dpkg dpkg-deb xz; do
    command -v "$tool" >/dev/null || { echo "fetch-kernel.sh: $tool not found (a Debian host is needed)" >&2; exit 1; }
done

dl="$(mktemp -d "$cache/download.XXXXXX")"
trap 'rm -rf "$dl"' EXIT
# apt-get download would drop privileges to _apt, who may not reach a cache under /root or /work.
apt_download() { (cd "$dl" && apt-get download -q -o APT::Sandbox::User=root "$@" >&2); }
apt_download linux-image-amd64
meta="$(ls "$dl"/linux-image-amd64_*.deb)"
# "linux-image-6.1.0-56-amd64 (= 6.1.192-2)" (possibly with unsigned alternatives after a '|').
image="$(dpkg-deb -f "$meta" Depends | sed -E 's/[ (|,].*//')"
case "$image" in
    linux-image-*-amd64) ;;
    *) echo "fetch-kernel.sh: unexpected dependency of linux-image-amd64: $image" >&2; exit 1 ;;
esac
apt_download "$image"

kver="${image#linux-image-}"
dest="$cache/$kver"
rm -rf "$dest.tmp"
mkdir -p "$dest.tmp"
dpkg -x "$dl/$image"_*.deb "$dest.tmp"

# The bzImage is the decompressor followed by an XZ stream of vmlinux: find the stream's magic
# and decompress it alone (--single-stream ignores what follows it).
vmlinuz="$dest.tmp/boot/vmlinuz-$kver"
offset="$(LC_ALL=C grep -obUaP '\xfd7zXZ\x00' "$vmlinuz" | head -n1 | cut -d: -f1)"
[ -n "$offset" ] || { echo "fetch-kernel.sh: no XZ payload in $vmlinuz" >&2; exit 1; }
# (tail is cut off once xz has its stream: a SIGPIPE that pipefail must not count.)
tail -c +"$((offset + 1))" "$vmlinuz" | xz -dc --single-stream >"$dest.tmp/vmlinux" || true
[ "$(head -c 4 "$dest.tmp/vmlinux" | tail -c 3)" = ELF ] || { echo "fetch-kernel.sh: $vmlinuz did not unpack to an ELF vmlinux" >&2; exit 1; }

rm -rf "$dest"
mv "$dest.tmp" "$dest"
ln -sfn "$kver" "$cache/current"
echo "$dest"
