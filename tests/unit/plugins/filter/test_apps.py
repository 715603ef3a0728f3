"""Unit tests of the apps role's validation and planning (plugins/filter/apps.py)."""

from __future__ import annotations

import pytest

from ansible_collections.jailhost.jails.plugins.filter.apps import AppsInputError, apps_plan

BASE = {"proxy_jail": "proxy", "proxy_ip": "10.42.0.10", "db_jail": "db", "db_ip": "10.42.0.20",
        "bridge_address": "10.42.0.1/24", "uid_range": [20000, 29999], "home_dir": "/srv"}
ALPHA = {"name": "alpha", "domain": "alpha.example.test", "ip": "10.42.0.31", "db": {"password": "alpha-Secret-1"},
         "content": ["alpha row"]}
BETA = {"name": "beta-2", "domain": "beta.example.test", "ip": "10.42.0.32", "uid": 20500,
        "db": {"password": "beta-Secret-2"}}


def plan(*apps, **overrides):
    return apps_plan({**BASE, "list": list(apps), **overrides})


def test_two_apps():
    result = plan(ALPHA, BETA)
    alpha, beta = result["apps"]
    assert (alpha["jail"], alpha["user"], alpha["uid"], alpha["home"], alpha["docroot"]) == (
        "alpha", "alpha", None, "/srv/alpha", "/srv/alpha/www")
    assert beta["db"] == {"name": "beta_2", "user": "beta_2", "password": "beta-Secret-2"}
    assert beta["uid"] == 20500
    assert result["rootfs_jails"] == [{"name": "db"}, {"name": "proxy"}, {"name": "alpha", "include": []},
                                      {"name": "beta-2", "include": []}]
    # The app jails' packages go into their shared base image.
    packages = plan(ALPHA, packages=["apache2", "php-pgsql"])["rootfs_jails"]
    assert packages[2] == {"name": "alpha", "include": ["apache2", "php-pgsql"]}
    assert result["bridge_jail_flows"] == [
        {"source_ip": "10.42.0.10", "dest_ip": "10.42.0.31", "proto": "tcp", "port": 80},
        {"source_ip": "10.42.0.10", "dest_ip": "10.42.0.32", "proto": "tcp", "port": 80},
        {"source_ip": "10.42.0.31", "dest_ip": "10.42.0.20", "proto": "tcp", "port": 5432},
        {"source_ip": "10.42.0.32", "dest_ip": "10.42.0.20", "proto": "tcp", "port": 5432},
    ]
    assert {p["jail_ip"] for p in result["bridge_published_ports"]} == {"10.42.0.10"}
    # Each database is reachable from its own app's address only.
    assert result["postgresql_clients"] == [
        {"address": "10.42.0.31", "database": "alpha", "user": "alpha"},
        {"address": "10.42.0.32", "database": "beta_2", "user": "beta_2"}]
    assert result["postgresql_databases"][1] == {"name": "beta_2", "owner": "beta_2"}
    sql = result["postgresql_sql"][0]["sql"]
    assert "REVOKE CONNECT ON DATABASE alpha FROM PUBLIC" in sql and "'alpha row'" in sql
    assert result["proxy_vhosts"][0]["server_name"] == "alpha.example.test"
    assert "ProxyPass / http://10.42.0.31/" in result["proxy_vhosts"][0]["config"]


def test_quotes_in_content_are_escaped():
    result = plan({**ALPHA, "content": ["it's"]})
    assert "'it''s'" in result["postgresql_sql"][0]["sql"]


def test_absent_app_keeps_nothing_running_but_is_planned_for_removal():
    result = plan(ALPHA, {"name": "old", "state": "absent", "purge": True})
    assert [a["name"] for a in result["apps"]] == ["alpha"]
    assert result["absent"][0]["purge"] is True
    assert {"name": "old", "state": "absent", "purge": True} in result["rootfs_jails"]
    assert all("old" not in str(flow) for flow in result["bridge_jail_flows"])


@pytest.mark.parametrize("apps, message", [
    ([ALPHA, {**BETA, "name": "alpha"}], r"apps_list\[1\]\.name: 'alpha' is already used by apps_list\[0\]"),
    ([{**ALPHA, "name": "proxy"}], r"apps_list\[0\]\.name: 'proxy' is already used by apps_proxy_jail"),
    ([{**ALPHA, "uid": 20500}, BETA], r"apps_list\[1\]\.uid: 20500 is already used"),
    ([{**ALPHA, "name": "a/b"}], r"apps_list\[0\]\.name: 'a/b' is not a valid application name"),
    ([{**ALPHA, "name": ".."}], r"apps_list\[0\]\.name: '\.\.' is not a valid"),
    ([{**ALPHA, "name": "../x"}], r"apps_list\[0\]\.name: '\.\./x' is not a valid"),
    ([{**ALPHA, "user": "x/y"}], r"apps_list\[0\]\.user: 'x/y' is not a valid user name"),
    ([{**ALPHA, "uid": 999}], r"apps_list\[0\]\.uid: 999 is in the system range"),
    ([{**ALPHA, "uid": 0}], r"apps_list\[0\]\.uid: 0 is in the system range"),
    ([{**ALPHA, "uid": 65534}], r"apps_list\[0\]\.uid: 65534 is in the system range"),
    ([ALPHA, {**BETA, "ip": "10.42.0.31"}], r"apps_list\[1\]\.ip: '10\.42\.0\.31' is already used by apps_list\[0\]"),
    ([{**ALPHA, "ip": "10.42.0.10"}], r"apps_list\[0\]\.ip: '10\.42\.0\.10' is already used by apps_proxy_ip"),
    ([{**ALPHA, "ip": "10.42.0.20"}], r"apps_list\[0\]\.ip: '10\.42\.0\.20' is already used by apps_db_ip"),
    ([{**ALPHA, "ip": "10.42.0.1"}], r"apps_list\[0\]\.ip: '10\.42\.0\.1' is already used by the bridge address"),
    ([{**ALPHA, "ip": "10.43.0.5"}], r"apps_list\[0\]\.ip: 10\.43\.0\.5 is not a host address of the bridge"),
    ([{**ALPHA, "ip": "10.42.0.255"}], r"not a host address"),
    ([ALPHA, {**BETA, "domain": "alpha.example.test"}], r"apps_list\[1\]\.domain: 'alpha.example.test' is already"),
    ([{**ALPHA, "domain": "bad domain"}], r"apps_list\[0\]\.domain"),
    ([{**ALPHA, "db": {"password": "short"}}], r"apps_list\[0\]\.db\.password"),
    ([{**ALPHA, "db": {"password": "it's-long-enough"}}], r"apps_list\[0\]\.db\.password"),
    ([ALPHA, {**BETA, "db": {"name": "alpha", "password": "beta-Secret-2"}}], r"apps_list\[1\]\.db\.name"),
    ([{**ALPHA, "colour": "red"}], r"apps_list\[0\]: unknown key\(s\) colour"),
    ([{**ALPHA, "state": "gone"}], r"apps_list\[0\]\.state"),
    (["alpha"], r"apps_list\[0\]: must be a dictionary"),
])
def test_bad_input_names_the_variable(apps, message):
    with pytest.raises(AppsInputError, match=message):
        plan(*apps)


@pytest.mark.parametrize("overrides, message", [
    ({"uid_range": [100, 200]}, "apps_uid_range"),
    ({"uid_range": [30000, 20000]}, "apps_uid_range"),
    ({"home_dir": "/srv/../etc"}, "apps_home_dir"),
    ({"proxy_ip": "10.42.1.10"}, "apps_proxy_ip"),
    ({"bridge_address": "nonsense"}, "apps_bridge_address"),
])
def test_bad_settings(overrides, message):
    with pytest.raises(AppsInputError, match=message):
        plan(ALPHA, **overrides)
