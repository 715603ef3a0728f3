#!/bin/sh
# Stand-in jails and an uplink client on a test host, for the bridge suite (idempotent).
#
#   netlab.sh up BRIDGE     jail-a 10.77.0.10 and jail-b 10.77.0.20 as network namespaces with a
#                           veth on BRIDGE; uplink: a namespace routed through the host
#                           (198.51.100.2, host side 198.51.100.1); echo servers in each.
#   netlab.sh down          remove them
# Every echo server answers an HTTP request with "<name> port=<port> peer=<client address>".
set -eu
cmd=$1
ECHO=/root/netlab-echo.py

cat >"$ECHO" <<'PY'
import socket, sys, threading
name, ports = sys.argv[1], sys.argv[2:]
def serve(port):
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("0.0.0.0", int(port)))
    srv.listen(16)
    while True:
        conn, peer = srv.accept()
        conn.settimeout(2)
        try:
            conn.recv(4096)
        except OSError:
            pass
        body = f"{name} port={port} peer={peer[0]}\n"
        conn.sendall(f"HTTP/1.0 200 OK\r\nContent-Length: {len(body)}\r\n\r\n{body}".encode())
        conn.close()
for p in ports:
    threading.Thread(target=serve, args=(p,)).start()
PY

ns_up() {  # name, address/prefix, gateway, host-side link (bridge or '-'), ports...
    ns=$1 addr=$2 gw=$3 link=$4
    shift 4
    ip netns list | grep -qw "$ns" && return 0
    ip netns add "$ns"
    ip link add "h-$ns" type veth peer name eth0 netns "$ns"
    if [ "$link" != - ]; then
        ip link set "h-$ns" master "$link"
    else
        ip addr add "$gw/30" dev "h-$ns"
    fi
    ip link set "h-$ns" up
    ip -n "$ns" link set lo up
    ip -n "$ns" addr add "$addr" dev eth0
    ip -n "$ns" link set eth0 up
    ip -n "$ns" route add default via "$gw"
    ip netns exec "$ns" setsid python3 "$ECHO" "$ns" "$@" </dev/null >/dev/null 2>&1 &
}

case $cmd in
up)
    br=$2
    ns_up jail-a 10.77.0.10/24 10.77.0.1 "$br" 8080 8443 9090
    ns_up jail-b 10.77.0.20/24 10.77.0.1 "$br" 5432 6000
    ns_up uplink 198.51.100.2/30 198.51.100.1 - 7000
    # Wait until every echo server listens.
    for _ in $(seq 1 50); do
        n=0
        for ns in jail-a jail-b uplink; do
            n=$((n + $(ip netns exec "$ns" ss -Hltn | wc -l)))
        done
        [ "$n" -ge 6 ] && exit 0
        sleep 0.1
    done
    echo "netlab: echo servers did not start" >&2
    exit 1
    ;;
down)
    for ns in jail-a jail-b uplink; do
        ip netns pids "$ns" 2>/dev/null | xargs -r kill
        ip link del "h-$ns" 2>/dev/null || true
        ip netns del "$ns" 2>/dev/null || true
    done
    ;;
esac
