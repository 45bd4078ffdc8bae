# Helpers for scenarios (busybox sh): steps that report PASS/FAIL, waits with deadlines.

# step NAME COMMAND [ARGS...]: runs COMMAND; PASS if it succeeds, FAIL otherwise. Lines
# it writes with `note` are shown either way; its other output only when it fails.
FAILURES=0
step() {
    _name=$1
    shift
    : >/tmp/.notes
    _t0=$(date +%s)
    "$@" >/tmp/.out 2>&1
    _rc=$?
    _secs=$(($(date +%s) - _t0))
    if [ $_rc -eq 0 ]; then
        echo "PASS $_name (${_secs} s)"
        sed 's/^/    /' /tmp/.notes
    else
        echo "FAIL $_name (exit $_rc, ${_secs} s)"
        FAILURES=$((FAILURES + 1))
        sed 's/^/    /' /tmp/.notes
        tail -n 40 /tmp/.out | sed 's/^/    | /'
    fi
}

# note TEXT: evidence shown under the step's result.
note() { echo "$*" >>/tmp/.notes; }

# die TEXT: fails the current step with a reason.
die() {
    note "$*"
    return 1
}

# wait_for SECONDS COMMAND...: polls COMMAND every 0.1 s until it succeeds or the
# deadline passes.
wait_for() {
    _deadline=$(($(date +%s) + $1))
    shift
    while ! "$@" >/dev/null 2>&1; do
        [ "$(date +%s)" -ge $_deadline ] && return 1
        sleep 0.1
    done
}

# --- USB gadgets (configfs, one per dummy_hcd UDC) -----------------------------------
GADGETS=/sys/kernel/config/usb_gadget

# gadget_new NAME VID PID SERIAL PRODUCT: a gadget with one configuration, no function.
gadget_new() {
    _g=$GADGETS/$1
    mkdir -p "$_g/strings/0x409" "$_g/configs/c.1/strings/0x409" || return 1
    echo "0x$2" >"$_g/idVendor"
    echo "0x$3" >"$_g/idProduct"
    echo 0x0200 >"$_g/bcdUSB"
    echo "$4" >"$_g/strings/0x409/serialnumber"
    echo "posbridge test rig" >"$_g/strings/0x409/manufacturer"
    echo "$5" >"$_g/strings/0x409/product"
    echo "link" >"$_g/configs/c.1/strings/0x409/configuration"
    echo 100 >"$_g/configs/c.1/MaxPower"
}

# gadget_acm NAME: adds a CDC-ACM function; prints its gadget-side tty (/dev/ttyGS<N>).
gadget_acm() {
    mkdir -p "$GADGETS/$1/functions/acm.$1" || return 1
    ln -s "$GADGETS/$1/functions/acm.$1" "$GADGETS/$1/configs/c.1/" || return 1
    echo "/dev/ttyGS$(cat "$GADGETS/$1/functions/acm.$1/port_num")"
}

# gadget_ffs NAME: adds a FunctionFS function mounted at /dev/ffs-NAME.
gadget_ffs() {
    mkdir -p "$GADGETS/$1/functions/ffs.$1" "/dev/ffs-$1" || return 1
    ln -s "$GADGETS/$1/functions/ffs.$1" "$GADGETS/$1/configs/c.1/" || return 1
    mount -t functionfs "$1" "/dev/ffs-$1"
}

# plug NAME UDC / unplug NAME: the cable, as the host sees it.
plug() { echo "$2" >"$GADGETS/$1/UDC"; }
unplug() { echo "" >"$GADGETS/$1/UDC"; }

# usb_dev SERIAL: the host side's /dev/bus/usb node of the device with that serial.
usb_dev() {
    for _usb_entry in /sys/bus/usb/devices/*; do
        [ -f "$_usb_entry/serial" ] && [ "$(cat "$_usb_entry/serial")" = "$1" ] || continue
        printf '/dev/bus/usb/%03d/%03d\n' "$(cat "$_usb_entry/busnum")" "$(cat "$_usb_entry/devnum")"
        return 0
    done
    return 1
}

# tty_of SERIAL: the host side's tty (ttyACM<N>) of the device with that serial.
tty_of() {
    for _tty_entry in /sys/class/tty/ttyACM*; do
        [ -e "$_tty_entry" ] || continue
        _tty_serial=$(cat "$(readlink -f "$_tty_entry/device")/../serial" 2>/dev/null) || continue
        [ "$_tty_serial" = "$1" ] && echo "/dev/${_tty_entry##*/}" && return 0
    done
    return 1
}

# threads_of PID: each thread of PID with its state and where in the kernel it waits
# (wchan and the kernel stack), to tell a daemon stuck in a system call from one that
# fails a check.
threads_of() {
    for _t in /proc/"$1"/task/*; do
        echo "thread $(cat "$_t/comm" 2>/dev/null) $(sed -n 's/^State:\t*//p' "$_t/status" 2>/dev/null) wchan=$(cat "$_t/wchan" 2>/dev/null)"
        head -n 8 "$_t/stack" 2>/dev/null | sed 's/^/    /'
    done
}
