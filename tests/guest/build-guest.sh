#!/usr/bin/env bash
# Build the tiny guest the end-to-end tests boot under QEMU/TCG: Debian's cloud
# kernel plus a gzip'd initramfs holding busybox, qemu-guest-agent, a handful of
# modules and rootfs/ (whose /init is the whole guest). It boots to a working
# guest agent in about 7 s with 128 MiB of RAM, and needs no disk image.
#
#   tests/guest/build-guest.sh [CACHE_DIR]     (default: <repo>/.cache/guest)
#
# Outputs CACHE_DIR/vmlinuz, CACHE_DIR/initrd.img and CACHE_DIR/kernel-release.
# The build is skipped when CACHE_DIR/build.key matches the hash of this script
# and of rootfs/, so editing either rebuilds; downloaded .debs stay in
# CACHE_DIR/debs and are reused. The packages are fetched with `apt-get download`
# and unpacked with dpkg-deb, never installed. qemu-ga's shared libraries are
# copied from the host, which has them as dependencies of qemu-system-x86 (same
# Debian release, so the same versions).
#
# Environment: KERNEL_FLAVOUR (default cloud-amd64). The cloud kernel has the
# virtio drivers and boots fastest, but has no AHCI driver: a CD-ROM on q35's
# SATA bus is invisible to it; use machine 'pc' with bus='ide', or virtio-scsi.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
CACHE=${1:-$REPO/.cache/guest}
KERNEL_FLAVOUR=${KERNEL_FLAVOUR:-cloud-amd64}
STEPS=5

say() { echo "[build-guest] $*" >&2; }
step() { say "($1/$STEPS) $2"; }

build_key() {
	{
		echo "$KERNEL_FLAVOUR"
		sha256sum "$HERE/build-guest.sh"
		(cd "$HERE/rootfs" && find . -type f | LC_ALL=C sort | xargs sha256sum)
		(cd "$HERE/rootfs" && find . -type f -perm -u+x | LC_ALL=C sort)
	} | sha256sum | cut -d' ' -f1
}

KEY=$(build_key)
if [ -f "$CACHE/vmlinuz" ] && [ -f "$CACHE/initrd.img" ] \
	&& [ "$(cat "$CACHE/build.key" 2>/dev/null)" = "$KEY" ]; then
	# Touched so that make sees the outputs as newer than their sources.
	touch "$CACHE/vmlinuz" "$CACHE/initrd.img"
	say "cached: $CACHE (kernel $(cat "$CACHE/kernel-release"), key ${KEY:0:12})"
	exit 0
fi

# QEMU runs as libvirt-qemu: the outputs must be world-readable.
mkdir -p "$CACHE/debs"
chmod 755 "$CACHE"
WORK=$(mktemp -d "$CACHE/build.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

# ---------------------------------------------------------------- 1. packages
# linux-image-cloud-amd64 is a metapackage; the kernel is its dependency.
kernel_package() {
	apt-cache depends "linux-image-$KERNEL_FLAVOUR" 2>/dev/null \
		| awk '/Depends: linux-image-/ {print $2; exit}'
}
KPKG=$(kernel_package)
if [ -z "$KPKG" ]; then
	# A fresh machine may have empty package lists.
	say "linux-image-$KERNEL_FLAVOUR unknown to apt; running apt-get update"
	apt-get update -q >&2
	KPKG=$(kernel_package)
	[ -n "$KPKG" ] || { say "ERROR: cannot resolve linux-image-$KERNEL_FLAVOUR"; exit 1; }
fi
PACKAGES=("$KPKG" busybox-static qemu-guest-agent)
step 1 "download ${PACKAGES[*]} into $CACHE/debs"
deb_of() { find "$CACHE/debs" -maxdepth 1 -name "${1}_*.deb" | LC_ALL=C sort | tail -1; }
for package in "${PACKAGES[@]}"; do
	[ -n "$(deb_of "$package")" ] && continue
	# apt's sandbox user cannot write into a root-owned directory; the download
	# then runs as root, which is fine here, and apt says so in a warning.
	(cd "$CACHE/debs" && apt-get download -q "$package" 2>&1 \
		| grep -v 'Download is performed unsandboxed' >&2) || true
	[ -n "$(deb_of "$package")" ] || { say "ERROR: apt-get download $package failed"; exit 1; }
done

# ---------------------------------------------------------------- 2. unpack
step 2 "unpack the .debs"
for package in "${PACKAGES[@]}"; do
	mkdir -p "$WORK/$package"
	dpkg-deb -x "$(deb_of "$package")" "$WORK/$package"
done
BUSYBOX=$WORK/busybox-static/bin/busybox
KROOT=$WORK/$KPKG
KV=$(ls "$KROOT/lib/modules")
MODULES=$KROOT/lib/modules/$KV

# ---------------------------------------------------------------- 3. modules
step 3 "kernel $KV: collect the modules in rootfs/etc/modules and their dependencies"
# modules.dep is written at install time, not shipped in the .deb; busybox's
# depmod makes one (so the host needs no kmod).
"$BUSYBOX" depmod -b "$KROOT" "$KV"
ROOT=$WORK/root
mkdir -p "$ROOT/lib/modules/$KV"
declare -A copied=()
copy_module() { # $1: path relative to the modules dir, as modules.dep names it
	local rel=$1 dep
	[ -n "${copied[$rel]:-}" ] && return 0
	copied[$rel]=1
	mkdir -p "$ROOT/lib/modules/$KV/$(dirname "$rel")"
	cp "$MODULES/$rel" "$ROOT/lib/modules/$KV/$rel"
	for dep in $(awk -F': *' -v m="$rel" '$1 == m {print $2}' "$MODULES/modules.dep"); do
		copy_module "$dep"
	done
}
while read -r module; do
	[ -n "$module" ] || continue
	rel=$(awk -F: -v m="$module" '{
		n = $1; sub(/.*\//, "", n); sub(/\.ko.*/, "", n); gsub(/-/, "_", n)
		if (n == m) { print $1; exit } }' "$MODULES/modules.dep")
	if [ -n "$rel" ]; then
		copy_module "$rel"
	elif ! grep -q "/$module.ko" "$MODULES/modules.builtin"; then
		say "note: module $module is not in kernel $KV; skipped"
	fi
done <"$HERE/rootfs/etc/modules"
cp "$MODULES/modules.builtin" "$MODULES/modules.order" "$ROOT/lib/modules/$KV/"
"$BUSYBOX" depmod -b "$ROOT" "$KV"

# ---------------------------------------------------------------- 4. root tree
step 4 "assemble the initramfs tree (busybox, qemu-ga and its libraries, rootfs/)"
mkdir -p "$ROOT"/{bin,sbin,usr/bin,usr/sbin,etc,proc,sys,dev,run,tmp,mnt,root,lib64}
mkdir -p "$ROOT/lib/x86_64-linux-gnu"
ln -s run "$ROOT/var"
install -m 755 "$BUSYBOX" "$ROOT/bin/busybox"
install -m 755 "$WORK/qemu-guest-agent/usr/sbin/qemu-ga" "$ROOT/usr/sbin/qemu-ga"
if ldd "$ROOT/usr/sbin/qemu-ga" | grep 'not found' >&2; then
	say "ERROR: qemu-ga's libraries are missing on this host (install qemu-system-x86)"
	exit 1
fi
for lib in $(ldd "$ROOT/usr/sbin/qemu-ga" | grep -o '/[^ ]*'); do
	case "$lib" in
	*/ld-linux*) cp -L "$lib" "$ROOT/lib64/" ;;
	*) cp -L "$lib" "$ROOT/lib/x86_64-linux-gnu/" ;;
	esac
done
cp -a "$HERE/rootfs/." "$ROOT/"

# ---------------------------------------------------------------- 5. pack
step 5 "pack vmlinuz and initrd.img"
(cd "$ROOT" && find . | LC_ALL=C sort | "$BUSYBOX" cpio -o -H newc -R 0:0 2>/dev/null) \
	| gzip -6 >"$WORK/initrd.img"
cp "$KROOT/boot/vmlinuz-$KV" "$WORK/vmlinuz"
echo "$KV" >"$WORK/kernel-release"
chmod 644 "$WORK/vmlinuz" "$WORK/initrd.img" "$WORK/kernel-release"
# The key goes last, so an interrupted build is never taken for a finished one.
rm -f "$CACHE/build.key"
mv "$WORK/vmlinuz" "$WORK/initrd.img" "$WORK/kernel-release" "$CACHE/"
echo "$KEY" >"$CACHE/build.key"
say "done: $CACHE/vmlinuz ($(du -k "$CACHE/vmlinuz" | cut -f1) KiB)," \
	"$CACHE/initrd.img ($(du -k "$CACHE/initrd.img" | cut -f1) KiB), kernel $KV"
