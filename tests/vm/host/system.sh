# The system scenario (sourced by tests/vm/run): the package built by cargo deb and
# checked by lintian here, then installed, run, upgraded and purged in a Debian guest
# booted with systemd (scenarios/system.sh).

payload="$work/payload"
mkdir -p "$payload/debs" "$payload/bin"
build_packages "$work/debs"
cp "$deb_n" "$payload/debs/n.deb"
cp "$deb_n1" "$payload/debs/n1.deb"
cp "$deb_n2" "$payload/debs/n2.deb"
say "packages $(basename "$deb_n"), $(basename "$deb_n1"), $(basename "$deb_n2") after $((SECONDS - started)) s"

# Lintian: no error, and no warning the README does not justify (the tags listed
# between its lintian-justified markers).
lintian_check() {
    lintian --tag-display-limit 0 -E --pedantic "$deb_n" >"$work/lintian.out" 2>&1 || true
    local justified tags unjustified
    justified="$(sed -n '/<!-- lintian-justified -->/,/<!-- end lintian-justified -->/p' "$repo/README.md" |
        grep -o '^| `[a-z0-9-]*`' | tr -d '|` ')"
    [[ -n $justified ]] || { echo "no lintian-justified list in README.md"; return 1; }
    if grep '^E:' "$work/lintian.out"; then return 1; fi
    tags="$(awk -F': ' '/^[WIPX]:/ {split($3, t, " "); print t[1]}' "$work/lintian.out" | sort -u)"
    unjustified="$(comm -23 <(echo "$tags" | sed '/^$/d') <(echo "$justified" | sort -u))"
    if [[ -n $unjustified ]]; then
        echo "not justified in README.md:"
        grep -F "$unjustified" "$work/lintian.out"
        return 1
    fi
    echo "lintian -E --pedantic $(basename "$deb_n"): no error; $(echo "$tags" | sed '/^$/d' | wc -l) tags, each justified in README.md: $(echo $tags)" >&3
}
echo "=== posbridge-vm begin host"
host_step "lintian: no error, no warning the README does not justify" lintian_check
echo "=== posbridge-vm end"

# The guest's tools that are not the package: the gadget side of a bulk terminal, and
# the simulator (the same binary as the package's, so that it outlives a remove).
objcopy --strip-debug "$gadget_bin" "$payload/bin/posbridge-gadget"
objcopy --strip-debug "$bin" "$payload/bin/posbridge-sim"
cp "$here/guest/lib.sh" "$payload/lib.sh"
# POSBRIDGE_VM_SCENARIO: another guest script, to look into one problem.
cp "${POSBRIDGE_VM_SCENARIO:-$here/scenarios/system.sh}" "$payload/scenario.sh"
cat >"$payload/run.sh" <<'RUN'
echo "=== posbridge-vm begin $(uname -r), $(nproc) CPUs, systemd $(systemctl --version | awk 'NR == 1 {print $2}'), booted in $(cut -d' ' -f1 /proc/uptime) s"
cd /tmp
. /vm/lib.sh
. /vm/scenario.sh
echo "=== posbridge-vm end"
systemctl poweroff --no-block
RUN
payload_disk "$payload" "$work/payload.img"
new_disk "$work/disk.img"
qemu_args "$work/disk.img" "$work/payload.img"
say "disks ready after $((SECONDS - started)) s"
boot_started=$SECONDS
set +e
timeout "${POSBRIDGE_VM_TIMEOUT:-900}" qemu-system-x86_64 "${vm_args[@]}" </dev/null >"$work/qemu.out" 2>&1
qemu_rc=$?
set -e
say "guest ran $((SECONDS - boot_started)) s ($accel)"
if ! report "$work/disk.img.report"; then
    echo "  (qemu exit $qemu_rc; console:)"
    tail -n 30 "$work/disk.img.console" | tr -d '\r' | sed 's/^/  | /'
fi
