# A Debian system for the system and powercut scenarios (sourced by tests/vm/run).
#
# The root filesystem is built from Debian's packages with mmdebstrap and made into an
# ext4 disk image with `mkfs.ext4 -d` (no loop mount): systemd as PID 1, udev, apt, and
# the rig's kernel modules with their modules.dep. It is cached in $cache keyed by the
# package list, the kernel and this file, so a warm run copies the image instead of
# building it. A small busybox initramfs loads the disk's modules (virtio, ext4),
# mounts it — replaying ext4's journal after a power cut — and hands over to systemd.
#
# Each boot gets a second, read-only disk with what the run brings (the packages, the
# scenario, test tools): posbridge-vm.service mounts it at /vm and runs /vm/run.sh,
# whose output goes to the second serial port, which the host reads as the report.

debian_suite=bookworm
debian_packages=(systemd systemd-sysv udev kmod adduser apt busybox dbus)
image_key="$(printf '%s\n' "$debian_suite" "${debian_packages[@]}" "$kver" "$(cat "$kdir/ready")" \
    "$(sha256sum "$here/host/debian.sh" | cut -d' ' -f1)" | sha256sum | cut -c1-16)"
base_image="$cache/debian-$debian_suite-$image_key.img"

build_base_image() {
    local rootfs="$work/rootfs"
    say "building the Debian root filesystem (mmdebstrap $debian_suite: ${debian_packages[*]})"
    local include
    include="$(IFS=,; echo "${debian_packages[*]}")"
    nice -n 10 mmdebstrap --quiet --variant=minbase --include="$include" \
        --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/locale/*' \
        --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/posbridge/*' --dpkgopt='path-include=/usr/share/man/man1/posbridge.1.gz' \
        "$debian_suite" "$rootfs" >&2
    # dpkg keeps these paths out of the guest, but not posbridge's own (path-include).
    mkdir -p "$rootfs/usr/share/man/man1"
    # The kernel's modules: the gadgets, virtio, xHCI and FTDI serial, with modules.dep
    # so that udev loads them by alias and modprobe by name.
    mkdir -p "$rootfs/lib/modules/$kver"
    cat "$kdir"/load-order-{usb,boot,system} | sort -u | while read -r rel; do
        mkdir -p "$rootfs/lib/modules/$kver/$(dirname "$rel")"
        cp "$kdir/lib/modules/$kver/$rel" "$rootfs/lib/modules/$kver/$rel"
    done
    cp "$kdir/lib/modules/$kver"/modules.{order,builtin,builtin.modinfo} "$rootfs/lib/modules/$kver/"
    depmod -b "$rootfs" "$kver"
    echo "options dummy_hcd num=4" >"$rootfs/etc/modprobe.d/posbridge-vm.conf"
    echo "posbridge-vm" >"$rootfs/etc/hostname"
    echo "/dev/vda / ext4 rw,errors=remount-ro 0 0" >"$rootfs/etc/fstab"
    # The guest's journal stays in memory; nothing else runs that the scenarios do not
    # need (timers, gettys).
    mkdir -p "$rootfs/etc/systemd/journald.conf.d"
    printf '[Journal]\nStorage=volatile\n' >"$rootfs/etc/systemd/journald.conf.d/vm.conf"
    for unit in apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer e2scrub_all.timer \
        e2scrub_reap.service fstrim.timer getty@tty1.service serial-getty@ttyS0.service \
        systemd-timesyncd.service getty.target dev-hugepages.mount dev-mqueue.mount \
        sys-kernel-debug.mount sys-kernel-tracing.mount sys-fs-fuse-connections.mount \
        modprobe@drm.service modprobe@fuse.service modprobe@efi_pstore.service \
        modprobe@dm_mod.service systemd-update-utmp.service; do
        ln -sf /dev/null "$rootfs/etc/systemd/system/$unit"
    done
    cat >"$rootfs/etc/systemd/system/posbridge-vm.service" <<'UNIT'
[Unit]
Description=posbridge VM rig: the run's payload disk
After=multi-user.target
ConditionPathExists=/dev/vdb

[Service]
Type=oneshot
TimeoutStartSec=infinity
ExecStart=/bin/sh -c 'mkdir -p /vm && mount -o ro /dev/vdb /vm && exec /bin/sh /vm/run.sh >/dev/ttyS1 2>&1'
StandardInput=null

[Install]
WantedBy=multi-user.target
UNIT
    # The host's clean shutdown: a line on the control port (when the machine has one).
    cat >"$rootfs/etc/systemd/system/posbridge-vm-control.service" <<'UNIT'
[Unit]
Description=posbridge VM rig: shut down when the host says so

[Service]
ExecStart=/bin/sh -c 'udevadm wait --timeout=120 /dev/virtio-ports/posbridge.control 2>/dev/null || exit 0; head -n 1 /dev/virtio-ports/posbridge.control >/dev/null && { systemd-analyze blame --no-pager | head -n 15 >/dev/ttyS1; systemctl poweroff; }'

[Install]
WantedBy=multi-user.target
UNIT
    ln -sf /etc/systemd/system/posbridge-vm-control.service \
        "$rootfs/etc/systemd/system/multi-user.target.wants/posbridge-vm-control.service"
    ln -sf /etc/systemd/system/posbridge-vm.service \
        "$rootfs/etc/systemd/system/multi-user.target.wants/posbridge-vm.service"
    : >"$rootfs/etc/machine-id"
    local size_mb=$(($(du -sm "$rootfs" | cut -f1) + 1024))
    mkfs.ext4 -q -F -L posbridge-root -d "$rootfs" "$work/base.img" "${size_mb}M" >/dev/null
    mv "$work/base.img" "$base_image"
    rm -rf "$rootfs"
    # Older images of other keys are of no further use.
    find "$cache" -maxdepth 1 -name 'debian-*.img' ! -name "$(basename "$base_image")" -delete
}
[[ -f $base_image ]] || build_base_image

# The initramfs: busybox, the disk's modules, and an init that mounts it.
initrd="$work/boot-initramfs.cpio"
make_initrd() {
    local r="$work/initrd"
    mkdir -p "$r"/{bin,proc,sys,dev,newroot,lib/modules/"$kver"}
    cp "$(command -v busybox)" "$r/bin/busybox"
    while read -r rel; do
        mkdir -p "$r/lib/modules/$kver/$(dirname "$rel")"
        cp "$kdir/lib/modules/$kver/$rel" "$r/lib/modules/$kver/$rel"
    done <"$kdir/load-order-boot"
    cp "$kdir/load-order-boot" "$r/load-order"
    cat >"$r/init" <<INIT
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
while read -r ko; do insmod "/lib/modules/$kver/\$ko" || echo "initramfs: cannot load \$ko"; done </load-order
n=0
while [ ! -b /dev/vda ] && [ \$n -lt 100 ]; do sleep 0.1; n=\$((n + 1)); done
mount -t ext4 -o rw /dev/vda /newroot || { echo "initramfs: cannot mount /dev/vda"; poweroff -f; }
umount /proc /sys
mount --move /dev /newroot/dev
exec switch_root /newroot /sbin/init
INIT
    chmod +x "$r/init"
    (cd "$r" && find . -print0 | busybox cpio -o -H newc -0 2>/dev/null) >"$initrd"
}
make_initrd

# new_disk PATH: a fresh copy of the base system.
new_disk() {
    cp --sparse=always "$base_image" "$1"
}

# payload_disk DIR IMAGE: DIR as a small ext4 image.
payload_disk() {
    local size_mb=$(($(du -sm "$1" | cut -f1) * 12 / 10 + 16))
    mkfs.ext4 -q -F -L posbridge-vm -d "$1" "$2" "${size_mb}M" >/dev/null
}

# qemu_args DISK [PAYLOAD]: the machine: 2 CPUs, the system disk with a writeback
# cache (so SIGKILL of QEMU loses what the guest had not flushed), no network device,
# console on ttyS0 and the report on ttyS1 (files $disk.console and $disk.report);
# $vm_monitor, if set, is QEMU's monitor.
qemu_args() {
    local disk=$1 payload=${2:-}
    vm_args=("${accel_args[@]}" -m 1536 -smp 2 -nodefaults -no-reboot -display none -nic none
        -monitor "${vm_monitor:-none}" -kernel "$kdir/vmlinuz" -initrd "$initrd"
        -append "console=ttyS0 root=/dev/vda quiet loglevel=3 systemd.show_status=0 panic=-1 mitigations=off"
        -drive "file=$disk,if=virtio,format=raw,cache=writeback"
        -serial "file:$disk.console" -serial "file:$disk.report")
    if [[ -n $payload ]]; then
        vm_args+=(-drive "file=$payload,if=virtio,format=raw,readonly=on")
    fi
}

# The Debian packages under test, built by cargo deb from this tree around the binary
# under test ($bin), with cargo-deb's fast compression (gzip: xz costs minutes to
# unpack under emulation): N and two later versions made from it, whose conffile and udev
# rules differ from N's (as a real upgrade's may). cargo-deb is installed into the
# cache when missing.
cargo_deb() {
    if ! cargo deb --version >/dev/null 2>&1; then
        if [[ ! -x $cache/cargo-deb/bin/cargo-deb ]]; then
            say "installing cargo-deb into $cache/cargo-deb"
            nice -n 10 cargo install --quiet --locked cargo-deb --root "$cache/cargo-deb" >&2
        fi
        export PATH="$cache/cargo-deb/bin:$PATH"
    fi
}
build_packages() { # DIR [n]: with "n", only version N
    local out=$1 only=${2:-}
    cargo_deb
    mkdir -p "$out"
    POSBRIDGE_BIN="$bin" POSBRIDGE_DEB_STAGE="$work/deb-stage" \
        "$repo/packaging/build-deb.sh" --quiet --fast --output "$out/" >&2
    deb_n="$(ls "$out"/posbridge_*_amd64.deb)"
    deb_version="$(dpkg-deb -f "$deb_n" Version)"
    [[ $only == n ]] && return 0
    local upstream=${deb_version%-*} revision=${deb_version##*-}
    deb_n1="$(later_version "$deb_n" "$upstream-$((revision + 1))" "$out")"
    deb_n2="$(later_version "$deb_n1" "$upstream-$((revision + 2))" "$out")"
}
# later_version DEB VERSION DIR: DEB as VERSION, with a changed conffile and rules.
later_version() {
    local unpacked="$work/repack-$2"
    rm -rf "$unpacked"
    dpkg-deb -R "$1" "$unpacked"
    sed -i "s/^Version: .*/Version: $2/" "$unpacked/DEBIAN/control"
    printf '\n# (version %s of this file)\n' "$2" >>"$unpacked/etc/posbridge/posbridge.toml"
    printf '\n# (version %s of these rules)\n' "$2" >>"$unpacked/lib/udev/rules.d/99-posbridge.rules"
    (cd "$unpacked" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum) \
        >"$unpacked/DEBIAN/md5sums"
    fakeroot dpkg-deb -b -Zgzip "$unpacked" "$3/posbridge_$2_amd64.deb" >/dev/null
    echo "$3/posbridge_$2_amd64.deb"
}
