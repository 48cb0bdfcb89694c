#!/usr/bin/env bash
# Idempotent set-up: simulators and Yosys from apt, a .venv with the pinned requirements,
# and pyapprox in editable mode. Silent when everything is already in place.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
# iverilog, verilator, yosys; ccache speeds up repeated Verilator builds; chromium renders the HTML report
# in its test (each command is provided by the Debian package of the same name)
for tool in iverilog verilator yosys ccache chromium; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if ((${#missing[@]})); then
    echo "setup: installing ${missing[*]} with apt-get"
    sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
    export DEBIAN_FRONTEND=noninteractive
    if ! $sudo apt-get install -y -qq "${missing[@]}" >/tmp/pyapprox-apt.log 2>&1; then
        $sudo apt-get update -qq >>/tmp/pyapprox-apt.log 2>&1
        $sudo apt-get install -y -qq "${missing[@]}" >>/tmp/pyapprox-apt.log 2>&1 \
            || { echo "setup: apt-get install failed, see /tmp/pyapprox-apt.log" >&2; exit 1; }
    fi
fi

if [ ! -x .venv/bin/python ]; then
    echo "setup: creating .venv"
    python3 -m venv .venv
fi

stamp=.venv/.pyapprox-setup
want=$(cat requirements.txt pyproject.toml | sha256sum | cut -c1-16)
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
    echo "setup: installing Python requirements into .venv"
    log=$(mktemp)
    if ! { .venv/bin/python -m pip install -q -r requirements.txt \
           && .venv/bin/python -m pip install -q --no-deps -e . ; } >"$log" 2>&1; then
        grep -v "is ignored: it is neither a file nor a directory" "$log" >&2
        echo "setup: pip install failed" >&2
        exit 1
    fi
    rm -f "$log"
    echo "$want" >"$stamp"
fi
