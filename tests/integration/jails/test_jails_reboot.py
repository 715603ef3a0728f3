"""After a reboot of the test host every jail is back on its address, confined, with its data."""

from __future__ import annotations

from hostlib import assert_started_once, jail_pids, load_vars, proc_status, reboot, wait_until

VARS = load_vars(__file__)


def test_jails_come_back_after_reboot(host):
    host.run_expect([0], "echo kept > /var/lib/jailhost/jails/alpha/root/srv/survives-reboot")
    reboot(host)
    for jail in VARS["jails_under_test"]:
        url = f"http://{jail['ip']}:{jail['port']}/"
        wait_until(lambda: host.run(f"curl -s --max-time 2 {url}").stdout == f"jail {jail['name']}\n", timeout=30)
        _, _, daemons = jail_pids(host, jail["name"])
        status = proc_status(host, daemons[0])
        assert (status["Seccomp"], status["NoNewPrivs"]) == ("2", "1")
    assert host.file("/var/lib/jailhost/jails/alpha/root/srv/survives-reboot").content_string == "kept\n"
    assert_started_once(host, [jail["name"] for jail in VARS["jails_under_test"]])
