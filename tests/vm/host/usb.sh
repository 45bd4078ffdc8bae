# The usb scenario (sourced by tests/vm/run): a busybox initramfs holding posbridge,
# systemd-udevd and the gadget modules; guest/init runs scenarios/usb.sh as PID 1.

root="$work/root"
mkdir -p "$root"/{bin,sbin,etc,proc,sys,dev,run,tmp,var,root,lib/udev/rules.d,etc/udev/rules.d,usr/bin,usr/lib}
ln -s ../bin "$root/usr/sbin" 2>/dev/null || true

cp "$(command -v busybox)" "$root/bin/busybox"
# Binaries with every library they link, at the paths the loader looks for them.
copy_elf() {
    local src=$1 dest=$2
    mkdir -p "$(dirname "$root$dest")"
    cp -L "$src" "$root$dest"
    ldd "$src" 2>/dev/null | grep -o '/[^ ]*' | while read -r lib; do
        if [[ ! -e $root$lib ]]; then
            mkdir -p "$(dirname "$root$lib")"
            cp -L "$lib" "$root$lib"
        fi
    done
}
# Debug builds carry hundreds of MB of debug info the guest has no use for.
objcopy --strip-debug "$bin" "$work/posbridge"
objcopy --strip-debug "$gadget_bin" "$work/posbridge-gadget"
copy_elf "$work/posbridge" /usr/bin/posbridge
copy_elf "$work/posbridge-gadget" /usr/bin/posbridge-gadget
copy_elf "$udevd" /lib/systemd/systemd-udevd
copy_elf "$(command -v udevadm)" /bin/udevadm
# x86-64 binaries ask for the loader at /lib64.
if [[ -e $root/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 && ! -e $root/lib64/ld-linux-x86-64.so.2 ]]; then
    mkdir -p "$root/lib64"
    ln -s ../lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 "$root/lib64/ld-linux-x86-64.so.2"
fi
# udev's own rules from its Debian package, and ours as a store installs them.
cp /lib/udev/rules.d/*.rules "$root/lib/udev/rules.d/" 2>/dev/null || cp /usr/lib/udev/rules.d/*.rules "$root/lib/udev/rules.d/"
cp "$repo/udev/99-posbridge.rules" "$root/lib/udev/rules.d/"
mkdir -p "$root/lib/modules/$kver"
while read -r rel; do
    mkdir -p "$root/lib/modules/$kver/$(dirname "$rel")"
    cp "$kdir/lib/modules/$kver/$rel" "$root/lib/modules/$kver/$rel"
done <"$kdir/load-order-usb"
cp "$kdir/lib/modules/$kver"/modules.* "$root/lib/modules/$kver/"
cp "$kdir/load-order-usb" "$root/etc/modules-load-order"
cat >"$root/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/bin/sh
posbridge:x:990:990:posbridge:/var/lib/posbridge:/bin/false
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
PASSWD
cat >"$root/etc/group" <<'GROUP'
root:x:0:
tty:x:5:
dialout:x:20:
kmem:x:15:
disk:x:6:
input:x:101:
kvm:x:102:
render:x:103:
sgx:x:104:
audio:x:29:
video:x:44:
plugdev:x:46:
posbridge:x:990:
nogroup:x:65534:
GROUP
mkdir -p "$root/vm"
cp "$here/guest/init" "$root/init"
cp "$here/guest/lib.sh" "$root/vm/lib.sh"
cp "$here/scenarios/usb.sh" "$root/vm/scenario.sh"
chmod +x "$root/init"
(cd "$root" && find . -print0 | busybox cpio -o -H newc -0 2>/dev/null) >"$work/initramfs.cpio"
say "initramfs $(du -h "$work/initramfs.cpio" | cut -f1) ready after $((SECONDS - started)) s"

console="$work/console.log"
boot_started=$SECONDS
set +e
timeout "${POSBRIDGE_VM_TIMEOUT:-280}" qemu-system-x86_64 "${accel_args[@]}" \
    -m 1536 -smp 2 -nodefaults -no-reboot -display none -nic none \
    -serial stdio -monitor none \
    -kernel "$kdir/vmlinuz" -initrd "$work/initramfs.cpio" \
    -append "console=ttyS0 quiet loglevel=3 panic=-1" \
    </dev/null >"$console" 2>"$work/qemu.err"
qemu_rc=$?
set -e
say "guest ran $((SECONDS - boot_started)) s ($accel)"
if ! report "$console"; then
    echo "  (qemu exit $qemu_rc)"
    [[ -s $work/qemu.err ]] && sed 's/^/  qemu: /' "$work/qemu.err"
fi
