#!/usr/bin/env bash
# Install everything `make test`, `make demo` and `make bench` need on a fresh Debian 12 machine.
# Idempotent: a second run checks and returns in about a second.
#   - Debian packages (debootstrap, systemd-nspawn, iptables, the apt-cacher-ng proxy, ...)
#   - a Python venv with requirements-dev.txt, cached outside the clone and keyed by its content
#   - the collection made importable as jailhost.jails from this working tree
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(debootstrap systemd-container iptables apt-cacher-ng rsync iproute2 openssh-client
              curl ca-certificates wrk shellcheck)
VENV_CACHE=${JAILHOST_VENV_CACHE:-/var/cache/jailhost-lab/venv}
PYTHON=${PYTHON:-python3}

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if ((${#missing[@]})); then
    echo "install-deps: installing Debian packages: ${missing[*]}"
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# The venv lives in a cache keyed by the requirement files, so fresh clones reuse it.
key=$(cat requirements.txt requirements-dev.txt | "$PYTHON" -c 'import hashlib,sys,platform; print(hashlib.sha256(sys.stdin.buffer.read()+platform.python_version().encode()).hexdigest()[:16])')
venv="$VENV_CACHE/$key"
if [[ ! -x "$venv/bin/molecule" || ! -e "$venv/.complete" ]]; then
    echo "install-deps: creating venv $venv"
    rm -rf "$venv"
    mkdir -p "$VENV_CACHE"
    "$PYTHON" -m venv "$venv"
    "$venv/bin/pip" install -q --upgrade pip
    "$venv/bin/pip" install -q -r requirements-dev.txt
    touch "$venv/.complete"
fi
ln -sfn "$venv" .venv

# Make this working tree the collection jailhost.jails for ansible, molecule and pytest.
mkdir -p .cache/collections/ansible_collections/jailhost
ln -sfn "$PWD" .cache/collections/ansible_collections/jailhost/jails
