"""The day-2 suites start from a serving stack: the suites before them may have rebooted the host
(the apache suite's last test waits for Apache only, not for the db jail)."""

from __future__ import annotations

import pytest

from hostlib import load_vars, site_serves_rows, wait_until

SERVER_NAME = load_vars(__file__)["apache_vhosts"][0]["server_name"]


@pytest.fixture(scope="module", autouse=True)
def stack_up(host):
    wait_until(lambda: site_serves_rows(host, SERVER_NAME), timeout=120)
