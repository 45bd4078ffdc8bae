# Scenario `powercut`, the guest's part: the first boot installs and configures
# posbridge as a store would (docs/OPERATIONS.md), for a USB-serial terminal: QEMU's
# FTDI serial device (0403:6001, serial number PC-0001), whose other end is the
# terminal emulator on the host. The cloud is the host's simulator, reached through
# posbridge-powercut's tunnel over a virtio-serial port. Every later boot of the same
# disk is the campaign's (tests/vm/host/powercut.sh): no payload disk, just systemd
# starting the tunnel and posbridge, and the power cut.

DROPIN=/etc/posbridge/posbridge.toml.d/50-store.toml
CREDS=/etc/systemd/system/posbridge.service.d/credentials.conf
export PATH="/vm/bin:$PATH" SYSTEMD_PAGER=cat

setup() {
    dpkg -i /vm/debs/n.deb </dev/null >/tmp/dpkg.out 2>&1 || die "dpkg -i exit $?: $(tail /tmp/dpkg.out)" || return 1
    # The store's terminal ids in a copy of the rules (udev/README.md).
    sed -e 's/=="0b00"/=="0403"/g' -e 's/=="3070"/=="6001"/g' /lib/udev/rules.d/99-posbridge.rules >/etc/udev/rules.d/99-posbridge.rules
    posbridge-sim sim-cloud --print-config antom >/tmp/provider.toml
    awk '/BEGIN PRIVATE KEY/,/END PRIVATE KEY/' /tmp/provider.toml >/tmp/merchant_private_key.pem
    awk '/BEGIN PUBLIC KEY/,/END PUBLIC KEY/' /tmp/provider.toml >/tmp/antom_public_key.pem
    install -m 600 /tmp/merchant_private_key.pem /etc/posbridge/keys/merchant_private_key.pem
    install -m 600 /tmp/antom_public_key.pem /etc/posbridge/keys/antom_public_key.pem
    mkdir -p /etc/systemd/system/posbridge.service.d
    cp /usr/share/doc/posbridge/examples/posbridge-credentials.conf.example "$CREDS"
    cat >/tmp/50-store.toml <<TOML
[[terminal]]
name = "counter"
device = "/dev/posterminal-PC-0001"

[provider]
kind = "antom"
base_url = "http://127.0.0.1:8480"
client_id = "$(sed -n 's/^client_id = "\(.*\)"/\1/p' /tmp/provider.toml)"
private_key_file = "antom-private-key"
antom_public_key_file = "antom-public-key"

[provider.http]
connect_timeout_ms = 2000
total_timeout_ms = 6000

[retry]
first_retry_ms = 200
max_retry_ms = 1000
first_poll_ms = 200
max_poll_ms = 1000
TOML
    install -m 640 -g posbridge /tmp/50-store.toml "$DROPIN"
    # The cloud channel (test rig only; a store's box has a network instead).
    install -m 755 /vm/bin/posbridge-powercut /usr/local/bin/posbridge-powercut
    cat >/etc/systemd/system/posbridge-cloud-tunnel.service <<'UNIT'
[Unit]
Description=VM rig: the cloud channel to the host's simulator (virtio-serial)
Before=posbridge.service

[Service]
ExecStart=/usr/local/bin/posbridge-powercut tunnel --listen 127.0.0.1:8480 --port /dev/virtio-ports/posbridge.cloud
Restart=always
RestartSec=500ms

[Install]
WantedBy=multi-user.target
UNIT
    systemctl daemon-reload
    systemctl enable posbridge-cloud-tunnel.service >/dev/null 2>&1
    # Nothing on the campaign's boots uses D-Bus: each boot is quicker without it.
    systemctl mask dbus.service dbus.socket >/dev/null 2>&1
    # The last boot's clean shutdown reports where that boot's time went.
    mkdir -p /etc/systemd/system/posbridge-vm-control.service.d
    cat >/etc/systemd/system/posbridge-vm-control.service.d/report.conf <<'UNIT'
[Service]
ExecStart=
ExecStart=/bin/sh -c 'udevadm wait --timeout=120 /dev/virtio-ports/posbridge.control 2>/dev/null || exit 0; head -n 1 /dev/virtio-ports/posbridge.control >/dev/null && { { systemd-analyze time; systemd-analyze critical-chain posbridge.service; systemd-analyze blame | head -n 15; } >/dev/ttyS1 2>&1; systemctl poweroff; }'
UNIT
    [ "$(systemctl is-enabled posbridge)" = enabled ] || die "posbridge is $(systemctl is-enabled posbridge)" || return 1
    note "posbridge $(dpkg-query -W -f '${Version}' posbridge) installed and enabled; terminal /dev/posterminal-PC-0001 (FTDI 0403:6001 in /etc/udev/rules.d), Antom through the tunnel"
}
step "powercut: install and configure posbridge on the campaign's disk" setup
sync
