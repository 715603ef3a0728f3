"""playbooks/site.yml end to end: a page from the web jail with rows from the db jail, through the
host's published ports, and what a client on the uplink side can and cannot reach."""

from __future__ import annotations

import socket
import ssl
import urllib.error
import urllib.request

from hostlib import assert_check_mode_changes_nothing, jail_pids, load_vars, public_address, wait_until

VARS = load_vars(__file__)


def page(host, scheme: str = "http") -> tuple[int, str]:
    context = ssl._create_unverified_context()  # the lab's certificate is self-signed
    try:
        with urllib.request.urlopen(f"{scheme}://{public_address(host)}/", timeout=10, context=context) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def tcp_open(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=3):
            return True
    except OSError:
        return False


def test_page_through_the_published_http_port_shows_rows_from_postgresql(host):
    status, body = page(host)
    assert status == 200, body
    assert "stored in PostgreSQL" in body and "served by Apache" in body
    assert "3 rows from items" in body


def test_page_through_the_published_https_port(host):
    status, body = page(host, "https")
    assert status == 200 and "stored in PostgreSQL" in body


def test_uplink_side_reaches_only_the_published_ports(host):
    address = public_address(host)
    assert tcp_open(address, 80) and tcp_open(address, 443)
    assert not tcp_open(address, 5432)


def test_every_jail_runs_and_is_confined(host):
    for jail in ("web", "db"):
        _, _, daemons = jail_pids(host, jail)
        assert daemons
        status = dict(line.split(":\t") for line in host.check_output(
            f"grep -E '^(Seccomp|NoNewPrivs):' /proc/{daemons[0]}/status").splitlines())
        assert status == {"Seccomp": "2", "NoNewPrivs": "1"}, f"{jail}: {status}"


def test_the_page_comes_back_after_the_db_jail_restarts(host):
    host.run_expect([0], "systemctl restart jailhost-db.service")
    wait_until(lambda: page(host)[0] == 200 and "stored in PostgreSQL" in page(host)[1], timeout=30)


def test_site_in_check_mode_changes_nothing(host, tmp_path):
    pids = {name: jail_pids(host, name)[0] for name in ("web", "db")}
    assert_check_mode_changes_nothing(host, "site", tmp_path,
                                      ["/etc/firejail", "/etc/systemd/system", "/var/lib/jailhost/jails/web/root/etc",
                                       "/var/lib/jailhost/jails/db/root/etc/postgresql"])
    assert {name: jail_pids(host, name)[0] for name in ("web", "db")} == pids
