#!/usr/bin/env bash
# Install the system packages edge112 needs to build, test and demo:
# a C compiler and Python headers (Cython extensions), venv, and mosquitto
# (the tests and the demo start private brokers on loopback ports).
# Uses apt-get when run as root (or with password-less sudo); otherwise it
# prints the exact command to run and fails.
set -euo pipefail

need=()
command -v cc >/dev/null 2>&1 || need+=(build-essential)
python3 -c 'import sysconfig, os, sys; sys.exit(0 if os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")) else 1)' \
    || need+=(python3-dev)
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || need+=(python3-venv)
[[ -x /usr/sbin/mosquitto ]] || command -v mosquitto >/dev/null 2>&1 || need+=(mosquitto)
for extra in "$@"; do
    case "$extra" in
        # Debian keeps the PostgreSQL server off PATH (the center's tests start a private one)
        postgresql) compgen -G '/usr/lib/postgresql/*/bin/pg_ctl' >/dev/null || need+=(postgresql) ;;
        # a library, no program: its header says it is there (the E1 tests' libpri peer)
        libpri-dev) [[ -e /usr/include/libpri.h ]] || need+=(libpri-dev) ;;
        # in /usr/sbin, off a normal user's PATH
        debootstrap) [[ -x /usr/sbin/debootstrap ]] || need+=(debootstrap) ;;
        *) command -v "$extra" >/dev/null 2>&1 || need+=("$extra") ;;
    esac
done

((${#need[@]})) || exit 0

echo "edge112: installing system packages with apt-get (a few minutes on a Raspberry Pi): ${need[*]}" >&2
if [[ $(id -u) -eq 0 ]]; then
    SUDO=()
elif sudo -n true 2>/dev/null; then
    SUDO=(sudo -n)
else
    echo "edge112: cannot install ${need[*]} without root. Run:" >&2
    echo "    sudo apt-get update && sudo apt-get install -y ${need[*]}" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -qq
# One line per package as it is set up, so a slow install shows that it is moving.
"${SUDO[@]}" apt-get install -y -q --no-install-recommends "${need[@]}" \
    | { grep --line-buffered '^Setting up ' || true; } | sed -u 's/^/edge112: apt: /' >&2
if [[ " ${need[*]} " == *" mosquitto "* ]]; then
    echo "edge112: note: Debian also enabled mosquitto's own system broker at boot; edge112's" \
         "demo and tests start private brokers and do not need it:" \
         "sudo systemctl disable --now mosquitto" >&2
fi
if [[ " ${need[*]} " == *" postgresql "* ]]; then
    echo "edge112: note: Debian also started a system PostgreSQL cluster; the center's tests" \
         "start private servers and do not need it: sudo systemctl disable --now postgresql" >&2
fi
