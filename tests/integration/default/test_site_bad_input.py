"""Bad input across roles fails in playbooks/site.yml before any role runs, naming the variable.

Each case runs the play of playbooks/site.yml with the lab's variables and one mistake; the
pre_tasks (each role's own checks, then jailhost.jails.site_check) must stop it with a message
naming the variable, with changed=0, and the host's rule sets, units, firejail profiles and the
jails' Apache and PostgreSQL configuration must be as before.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from hostlib import host_state, load_vars, run_play

VARS = load_vars(__file__)
SITE = yaml.safe_load((Path(__file__).resolve().parents[3] / "playbooks" / "site.yml").read_text())[0]
PLAY = {k: v for k, v in SITE.items() if k not in ("hosts", "name")}
WATCHED = ["/etc/jailhost", "/etc/systemd/system", "/etc/firejail", "/etc/sysctl.d",
           "/var/lib/jailhost/jails/web/root/etc/apache2", "/var/lib/jailhost/jails/db/root/etc/postgresql"]
CERT_PATH = "/etc/ssl/certs/www.example.test.pem"

CASES = {
    "duplicate jail address": ({"apache_ip": "10.42.0.20"}, "apache_ip and postgresql_address are both 10.42.0.20"),
    "both roles in one jail": ({"apache_jail": "db"}, "apache_jail and postgresql_jail are both 'db'"),
    "jail the rootfs role does not create": ({"apache_jail": "www"}, "apache_jail 'www' is not in rootfs_jails"),
    "published port to no jail": (
        {"bridge_published_ports": [{"proto": "tcp", "public_port": 80, "jail_ip": "10.42.0.11", "jail_port": 80}]},
        "bridge_published_ports[0].jail_ip 10.42.0.11 is no jail of this host"),
    "database client without a flow": (
        {"postgresql_clients": [{"address": "10.42.0.11", "database": "app", "user": "app"}]},
        "postgresql_clients[0].address 10.42.0.11 cannot reach postgresql_address"),
    "application pointed at another port": (
        {"apache_app_db": {**VARS["apache_app_db"], "port": 5433}}, "apache_app_db.port 5433 is not postgresql_port"),
    "bridge subnet overlapping the uplink": (
        {"bridge_address": "10.254.0.1/16", "apache_ip": "10.254.42.10", "postgresql_address": "10.254.42.20"},
        "bridge_address 10.254.0.1/16 overlaps"),
    "path with ..": ({"apache_log_dir": "/var/local/../../etc/apache2"},
                     "apache_log_dir '/var/local/../../etc/apache2' must be an absolute path without '..'"),
    "document root with ..": (
        {"apache_vhosts": [{**VARS["apache_vhosts"][0], "document_root": "/var/www/../../root"}]},
        "apache_vhosts[0].document_root '/var/www/../../root' must not contain '..'"),
    "relative jails directory": ({"rootfs_jails_dir": "var/lib/jailhost/jails"},
                                 "rootfs_jails_dir 'var/lib/jailhost/jails' must be an absolute path"),
    "unknown capability (hardening flag)": ({"apache_caps_keep": ["net_bind_service", "sys_everything"]},
                                            "apache_caps_keep has unknown capabilities sys_everything"),
    "certificate file name instead of PEM": ({"apache_tls_certificate": CERT_PATH, "apache_tls_key": CERT_PATH},
                                             "apache_tls_certificate and apache_tls_key must be PEM text"),
    "MPM setting that is not a number": ({"apache_mpm_prefork": {"MaxRequestWorkers": "lots"}},
                                         "apache_mpm_prefork and apache_mpm_event map Apache directive names"),
    "jail package list that is a string": (
        {"rootfs_jails": [{"name": "web", "include": "apache2 php"}, {"name": "db"}]},
        "rootfs_jails[0].include must be a list of Debian package names"),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_site_bad_input_fails_before_any_change(host, tmp_path, case):
    change, message = CASES[case]
    before = host_state(host, WATCHED)
    result = run_play(host, PLAY, tmp_path, extra_vars={**VARS, **change})
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert message in output, output[-3000:]
    assert "changed=0" in result.stdout
    assert "jailhost.jails.bridge :" not in result.stdout, "a role ran before the check"
    assert host_state(host, WATCHED) == before
