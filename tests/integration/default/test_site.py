"""playbooks/site.yml end to end: a page from the web jail with rows from the db jail, through the
host's published ports, and what a client on the uplink side can and cannot reach."""

from __future__ import annotations

import socket
import ssl
import urllib.error
import urllib.request
import uuid

import pytest

from hostlib import (assert_check_mode_changes_nothing, jail_pids, load_vars, pg_bin, public_address, reboot,
                     site_page, site_serves_rows, wait_until)

VARS = load_vars(__file__)


@pytest.fixture(scope="module", autouse=True)
def serving_stack(host):
    """The suites before this one reboot the host and restart jails: start once the whole stack
    serves (the page with rows), as a client would see it."""
    wait_until(lambda: site_serves_rows(host, VARS["apache_vhosts"][0]["server_name"]), timeout=90)


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
                                       "/var/lib/jailhost/jails/db/root/etc/postgresql"], extra_vars=VARS)
    assert {name: jail_pids(host, name)[0] for name in ("web", "db")} == pids


# A file the attacker-free application could have: it inserts a row with the application's own
# database settings (APP_DB_CONFIG, as the demo page reads them), from the web jail through the
# bridge to the db jail, as the application would.
WRITE_PROBE = r"""<?php
function q($v) { return "'" . str_replace(['\\', "'"], ['\\\\', "\\'"], (string) $v) . "'"; }
$db = json_decode(file_get_contents(getenv('APP_DB_CONFIG')), true);
$c = pg_connect(sprintf('host=%s port=%s dbname=%s user=%s password=%s connect_timeout=3',
    q($db['host']), q($db['port']), q($db['name']), q($db['user']), q($db['password'])));
$r = $c ? pg_query_params($c, 'INSERT INTO items (name, jail) VALUES ($1, $2) RETURNING id', [$_GET['name'], 'web']) : false;
echo $r ? 'inserted ' . pg_fetch_result($r, 0, 0) : 'failed';
"""


def test_a_row_written_through_the_app_survives_a_db_restart_and_a_reboot(host):
    server = VARS["apache_vhosts"][0]["server_name"]
    probe = f"write-{uuid.uuid4().hex}.php"
    path = f"/var/lib/jailhost/jails/web/root/var/www/app/{probe}"
    token = f"written-through-the-app-{uuid.uuid4().hex[:8]}"
    host.run_expect([0], f"cat > {path} <<'EOF_PROBE'\n{WRITE_PROBE}EOF_PROBE\nchmod 0644 {path}")
    try:
        status, body = site_page(host, server, f"/{probe}?name={token}")
        assert status == "200" and body.startswith("inserted "), (status, body)
        assert token in site_page(host, server)[1]
        host.run_expect([0], "systemctl restart jailhost-db.service")
        wait_until(lambda: token in site_page(host, server)[1], timeout=30)
        reboot(host)
        wait_until(lambda: site_serves_rows(host, server), timeout=60)
        assert token in site_page(host, server)[1], "the row written through the app was lost in the reboot"
    finally:
        host.run(f"rm -f {path}")
        host.run("chroot /var/lib/jailhost/jails/db/root setpriv --reuid=postgres --regid=postgres --init-groups "
                 f"{pg_bin(host)}/psql -XAtq -h /run/postgresql -d app "
                 f"-c \"DELETE FROM items WHERE name = '{token}'\"")
    assert token not in site_page(host, server)[1]
