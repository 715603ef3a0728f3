"""Bad input to the postgresql role fails before any change, with a message naming the variable."""

from __future__ import annotations

import pytest

from hostlib import host_state, load_vars, run_role

VARS = load_vars(__file__)
ROLE_VARS = {k: v for k, v in VARS.items() if k.startswith("postgresql_")}
WATCHED = ["/etc/systemd/system", "/etc/firejail", "/var/lib/jailhost/jails/db/root/etc/postgresql"]


@pytest.mark.parametrize("change, variable", [
    ({"postgresql_users": [{"name": "App", "password": "x"}]}, "postgresql_users[0].name"),
    ({"postgresql_users": [{"name": "app; DROP", "password": "x"}]}, "postgresql_users[0].name"),
    ({"postgresql_users": [{"name": "app", "password": ""}]}, "postgresql_users needs a non-empty password"),
    ({"postgresql_users": [{"name": "app"}]}, "postgresql_users"),
    ({"postgresql_databases": [{"name": "1app", "owner": "app"}]}, "postgresql_databases[0]"),
    ({"postgresql_databases": [{"name": "shop", "owner": "nobody"}]}, "postgresql_databases[0]"),
    ({"postgresql_clients": [{"address": "10.42.0.300", "database": "app", "user": "app"}]},
     "postgresql_clients[0]"),
    ({"postgresql_clients": [{"address": "web", "database": "app", "user": "app"}]}, "postgresql_clients[0]"),
    ({"postgresql_port": 70000}, "postgresql_port"),
    ({"postgresql_port": 0}, "postgresql_port"),
    ({"postgresql_settings": {"port": 5433}}, "postgresql_settings"),
])
def test_bad_input_fails_before_any_change(host, tmp_path, change, variable):
    before = host_state(host, WATCHED)
    result = run_role(host, "jailhost.jails.postgresql", {**ROLE_VARS, **change}, tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert variable in output, output
    assert "changed=0" in result.stdout
    assert host_state(host, WATCHED) == before
