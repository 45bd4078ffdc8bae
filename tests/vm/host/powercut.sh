# The powercut scenario (sourced by tests/vm/run): tests/vm/run powercut [--cuts N]
# [--seed S]. One boot installs the package (scenarios/powercut.sh); then
# posbridge-powercut boots the same disk again and again and cuts the power at
# seeded random points (src/sim/powercut/), with the terminal emulator and the cloud
# simulator on this side of the VM, and checks the books at the end.

cuts=3
seed=1
while (($#)); do
    case $1 in
        --cuts) cuts=${2:?--cuts N}; shift 2 ;;
        --seed) seed=${2:?--seed S}; shift 2 ;;
        *) echo "tests/vm/run powercut: unknown argument $1 (--cuts N, --seed S)" >&2; exit 2 ;;
    esac
done
powercut_bin="${POSBRIDGE_POWERCUT_BIN:-}"
if [[ -z $powercut_bin ]]; then
    (cd "$repo" && cargo build --quiet --bin posbridge-powercut >&2)
    powercut_bin="$repo/target/debug/posbridge-powercut"
fi

payload="$work/payload"
mkdir -p "$payload/debs" "$payload/bin"
build_packages "$work/debs" n
cp "$deb_n" "$payload/debs/n.deb"
objcopy --strip-debug "$bin" "$payload/bin/posbridge-sim"
objcopy --strip-debug "$powercut_bin" "$payload/bin/posbridge-powercut"
cp "$here/guest/lib.sh" "$payload/lib.sh"
cp "$here/scenarios/powercut.sh" "$payload/scenario.sh"
cat >"$payload/run.sh" <<'RUN'
echo "=== posbridge-vm begin $(uname -r), $(nproc) CPUs, booted in $(cut -d' ' -f1 /proc/uptime) s"
cd /tmp
. /vm/lib.sh
. /vm/scenario.sh
echo "=== posbridge-vm end"
systemctl poweroff --no-block
RUN
payload_disk "$payload" "$work/payload.img"
disk="$work/disk.img"
new_disk "$disk"
qemu_args "$disk" "$work/payload.img"
set +e
timeout "${POSBRIDGE_VM_TIMEOUT:-300}" qemu-system-x86_64 "${vm_args[@]}" </dev/null >"$work/qemu-setup.out" 2>&1
set -e
report "$disk.report" || tail -n 30 "$disk.console" | tr -d '\r' | sed 's/^/  | /'

# The campaign's machine: the same disk, no payload; the terminal on QEMU's USB
# serial device, the cloud and a control channel (the clean shutdown at the end) on
# virtio-serial ports, all sockets of posbridge-powercut.
qemu_args "$disk"
cat >"$work/boot.sh" <<BOOT
#!/bin/sh
exec qemu-system-x86_64 $(printf '%q ' "${vm_args[@]}") \\
    -device qemu-xhci -chardev socket,id=term,path=$work/term.sock \\
    -device usb-serial,chardev=term,serial=PC-0001,always-plugged=on \\
    -device virtio-serial-pci -chardev socket,id=cloud,path=$work/cloud.sock \\
    -device virtserialport,chardev=cloud,name=posbridge.cloud \\
    -chardev socket,id=control,path=$work/control.sock \\
    -device virtserialport,chardev=control,name=posbridge.control </dev/null >>$work/qemu.out 2>&1
BOOT
chmod +x "$work/boot.sh"

campaign() {
    nice -n 10 "$powercut_bin" campaign --seed "$seed" --cuts "$cuts" \
        --terminal-socket "$work/term.sock" --cloud-socket "$work/cloud.sock" \
        --control-socket "$work/control.sock" --disk "$disk" --work "$work" \
        -- "$work/boot.sh" >"$work/campaign.out" 2>"$work/campaign.err"
    local rc=$?
    sed 's/^/  /' "$work/campaign.out" >&3
    echo "  the last boot, as its systemd saw it:" >&3
    tr -d '\r' <"$disk.report" | sed 's/^/    /' >&3
    [[ $rc -eq 0 ]] || tail -n 20 "$work/campaign.err"
    return $rc
}
echo "=== posbridge-vm begin host"
host_step "power cuts: $cuts cuts (seed $seed), every acknowledged refund in the ledger, final, executed exactly once" campaign
echo "=== posbridge-vm end"
echo "replay: tests/vm/run powercut --cuts $cuts --seed $seed" >&2
