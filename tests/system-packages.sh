#!/usr/bin/env bash
# Installs the programs the test tiers run, when any is missing: Prometheus' promtool and
# Alertmanager's amtool (fast tier); Prometheus, Alertmanager, node_exporter, sshd, tmux and
# Chromium (integration); iproute2 and util-linux (end to end). Debian and Ubuntu: apt-get,
# as root or through sudo. macOS: Homebrew (the end-to-end tier needs Linux). Does nothing
# when everything is there, so `make test` can call it every time.
set -euo pipefail

# command -> Debian package
DEBIAN=(
    promtool:prometheus prometheus:prometheus
    amtool:prometheus-alertmanager prometheus-alertmanager:prometheus-alertmanager
    prometheus-node-exporter:prometheus-node-exporter
    sshd:openssh-server ssh:openssh-client
    ip:iproute2 tc:iproute2 pgrep:procps nsenter:util-linux unshare:util-linux
    chromium:chromium openssl:openssl perl:perl tmux:tmux git:git
)
# command -> Homebrew formula (macOS ships ssh, sshd, openssl, perl and git)
HOMEBREW=(
    promtool:prometheus prometheus:prometheus amtool:alertmanager alertmanager:alertmanager
    node_exporter:node_exporter tmux:tmux
)

have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/usr/bin/$1" ]; }

missing_packages() {
    local pair seen=" "
    for pair in "$@"; do
        local cmd=${pair%%:*} pkg=${pair#*:}
        if ! have "$cmd" && [[ $seen != *" $pkg "* ]]; then
            seen+="$pkg "
            echo "$pkg"
        fi
    done
}

# macOS' /bin/bash is 3.2, which has no mapfile.
read_missing() {
    wanted=()
    local pkg
    while read -r pkg; do
        [ -n "$pkg" ] && wanted+=("$pkg")
    done < <(missing_packages "$@")
}

# `--checkers`: only the fast tier's promtool and amtool (what `make check` needs).
if [ "${1:-}" = "--checkers" ]; then
    DEBIAN=(promtool:prometheus amtool:prometheus-alertmanager)
    HOMEBREW=(promtool:prometheus amtool:alertmanager)
fi

case "$(uname -s)" in
Linux)
    read_missing "${DEBIAN[@]}"
    [ ${#wanted[@]} -eq 0 ] && exit 0
    command -v apt-get >/dev/null || {
        echo "tests need: ${wanted[*]} (no apt-get here: install them with your package manager)" >&2
        exit 2
    }
    sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null || {
            echo "tests need: ${wanted[*]}; run as root: apt-get install ${wanted[*]}" >&2
            exit 2
        }
        sudo=(sudo)
    fi
    echo "installing the test tiers' system packages: ${wanted[*]}"
    export DEBIAN_FRONTEND=noninteractive
    "${sudo[@]}" apt-get update -qq
    "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${wanted[@]}" >/dev/null
    ;;
Darwin)
    read_missing "${HOMEBREW[@]}"
    [ ${#wanted[@]} -eq 0 ] && exit 0
    command -v brew >/dev/null || {
        echo "tests need: ${wanted[*]}; install Homebrew (https://brew.sh), then brew install ${wanted[*]}" >&2
        exit 2
    }
    echo "installing the test tiers' programs: brew install ${wanted[*]}"
    brew install "${wanted[@]}"
    ;;
*)
    echo "tests run on Linux and macOS, not $(uname -s)" >&2
    exit 2
    ;;
esac
