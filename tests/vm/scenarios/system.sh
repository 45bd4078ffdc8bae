# Scenario `system`: posbridge installed as a store's Debian box has it (dash, run by
# /vm/run.sh as root on a Debian system booted with systemd from its virtual disk).
#
# The .deb is installed with dpkg, configured as docs/OPERATIONS.md says (keys owned
# by root handed over as systemd credentials, the store's settings in a drop-in, a
# local udev rule in /etc/udev/rules.d), started by udev when the gadget terminals
# are plugged in, supervised by systemd (stop, SIGKILL, a hung daemon and the
# watchdog), upgraded unattended twice (dpkg -i </dev/null with the service enabled
# and a refund in flight, apt-get under DEBIAN_FRONTEND=noninteractive with it
# disabled), its terminal replaced, removed and purged. The cloud simulator runs in the
# guest on 127.0.0.1 (Antom). Every step checks the ledger, the simulator's books and
# what the terminal emulator heard.

VID=0b00
PID=3070
DEBS=/vm/debs
VN=$(dpkg-deb -f "$DEBS/n.deb" Version)
VN1=$(dpkg-deb -f "$DEBS/n1.deb" Version)
VN2=$(dpkg-deb -f "$DEBS/n2.deb" Version)
SIM=http://127.0.0.1:8480/_sim
DROPIN=/etc/posbridge/posbridge.toml.d/50-store.toml
CREDS=/etc/systemd/system/posbridge.service.d/credentials.conf
LOCAL_RULES=/etc/udev/rules.d/99-posbridge.rules
export PATH="/vm/bin:$PATH" SYSTEMD_PAGER=cat SYSTEMD_COLORS=0

# --- helpers ----------------------------------------------------------------------

wget() { busybox wget "$@"; }
sim_get() { wget -q -O- "$SIM/$1"; }
sim_post() { wget -q -O- --header 'Content-Type: application/json' --post-data "$2" "$SIM/$1"; }
executed() { sim_get "payments/$1" | sed -n 's/.*"executed":\([0-9]*\).*/\1/p'; }
faults_used_up() { [ "$(sim_get faults)" = "[]" ]; }
# The next Antom refund call answers after MS milliseconds / never.
slow_next_refund() {
    sim_post faults "{\"fault\":{\"kind\":\"slow\",\"ms\":$1},\"target\":\"antom_refund\",\"times\":1}" >/dev/null
}
hang_next_refund() {
    sim_post faults '{"fault":{"kind":"hang"},"target":"antom_refund","times":1}' >/dev/null
}

# The ledger as an operator reads it: as the service user (so SQLite's side files
# stay the service's), with the package's configuration and the store's drop-in.
as_posbridge() { runuser -u posbridge -- "$@"; }
ledger() { as_posbridge posbridge export --format jsonl; }
ledger_lines() { ledger | grep "\"original_merchant_refund_id\":\"$1\""; }
ledger_state() { ledger_lines "$1" | sed -n 's/.*,"state":"\([A-Z_]*\)".*/\1/p'; }
ledger_delivered() { ledger_lines "$1" | sed -n 's/.*"terminal_told":"\([A-Z_]*\)".*/\1/p'; }
is_state() { [ "$(ledger_state "$1")" = "$2" ]; }
is_delivered() { [ "$(ledger_delivered "$1")" = "$2" ]; }
heard() {
    grep '"kind":"REFUND_UPDATE"' "$1" | grep "\"originalMerchantRefundId\":\"$2\"" | grep -q "\"state\":\"$3\""
}

# settled ID PAYMENT TERMOUT: ID succeeded exactly once at the provider, is recorded
# once as SUCCEEDED, and the terminal was told (and acknowledged) it.
settled() {
    wait_for 30 is_delivered "$1" SUCCEEDED || die "$1: ledger $(ledger_state "$1"), terminal told $(ledger_delivered "$1")" || return 1
    ledger_lines "$1" >/tmp/.row
    [ "$(wc -l </tmp/.row)" -eq 1 ] || die "$1: $(wc -l </tmp/.row) ledger rows" || return 1
    grep -q ',"state":"SUCCEEDED"' /tmp/.row || die "$1: ledger $(cat /tmp/.row)" || return 1
    [ "$(executed "$2")" = 1 ] || die "$1: the provider made $(executed "$2") refunds of $2" || return 1
    heard "$3" "$1" SUCCEEDED || die "$1: the terminal never heard SUCCEEDED" || return 1
    note "$1: SUCCEEDED once at the provider, in the ledger, told to the terminal"
}

# term LINE OUT ARGS...: the terminal emulator, JSON events into OUT.
term() {
    _line=$1 _out=$2
    shift 2
    posbridge term "$_line" --json --wait 90 "$@" >"$_out" 2>"$_out.err"
}

unit() { systemctl show posbridge -p "$1" --value; }
is_active() { [ "$(systemctl is-active posbridge)" = active ]; }
is_inactive() { [ "$(systemctl is-active posbridge)" = inactive ]; }
main_pid() { unit MainPID; }
pid_is_not() { [ "$(main_pid)" != "$1" ] && [ "$(main_pid)" != 0 ] && is_active; }
watchdog_pinged_since() { [ "$(unit WatchdogTimestampMonotonic)" -gt "$1" ]; }
journal_has() { journalctl -u posbridge --no-pager -o cat | grep -q "$1"; }
lines_open() { [ "$(journalctl -u posbridge --no-pager -o cat --since "@$1" | grep -c 'terminal line open')" -ge "$2" ]; }

# as_service COMMAND...: COMMAND as the unit runs: its user, groups and credentials
# (the LoadCredential= lines of its drop-in), as docs/OPERATIONS.md says to run
# check-config and doctor.
as_service() {
    set -- $(sed -n 's/^LoadCredential=\(.*\)/--property=LoadCredential=\1/p' "$CREDS") "$@"
    systemd-run --quiet --pipe --wait --collect --property=User=posbridge \
        --property=Group=posbridge --property=SupplementaryGroups=dialout "$@"
}

sha() { sha256sum "$1" | cut -d' ' -f1; }
mode_of() { stat -c '%U:%G %a' "$1"; }
tty_present() { tty_of "$1"; }
tty_gone() { ! tty_of "$1"; }
link_to() { [ "$(readlink -f "$1")" = "$2" ]; }

# --- the world: the cloud simulator, the gadget terminals (not plugged in yet) -------

{
    i=1
    while [ $i -le 40 ]; do
        printf '[[payment]]\nid = "PAY-%s"\namount = { value = 100000, currency = "USD" }\n' $i
        i=$((i + 1))
    done
} >/tmp/payments.toml
posbridge-sim sim-cloud --payments /tmp/payments.toml >/tmp/sim.log 2>&1 &
wait_for 30 sim_get stats || echo "FAIL the cloud simulator did not start: $(cat /tmp/sim.log)"

modprobe dummy_hcd
modprobe libcomposite
modprobe usb_f_acm
modprobe usb_f_fs
wait_for 20 test -d /sys/kernel/config/usb_gadget || mount -t configfs configfs /sys/kernel/config
gadget_new acm1 $VID $PID ACM-0001 "ACM terminal"
GS1=$(gadget_acm acm1)
gadget_new vb1 $VID $PID VB-0001 "bulk terminal"
gadget_ffs vb1
posbridge-gadget --ffs /dev/ffs-vb1 --link /tmp/vb1 >/tmp/vb1.out 2>/tmp/vb1.err &
wait_for 20 grep -q ready /tmp/vb1.out || echo "FAIL gadget vb1: $(cat /tmp/vb1.err)"
stty -F "$GS1" raw -echo

# --- 1. install -----------------------------------------------------------------------

install_n() {
    dpkg -i "$DEBS/n.deb" </dev/null >/tmp/dpkg-n.out 2>&1 || die "dpkg -i exit $?" || return 1
    cat /tmp/dpkg-n.out >&2
    [ "$(dpkg-query -W -f '${Status} ${Version}' posbridge)" = "install ok installed $VN" ] || die "$(dpkg-query -W posbridge)" || return 1
    note "dpkg -i posbridge_${VN}_amd64.deb </dev/null: installed, no question asked"
}
step "install: dpkg -i, unattended" install_n

user_and_files() {
    _pw=$(getent passwd posbridge) || die "no user posbridge" || return 1
    _uid=$(echo "$_pw" | cut -d: -f3)
    [ "$_uid" -lt 1000 ] || die "uid $_uid is not a system uid" || return 1
    [ "$(echo "$_pw" | cut -d: -f6,7)" = "/var/lib/posbridge:/usr/sbin/nologin" ] || die "home and shell: $_pw" || return 1
    getent group posbridge >/dev/null || die "no group posbridge" || return 1
    _groups=$(id -nG posbridge)
    echo " $_groups " | grep -q ' posbridge ' && echo " $_groups " | grep -q ' dialout ' || die "groups: $_groups" || return 1
    note "user posbridge (system uid $_uid, home /var/lib/posbridge, shell nologin), groups: $_groups"
    for want in "/etc/posbridge:root:root 755" "/etc/posbridge/posbridge.toml:root:root 644" \
        "/etc/posbridge/posbridge.toml.d:root:posbridge 750" "/etc/posbridge/keys:root:posbridge 750" \
        "/usr/lib/systemd/system/posbridge.service:root:root 644" "/lib/udev/rules.d/99-posbridge.rules:root:root 644" \
        "/usr/bin/posbridge:root:root 755"; do
        _path=${want%%:*}
        [ "$(mode_of "$_path")" = "${want#*:}" ] || die "$_path is $(mode_of "$_path"), not ${want#*:}" || return 1
        note "$_path ${want#*:}"
    done
    dpkg-query -W -f '${Conffiles}\n' posbridge | grep -q '^ /etc/posbridge/posbridge.toml ' || die "posbridge.toml is not a conffile" || return 1
    [ "$(dpkg-query -W -f '${Conffiles}\n' posbridge | grep -c .)" = 1 ] || die "conffiles: $(dpkg-query -W -f '${Conffiles}' posbridge)" || return 1
    note "the only conffile is /etc/posbridge/posbridge.toml ($(grep -vc '^#\|^$' /etc/posbridge/posbridge.toml) settings lines)"
    [ -f /usr/share/doc/posbridge/examples/posbridge.example.toml ] || die "no annotated example in /usr/share/doc" || return 1
    [ "$(systemctl is-enabled posbridge)" = enabled ] || die "is-enabled: $(systemctl is-enabled posbridge)" || return 1
    is_inactive || die "started at install: $(systemctl is-active posbridge)" || return 1
    [ "$(mode_of /var/lib/posbridge)" = "posbridge:posbridge 700" ] || die "/var/lib/posbridge is $(mode_of /var/lib/posbridge)" || return 1
    [ -z "$(ls -A /var/lib/posbridge)" ] || die "/var/lib/posbridge before the first start: $(ls -A /var/lib/posbridge)" || return 1
    note "posbridge.service enabled, not started (udev starts it); /var/lib/posbridge posbridge:posbridge 0700, empty until its first start"
}
step "install: the posbridge user and group, directories and modes" user_and_files

analyze() {
    # The box has no man-db: verify the man page as a file, not through man(1).
    systemd-analyze verify --man=no posbridge.service >/tmp/verify.out 2>&1 || die "verify exit $?: $(cat /tmp/verify.out)" || return 1
    [ ! -s /tmp/verify.out ] || die "verify: $(cat /tmp/verify.out)" || return 1
    zcat /usr/share/man/man1/posbridge.1.gz | grep -q '^\.TH posbridge 1' || die "no man page posbridge(1)" || return 1
    note "systemd-analyze verify --man=no posbridge.service: no finding; posbridge(1) installed"
    systemd-analyze security posbridge.service --no-pager >/tmp/security.out 2>&1 || die "security exit $?" || return 1
    _overall=$(grep 'Overall exposure level' /tmp/security.out)
    echo "$_overall" | grep -q 'posbridge.service: 1\.5 OK' || die "$_overall" || return 1
    note "systemd-analyze security: ${_overall#→ }"
}
step "systemd-analyze verify and security in the guest" analyze

# --- 2. configure, as docs/OPERATIONS.md says ------------------------------------------

configure() {
    posbridge-sim sim-cloud --print-config antom >/tmp/provider.toml
    awk '/BEGIN PRIVATE KEY/,/END PRIVATE KEY/' /tmp/provider.toml >/tmp/merchant_private_key.pem
    awk '/BEGIN PUBLIC KEY/,/END PUBLIC KEY/' /tmp/provider.toml >/tmp/antom_public_key.pem
    _client=$(sed -n 's/^client_id = "\(.*\)"/\1/p' /tmp/provider.toml)
    # The keys: owned by root, 0600, handed to the service as credentials.
    (cd /tmp && install -m 600 merchant_private_key.pem antom_public_key.pem /etc/posbridge/keys/)
    mkdir -p /etc/systemd/system/posbridge.service.d
    cp /usr/share/doc/posbridge/examples/posbridge-credentials.conf.example "$CREDS"
    systemctl daemon-reload
    cat >/tmp/50-store.toml <<EOF
[[terminal]]
name = "front"
device = "/dev/posterminal-ACM-0001"

[[terminal]]
name = "back"
usb = "$VID:$PID"
usb_serial = "VB-0001"
usb_endpoint_out = 0x02

[provider]
kind = "antom"
base_url = "http://127.0.0.1:8480"
client_id = "$_client"
private_key_file = "antom-private-key"
antom_public_key_file = "antom-public-key"

[retry]
first_retry_ms = 200
max_retry_ms = 1000
first_poll_ms = 200
max_poll_ms = 1000

[shutdown]
grace_ms = 8000
EOF
    (cd /tmp && install -m 640 -g posbridge 50-store.toml /etc/posbridge/posbridge.toml.d/)
    [ -f "$DROPIN" ] || return 1
    as_service posbridge check-config >/tmp/check.out 2>&1 || die "check-config exit $?: $(cat /tmp/check.out)" || return 1
    note "keys root 0600 in /etc/posbridge/keys, credentials.conf from the example, $DROPIN (root:posbridge 0640)"
    note "check-config as the service: $(head -n1 /tmp/check.out)"
}
step "configure: keys as credentials, the store's drop-in, check-config as the service" configure

# --- 3. plugged in, started by udev ------------------------------------------------------

plugged_in_started() {
    is_inactive || die "running before the terminal is plugged in" || return 1
    _s0=$(date +%s)
    plug acm1 dummy_udc.0
    wait_for 30 tty_present ACM-0001 || die "no ttyACM for ACM-0001" || return 1
    wait_for 30 test -e /dev/posterminal-ACM-0001 || die "no /dev/posterminal-ACM-0001: $(ls /dev/posterminal* 2>&1)" || return 1
    note "ACM-0001 plugged in: /dev/posterminal-ACM-0001 -> $(readlink /dev/posterminal-ACM-0001), $(stat -Lc '%G %a' /dev/posterminal-ACM-0001)"
    wait_for 60 is_active || die "not started: $(systemctl is-active posbridge); $(systemctl status posbridge --no-pager 2>&1 | tail -n 20)" || return 1
    _wanted=$(unit WantedBy)
    echo "$_wanted" | grep -q '\.device' || die "WantedBy: $_wanted" || return 1
    note "posbridge.service started by udev (SYSTEMD_WANTS), wanted by $_wanted, active in $(($(date +%s) - _s0)) s"
    plug vb1 dummy_udc.1
    wait_for 30 lines_open "$_s0" 2 || die "$(journalctl -u posbridge --no-pager -o cat | tail -n 20)
$(threads_of "$(main_pid)")" || return 1
    [ "$(unit Type)" = notify ] && [ "$(unit SubState)" = running ] || die "$(unit Type) $(unit SubState)" || return 1
    note "READY: Type=notify, active (running), status \"$(unit StatusText)\"; both lines open (ACM and vendor bulk)"
    [ "$(mode_of /var/lib/posbridge)" = "posbridge:posbridge 700" ] || die "/var/lib/posbridge is $(mode_of /var/lib/posbridge)" || return 1
    [ "$(mode_of /var/lib/posbridge/ledger.sqlite)" = "posbridge:posbridge 600" ] || die "ledger is $(mode_of /var/lib/posbridge/ledger.sqlite)" || return 1
    note "/var/lib/posbridge posbridge:posbridge 0700, ledger.sqlite 0600"
}
step "plugged in: udev names the terminals and starts posbridge.service, which reaches READY" plugged_in_started

doctor() {
    as_service posbridge doctor >/tmp/doctor.out 2>&1 || die "doctor exit $?: $(cat /tmp/doctor.out)" || return 1
    grep -q '✗' /tmp/doctor.out && die "$(grep '✗' /tmp/doctor.out)" && return 1
    note "$(grep -c '✓' /tmp/doctor.out) checks passed, none failed, as the service user with its credentials:"
    grep '✓' /tmp/doctor.out | sed 's/^ */  /' | head -n 20 >>/tmp/.notes
}
step "posbridge doctor passes as the service user with the unit's credentials" doctor

refunds() {
    term "$GS1" /tmp/s1.term --terminal-id FRONT --refund PAY-1 --amount 1250 --currency USD --id S-1 || die "term exit $?" || return 1
    settled S-1 PAY-1 /tmp/s1.term || return 1
    term /tmp/vb1 /tmp/s2.term --terminal-id BACK --refund PAY-2 --amount 300 --currency USD --id S-2 || die "term exit $?" || return 1
    settled S-2 PAY-2 /tmp/s2.term || return 1
}
step "refunds from the ACM and the vendor-bulk terminal succeed" refunds

# journald files each line at the priority its `<N>` prefix gives (JOURNAL_STREAM is
# set for the service): `journalctl -p warning` shows the warnings and no INFO line.
journal_priorities() {
    _s0=$(date +%s)
    sim_post faults '{"fault":{"kind":"drop_connection"},"target":"antom_refund","times":1}' >/dev/null
    term "$GS1" /tmp/j1.term --terminal-id FRONT --refund PAY-30 --amount 200 --currency USD --id J-1 || die "term exit $?" || return 1
    settled J-1 PAY-30 /tmp/j1.term || return 1
    journalctl -u posbridge --no-pager -o cat -p warning --since "@$_s0" >/tmp/j.warn
    journalctl -u posbridge --no-pager -o cat --since "@$_s0" >/tmp/j.all
    grep -q "cloud cannot be used" /tmp/j.warn || die "the dropped call's warning is not at -p warning: $(tail -n 5 /tmp/j.all)" || return 1
    grep -q "refund state changed" /tmp/j.all || die "no INFO line at all: $(tail -n 5 /tmp/j.all)" || return 1
    ! grep "refund state changed" /tmp/j.warn | grep -qv "a person must settle" || die "an INFO line at -p warning: $(grep -m1 'refund state changed' /tmp/j.warn)" || return 1
    note "journalctl -p warning: $(wc -l </tmp/j.warn) of $(wc -l </tmp/j.all) lines since the step began, e.g. $(head -n 1 /tmp/j.warn | cut -c1-100)"
}
step "journalctl -p warning shows the warnings and no INFO line" journal_priorities

stop_promptly() {
    _s0=$(date +%s%N)
    systemctl stop posbridge || die "stop exit $?" || return 1
    _ms=$((($(date +%s%N) - _s0) / 1000000))
    is_inactive || die "$(systemctl is-active posbridge)" || return 1
    [ "$(unit Result)" = success ] && [ "$(unit ExecMainStatus)" = 0 ] || die "Result=$(unit Result) status=$(unit ExecMainStatus)" || return 1
    [ $_ms -lt 5000 ] || die "stop took $_ms ms" || return 1
    journal_has 'stopping' || die "no 'stopping' in the journal" || return 1
    note "systemctl stop: $_ms ms, Result=success, exit status 0"
    systemctl start posbridge || die "start exit $?" || return 1
    is_active || return 1
}
step "systemctl stop ends promptly and cleanly" stop_promptly

killed_restarted() {
    _restarts=$(unit NRestarts)
    _pid=$(main_pid)
    # Long enough that the kill comes while the call hangs, however slow the box.
    slow_next_refund 15000
    term "$GS1" /tmp/k1.term --terminal-id FRONT --refund PAY-3 --amount 500 --currency USD --id K-1 &
    _t=$!
    wait_for 30 faults_used_up || die "the refund never reached the provider" || return 1
    is_state K-1 ACCEPTED || die "state before the kill: $(ledger_state K-1)" || return 1
    systemctl kill --signal=SIGKILL posbridge
    wait_for 30 pid_is_not "$_pid" || die "not restarted: $(systemctl is-active posbridge)" || return 1
    [ "$(unit NRestarts)" -gt "$_restarts" ] || die "NRestarts $(unit NRestarts)" || return 1
    note "SIGKILLed (pid $_pid) with K-1 at the provider; systemd restarted it (pid $(main_pid), NRestarts $(unit NRestarts))"
    wait $_t || die "term exit $?" || return 1
    settled K-1 PAY-3 /tmp/k1.term
}
step "a killed service is restarted by systemd and loses nothing" killed_restarted

watchdog() {
    mkdir -p /run/systemd/system/posbridge.service.d
    # Test timings only: the unit's own WatchdogSec=30s would take a minute here.
    printf '[Service]\nWatchdogSec=4s\nTimeoutAbortSec=3s\n' >/run/systemd/system/posbridge.service.d/watchdog-test.conf
    systemctl daemon-reload
    systemctl restart posbridge
    wait_for 30 is_active || return 1
    _pid=$(main_pid)
    _ping=$(unit WatchdogTimestampMonotonic)
    wait_for 20 watchdog_pinged_since "$_ping" || die "the watchdog was never fed" || return 1
    _ping=$(unit WatchdogTimestampMonotonic)
    wait_for 20 watchdog_pinged_since "$_ping" || die "the watchdog was fed once only" || return 1
    note "the daemon feeds the watchdog (WatchdogSec=4s for the test): pings seen, still pid $_pid"
    # A hung daemon: stopped, it neither answers nor feeds the watchdog.
    kill -STOP "$_pid"
    wait_for 40 pid_is_not "$_pid" || die "not restarted after the hang: $(systemctl status posbridge --no-pager | tail -n 5)" || return 1
    journal_has 'Watchdog timeout' || die "no watchdog timeout in the journal" || return 1
    note "SIGSTOP: $(journalctl -u posbridge --no-pager -o cat | grep -m1 'Watchdog timeout'); restarted as pid $(main_pid)"
    rm /run/systemd/system/posbridge.service.d/watchdog-test.conf
    systemctl daemon-reload
    systemctl restart posbridge
    wait_for 30 is_active
}
step "the watchdog fires when the daemon hangs" watchdog

# --- 4. the store's own name, then upgrades ----------------------------------------------

own_name() {
    # docs/OPERATIONS.md: a copy of the package's rules in /etc/udev/rules.d, edited.
    cp /lib/udev/rules.d/99-posbridge.rules "$LOCAL_RULES"
    sed -i -e 's/^# \(SUBSYSTEM=="tty", ENV{POSBRIDGE_TERMINAL}=="1", ENV{ID_SERIAL_SHORT}==\)"A1B2C3"/\1"ACM-0001"/' \
        -e 's/^#   \(SYMLINK+="posterminal-front"\)/  \1/' "$LOCAL_RULES"
    grep -q '^SUBSYSTEM=="tty".*"ACM-0001"' "$LOCAL_RULES" || die "the edit did not take" || return 1
    udevadm control --reload
    unplug acm1
    wait_for 20 tty_gone ACM-0001 || return 1
    plug acm1 dummy_udc.0
    wait_for 20 test -e /dev/posterminal-front || die "no /dev/posterminal-front: $(ls /dev/posterminal*)" || return 1
    note "$LOCAL_RULES: /dev/posterminal-front -> $(readlink /dev/posterminal-front)"
    sed -i 's|^device = "/dev/posterminal-ACM-0001"|device = "/dev/posterminal-front"|' "$DROPIN"
    _s0=$(date +%s)
    systemctl restart posbridge
    wait_for 30 lines_open "$_s0" 2 || return 1
    journalctl -u posbridge --no-pager -o cat --since "@$_s0" | grep 'terminal line open' | grep -q posterminal-front || die "not opened by its new name" || return 1
    term "$GS1" /tmp/o1.term --terminal-id FRONT --refund PAY-4 --amount 100 --currency USD --id O-1 || die "term exit $?" || return 1
    settled O-1 PAY-4 /tmp/o1.term
}
step "the store's own udev name in /etc/udev/rules.d" own_name

upgrade_dpkg() {
    _before_rows=$(ledger | sort)
    _local="$(sha "$DROPIN") $(sha "$CREDS") $(sha "$LOCAL_RULES")"
    _pid=$(main_pid)
    slow_next_refund 4000
    term "$GS1" /tmp/u1.term --terminal-id FRONT --refund PAY-5 --amount 700 --currency USD --id U-1 &
    _t=$!
    wait_for 30 faults_used_up || die "the refund never reached the provider" || return 1
    note "U-1 in flight at the provider when the upgrade starts"
    dpkg -i "$DEBS/n1.deb" </dev/null >/tmp/dpkg-n1.out 2>&1 || die "dpkg -i exit $?: $(tail -n 20 /tmp/dpkg-n1.out)" || return 1
    cat /tmp/dpkg-n1.out >&2
    ! grep -qi 'configuration file\|conffile' /tmp/dpkg-n1.out || die "dpkg asked: $(grep -i -A3 'configuration file' /tmp/dpkg-n1.out)" || return 1
    [ "$(dpkg-query -W -f '${Version}' posbridge)" = "$VN1" ] || return 1
    grep -q "(version $VN1 of this file)" /etc/posbridge/posbridge.toml || die "the package's conffile was not updated" || return 1
    grep -q "(version $VN1 of these rules)" /lib/udev/rules.d/99-posbridge.rules || die "the package's rules were not updated" || return 1
    note "dpkg -i $VN -> $VN1 </dev/null: no question; the package's conffile and rules (both changed in $VN1) replaced"
    [ "$_local" = "$(sha "$DROPIN") $(sha "$CREDS") $(sha "$LOCAL_RULES")" ] || die "a local file changed" || return 1
    note "kept unchanged: $DROPIN, $CREDS, $LOCAL_RULES"
    wait_for 30 pid_is_not "$_pid" || die "not restarted: pid $(main_pid)" || return 1
    note "restarted with the new binary (pid $_pid -> $(main_pid))"
    wait $_t || die "term exit $?" || return 1
    settled U-1 PAY-5 /tmp/u1.term || return 1
    [ "$(ledger | grep -v '"U-1"' | sort)" = "$_before_rows" ] || die "earlier ledger rows changed" || return 1
    note "the ledger's $(echo "$_before_rows" | wc -l) earlier rows unchanged"
    unplug acm1
    wait_for 20 tty_gone ACM-0001 || return 1
    plug acm1 dummy_udc.0
    wait_for 20 test -e /dev/posterminal-front || die "the local name is gone after the upgrade" || return 1
    note "replugged: /dev/posterminal-front still made by the local rule"
}
step "upgrade: dpkg -i </dev/null with a refund in flight" upgrade_dpkg

replace_terminal() {
    # docs/OPERATIONS.md "Replace a terminal", with the store's own name.
    _s0=$(date +%s)
    unplug acm1
    wait_for 20 tty_gone ACM-0001 || return 1
    gadget_new acm3 $VID $PID ACM-0003 "ACM terminal"
    GS3=$(gadget_acm acm3)
    stty -F "$GS3" raw -echo
    sed -i 's/ENV{ID_SERIAL_SHORT}=="ACM-0001"/ENV{ID_SERIAL_SHORT}=="ACM-0003"/' "$LOCAL_RULES"
    udevadm control --reload
    plug acm3 dummy_udc.2
    wait_for 20 tty_present ACM-0003 || return 1
    wait_for 20 link_to /dev/posterminal-front "$(tty_of ACM-0003)" || die "posterminal-front -> $(readlink -f /dev/posterminal-front)" || return 1
    note "ACM-0003 is /dev/posterminal-front -> $(readlink /dev/posterminal-front); no configuration change, no restart"
    wait_for 30 lines_open "$_s0" 1 || die "the line did not open again" || return 1
    note "the service opened it: $(journalctl -u posbridge --no-pager -o cat --since "@$_s0" | grep -m1 'terminal line open' | sed 's/.*INFO //')"
    term "$GS3" /tmp/r1.term --terminal-id FRONT-2 --refund PAY-6 --amount 900 --currency USD --id R-1 || die "term exit $?" || return 1
    settled R-1 PAY-6 /tmp/r1.term
}
step "replace a terminal: the new one under the store's name" replace_terminal

upgrade_apt_disabled() {
    systemctl disable --now posbridge >/dev/null 2>&1
    _local="$(sha "$DROPIN") $(sha "$CREDS") $(sha "$LOCAL_RULES")"
    _rows=$(ledger | sort)
    DEBIAN_FRONTEND=noninteractive apt-get install -y "$DEBS/n2.deb" </dev/null >/tmp/apt.out 2>&1 || die "apt-get exit $?: $(tail -n 20 /tmp/apt.out)" || return 1
    cat /tmp/apt.out >&2
    [ "$(dpkg-query -W -f '${Version}' posbridge)" = "$VN2" ] || die "version $(dpkg-query -W -f '${Version}' posbridge)" || return 1
    grep -q "(version $VN2 of this file)" /etc/posbridge/posbridge.toml || die "conffile not updated" || return 1
    ! grep -qi 'configuration file' /tmp/apt.out || die "a conffile question" || return 1
    note "apt-get install $VN1 -> $VN2 under DEBIAN_FRONTEND=noninteractive: no question"
    [ "$(systemctl is-enabled posbridge)" = disabled ] || die "is-enabled: $(systemctl is-enabled posbridge)" || return 1
    is_inactive || die "started by the upgrade: $(systemctl is-active posbridge)" || return 1
    note "the disabled service stays disabled and stopped"
    [ "$_local" = "$(sha "$DROPIN") $(sha "$CREDS") $(sha "$LOCAL_RULES")" ] || die "a local file changed" || return 1
    [ "$(ledger | sort)" = "$_rows" ] || die "the ledger changed" || return 1
    note "local files and the ledger ($(echo "$_rows" | wc -l) rows) unchanged"
    systemctl enable --now posbridge >/dev/null 2>&1
    wait_for 30 is_active
}
step "upgrade: apt-get install, noninteractive, with the service disabled" upgrade_apt_disabled

# --- 5. remove and purge ----------------------------------------------------------------

remove_keeps_ledger() {
    hang_next_refund
    term "$GS3" /tmp/q1.term --terminal-id FRONT-2 --refund PAY-7 --amount 100 --currency USD --id Q-1 --until accepted || die "term exit $?" || return 1
    wait_for 30 faults_used_up || return 1
    is_state Q-1 ACCEPTED || die "Q-1 is $(ledger_state Q-1)" || return 1
    _rows=$(ledger | wc -l)
    note "Q-1 accepted, its provider call hanging: not final"
    dpkg -r posbridge </dev/null >/tmp/dpkg-r.out 2>&1 || die "dpkg -r exit $?: $(cat /tmp/dpkg-r.out)" || return 1
    [ "$(dpkg-query -W -f '${Status}' posbridge)" = "deinstall ok config-files" ] || die "$(dpkg-query -W -f '${Status}' posbridge)" || return 1
    ! is_active || die "still running" || return 1
    [ -s /var/lib/posbridge/ledger.sqlite ] || die "the ledger is gone" || return 1
    [ -f /etc/posbridge/posbridge.toml ] && [ -f "$DROPIN" ] || die "configuration removed" || return 1
    note "dpkg -r: stopped, binary gone; /var/lib/posbridge/ledger.sqlite ($(stat -c %s /var/lib/posbridge/ledger.sqlite) bytes, $_rows refunds) and the configuration kept"
}
step "remove keeps the ledger" remove_keeps_ledger

purge_refuses() {
    dpkg --purge posbridge </dev/null >/tmp/purge.out 2>&1 && die "purge succeeded with an unfinished refund" && return 1
    grep -q '/var/lib/posbridge/ledger.sqlite' /tmp/purge.out || die "does not say where the ledger is: $(cat /tmp/purge.out)" || return 1
    [ -s /var/lib/posbridge/ledger.sqlite ] || die "the ledger was deleted" || return 1
    note "dpkg --purge refused: $(grep -m1 'not purged' /tmp/purge.out)"
    note "the ledger is still there"
}
step "purge refuses while a refund is unfinished, and says where the ledger is" purge_refuses

settle_and_purge() {
    dpkg -i "$DEBS/n2.deb" </dev/null >/tmp/dpkg-re.out 2>&1 || die "reinstall exit $?: $(tail /tmp/dpkg-re.out)" || return 1
    systemctl start posbridge
    wait_for 30 is_active || die "$(systemctl status posbridge --no-pager | tail)" || return 1
    wait_for 60 is_state Q-1 SUCCEEDED || die "Q-1 is $(ledger_state Q-1)" || return 1
    [ "$(executed PAY-7)" = 1 ] || die "PAY-7 refunded $(executed PAY-7) times" || return 1
    note "reinstalled, started: Q-1 resumed from the ledger, SUCCEEDED once at the provider"
    as_posbridge posbridge queue | grep -q 'No unfinished refunds' || die "$(as_posbridge posbridge queue)" || return 1
    dpkg --purge posbridge </dev/null >/tmp/purge2.out 2>&1 || die "purge exit $?: $(cat /tmp/purge2.out)" || return 1
    [ ! -e /var/lib/posbridge ] && [ ! -e /etc/posbridge ] || die "left: $(ls -d /var/lib/posbridge /etc/posbridge 2>&1)" || return 1
    dpkg-query -W posbridge >/dev/null 2>&1 && die "still known to dpkg" && return 1
    note "with every refund final, dpkg --purge deleted /var/lib/posbridge and /etc/posbridge"
}
step "with every refund final, purge deletes the ledger" settle_and_purge

if [ "$FAILURES" -gt 0 ]; then
    echo "--- journal of posbridge.service (last 60 lines)"
    journalctl -u posbridge --no-pager -o short-monotonic | tail -n 60
    echo "--- the simulator's log (last 10 lines)"
    tail -n 10 /tmp/sim.log
fi
