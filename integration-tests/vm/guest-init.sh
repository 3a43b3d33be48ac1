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

# The systemd guest (hullvm.init=systemd, see run-in-systemd-guest.sh): the root at $1 gets a
# machine-id of its own and boots hull-vm.target, which holds only dbus and hull-vm.service (the
# host's enabled units, docker and containerd among them, stay off). What systemd would start on
# the way that is slow under TCG or pointless without disks, NIC or modules is masked, and so are
# all generators (they only turn fstab, crypttab, gettys and SysV scripts into units).
systemd_root() {
    r="$1"
    # The host's root may be a container's: with its marker file systemd would believe it runs in
    # a container and ignore the kernel command line (systemd.unit, the cgroup hierarchy).
    busybox rm -f "$r/.dockerenv"
    echo hull-systemd-guest >"$r/etc/hostname"
    busybox tr -d -- - <"$r/proc/sys/kernel/random/uuid" >"$r/etc/machine-id"
    u="$r/etc/systemd/system"
    mkdir -p "$u" "$r/etc/systemd/system-generators"
    for g in "$r"/lib/systemd/system-generators/*; do
        busybox ln -sfn /dev/null "$r/etc/systemd/system-generators/${g##*/}"
    done
    for unit in apparmor.service cryptsetup.target integritysetup.target veritysetup.target \
        dev-hugepages.mount proc-sys-fs-binfmt_misc.automount sys-fs-fuse-connections.mount \
        sys-kernel-config.mount sys-kernel-debug.mount sys-kernel-tracing.mount \
        kmod-static-nodes.service systemd-ask-password-console.path systemd-binfmt.service \
        systemd-firstboot.service systemd-journal-flush.service systemd-machine-id-commit.service \
        systemd-modules-load.service systemd-pcrphase-sysinit.service systemd-pcrphase.service \
        systemd-random-seed.service systemd-repart.service systemd-sysctl.service \
        systemd-sysusers.service systemd-update-utmp.service systemd-pstore.service \
        systemd-timesyncd.service systemd-remount-fs.service systemd-fsck-root.service \
        systemd-udevd.service systemd-udev-trigger.service systemd-udev-settle.service \
        systemd-hwdb-update.service systemd-journal-catalog-update.service \
        systemd-boot-system-token.service ldconfig.service e2scrub_reap.service \
        systemd-tmpfiles-clean.timer systemd-tmpfiles-setup.service \
        systemd-tmpfiles-setup-dev.service swap.target getty.target; do
        busybox ln -sfn /dev/null "$u/$unit"
    done
    busybox cat >"$u/hull-vm.target" <<'UNIT'
[Unit]
Description=The hull test guest: dbus and the command
Wants=dbus.socket dbus.service hull-vm.service
AllowIsolate=yes
UNIT
    busybox cat >"$u/hull-vm.service" <<UNIT
[Unit]
Description=The command of run-in-systemd-guest.sh
DefaultDependencies=no
Wants=dbus.service
After=dbus.service sysinit.target

[Service]
Type=oneshot
ExecStart=$share/busybox sh $share/guest-init.sh run
StandardInput=null
StandardOutput=tty
StandardError=tty
TTYPath=/dev/console
TimeoutStartSec=infinity
# The limits the kernel gives the v2 guest's init (systemd's default hard limit is 512Ki).
LimitNOFILE=1024:4096
UNIT
}

if [ "$stage" = boot ]; then
    export PATH=/bin
    mount -t proc proc /proc
    mount -t sysfs sysfs /sys
    mount -t devtmpfs devtmpfs /dev
    debug=0
    grep -qw hullvm.debug /proc/cmdline && debug=1
    init=busybox
    grep -qw hullvm.init=systemd /proc/cmdline && init=systemd

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
    if [ "$init" = systemd ]; then
        systemd_root "$r"
    else
        mount -t cgroup2 -o nsdelegate cgroup2 "$r/sys/fs/cgroup" || die "cannot mount cgroup2"
        # Every controller for children, as on a systemd host (the root cgroup may hold processes).
        for c in cpuset cpu io memory pids hugetlb rdma misc; do
            if grep -qw "$c" "$r/sys/fs/cgroup/cgroup.controllers"; then
                echo "+$c" >"$r/sys/fs/cgroup/cgroup.subtree_control" || die "cannot enable the $c controller"
            fi
        done
    fi

    mkdir -p "$r$share"
    mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 hullvm "$r$share" ||
        die "cannot mount the result share (9p tag hullvm)"
    cp /init "$r$share/guest-init.sh"
    cp /bin/busybox "$r$share/busybox"
    if [ "$init" = systemd ]; then
        # systemd mounts the cgroup hierarchy the command line asks for, starts dbus and then
        # hull-vm.service, which runs stage "run" below.
        exec switch_root /newroot /lib/systemd/systemd
    fi
    exec switch_root /newroot "$share/busybox" sh "$share/guest-init.sh" run
fi

# Stage "run".
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
if grep -qw hullvm.init=systemd /proc/cmdline; then
    busybox hostname hull-systemd-guest
else
    busybox hostname hull-v2-guest
fi
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
