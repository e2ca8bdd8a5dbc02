#!/usr/bin/env bash
# edge112: install, upgrade or uninstall the gateway on Raspberry Pi OS or Debian 12.
#
#   sudo scripts/install.sh                 install or upgrade, enable and start
#   sudo scripts/install.sh --uninstall     remove the program; keep config and data
#   sudo scripts/install.sh --uninstall --purge   ... and the config, data, logs and user
#
# Options:
#   --root DIR            install into DIR instead of / (files, user and groups only: no
#                         apt, no systemctl, no udevadm; for image builds and tests)
#   --no-apt              do not install system packages
#   --no-venv             do not build the virtualenv (files only)
#   --no-start            install and enable, but do not (re)start the service
#   --with-mosquitto      also install a local mosquitto broker and enable it at boot
#                         (by default no broker is installed: the center runs it)
#   --hardware-watchdog   let systemd pet the SoC watchdog (RuntimeWatchdogSec=15s):
#                         the board reboots if the kernel or PID 1 hangs
#   --usb-power           allow USB port power switching ([board.modems.*] usb_port)
#
# What it does (each step prints one line; safe to run again: idempotent):
#   1 system packages (python3-venv, python3-dev, a C compiler)
#   2 groups gpio (if missing) and the system user edge112 (groups dialout, gpio)
#   3 a versioned virtualenv /opt/edge112/<version>-<build time>/venv, linked as
#     /opt/edge112/venv once it runs `edge112 --version`; a build that fails or does not
#     run is removed and the link stays on the old one. The one it replaces is kept as
#     /opt/edge112/previous for a roll-back; older builds are removed
#   4 /etc/edge112/edge112.toml from the example (never overwritten), root:edge112 0640
#   5 the unit, and a credentials drop-in only when /etc/edge112/mqtt-password exists
#   6 udev rules (modem names, ModemManager kept away, GPIO group), applied now
#   7 enable and (re)start; if the new version does not start, roll back to the previous
#     (without a running systemd: enable only)
#
# Without a running systemd (a chroot, a container, an image build: no /run/systemd/system)
# the script installs everything, enables the unit by its WantedBy= link and says that the
# service starts at the next boot; it never calls systemctl or udevadm there.
set -euo pipefail

ROOT=""
APT=1 VENV=1 START=1 MOSQUITTO=0 HW_WATCHDOG=0 USB_POWER=0 UNINSTALL=0 PURGE=0
SOURCE="$(cd "$(dirname "$0")/.." && pwd)"
START_TIMEOUT_S=30

while (($#)); do
    case "$1" in
        --root) ROOT="${2:?--root needs a directory}"; shift ;;
        --root=*) ROOT="${1#--root=}" ;;
        --no-apt) APT=0 ;;
        --no-venv) VENV=0 ;;
        --no-start) START=0 ;;
        --with-mosquitto) MOSQUITTO=1 ;;
        --hardware-watchdog) HW_WATCHDOG=1 ;;
        --usb-power) USB_POWER=1 ;;
        --uninstall) UNINSTALL=1 ;;
        --purge) PURGE=1 ;;
        -h|--help) awk 'NR > 1 && /^set -euo/ { exit } NR > 1' "$0"; exit 0 ;;
        *) echo "edge112 install: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

if [[ -n "$ROOT" ]]; then
    ROOT="$(cd "$ROOT" && pwd)"
    APT=0 START=0
fi
LIVE=$([[ -z "$ROOT" ]] && echo 1 || echo 0)
# systemd's own test (sd_booted): is it PID 1 here? Not in a chroot, a container build or --root.
SYSTEMD=$([[ -z "$ROOT" && -d /run/systemd/system ]] && echo 1 || echo 0)
((SYSTEMD)) || START=0
if [[ $(id -u) -ne 0 ]]; then
    echo "edge112 install: run as root (sudo $0 $*)" >&2
    exit 1
fi

say() { echo "edge112: $*"; }
step=0
stage() { step=$((step + 1)); say "[$step] $*"; }
root_opt=(); [[ -n "$ROOT" ]] && root_opt=(--root "$ROOT")
uid_of() { awk -F: -v n="$1" '$1 == n { print $3 }' "$ROOT/etc/passwd"; }
gid_of() { awk -F: -v n="$1" '$1 == n { print $3 }' "$ROOT/etc/group"; }
# What a build is made of (tracked sources, not what a build leaves in the tree) and its
# extras: a second run with the same source keeps the virtualenv instead of rebuilding it.
source_fingerprint() {
    (
        cd "$SOURCE"
        echo "extras $1"
        find pyproject.toml setup.py README.md gateway drivers firmware_py cython_ext center \
            -type f ! -path '*/__pycache__/*' ! -name '*.so' ! -path 'cython_ext/*.c' -print0 \
            | LC_ALL=C sort -z | xargs -0 sha256sum
    ) | sha256sum | cut -d' ' -f1
}
VERSION=$(sed -n 's/^__version__ = "\(.*\)"/\1/p' "$SOURCE/gateway/__init__.py")
[[ -n "$VERSION" ]] || { echo "edge112 install: no __version__ in $SOURCE/gateway/__init__.py" >&2; exit 1; }
OPT="$ROOT/opt/edge112"
UNIT_DIR="$ROOT/etc/systemd/system"
RULES_DIR="$ROOT/etc/udev/rules.d"
ETC="$ROOT/etc/edge112"

if ((UNINSTALL)); then
    if ((SYSTEMD)); then
        systemctl disable --now edge112.service 2>/dev/null || true
    fi
    say "removing the program, unit and udev rules"
    rm -rf "$OPT" "$UNIT_DIR/edge112.service" "$UNIT_DIR/edge112.service.d" \
        "$UNIT_DIR/multi-user.target.wants/edge112.service" "$ROOT/usr/local/bin/edge112" \
        "$RULES_DIR/99-edge112-modems.rules" "$RULES_DIR/99-edge112-gpio.rules" \
        "$ROOT/etc/systemd/system.conf.d/edge112-watchdog.conf"
    if ((PURGE)); then
        say "purging config, data and logs (/etc/edge112, /var/lib/edge112, /var/log/edge112) and the user"
        rm -rf "$ETC" "$ROOT/var/lib/edge112" "$ROOT/var/log/edge112"
        userdel "${root_opt[@]}" edge112 2>/dev/null || true
    else
        say "kept /etc/edge112 and /var/lib/edge112 (the outbox): --purge removes them"
    fi
    if ((SYSTEMD)); then
        systemctl daemon-reload
        udevadm control --reload || true
    fi
    exit 0
fi

# 1 system packages -------------------------------------------------------------
if ((APT)); then
    packages=(python3 python3-venv python3-dev build-essential)
    ((MOSQUITTO)) && packages+=(mosquitto)
    missing=()
    for package in "${packages[@]}"; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" \
            || missing+=("$package")
    done
    if ((${#missing[@]})); then
        stage "system packages: ${missing[*]} (apt; a few minutes on a Pi)"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        say "    downloading and installing ${#missing[@]} package(s) and what they need ..."
        # One line per package as it is set up, so a slow install shows that it is moving.
        # Debian enables a newly installed mosquitto at boot: we say so, and only when asked.
        apt-get install -y -q --no-install-recommends -o Dpkg::Use-Pty=0 "${missing[@]}" \
            | { grep --line-buffered '^Setting up ' || true; } | sed -u 's/^/edge112:     apt: /'
    else
        stage "system packages: already installed"
    fi
    if ((MOSQUITTO)); then
        say "    a local mosquitto broker is enabled at boot (--with-mosquitto)"
        ((SYSTEMD)) && systemctl enable --now mosquitto.service >/dev/null
    fi
else
    stage "system packages: skipped"
fi

# 2 groups and user --------------------------------------------------------------
stage "user edge112 (groups dialout, gpio)"
for group in dialout gpio; do
    if [[ -z "$(gid_of "$group")" ]]; then
        groupadd "${root_opt[@]}" --system "$group"
        say "    created group $group"
    fi
done
if [[ -z "$(uid_of edge112)" ]]; then
    useradd "${root_opt[@]}" --system --user-group --home-dir /var/lib/edge112 --no-create-home \
        --shell /usr/sbin/nologin --comment "edge112 gateway" edge112
    say "    created user edge112"
fi
usermod "${root_opt[@]}" -a -G dialout,gpio edge112
EDGE_UID=$(uid_of edge112)
EDGE_GID=$(gid_of edge112)

# 3 virtualenv -------------------------------------------------------------------
# A new directory for every build: the running service's virtualenv is never touched, and
# a build that fails (pip) or does not run (`edge112 --version`) is removed, leaving the link
# on the old one. The replaced build is kept as "previous"; older ones are removed.
build_virtualenv() {
    local extras="$1" source_hash="$2" release version_line old keep name dir
    release="$VERSION-$(date -u +%Y%m%d-%H%M%S)"
    target="$OPT/$release"  # global: the EXIT trap removes it
    stage "virtualenv $target/venv (building; a few minutes on a Pi)"
    trap 'rm -rf "$target"; say "    removed $target; /opt/edge112/venv is unchanged"' EXIT
    python3 -m venv "$target/venv"
    "$target/venv/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip
    "$target/venv/bin/python" -m pip install -q --disable-pip-version-check "$SOURCE[$extras]"
    if ! version_line=$("$target/venv/bin/edge112" --version 2>&1); then
        say "    the new build does not run: $version_line"
        exit 1
    fi
    trap - EXIT
    echo "$source_hash" >"$target/source.sha256"
    say "    built: $version_line"
    old="$(readlink "$OPT/venv" 2>/dev/null || true)"
    ln -sfn "$release/venv" "$OPT/venv"
    if [[ -n "$old" && "$old" != "$release/venv" ]]; then
        ln -sfn "$old" "$OPT/previous"
        say "    previous version kept for a roll-back: /opt/edge112/${old%/venv}"
    fi
    keep="$(readlink "$OPT/previous" 2>/dev/null || true)"
    for dir in "$OPT"/*/; do
        name="$(basename "$dir")"
        [[ -x "$dir/venv/bin/python" ]] || continue
        [[ "$name/venv" == "$release/venv" || "$name/venv" == "$keep" ]] && continue
        rm -rf "$dir"
        say "    removed an older build: /opt/edge112/$name"
    done
}

install -d -m 0755 "$OPT"
if ((VENV)); then
    extras="gpiod"
    grep -qs "Raspberry Pi [1-4]" /proc/device-tree/model && extras="gpiod,rpi"
    source_hash=$(source_fingerprint "$extras")
    if [[ "$(cat "$OPT/venv/../source.sha256" 2>/dev/null)" == "$source_hash" ]] \
        && "$OPT/venv/bin/edge112" --version >/dev/null 2>&1; then
        stage "virtualenv: already built from this source: /opt/edge112/$(readlink "$OPT/venv")"
    else
        build_virtualenv "$extras" "$source_hash"
    fi
else
    stage "virtualenv: skipped (--no-venv)"
fi

# 4 configuration ----------------------------------------------------------------
stage "configuration $ETC/edge112.toml (root:edge112 0640; never overwritten)"
install -d -m 0750 -o 0 -g "$EDGE_GID" "$ETC"
if [[ ! -e "$ETC/edge112.toml" ]]; then
    install -m 0640 -o 0 -g "$EDGE_GID" "$SOURCE/gateway/edge112.example.toml" "$ETC/edge112.toml"
    say "    created from the example: edit gateway.id, gateway.region, [mqtt] and [[modems]]"
else
    chown "0:$EDGE_GID" "$ETC/edge112.toml"
    chmod 0640 "$ETC/edge112.toml"
    say "    kept the existing file (owner and mode fixed)"
fi
install -d -m 0750 -o "$EDGE_UID" -g "$EDGE_GID" "$ROOT/var/lib/edge112" "$ROOT/var/log/edge112"

# 5 unit -------------------------------------------------------------------------
stage "systemd unit edge112.service"
install -D -m 0644 "$SOURCE/systemd/edge112.service" "$UNIT_DIR/edge112.service"
dropins="$UNIT_DIR/edge112.service.d"
if [[ -e "$ETC/mqtt-password" ]]; then
    install -d -m 0755 "$dropins"
    printf '[Service]\nLoadCredential=mqtt-password:/etc/edge112/mqtt-password\n' \
        >"$dropins/credentials.conf"
    chown 0:0 "$ETC/mqtt-password"
    chmod 0600 "$ETC/mqtt-password"
    say "    MQTT password passed as a credential (/run/credentials/edge112.service/mqtt-password)"
else
    rm -f "$dropins/credentials.conf"
fi
if ((USB_POWER)); then
    install -d -m 0755 "$dropins"
    printf '[Service]\nReadWritePaths=/sys/devices/platform\n' >"$dropins/usb-power.conf"
    say "    USB port power switching allowed"
fi
if ((HW_WATCHDOG)); then
    install -d -m 0755 "$ROOT/etc/systemd/system.conf.d"
    printf '[Manager]\nRuntimeWatchdogSec=15s\nRebootWatchdogSec=2min\n' \
        >"$ROOT/etc/systemd/system.conf.d/edge112-watchdog.conf"
    say "    hardware watchdog: systemd pets /dev/watchdog (RuntimeWatchdogSec=15s)"
fi
rmdir "$dropins" 2>/dev/null || true

# 6 udev rules -------------------------------------------------------------------
stage "udev rules (modem names under /dev/edge112, ModemManager kept away, GPIO group)"
install -D -m 0644 "$SOURCE/systemd/99-edge112-modems.rules" "$RULES_DIR/99-edge112-modems.rules"
install -D -m 0644 "$SOURCE/systemd/99-edge112-gpio.rules" "$RULES_DIR/99-edge112-gpio.rules"
if ((SYSTEMD)) && command -v udevadm >/dev/null; then
    udevadm control --reload
    udevadm trigger --action=change --subsystem-match=tty --subsystem-match=gpio \
        --subsystem-match=usb || true
fi

# 7 enable and start --------------------------------------------------------------
if ((SYSTEMD)); then
    systemctl daemon-reload
    systemctl enable edge112.service >/dev/null 2>&1
else
    # What `systemctl enable` does, for a root where systemd does not run (chroot, image).
    install -d -m 0755 "$UNIT_DIR/multi-user.target.wants"
    ln -sfn /etc/systemd/system/edge112.service "$UNIT_DIR/multi-user.target.wants/edge112.service"
fi
if ((START)); then
    stage "starting edge112.service"
    systemctl restart edge112.service || true
    for _ in $(seq "$START_TIMEOUT_S"); do
        systemctl is-active --quiet edge112.service && break
        sleep 1
    done
    if systemctl is-active --quiet edge112.service; then
        say "    running. Check it: edge112 doctor; edge112 status"
    elif [[ -L "$OPT/previous" ]]; then
        say "    the new version did not start: rolling back to $(readlink "$OPT/previous")"
        ln -sfn "$(readlink "$OPT/previous")" "$OPT/venv"
        systemctl restart edge112.service || true
        say "    see why: journalctl -u edge112 -e"
        exit 1
    else
        say "    not running: journalctl -u edge112 -e; edge112 doctor"
        exit 1
    fi
elif ((SYSTEMD)); then
    stage "enabled, not started (--no-start)"
else
    stage "enabled; not started: systemd is not running here (chroot, container or --root), it starts at boot"
fi
install -d -m 0755 "$ROOT/usr/local/bin"
ln -sfn /opt/edge112/venv/bin/edge112 "$ROOT/usr/local/bin/edge112"
say "done. Next: edit /etc/edge112/edge112.toml, then: sudo edge112 doctor"
