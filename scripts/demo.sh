#!/usr/bin/env bash
# make demo / make demo-destroy: a local lab host running playbooks/site.yml.
#   demo.sh up     boot the lab host "jh-lab" (systemd-nspawn, same harness as the tests), converge
#                  playbooks/site.yml with inventory/lab, and show what was built
#   demo.sh down   power off and remove the lab host
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
LAB="$PY molecule/shared/labhost.py"
NAME=jh-lab
OUT=.cache/demo

case ${1:-up} in
down)
    $LAB destroy "$NAME"
    rm -rf "$OUT"
    echo "demo: lab host $NAME removed"
    exit 0
    ;;
up) ;;
*) echo "usage: $0 up|down" >&2; exit 2 ;;
esac

mkdir -p "$OUT"
echo "demo: booting lab host $NAME (first run builds the base image: about a minute)"
info=$($LAB create "$NAME")
addr=$($PY -c 'import json,sys; print(json.load(sys.stdin)["address"])' <<<"$info")
key=$($PY -c 'import json,sys; print(json.load(sys.stdin)["identity_file"])' <<<"$info")
cat >"$OUT/hosts.yml" <<YAML
---
jailhosts:
  hosts:
    $NAME:
      ansible_host: $addr
      ansible_user: root
      ansible_ssh_private_key_file: $key
      ansible_ssh_common_args: -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null
YAML

echo "demo: running playbooks/site.yml against $NAME ($addr)"
ANSIBLE_HOST_KEY_CHECKING=false .venv/bin/ansible-playbook -i inventory/lab -i "$OUT/hosts.yml" playbooks/site.yml

ssh_lab() {
    ssh -i "$key" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR "root@$addr" "$@"
}
echo
echo "================ what the lab host $NAME ($addr) has now ================"
ssh_lab 'set -e
echo "--- the jail bridge"; ip -br addr show dev br0
echo "--- forwarding"; sysctl net.ipv4.ip_forward
echo "--- our chains (filter)"; for c in JAILHOST-FWD JAILHOST-IN JAILHOST-OUT; do iptables -S $c; done
echo "--- our chains (nat)"; iptables -t nat -S JAILHOST-DNAT; iptables -t nat -S JAILHOST-SNAT
echo "--- hooks from the built-in chains"; iptables -S | grep -- "-j JAILHOST" ; iptables -t nat -S | grep -- "-j JAILHOST"
echo "--- restored at boot by"; systemctl is-enabled jailhost-firewall.service'
echo
echo "Log in: ssh -i $key root@$addr    Remove: make demo-destroy"
