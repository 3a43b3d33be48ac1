#!/bin/sh
# The init of the cgroup-v2 guest (see run-in-v2-guest.sh), run by busybox sh in two stages.
#
# Stage "boot" is PID 1 in the initramfs (/init): it loads the virtio/9p/overlay modules, makes the
# host's / (9p, read-only) the lower layer of an overlay with a tmpfs upper, mounts a fresh
# proc/sys/dev, cgroup2 with every controller enabled for children, and switch_roots into it.
# Stage "run" is PID 1 in that root: it runs /run/hull-vm/cmd (written by the host), writes the
# exit status to the read-write share and powers off. Nothing here may exit: PID 1 exiting panics
# the kernel (panic=-1 then reboots, and -no-reboot ends qemu, with no status written).
# busybox ash has pipefail.
# shellcheck disable=SC3040
set -euo pipefail

stage="${1:-boot}"
share=/run/hull-vm

die() {
    echo "guest-init: $*" >&2
    # Leaves the reason on the host side too, when the share is mounted.
    [ -d "$share" ] && echo "guest-init: $*" >"$share/init-error" 2>/dev/null
    busybox poweroff -f
    sleep 60
}

if [ "$stage" = boot ]; then
    export PATH=/bin
    mount -t proc proc /proc
    mount -t sysfs sysfs /sys
    mount -t devtmpfs devtmpfs /dev
    debug=0
    grep -qw hullvm.debug /proc/cmdline && debug=1

    while read -r m; do
        insmod "/lib/modules/$m.ko" || die "insmod $m failed"
    done </modules

    mkdir -p /lower /rw /newroot
    # msize: 9p moves at most this much per request (the default 8 KiB makes reading binaries slow).
    mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose,msize=512000 hostroot /lower ||
        die "cannot mount the host's / (9p tag hostroot)"
    mount -t tmpfs -o mode=0755 tmpfs /rw
    mkdir -p /rw/upper /rw/work
    mount -t overlay -o lowerdir=/lower,upperdir=/rw/upper,workdir=/rw/work overlay /newroot ||
        die "cannot mount the overlay root"

    # Only emergencies on the console from here on: the command's output is the host's stdout.
    [ "$debug" = 1 ] || echo 1 >/proc/sys/kernel/printk
    for d in dev proc sys; do
        mount --move "/$d" "/newroot/$d"
    done
    r=/newroot
    mkdir -p "$r/dev/pts" "$r/dev/shm" "$r/dev/mqueue"
    mount -t devpts -o newinstance,ptmxmode=0666,mode=0620,gid=5 devpts "$r/dev/pts"
    mount -t tmpfs -o mode=1777 shm "$r/dev/shm"
    mount -t mqueue mqueue "$r/dev/mqueue"
    mount -t tmpfs -o mode=0755 tmpfs "$r/run"
    mount -t cgroup2 -o nsdelegate cgroup2 "$r/sys/fs/cgroup" || die "cannot mount cgroup2"
    # Every controller for children, as on a systemd host (the root cgroup may hold processes).
    for c in cpuset cpu io memory pids hugetlb rdma misc; do
        if grep -qw "$c" "$r/sys/fs/cgroup/cgroup.controllers"; then
            echo "+$c" >"$r/sys/fs/cgroup/cgroup.subtree_control" || die "cannot enable the $c controller"
        fi
    done

    mkdir -p "$r$share"
    mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 hullvm "$r$share" ||
        die "cannot mount the result share (9p tag hullvm)"
    cp /init "$r$share/guest-init.sh"
    cp /bin/busybox "$r$share/busybox"
    exec switch_root /newroot "$share/busybox" sh "$share/guest-init.sh" run
fi

# Stage "run".
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
busybox hostname hull-v2-guest
busybox ip link set lo up || true
# The console would turn "\n" into "\r\n" in the command's output.
busybox stty -onlcr </dev/console 2>/dev/null || true

# The tests' own files (bundles, roots, containerd's and podman's state) on a tmpfs of the guest's.
# Under /tmp every lookup goes through the overlay to the host's 9p share: a tight poll loop there
# (lifecycle's pid-file watcher) once left both vCPUs in a soft lockup for minutes.
mkdir -p /run/hull-tmp
chmod 1777 /run/hull-tmp
export TMPDIR=/run/hull-tmp

status=0
bash "$share/cmd" </dev/null >/dev/console 2>&1 || status=$?
echo "$status" >"$share/status.tmp"
mv "$share/status.tmp" "$share/status"
sync
grep -qw hullvm.debug /proc/cmdline || echo 0 >/proc/sys/kernel/printk
busybox poweroff -f
sleep 60
