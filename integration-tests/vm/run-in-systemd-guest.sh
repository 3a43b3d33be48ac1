#!/usr/bin/env bash
# Runs a command inside a guest that boots systemd as PID 1 and exits with its status, its output
# (stdout and stderr together) streamed to stdout: the host of the systemd cgroup driver's tests.
#
# Usage: run-in-systemd-guest.sh CMD [ARG...]
#        run-in-systemd-guest.sh --prepare
#
# The same guest as run-in-v2-guest.sh (kernel, overlay root over the host's /, scratch disk, the
# command's cwd and environment, TMPDIR on a guest tmpfs), except that its init execs
# /lib/systemd/systemd after setting up the root (guest-init.sh: a fresh machine-id, slow or
# pointless units and all generators masked) and systemd boots hull-vm.target: dbus.socket,
# dbus.service and hull-vm.service, the oneshot unit that runs the command, writes its status to
# the result share and powers off.
#
# Environment: HULL_VM_CGROUP=unified (default: the pure v2 hierarchy), hybrid (v1 controllers and
# cgroup2 on /sys/fs/cgroup/unified, as this machine kind) or legacy (v1 only); the rest as
# run-in-v2-guest.sh (HULL_VM_DEBUG=1 also shows systemd's boot status).
set -euo pipefail
export HULL_VM_INIT=systemd
exec "$(dirname "$0")/run-in-v2-guest.sh" "$@"
