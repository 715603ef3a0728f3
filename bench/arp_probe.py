"""Benchmark: how often a `firejail --net=BRIDGE --ip=ADDR` start fails, by the host's packet rate.

    .venv/bin/python bench/arp_probe.py [--starts 20] [--rates 0,300,1000,3000,max] [--keep]

firejail 0.9.72 (Debian 12) checks that --ip is free with two ARP probes, 0.5 s apart, on a
packet socket that sees every frame of the host's network namespace. When a frame arrives as a
0.5 s wait ends, its next select() gets a negative timeout and firejail exits with
"Error select: arp.c:202 arp_check: Invalid argument" (fixed upstream after 0.9.72). A jail unit
retries it (Restart=always, RestartSec); this script measures the odds that it has to.

Boots its own lab host, converges the bridge role and installs firejail. For each packet rate:
a UDP sender to 127.0.0.1 on the host (the packet socket sees loopback frames like any other),
then STARTS runs of `firejail --noprofile --net=br0 --ip=10.42.0.200 /bin/true`, counting the
runs that end with that error. The rate column is the frames counted on `lo`, not the target.
Traffic stays on the lab host. Prints a table; never fails on slowness.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys

from lablib import Lab, row, standalone

HOST = "bench-arp"
BRIDGE = {"bridge_name": "br0", "bridge_address": "10.42.0.1/24"}
ERROR = "arp.c:202 arp_check: Invalid argument"

# Runs on the lab host: one rate, STARTS firejail runs, prints a JSON line.
REMOTE = r'''
import json, subprocess, sys, time
rate, starts, error = sys.argv[1], int(sys.argv[2]), sys.argv[3]
sender = None
if rate != "0":
    gap = 0 if rate == "max" else 1.0 / float(rate)
    code = ("import socket,sys,time\n"
            "s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);g=float(sys.argv[1]);n=time.monotonic()\n"
            "while True:\n"
            " s.sendto(b'x',('127.0.0.1',9))\n"
            " if g:\n"
            "  n+=g;d=n-time.monotonic()\n"
            "  if d>0:time.sleep(d)\n")
    sender = subprocess.Popen([sys.executable, "-c", code, str(gap)])
    time.sleep(0.5)
def frames():
    with open("/sys/class/net/lo/statistics/rx_packets") as f:
        return int(f.read())
before, started = frames(), time.monotonic()
failed = other = 0
messages = []
for _ in range(starts):
    run = subprocess.run(["firejail", "--noprofile", "--quiet", "--net=br0", "--ip=10.42.0.200", "/bin/true"],
                         capture_output=True, text=True)
    if error in run.stderr + run.stdout:
        failed += 1
    elif run.returncode != 0:
        other += 1
        messages.append((run.stderr.strip().splitlines() or ["rc %d" % run.returncode])[-1])
pps = (frames() - before) / (time.monotonic() - started)
if sender:
    sender.kill()
print(json.dumps({"failed": failed, "other": other, "messages": sorted(set(messages)), "pps": pps}))
'''


def measure(lab: Lab, starts: int = 20, rates: tuple = ("0", "300", "1000", "3000", "max")) -> list[dict]:
    lab.playbook([{
        "hosts": HOST, "gather_facts": False,
        "roles": [{"role": "jailhost.jails.bridge"}],
        "tasks": [{"name": "firejail", "ansible.builtin.apt": {"name": "firejail"}}],
    }], BRIDGE)
    lab.ssh(f"cat > /root/arp_probe.py <<'EOF'\n{REMOTE}\nEOF")
    rows = []
    for rate in rates:
        result = json.loads(lab.ssh(f"python3 /root/arp_probe.py {rate} {starts} {shlex.quote(ERROR)}"))
        label = "idle" if rate == "0" else f"~{result['pps']:.0f} loopback frames/s"
        rows.append(row(f"firejail --ip start fails its ARP probe ({label})", [result["failed"] / starts],
                        "ratio", "-", None, "-",
                        f"{result['failed']}/{starts} runs; other failures {result['other']}"
                        + "".join(f" ({m})" for m in result["messages"])))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--starts", type=int, default=20)
    parser.add_argument("--rates", default="0,300,1000,3000,max",
                        help="comma-separated UDP packets per second to 127.0.0.1; 0 idle, max unpaced")
    parser.add_argument("--keep", action="store_true", help="keep the lab host")
    args = parser.parse_args()
    rates = tuple(args.rates.split(","))
    return standalone(HOST, lambda lab: measure(lab, args.starts, rates), args.keep)


if __name__ == "__main__":
    sys.exit(main())
