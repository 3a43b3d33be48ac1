#!/usr/bin/env bash
# Runs a command inside a pure cgroup-v2 guest and exits with its status, its output (stdout and
# stderr together) streamed to stdout.
#
# Usage: run-in-v2-guest.sh CMD [ARG...]
#        run-in-v2-guest.sh --prepare     only installs qemu and fetches the kernel (exit 1 if not)
#
# The guest is Debian's 6.1 kernel (fetch-kernel.sh) under qemu with TCG (this host's /dev/kvm
# cannot run a stock kernel), a microvm machine with no NIC, whose root is an overlay of the
# host's whole / (9p, read-only) under a tmpfs: every host binary runs there unchanged, and the
# guest's writes vanish with it. cgroup2 is on /sys/fs/cgroup with every controller enabled for
# children, and /dev/vda is an empty 64 MiB scratch disk. The command runs as root in the current
# directory with PATH, HOME, TERM, RUST_*, CARGO_* and HULL_* passed on, and no stdin.
#
# Environment: HULL_VM_CACHE (kernel cache, see fetch-kernel.sh), HULL_VM_MEM (MiB, default 2048),
# HULL_VM_CPUS (default 2), HULL_VM_TIMEOUT (seconds, default 1800), HULL_VM_DEBUG=1 (kernel
# messages on the console), HULL_VM_INIT=systemd and HULL_VM_CGROUP (see run-in-systemd-guest.sh).
# Exit status 125: the guest could not run the command.
set -euo pipefail

if [ "$#" -eq 0 ]; then
    echo "usage: $0 CMD [ARG...] | --prepare" >&2
    exit 2
fi
prepare_only=0
[ "$1" = --prepare ] && prepare_only=1
here="$(cd "$(dirname "$0")" && pwd)"

# The in-guest module load order: virtio transport, then 9p over it, then overlay; fuse for
# /dev/fuse, the device the device-rule tests open; the bridge and veth pairs of Docker's bridge
# network (tests/docker.rs).
modules=(virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci virtio_mmio
    virtio-rng virtio_blk netfs fscache 9pnet 9pnet_virtio 9p overlay fuse llc stp bridge veth)

if ! command -v qemu-system-x86_64 >/dev/null; then
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
        echo "run-in-v2-guest.sh: installing qemu-system-x86" >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends qemu-system-x86 >&2 ||
            { apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends qemu-system-x86 >&2; }
    fi
    command -v qemu-system-x86_64 >/dev/null || { echo "run-in-v2-guest.sh: qemu-system-x86_64 not found" >&2; exit "$((prepare_only ? 1 : 125))"; }
fi
busybox="$(command -v busybox || true)"
if [ -z "$busybox" ] || ! file -L "$busybox" 2>/dev/null | grep -q 'statically linked'; then
    busybox=/usr/bin/busybox
fi
[ -x "$busybox" ] || { echo "run-in-v2-guest.sh: busybox-static not found" >&2; exit "$((prepare_only ? 1 : 125))"; }

kernel="$("$here/fetch-kernel.sh")" || { echo "run-in-v2-guest.sh: no guest kernel" >&2; exit "$((prepare_only ? 1 : 125))"; }
kver="$(basename "$kernel")"
[ "$prepare_only" = 0 ] || exit 0

work="$(mktemp -d /tmp/hull-vm.XXXXXX)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/initramfs/bin" "$work/initramfs/lib/modules" "$work/share"
chmod 755 "$work/share"

# The initramfs: busybox, the init and the modules, uncompressed (TCG decompresses slowly).
cp "$busybox" "$work/initramfs/bin/busybox"
ln -s busybox "$work/initramfs/bin/sh"
for applet in mount umount mkdir insmod grep cp switch_root; do
    ln -s busybox "$work/initramfs/bin/$applet"
done
mkdir -p "$work/initramfs/proc" "$work/initramfs/sys" "$work/initramfs/dev"
cp "$here/guest-init.sh" "$work/initramfs/init"
: >"$work/initramfs/modules"
for m in "${modules[@]}"; do
    ko="$(find "$kernel/lib/modules/$kver" -name "$m.ko" -print -quit)"
    [ -n "$ko" ] || { echo "run-in-v2-guest.sh: module $m.ko not in $kernel" >&2; exit 125; }
    cp "$ko" "$work/initramfs/lib/modules/"
    echo "$m" >>"$work/initramfs/modules"
done
(cd "$work/initramfs" && find . | "$busybox" cpio -o -H newc 2>/dev/null) >"$work/initramfs.cpio"

# The command, as a script the guest's bash runs from the share.
{
    echo "cd $(printf '%q' "$PWD") || exit 125"
    for name in $(compgen -e); do
        case "$name" in
            PATH | HOME | TERM | RUST_* | CARGO* | HULL_*) echo "export $name=$(printf '%q' "${!name}")" ;;
        esac
    done
    printf 'exec'
    printf ' %q' "$@"
    echo
} >"$work/share/cmd"

# A scratch disk (/dev/vda in the guest): a real block device for the io controller's tests.
truncate -s 64M "$work/scratch.img"

# Without the TSC frequency the microvm guest sometimes hangs calibrating its clock.
mhz="$(awk -F: '/^cpu MHz/ { printf "%d", $2 * 1000; exit }' /proc/cpuinfo)"
# softlockup_panic: a guest kernel that locks up ends at once (panic=-1, -no-reboot) instead of
# at the timeout; the caller sees "soft lockup" in the output and no status. watchdog_thresh=30
# (a lockup is 60 s without scheduling, not 20): under TCG on a busy 2-core host a slow 9p
# lookup alone came near the default.
append="console=ttyS0 panic=-1 softlockup_panic=1 watchdog_thresh=30 pci=off cryptomgr.notests=1 tsc=reliable ${mhz:+tsc_early_khz=$mhz}"
# The systemd guest (run-in-systemd-guest.sh): systemd as PID 1, booting guest-init.sh's
# hull-vm.target, with the cgroup hierarchy HULL_VM_CGROUP names.
case "${HULL_VM_INIT:-}" in
    "") ;;
    systemd)
        append="$append hullvm.init=systemd systemd.unit=hull-vm.target systemd.firstboot=0"
        case "${HULL_VM_CGROUP:-unified}" in
            unified) append="$append systemd.unified_cgroup_hierarchy=1" ;;
            hybrid) append="$append systemd.unified_cgroup_hierarchy=0 systemd.legacy_systemd_cgroup_controller=0" ;;
            legacy) append="$append systemd.unified_cgroup_hierarchy=0 systemd.legacy_systemd_cgroup_controller=1" ;;
            *) echo "run-in-v2-guest.sh: HULL_VM_CGROUP must be unified, hybrid or legacy" >&2; exit 2 ;;
        esac
        [ "${HULL_VM_DEBUG:-0}" = 1 ] || append="$append systemd.show_status=0 systemd.log_level=err"
        ;;
    *) echo "run-in-v2-guest.sh: HULL_VM_INIT must be empty or systemd" >&2; exit 2 ;;
esac
if [ "${HULL_VM_DEBUG:-0}" = 1 ]; then
    append="$append hullvm.debug"
else
    append="$append quiet loglevel=1"
fi

status=0
timeout --foreground -k 10 "${HULL_VM_TIMEOUT:-1800}" qemu-system-x86_64 \
    -M microvm,x-option-roms=off,rtc=on -accel tcg -cpu max \
    -nodefaults -no-user-config -nographic -no-reboot \
    -m "${HULL_VM_MEM:-2048}" -smp "${HULL_VM_CPUS:-2}" \
    -chardev stdio,id=con,signal=on -serial chardev:con \
    -kernel "$kernel/vmlinux" -initrd "$work/initramfs.cpio" -append "$append" \
    -device virtio-rng-device \
    -drive file="$work/scratch.img",if=none,id=scratch,format=raw \
    -device virtio-blk-device,drive=scratch \
    -fsdev local,id=hostroot,path=/,security_model=passthrough,readonly=on,multidevs=remap \
    -device virtio-9p-device,fsdev=hostroot,mount_tag=hostroot \
    -fsdev local,id=hullvm,path="$work/share",security_model=passthrough,multidevs=remap \
    -device virtio-9p-device,fsdev=hullvm,mount_tag=hullvm \
    </dev/null || status=$?

if [ -f "$work/share/init-error" ]; then
    cat "$work/share/init-error" >&2
fi
if [ ! -f "$work/share/status" ]; then
    echo "run-in-v2-guest.sh: the guest ended without a status (qemu exit $status)" >&2
    exit 125
fi
exit "$(cat "$work/share/status")"
