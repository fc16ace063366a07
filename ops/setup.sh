#!/usr/bin/env bash
# Set up everything sbc needs on a Debian machine, idempotently:
#   ops/setup.sh          the runtime (virtualenv with sbc installed, nftables)
#   ops/setup.sh --dev    plus test tools: SIPp and sipsak from Debian, dev extras
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}
DEV=0
[[ "${1:-}" == "--dev" ]] && DEV=1

as_root() {
    if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi
}

apt_install() {
    local missing=()
    for pkg in "$@"; do
        dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
    done
    if ((${#missing[@]})); then
        echo "setup: installing Debian packages: ${missing[*]}"
        as_root apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
}

if ! "$PYTHON" -c 'import venv, ensurepip' >/dev/null 2>&1; then
    apt_install python3-venv
fi
# nftables: libnftables for the kernel filter (kernel_filter in security.yaml; optional,
# the SBC runs without it) and `nft` to look at its table. Installing it enables no
# firewall: Debian leaves nftables.service off. The tests use `nft` as well.
apt_install nftables
if ((DEV)); then
    apt_install sip-tester sipsak sipvicious baresip
fi

if [[ ! -x "$VENV/bin/python" ]]; then
    "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --upgrade pip >/dev/null
if ((DEV)); then
    "$VENV/bin/python" -m pip install -q -e '.[dev]'
else
    "$VENV/bin/python" -m pip install -q -e .
fi
echo "setup: ready ($VENV)"
