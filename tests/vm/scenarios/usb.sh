# Scenario `usb`: the real posbridge against the kernel's USB stack.
#
# Four gadgets on dummy_hcd, all with the example ids of udev/99-posbridge.rules
# (installed unchanged): two CDC-ACM terminals (cdc-acm on the host side, ttyGS* on
# the gadget side) and two vendor-bulk terminals (FunctionFS, driven by
# posbridge-gadget, which relays their endpoints to a pseudo-terminal for
# `posbridge term`). One daemon serves one ACM and both bulk terminals at once, against
# the cloud simulator on 127.0.0.1. Every step checks the ledger and what the terminal
# emulator heard.

VID=0b00
PID=3070
CONF=/etc/posbridge/posbridge.toml
SIM=http://127.0.0.1:8480/_sim
METRICS=http://127.0.0.1:9640/metrics
mkdir -p /etc/posbridge /var/lib/posbridge

# --- helpers ----------------------------------------------------------------------

sim_get() { wget -q -O- "$SIM/$1"; }
sim_post() { wget -q -O- --header 'Content-Type: application/json' --post-data "$2" "$SIM/$1"; }
executed() { sim_get "payments/$1" | sed -n 's/.*"executed":\([0-9]*\).*/\1/p'; }
# The next provider refund call answers after MS milliseconds.
slow_next_refund() {
    sim_post faults "{\"fault\":{\"kind\":\"slow\",\"ms\":$1},\"target\":\"paymentoptions_refund\",\"times\":1}" >/dev/null
}
faults_used_up() { [ "$(sim_get faults)" = "[]" ]; }

ledger() { posbridge export --format jsonl --config "$CONF"; }
ledger_lines() { ledger | grep "\"original_merchant_refund_id\":\"$1\""; }
ledger_state() { ledger_lines "$1" | sed -n 's/.*,"state":"\([A-Z_]*\)".*/\1/p'; }
ledger_delivered() { ledger_lines "$1" | sed -n 's/.*"terminal_told":"\([A-Z_]*\)".*/\1/p'; }
ledger_terminal() { ledger_lines "$1" | sed -n 's/.*"terminal_id":"\([^"]*\)".*/\1/p'; }
is_state() { [ "$(ledger_state "$1")" = "$2" ]; }
is_delivered() { [ "$(ledger_delivered "$1")" = "$2" ]; }

# heard FILE ID STATE: the terminal emulator's JSON output has a REFUND_UPDATE for ID
# in STATE.
heard() {
    grep '"kind":"REFUND_UPDATE"' "$1" | grep "\"originalMerchantRefundId\":\"$2\"" | grep -q "\"state\":\"$3\""
}

# settled ID PAYMENT TERMOUT [TERMINAL]: ID succeeded exactly once at the provider, is
# recorded once as SUCCEEDED, the terminal was told (and acknowledged) SUCCEEDED, and
# the emulator heard it followed by the approval on its display.
settled() {
    wait_for 10 is_delivered "$1" SUCCEEDED || die "$1: terminal told $(ledger_delivered "$1")" || return 1
    ledger_lines "$1" >/tmp/.row
    [ "$(wc -l </tmp/.row)" -eq 1 ] || die "$1: $(wc -l </tmp/.row) ledger rows" || return 1
    grep -q ',"state":"SUCCEEDED"' /tmp/.row || die "$1: ledger: $(cat /tmp/.row)" || return 1
    if [ -n "${4:-}" ]; then
        grep -q "\"terminal_id\":\"$4\"" /tmp/.row || die "$1: not recorded for terminal $4: $(cat /tmp/.row)" || return 1
    fi
    [ "$(executed "$2")" = 1 ] || die "$1: provider executed $(executed "$2") refunds of $2" || return 1
    heard "$3" "$1" SUCCEEDED || die "$1: the terminal never heard SUCCEEDED" || return 1
    grep '"kind":"DISPLAY"' "$3" | grep -q 'Refund approved' || die "$1: no approval on the display" || return 1
    note "$1: SUCCEEDED once at the provider, ledger SUCCEEDED, terminal told SUCCEEDED"
}

# term LINE OUT ARGS...: the terminal emulator, JSON events into OUT.
term() {
    _line=$1 _out=$2
    shift 2
    posbridge term "$_line" --json --wait 60 "$@" >"$_out" 2>"$_out.err"
}

# frames LINE: good frames the daemon's line LINE read, from its metrics.
frames_in() {
    wget -q -O- "$METRICS" | sed -n "s/^posbridge_link_frames_total{line=\"$1\",direction=\"in\"} \([0-9]*\)/\1/p"
}
damaged() {
    wget -q -O- "$METRICS" | grep "^posbridge_link_damaged_frames_total{line=\"$1\"" | awk '{n += $2} END {print n + 0}'
}
more_damaged() { [ "$(damaged "$1")" -gt "$2" ]; }

# The host side's interface directory and endpoints of the device with serial $1.
usb_sysfs() {
    for _sysfs_entry in /sys/bus/usb/devices/*; do
        [ -f "$_sysfs_entry/serial" ] && [ "$(cat "$_sysfs_entry/serial")" = "$1" ] && echo "$_sysfs_entry" && return 0
    done
    return 1
}
endpoint_out_of() {
    _dir=$(usb_sysfs "$1") || return 1
    for _e in "$_dir"/*:1.0/ep_*; do
        [ "$(cat "$_e/direction")" = out ] && [ "$(cat "$_e/type")" = Bulk ] && echo "0x${_e##*ep_}" && return 0
    done
    return 1
}
interface_driver() {
    _dir=$(usb_sysfs "$1") || return 1
    _drv=$(readlink "$_dir"/*:1.0/driver) || { echo none; return 0; }
    echo "${_drv##*/}"
}
gone() { ! tty_of "$1"; }
present() { tty_of "$1"; }
usb_present() { usb_sysfs "$1"; }
usb_gone() { ! usb_sysfs "$1"; }
log_has() { grep -q "$1" /tmp/daemon.log; }
lines_open() { [ "$(grep -c 'terminal line open' /tmp/daemon.log)" -ge "$1" ]; }

# --- the world ----------------------------------------------------------------------

{
    i=1
    while [ $i -le 40 ]; do
        printf '[[payment]]\nid = "PAY-%s"\namount = { value = 100000, currency = "USD" }\n' $i
        i=$((i + 1))
    done
} >/tmp/payments.toml
posbridge sim-cloud --payments /tmp/payments.toml >/tmp/sim.log 2>&1 &
wait_for 30 sim_get stats || echo "FAIL the cloud simulator did not start"

# The gadgets. ACM-0002 is plugged first, so ACM-0001 gets the second tty number.
gadget_new acm2 $VID $PID ACM-0002 "ACM terminal"
GS2=$(gadget_acm acm2)
gadget_new acm1 $VID $PID ACM-0001 "ACM terminal"
GS1=$(gadget_acm acm1)
gadget_new vb1 $VID $PID VB-0001 "bulk terminal"
gadget_ffs vb1
gadget_new vb2 $VID $PID VB-0002 "bulk terminal"
gadget_ffs vb2
posbridge-gadget --ffs /dev/ffs-vb1 --link /tmp/vb1 >/tmp/vb1.out 2>/tmp/vb1.err &
# The second bulk terminal sends in 7-byte transfers, each followed by a zero-length
# packet: short packets and ZLPs on every frame.
posbridge-gadget --ffs /dev/ffs-vb2 --link /tmp/vb2 --chunk 7 --zlp >/tmp/vb2.out 2>/tmp/vb2.err &
wait_for 20 grep -q ready /tmp/vb1.out || echo "FAIL gadget vb1: $(cat /tmp/vb1.err)"
wait_for 20 grep -q ready /tmp/vb2.out || echo "FAIL gadget vb2: $(cat /tmp/vb2.err)"
for ttygs in $GS1 $GS2; do stty -F "$ttygs" raw -echo; done

plug acm2 dummy_udc.0
wait_for 20 present ACM-0002
plug acm1 dummy_udc.1
wait_for 20 present ACM-0001
plug vb1 dummy_udc.2
plug vb2 dummy_udc.3
wait_for 20 usb_present VB-0001
wait_for 20 usb_present VB-0002
udevadm settle --timeout=20

# --- udev -----------------------------------------------------------------------------

stable_name() {
    _acm1=$(tty_of ACM-0001) && _acm2=$(tty_of ACM-0002) || die "ttys: $(ls /dev/ttyACM*)" || return 1
    note "kernel names: ACM-0002 is $_acm2 (plugged first), ACM-0001 is $_acm1"
    [ "$_acm1" != /dev/ttyACM0 ] || die "ACM-0001 got ttyACM0: the numbers did not shift" || return 1
    [ "$(readlink -f /dev/posterminal-ACM-0001)" = "$_acm1" ] || die "posterminal-ACM-0001 -> $(readlink -f /dev/posterminal-ACM-0001)" || return 1
    [ "$(readlink -f /dev/posterminal-ACM-0002)" = "$_acm2" ] || die "posterminal-ACM-0002 -> $(readlink -f /dev/posterminal-ACM-0002)" || return 1
    note "/dev/posterminal-ACM-0001 -> $_acm1, /dev/posterminal-ACM-0002 -> $_acm2"
}
step "udev: names follow the serial number when the kernel's numbers shift" stable_name

udev_properties() { # DEVICE [SYMLINK]
    udevadm info "$1" >/tmp/udev.info || return 1
    if [ -n "${2:-}" ]; then
        grep -qx "S: $2" /tmp/udev.info || die "no symlink $2" || return 1
    fi
    grep -qx 'E: ID_MM_DEVICE_IGNORE=1' /tmp/udev.info || die "ID_MM_DEVICE_IGNORE not set" || return 1
    grep -q '^E: TAGS=.*:systemd:' /tmp/udev.info || die "no systemd tag" || return 1
    grep -qx 'E: SYSTEMD_WANTS=posbridge.service' /tmp/udev.info || die "no SYSTEMD_WANTS" || return 1
    _node=$(readlink -f "$1")
    [ "$(stat -c '%G %a' "$_node")" = "posbridge 660" ] || die "$_node is $(stat -c '%G %a' "$_node")" || return 1
    note "udevadm info $1: ${2:+S: $2, }ID_MM_DEVICE_IGNORE=1, TAGS :systemd:, SYSTEMD_WANTS=posbridge.service; $_node group posbridge mode 0660"
}
step "udev: the serial terminal's properties, group and mode" udev_properties /dev/posterminal-ACM-0001 posterminal-ACM-0001
step "udev: the bulk terminal's USB device node" udev_properties "$(usb_dev VB-0001)"

path_fallback() {
    unplug acm2
    wait_for 20 gone ACM-0002 || die "ACM-0002 did not go away" || return 1
    echo "" >"$GADGETS/acm2/strings/0x409/serialnumber"
    plug acm2 dummy_udc.0
    udevadm settle --timeout=20
    wait_for 20 sh -c 'ls /dev/posterminal-path-* >/dev/null 2>&1' || die "no posterminal-path-* link: $(ls /dev/posterminal*)" || return 1
    PATHNAME=$(ls /dev/posterminal-path-* | head -n1)
    _tty=$(readlink -f "$PATHNAME")
    [ -z "$(cat "$(readlink -f "/sys/class/tty/${_tty##*/}/device")/../serial" 2>/dev/null)" ] || die "it still has a serial number" || return 1
    note "a terminal without a serial number: $PATHNAME -> $_tty"
}
step "udev: a terminal without a serial number is named by its USB port" path_fallback

# --- the link-test responder on real lines (no daemon yet) ----------------------------

loopback_device() {
    posbridge loopback --device "$PATHNAME" --json >/tmp/lb.out 2>/tmp/lb.err &
    _lb=$!
    wait_for 20 grep -q '"event":"ready"' /tmp/lb.out || die "loopback did not start: $(cat /tmp/lb.err)" || return 1
    term "$GS2" /tmp/lb.term --refund PAY-40 --amount 100 --currency USD --id LB-1 --trace 2>/dev/null
    _rc=$?
    posbridge term "$GS2" --json --wait 60 --trace --refund PAY-40 --amount 100 --currency USD --id A-FRAME >/dev/null 2>/tmp/frame.trace
    kill $_lb
    wait $_lb 2>/dev/null
    [ $_rc -eq 1 ] || die "term exit $_rc (1: the refund was refused)" || return 1
    grep '"kind":"REFUND_UPDATE"' /tmp/lb.term | grep -q '"resultCode":"LINK_TEST"' || die "no LINK_TEST answer" || return 1
    heard /tmp/lb.term LB-1 FAILED || die "not FAILED" || return 1
    grep '"event":"received"' /tmp/lb.out | grep -q '"originalMerchantRefundId":"LB-1"' || die "the responder did not report the refund" || return 1
    [ "$(executed PAY-40)" = 0 ] || die "the provider made a refund" || return 1
    [ ! -e /var/lib/posbridge/ledger.sqlite ] || die "a ledger was written" || return 1
    note "LB-1 answered FAILED/LINK_TEST on $PATHNAME; the provider made no refund; no ledger"
}
step "loopback --device: the link-test responder on a CDC-ACM line" loopback_device

ffs_out=$(endpoint_out_of VB-0001)
loopback_usb() {
    [ "$(interface_driver VB-0001)" = usbserial_generic ] || die "usbserial_generic is not bound: $(interface_driver VB-0001)" || return 1
    note "VB-0001's interface was bound to usbserial_generic; its bulk OUT endpoint is $ffs_out"
    posbridge loopback --usb $VID:$PID --usb-serial VB-0001 --usb-endpoint-out "$ffs_out" --json >/tmp/lbu.out 2>/tmp/lbu.err &
    _lb=$!
    wait_for 20 grep -q '"event":"ready"' /tmp/lbu.out || die "loopback did not start: $(cat /tmp/lbu.err)" || return 1
    term /tmp/vb1 /tmp/lbu.term --refund PAY-40 --amount 100 --currency USD --id LB-2
    _rc=$?
    _driver=$(interface_driver VB-0001)
    kill $_lb
    wait $_lb 2>/dev/null
    [ $_rc -eq 1 ] || die "term exit $_rc" || return 1
    heard /tmp/lbu.term LB-2 FAILED || die "not FAILED" || return 1
    grep '"kind":"REFUND_UPDATE"' /tmp/lbu.term | grep -q '"resultCode":"LINK_TEST"' || die "no LINK_TEST answer" || return 1
    [ "$_driver" = usbfs ] || die "interface driver while served: $_driver" || return 1
    [ "$(executed PAY-40)" = 0 ] || die "the provider made a refund" || return 1
    [ ! -e /var/lib/posbridge/ledger.sqlite ] || die "a ledger was written" || return 1
    note "LB-2 answered FAILED/LINK_TEST through nusb; usbserial_generic detached (interface held by usbfs)"
}
# A kernel driver on the vendor interface, as a USB-serial driver may bind to one.
echo "$VID $PID" >/sys/bus/usb-serial/drivers/generic/new_id
generic_bound() { [ "$(interface_driver VB-0001)" = usbserial_generic ]; }
wait_for 20 generic_bound
step "loopback --usb: the responder through nusb, detaching a bound kernel driver" loopback_usb

loopback_errors() {
    posbridge loopback --usb $VID:$PID --usb-serial VB-0001 >/tmp/lbe.out 2>/tmp/lbe.err
    _rc=$?
    [ $_rc -eq 2 ] || die "exit $_rc" || return 1
    grep -q "usb_endpoint_out = 0x01: interface 0 has no such endpoint; it has: bulk IN 0x81, bulk OUT $ffs_out" /tmp/lbe.err || die "error: $(cat /tmp/lbe.err)" || return 1
    note "$(cat /tmp/lbe.err)"
    posbridge loopback --usb $VID:$PID >/tmp/lbe.out 2>/tmp/lbe2.err
    _rc=$?
    [ $_rc -eq 2 ] || die "exit $_rc" || return 1
    grep -q "4 devices match; set the serial number" /tmp/lbe2.err || die "error: $(cat /tmp/lbe2.err)" || return 1
    note "$(cat /tmp/lbe2.err)"
}
step "wrong endpoint, or no serial number among several: a clear error" loopback_errors

# --- the daemon: one ACM and two bulk terminals at once -------------------------------

{
    cat <<EOF
[ledger]
path = "/var/lib/posbridge/ledger.sqlite"

[[terminal]]
name = "acm"
device = "/dev/posterminal-ACM-0001"
baud = 57600

[[terminal]]
name = "bulk-1"
usb = "$VID:$PID"
usb_serial = "VB-0001"
usb_endpoint_out = $ffs_out

[[terminal]]
name = "bulk-2"
usb = "$VID:$PID"
usb_serial = "VB-0002"
usb_endpoint_out = $ffs_out

# Misconfigured on purpose: the device has no endpoint 0x83.
[[terminal]]
name = "bulk-wrong"
usb = "$VID:$PID"
usb_serial = "VB-0002"
usb_endpoint_in = 0x83
usb_endpoint_out = $ffs_out

[retry]
first_retry_ms = 200
max_retry_ms = 1000
first_poll_ms = 200
max_poll_ms = 1000

[metrics]
listen = "127.0.0.1:9640"

EOF
    posbridge sim-cloud --print-config paymentoptions
} >"$CONF"
posbridge run --config "$CONF" >/tmp/daemon.log 2>&1 &
DAEMON=$!

daemon_up() {
    wait_for 30 lines_open 3 || die "lines open: $(grep 'terminal line open' /tmp/daemon.log)" || return 1
    grep -q 'detaching the kernel driver.*usbserial_generic' /tmp/daemon.log || die "no detach logged" || return 1
    [ "$(interface_driver VB-0001)" = usbfs ] && [ "$(interface_driver VB-0002)" = usbfs ] || die "drivers: $(interface_driver VB-0001) $(interface_driver VB-0002)" || return 1
    wait_for 10 log_has 'bulk-wrong\|0x83' || return 1
    grep -q 'usb_endpoint_in = 0x83: interface 0 has no such endpoint; it has: bulk IN 0x81' /tmp/daemon.log || die "no clear error for the misconfigured line" || return 1
    note "$(grep -o 'USB 0b00:3070 serial VB-0002 interface 0 endpoints IN 0x83.*' /tmp/daemon.log | head -n1)"
}
step "daemon: serial and two bulk lines open (kernel drivers detached), the misconfigured one named" daemon_up

termios() {
    stty -F /dev/posterminal-ACM-0001 -a >/tmp/stty 2>&1 || return 1
    for want in 'speed 57600 baud' '-parenb' '-cstopb' 'cs8' '-crtscts' '-icanon' '-echo ' '-isig' '-opost' '-icrnl' '-ixon' 'min = 1;'; do
        grep -q -- "$want" /tmp/stty || die "stty: no '$want' in: $(cat /tmp/stty)" || return 1
    done
    note "stty -F /dev/posterminal-ACM-0001 -a: $(grep -o 'speed [0-9]* baud' /tmp/stty), cs8 -parenb -cstopb -crtscts, raw: -icanon -echo -isig -opost -icrnl -ixon, min = 1"
}
step "CDC-ACM: the line's termios really applied" termios

acm_refunds() {
    printf 'refund PAY-1 1250 USD A-1\nrefund PAY-2 300 USD A-2\nrefund PAY-3 99 USD A-3\n' |
        term "$GS1" /tmp/acm.term --terminal-id ACM-T --baud 57600 || die "term exit $?" || return 1
    for n in 1 2 3; do settled A-$n PAY-$n /tmp/acm.term ACM-T || return 1; done
}
step "CDC-ACM: refunds succeed" acm_refunds

acm_unplug_mid_refund() {
    slow_next_refund 4000
    term "$GS1" /tmp/acm-unplug.term --terminal-id ACM-T --baud 57600 --refund PAY-4 --amount 500 --currency USD --id A-UNPLUG &
    _t=$!
    wait_for 20 faults_used_up || die "the refund never reached the provider" || return 1
    is_state A-UNPLUG ACCEPTED || die "state before unplug: $(ledger_state A-UNPLUG)" || return 1
    _before=$(tty_of ACM-0001)
    unplug acm1
    wait_for 20 gone ACM-0001 || die "the tty stayed" || return 1
    wait_for 20 is_state A-UNPLUG SUCCEEDED || die "never SUCCEEDED while unplugged: $(ledger_state A-UNPLUG)" || return 1
    ! is_delivered A-UNPLUG SUCCEEDED || die "told while unplugged?" || return 1
    note "unplugged ($_before) while the provider was answering; SUCCEEDED recorded while away"
    plug acm1 dummy_udc.1
    wait $_t || die "term exit $?" || return 1
    settled A-UNPLUG PAY-4 /tmp/acm-unplug.term ACM-T || return 1
    note "back as $(tty_of ACM-0001), still /dev/posterminal-ACM-0001; the terminal heard SUCCEEDED after the replug"
}
step "CDC-ACM: unplug mid-refund, replug: final state reached and heard" acm_unplug_mid_refund

acm_unplug_mid_frame() {
    _hex=$(awk '/^-> \[/ {hex = $0; next} /^ *REFUND seq=/ {print hex; exit}' /tmp/frame.trace | sed 's/^-> \[[0-9]*\] //')
    [ -n "$_hex" ] || die "no REFUND frame in the trace" || return 1
    _n=$(echo "$_hex" | wc -w)
    _half=$(echo "$_hex" | cut -d' ' -f1-$((_n / 2)))
    _bad_before=$(damaged acm)
    # A damaged frame first: when the daemon counts it, the bytes behind it are in too.
    printf "\\000\\001\\002\\003\\000$(echo "$_half" | sed 's/\([0-9a-f][0-9a-f]\) */\\x\1/g')" >"$GS1"
    wait_for 20 more_damaged acm "$_bad_before" || die "the bytes never reached the daemon" || return 1
    unplug acm1
    wait_for 20 gone ACM-0001 || die "the tty stayed" || return 1
    plug acm1 dummy_udc.1
    wait_for 20 present ACM-0001 || return 1
    [ -z "$(ledger_lines A-FRAME)" ] || die "half a frame was recorded" || return 1
    note "half of A-FRAME's REFUND frame ($((_n / 2)) of $_n bytes) was on the wire at the unplug; nothing recorded"
    term "$GS1" /tmp/acm-frame.term --terminal-id ACM-T --baud 57600 --refund PAY-5 --amount 700 --currency USD --id A-FRAME || die "term exit $?" || return 1
    settled A-FRAME PAY-5 /tmp/acm-frame.term ACM-T
}
step "CDC-ACM: unplug mid-frame, replug: the next session is clean" acm_unplug_mid_frame

bulk_refunds() {
    printf 'refund PAY-10 1000 USD B1-1\nrefund PAY-11 2000 USD B1-2\nrefund PAY-12 5 USD B1-3\n' |
        term /tmp/vb1 /tmp/vb1.term --terminal-id VB-T1 || die "term exit $?" || return 1
    for n in 1 2 3; do settled B1-$n PAY-1$((n - 1)) /tmp/vb1.term VB-T1 || return 1; done
}
step "vendor bulk: refunds succeed through nusb" bulk_refunds

bulk_short_packets() {
    printf 'refund PAY-13 1000 USD B2-1 memo=a memo long enough to take several packets of seven bytes each\nrefund PAY-14 42 USD B2-2\n' |
        term /tmp/vb2 /tmp/vb2.term --terminal-id VB-T2 || die "term exit $?" || return 1
    settled B2-1 PAY-13 /tmp/vb2.term VB-T2 && settled B2-2 PAY-14 /tmp/vb2.term VB-T2 || return 1
    [ "$(damaged bulk-2)" = 0 ] || die "$(damaged bulk-2) damaged frames on bulk-2" || return 1
    note "every frame from VB-0002 came in 7-byte packets, each followed by a zero-length packet; no damaged frame"
}
step "vendor bulk: short packets and zero-length packets" bulk_short_packets

bulk_unplug_two_terminals() {
    slow_next_refund 4000
    term /tmp/vb1 /tmp/vb1-unplug.term --terminal-id VB-T1 --refund PAY-15 --amount 800 --currency USD --id B1-UNPLUG &
    _t=$!
    wait_for 20 faults_used_up || die "the refund never reached the provider" || return 1
    is_state B1-UNPLUG ACCEPTED || die "state before unplug: $(ledger_state B1-UNPLUG)" || return 1
    _b1_before=$(frames_in bulk-1)
    unplug vb1
    wait_for 20 usb_gone VB-0001 || return 1
    wait_for 20 is_state B1-UNPLUG SUCCEEDED || die "never SUCCEEDED" || return 1
    note "VB-0001 unplugged while the provider was answering; SUCCEEDED recorded while away"
    # The other bulk terminal, same VID:PID, goes on: the daemon tells them apart by serial.
    term /tmp/vb2 /tmp/vb2-alone.term --terminal-id VB-T2 --refund PAY-16 --amount 900 --currency USD --id B2-ALONE || die "VB-T2 term exit $?" || return 1
    settled B2-ALONE PAY-16 /tmp/vb2-alone.term VB-T2 || return 1
    [ "$(frames_in bulk-1)" = "$_b1_before" ] || die "line bulk-1 read frames while its device was away" || return 1
    ! grep -q B2-ALONE /tmp/vb1-unplug.term || die "VB-T1 heard VB-T2's refund" || return 1
    note "VB-T2's refund went over line bulk-2 only; VB-T1 heard nothing of it"
    plug vb1 dummy_udc.2
    wait $_t || die "VB-T1 term exit $?" || return 1
    settled B1-UNPLUG PAY-15 /tmp/vb1-unplug.term VB-T1 || return 1
    ! grep -q B1-UNPLUG /tmp/vb2-alone.term || die "VB-T2 heard VB-T1's refund" || return 1
    [ "$(frames_in bulk-1)" -gt "$_b1_before" ] || die "line bulk-1 did not resume" || return 1
    note "after the replug line bulk-1 (found again by VID:PID and serial) delivered SUCCEEDED to VB-T1"
}
step "vendor bulk: unplug mid-refund and replug; two terminals told apart by serial" bulk_unplug_two_terminals

both_at_once() {
    term "$GS1" /tmp/both-acm.term --terminal-id ACM-T --baud 57600 --refund PAY-20 --amount 100 --currency USD --id BOTH-A &
    _a=$!
    term /tmp/vb1 /tmp/both-b1.term --terminal-id VB-T1 --refund PAY-21 --amount 200 --currency USD --id BOTH-B1 &
    _b1=$!
    term /tmp/vb2 /tmp/both-b2.term --terminal-id VB-T2 --refund PAY-22 --amount 300 --currency USD --id BOTH-B2 &
    _b2=$!
    wait $_a || die "ACM term exit $?" || return 1
    wait $_b1 || die "VB-T1 term exit $?" || return 1
    wait $_b2 || die "VB-T2 term exit $?" || return 1
    settled BOTH-A PAY-20 /tmp/both-acm.term ACM-T &&
        settled BOTH-B1 PAY-21 /tmp/both-b1.term VB-T1 &&
        settled BOTH-B2 PAY-22 /tmp/both-b2.term VB-T2 || return 1
    for f in /tmp/both-acm.term:BOTH-A /tmp/both-b1.term:BOTH-B1 /tmp/both-b2.term:BOTH-B2; do
        [ "$(grep '"kind":"REFUND_UPDATE"' "${f%%:*}" | grep -vc "\"${f##*:}\"")" = 0 ] || die "${f%%:*} heard another terminal's refund" || return 1
    done
}
step "both kinds at once on one daemon" both_at_once

final_books() {
    _rows=$(ledger | wc -l)
    _ok=$(ledger | grep -c '"state":"SUCCEEDED"')
    _told=$(ledger | grep -c '"terminal_told":"SUCCEEDED"')
    [ "$_rows" = "$_ok" ] && [ "$_ok" = "$_told" ] || die "$_rows rows, $_ok SUCCEEDED, $_told told" || return 1
    posbridge queue --config "$CONF" | grep -q 'No unfinished refunds' || die "$(posbridge queue --config "$CONF")" || return 1
    kill -TERM $DAEMON
    wait $DAEMON || die "daemon exit $?" || return 1
    ! grep -q 'panicked' /tmp/daemon.log || die "a panic in the log" || return 1
    note "$_rows refunds, all SUCCEEDED and acknowledged by their terminals; queue empty; the daemon stopped cleanly"
}
step "the books: every refund final and delivered, nothing queued" final_books

if [ "$FAILURES" -gt 0 ]; then
    echo "--- daemon log (last 60 lines)"
    tail -n 60 /tmp/daemon.log
    for f in /tmp/vb1.err /tmp/vb2.err; do echo "--- $f"; tail -n 10 "$f"; done
fi
