#!/usr/bin/env bash
# make demo / make demo-destroy: a local lab host running playbooks/site.yml.
#   demo.sh up     boot the lab host "jh-lab" (systemd-nspawn, same harness as the tests), converge
#                  playbooks/site.yml with inventory/lab, and show what was built. RELEASE=bookworm
#                  (Debian 12) or trixie (Debian 13, the default) chooses the host's release.
#   demo.sh down   power off and remove the lab host
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
LAB="$PY molecule/shared/labhost.py"
NAME=jh-lab
RELEASE=${RELEASE:-trixie}
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
echo "demo: booting lab host $NAME, Debian $RELEASE (first run builds the base image: about a minute)"
info=$($LAB create "$NAME" --release "$RELEASE")
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
# shellcheck disable=SC2016  # the script runs on the lab host: its $ expand there, not here
ssh_lab 'set -e
echo "--- the jail bridge and the published ports"
ip -br addr show dev br0
iptables -t nat -S JAILHOST-DNAT
echo "--- the jails (systemd units running firejail sandboxes)"
systemctl list-units --no-legend "jailhost-*.service"
for j in web db; do
    main=$(systemctl show -p MainPID --value jailhost-$j.service)
    child=$(cat /run/firejail/sandbox/$main)
    pid=$(cut -d" " -f1 /proc/$child/task/$child/children)
    printf "%-4s daemon pid %-6s %s\n" $j $pid "$(grep -E "^(Seccomp|NoNewPrivs|CapEff):" /proc/$pid/status | tr -s "\t\n" "  ")"
done'
echo
echo "--- the page, fetched from this machine through the lab host's published port 80"
curl -s --max-time 10 "http://$addr/" | sed -e 's/<[^>]*>/ /g' -e 's/  */ /g' | grep -v '^ *$'
echo
echo "Open it: curl http://$addr/   curl -k https://$addr/"
echo "Log in:  ssh -i $key root@$addr    Remove: make demo-destroy"
