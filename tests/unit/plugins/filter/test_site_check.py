"""Unit tests of the checks across roles (plugins/filter/site_check.py)."""

from __future__ import annotations

import pytest
import yaml
from pathlib import Path

from ansible_collections.jailhost.jails.plugins.filter.site_check import site_check

LAB = yaml.safe_load((Path(__file__).resolve().parents[4] / "inventory/lab/group_vars/jailhosts.yml").read_text())
SITE = {**LAB, "apache_jail": "web", "postgresql_jail": "db", "postgresql_port": 5432}
IP_OUTPUT = ["1: lo    inet 127.0.0.1/8 scope host lo       valid_lft forever preferred_lft forever",
             "2: host0    inet 10.254.0.11/24 brd 10.254.0.255 scope global host0",
             "5: br0    inet 10.42.0.1/24 brd 10.42.0.255 scope global br0"]


def test_the_lab_inventory_has_no_problem():
    assert site_check(SITE, IP_OUTPUT) == []


def test_unset_variables_are_not_problems():
    assert site_check({"bridge_address": "10.42.0.1/24", "apache_ip": None}) == []


@pytest.mark.parametrize("change, message", [
    ({"apache_ip": "10.42.0.20"}, "apache_ip and postgresql_address are both 10.42.0.20"),
    ({"postgresql_address": "10.42.0.1"}, "postgresql_address 10.42.0.1 is the host's own address"),
    ({"apache_ip": "10.43.0.10"}, "apache_ip 10.43.0.10 is outside the bridge subnet 10.42.0.0/24"),
    ({"apache_ip": "10.42.0.300"}, "apache_ip '10.42.0.300' is not an IPv4 address"),
    ({"apache_jail": "db"}, "apache_jail and postgresql_jail are both 'db'"),
    ({"apache_jail": "www"}, "apache_jail 'www' is not in rootfs_jails"),
    ({"bridge_published_ports": [{"public_port": 80, "jail_ip": "10.42.0.11"}]},
     "bridge_published_ports[0].jail_ip 10.42.0.11 is no jail of this host"),
    ({"postgresql_clients": [{"address": "10.42.0.11", "database": "app", "user": "app"}]},
     "postgresql_clients[0].address 10.42.0.11 cannot reach postgresql_address 10.42.0.20:5432"),
    ({"apache_app_db": {**LAB["apache_app_db"], "host": "10.42.0.21"}}, "apache_app_db.host '10.42.0.21'"),
    ({"apache_app_db": {**LAB["apache_app_db"], "port": 5433}}, "apache_app_db.port 5433 is not postgresql_port"),
    ({"apache_log_dir": "/var/local/../../etc"}, "apache_log_dir '/var/local/../../etc' must be an absolute path"),
    ({"rootfs_jails_dir": "var/lib/jails"}, "rootfs_jails_dir 'var/lib/jails' must be an absolute path"),
    ({"apache_vhosts": [{"server_name": "a.test", "document_root": "/var/www/../../etc"}]},
     "apache_vhosts[0].document_root '/var/www/../../etc' must not contain '..'"),
    ({"bridge_address": "10.254.0.1/16", "apache_ip": "10.254.42.10", "postgresql_address": "10.254.42.20"},
     "bridge_address 10.254.0.1/16 overlaps 10.254.0.11/24 of interface host0"),
])
def test_each_problem_names_its_variable(change, message):
    problems = site_check({**SITE, **change}, IP_OUTPUT)
    assert any(message in p for p in problems), problems


def test_an_address_on_the_bridge_itself_is_no_overlap():
    assert site_check(SITE, ["br0 10.42.0.1/24"]) == []
