#!/usr/bin/env bash
# Start libvirtd (and virtlogd, which the QEMU driver needs for console logs) on a
# machine without systemd, such as a CI container, and wait until qemu:///system
# answers. Idempotent: when the system connection already answers, it only makes
# sure /dev/kvm has the permissions udev would give it (see fix_kvm_device).
#
# Run as root. The Debian packages (libvirt-daemon-system, qemu-system-x86,
# dnsmasq-base) must be installed; `make deps` does that.
#
# Environment:
#   LIBVIRTD_TIMEOUT  seconds to wait for the daemon to answer (default 60)
#   LIBVIRTD_LOG      libvirtd's log file (default /var/log/libvirt/libvirtd.log)
set -euo pipefail

URI=qemu:///system
TIMEOUT=${LIBVIRTD_TIMEOUT:-60}
LOG=${LIBVIRTD_LOG:-/var/log/libvirt/libvirtd.log}

say() { echo "[start-libvirtd] $*" >&2; }

# `virsh list` proves the QEMU driver is up; `virsh version` would too but spends
# about 4 s collecting host facts (dmidecode) on every call.
answers() { timeout 10 virsh -c "$URI" list --all >/dev/null 2>&1; }

# A daemon is alive when its pid file names a running process. libvirtd and
# virtlogd lock their pid files, so a stale file left by a dead session is harmless.
running() {
	local pidfile=$1 pid
	[ -r "$pidfile" ] && pid=$(cat "$pidfile" 2>/dev/null) && [ -n "$pid" ] \
		&& kill -0 "$pid" 2>/dev/null
}

# /dev/kvm as udev would leave it (group kvm, which libvirt-qemu is in). Without
# udev it stays root-only 0600, and libvirt 9 then disagrees with itself: the QEMU
# capability probe finds KVM, the cache check finds it unusable, so the cached
# capabilities are thrown away and QEMU is probed again on every define and start
# (4 s each, far more under load). The tests' domains use type='qemu' (TCG) anyway.
# Done even when the daemon already runs: the check notices the changed device.
fix_kvm_device() {
	[ -c /dev/kvm ] && getent group kvm >/dev/null || return 0
	if [ "$(stat -c %G:%a /dev/kvm)" != kvm:660 ] && [ "$(stat -c %a /dev/kvm)" != 666 ]; then
		say "giving /dev/kvm to group kvm (0660), as udev would"
		chgrp kvm /dev/kvm && chmod 0660 /dev/kvm
	fi
}

if [ "$(id -u)" -eq 0 ]; then
	fix_kvm_device
fi

if answers; then
	say "$URI already answers; nothing to do"
	exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
	say "must run as root to start libvirtd (it runs QEMU as the libvirt-qemu user)"
	exit 1
fi
for bin in libvirtd virtlogd virsh; do
	command -v "$bin" >/dev/null || {
		say "$bin not found: install libvirt-daemon-system and libvirt-clients (make deps)"
		exit 1
	}
done

# What systemd's tmpfiles would create at boot.
mkdir -p /var/run/libvirt /var/log/libvirt /var/lib/libvirt /var/cache/libvirt
mkdir -p "$(dirname "$LOG")"

if running /var/run/virtlogd.pid; then
	say "virtlogd already running"
else
	say "starting virtlogd"
	virtlogd --daemon
fi

if running /var/run/libvirtd.pid; then
	say "libvirtd already running (pid $(cat /var/run/libvirtd.pid)); waiting for it"
else
	say "starting libvirtd (log: $LOG)"
	# Without systemd's journal the daemon's default log output is lost; keep
	# warnings and errors in a file so a failed start can be explained. Messages
	# about D-Bus, dmidecode and udev are expected in a container and harmless.
	#
	# QEMU processes are daemonized by libvirt and end up children of PID 1. In a
	# container whose PID 1 is not an init, nobody reaps them: every exited QEMU
	# (a capability probe, a guest shut down) stays a zombie, and libvirtd waits
	# for it to vanish before it gives up. tini, as a child subreaper around a
	# foreground libvirtd, inherits and reaps them.
	if command -v tini >/dev/null; then
		LIBVIRT_LOG_OUTPUTS="3:file:$LOG" setsid tini -s -- libvirtd </dev/null >/dev/null 2>&1 &
	else
		say "tini not found (apt-get install tini): exited QEMU processes may linger as zombies"
		LIBVIRT_LOG_OUTPUTS="3:file:$LOG" libvirtd --daemon
	fi
fi

start=$SECONDS
until answers; do
	if ((SECONDS - start >= TIMEOUT)); then
		say "ERROR: $URI did not answer within ${TIMEOUT}s. Last lines of $LOG:"
		tail -n 30 "$LOG" >&2 2>/dev/null || say "(no log at $LOG)"
		exit 1
	fi
	sleep 0.5
done
say "$URI answers after $((SECONDS - start))s ($(libvirtd --version))"
