# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filter of the apps role: validate the list of applications and derive, from that one list, the
variables of the roles that build them (bridge, rootfs, postgresql, apache for each app and for
the front proxy).

Runs on the controller as the apps role's first task: bad input fails before anything changes on
the host, with a message naming the variable (``apps_list[2].uid: ...``).
"""

from __future__ import annotations

import ipaddress
import re

from ansible.errors import AnsibleFilterError
from ansible_collections.jailhost.jails.plugins.module_utils.jailsafe import JAIL_NAME_RE

DOCUMENTATION = r"""
name: apps_plan
short_description: Validate the apps role's list of applications and derive the other roles' variables
version_added: 0.1.0
description:
  - Takes the apps role's settings (C(apps_list) and the addresses of the proxy and database jails,
    the bridge address, the uid range) and returns the normalised applications and the variables
    of the bridge, rootfs, postgresql and apache roles that build them.
  - Fails with a message naming the variable when the input is invalid - a duplicate application
    name, user, uid, domain or jail address, a name with C(/) or C(..), a uid in the system range,
    an address outside the bridge subnet or colliding with the proxy, database or bridge address.
positional: _input
options:
  _input:
    description:
      - The apps settings (C(list), C(proxy_jail), C(proxy_ip), C(db_jail), C(db_ip), C(bridge_address),
        C(uid_range), C(home_dir), C(packages)).
      - C(packages) go into the base image of the app jails (the rootfs role's per-jail C(include)).
    type: dict
    required: true
"""

EXAMPLES = r"""
- name: Plan the applications
  ansible.builtin.set_fact:
    apps__plan: >-
      {{ {'list': apps_list, 'proxy_jail': 'proxy', 'proxy_ip': '10.42.0.10', 'db_jail': 'db',
          'db_ip': '10.42.0.20', 'bridge_address': '10.42.0.1/24', 'uid_range': [20000, 29999],
          'home_dir': '/srv'} | jailhost.jails.apps_plan }}
"""

RETURN = r"""
_value:
  description: C(apps) (present, normalised), C(absent), C(rootfs_jails), C(bridge_jail_flows),
    C(bridge_published_ports), C(postgresql_clients), C(postgresql_users), C(postgresql_databases),
    C(postgresql_sql) and C(proxy_vhosts).
  type: dict
"""

# An app's name is its jail's name: the collection's one jail name rule.
NAME_RE = JAIL_NAME_RE
USER_RE = re.compile(r"[a-z][a-z0-9_-]{0,31}")
DB_NAME_RE = re.compile(r"[a-z][a-z0-9_]{0,62}")
DOMAIN_RE = re.compile(r"(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*")
FIRST_REGULAR_ID = 1000
LAST_REGULAR_ID = 59999
KEYS = {"name", "domain", "aliases", "user", "uid", "ip", "db", "content", "files", "ssh_keys", "state", "purge"}
DB_KEYS = {"name", "user", "password"}


class AppsInputError(AnsibleFilterError):
    """Invalid apps role input; the message names the variable."""


def _fail(var: str, msg: str):
    raise AppsInputError(f"apps role: {var}: {msg}")


def _address(value, var: str, network) -> str:
    try:
        ip = ipaddress.IPv4Address(str(value))
    except ValueError:
        _fail(var, f"{value!r} is not an IPv4 address")
    if ip not in network or ip in (network.network_address, network.broadcast_address):
        _fail(var, f"{ip} is not a host address of the bridge subnet {network}")
    return str(ip)


def _name(value, var: str, regex, what: str) -> str:
    if not isinstance(value, str) or not regex.fullmatch(value):
        _fail(var, f"{value!r} is not a valid {what} ({regex.pattern}; no '/', '.', '..', spaces or upper case)")
    return value


def _uid(value, var: str, uid_range) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not str(value).strip().isdigit():
        _fail(var, f"{value!r} is not a uid")
    uid = int(value)
    if not FIRST_REGULAR_ID <= uid <= LAST_REGULAR_ID:
        _fail(var, f"{uid} is in the system range (below {FIRST_REGULAR_ID}) or reserved ({LAST_REGULAR_ID + 1} "
                   "and above): app users need a regular uid")
    return uid


def _app(index: int, item, cfg: dict, network) -> dict:
    var = f"apps_list[{index}]"
    if not isinstance(item, dict):
        _fail(var, "must be a dictionary")
    unknown = sorted(set(item) - KEYS)
    if unknown:
        _fail(var, f"unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(KEYS))}")
    name = _name(item.get("name"), f"{var}.name", NAME_RE, "application name")
    state = item.get("state", "present")
    if state not in ("present", "absent"):
        _fail(f"{var}.state", f"{state!r} is not present or absent")
    user = _name(item.get("user", name), f"{var}.user", USER_RE, "user name")
    db = item.get("db") or {}
    if not isinstance(db, dict) or set(db) - DB_KEYS:
        _fail(f"{var}.db", f"must be a dictionary with keys {', '.join(sorted(DB_KEYS))}")
    app = {
        "name": name,
        "jail": name,
        "state": state,
        "purge": bool(item.get("purge", False)),
        "user": user,
        "uid": _uid(item.get("uid"), f"{var}.uid", cfg.get("uid_range")),
        "home": f"{cfg.get('home_dir', '/srv').rstrip('/')}/{name}",
        "ip": None,
        "domain": None,
        "aliases": [],
        "db": {
            "name": _name(db.get("name", name.replace("-", "_")), f"{var}.db.name", DB_NAME_RE, "database name"),
            "user": _name(db.get("user", name.replace("-", "_")), f"{var}.db.user", DB_NAME_RE, "database role"),
            "password": db.get("password", ""),
        },
        "content": item.get("content", []),
        "files": item.get("files"),
        "ssh_keys": item.get("ssh_keys", []),
    }
    app["docroot"] = f"{app['home']}/www"
    if state == "absent":
        return app
    app["ip"] = _address(item.get("ip"), f"{var}.ip", network)
    domain = item.get("domain")
    if not isinstance(domain, str) or not DOMAIN_RE.fullmatch(domain):
        _fail(f"{var}.domain", f"{domain!r} is not a host name")
    app["domain"] = domain
    aliases = item.get("aliases", [])
    if not isinstance(aliases, list) or any(not isinstance(a, str) or not DOMAIN_RE.fullmatch(a) for a in aliases):
        _fail(f"{var}.aliases", "must be a list of host names")
    app["aliases"] = aliases
    password = app["db"]["password"]
    if not isinstance(password, str) or len(password) < 8 or any(c in password for c in "'\\\n"):
        _fail(f"{var}.db.password", "must be a string of at least 8 characters without quotes, backslashes or newlines")
    if not isinstance(app["content"], list) or any(not isinstance(row, str) for row in app["content"]):
        _fail(f"{var}.content", "must be a list of strings (the rows of the app's demo table)")
    if not isinstance(app["ssh_keys"], list):
        _fail(f"{var}.ssh_keys", "must be a list of SSH public keys")
    return app


def _unique(apps: list[dict], key, what: str, extra: dict | None = None):
    seen = dict(extra or {})
    for index, app in enumerate(apps):
        value = key(app)
        if value is None:
            continue
        if value in seen:
            _fail(f"apps_list[{index}].{what}", f"{value!r} is already used by {seen[value]}")
        seen[value] = f"apps_list[{index}] ({app['name']})"


def _sql_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def apps_plan(cfg: dict) -> dict:
    """Validate the apps settings and return what the roles need (see RETURN)."""
    if not isinstance(cfg, dict):
        raise AppsInputError("apps role: the settings must be a dictionary")
    try:
        network = ipaddress.IPv4Interface(str(cfg.get("bridge_address"))).network
        bridge_ip = str(ipaddress.IPv4Interface(str(cfg.get("bridge_address"))).ip)
    except ValueError:
        _fail("apps_bridge_address", f"{cfg.get('bridge_address')!r} is not an IPv4 address/prefix")
    entries = cfg.get("list") or []
    if not isinstance(entries, list):
        _fail("apps_list", "must be a list")
    proxy_ip = _address(cfg.get("proxy_ip"), "apps_proxy_ip", network)
    db_ip = _address(cfg.get("db_ip"), "apps_db_ip", network)
    proxy_jail = _name(cfg.get("proxy_jail"), "apps_proxy_jail", NAME_RE, "jail name")
    db_jail = _name(cfg.get("db_jail"), "apps_db_jail", NAME_RE, "jail name")
    uid_range = cfg.get("uid_range") or [20000, 29999]
    if (not isinstance(uid_range, list) or len(uid_range) != 2
            or not all(isinstance(v, int) and FIRST_REGULAR_ID <= v <= LAST_REGULAR_ID for v in uid_range)
            or uid_range[0] > uid_range[1]):
        _fail("apps_uid_range", f"{uid_range!r} must be [FIRST, LAST] within {FIRST_REGULAR_ID}-{LAST_REGULAR_ID}")
    home_dir = cfg.get("home_dir", "/srv")
    if not re.fullmatch(r"(/[a-z0-9_-]+)+", str(home_dir)):
        _fail("apps_home_dir", f"{home_dir!r} must be an absolute path of plain components (e.g. /srv)")

    apps = [_app(i, item, cfg, network) for i, item in enumerate(entries)]
    _unique(apps, lambda a: a["name"], "name", {proxy_jail: "apps_proxy_jail", db_jail: "apps_db_jail"})
    _unique(apps, lambda a: a["user"], "user")
    _unique(apps, lambda a: a["uid"], "uid")
    _unique(apps, lambda a: a["ip"], "ip",
            {proxy_ip: "apps_proxy_ip", db_ip: "apps_db_ip", bridge_ip: "the bridge address (apps_bridge_address)"})
    _unique(apps, lambda a: a["domain"], "domain")
    _unique([a for a in apps if a["state"] == "present"], lambda a: a["db"]["name"], "db.name")
    _unique([a for a in apps if a["state"] == "present"], lambda a: a["db"]["user"], "db.user")

    present = [a for a in apps if a["state"] == "present"]
    absent = [a for a in apps if a["state"] == "absent"]
    return {
        "apps": present,
        "absent": absent,
        # App jails share a base image with their packages preinstalled (built once): an added
        # app's root starts as an empty layer, not an apt install of Apache and PHP.
        "rootfs_jails": [{"name": db_jail}, {"name": proxy_jail}]
        + [{"name": a["jail"], "include": list(cfg.get("packages") or [])} for a in present]
        + [{"name": a["jail"], "state": "absent", "purge": a["purge"]} for a in absent],
        "bridge_published_ports": [
            {"proto": "tcp", "public_port": 80, "jail_ip": proxy_ip, "jail_port": 80},
            {"proto": "tcp", "public_port": 443, "jail_ip": proxy_ip, "jail_port": 443},
        ],
        # The proxy reaches each app's HTTP port, each app its own database; nothing else.
        "bridge_jail_flows": [{"source_ip": proxy_ip, "dest_ip": a["ip"], "proto": "tcp", "port": 80} for a in present]
        + [{"source_ip": a["ip"], "dest_ip": db_ip, "proto": "tcp", "port": 5432} for a in present],
        "postgresql_clients": [{"address": a["ip"], "database": a["db"]["name"], "user": a["db"]["user"]}
                               for a in present],
        "postgresql_users": [{"name": a["db"]["user"], "password": a["db"]["password"]} for a in present],
        "postgresql_databases": [{"name": a["db"]["name"], "owner": a["db"]["user"]} for a in present],
        "postgresql_sql": [{
            "database": a["db"]["name"],
            "unless": "SELECT 1 FROM pg_tables WHERE schemaname = 'public' AND tablename = 'items'",
            # Only the owner may connect (pg_hba allows only the app's own address anyway).
            "sql": f"REVOKE CONNECT ON DATABASE {a['db']['name']} FROM PUBLIC;\n"
                   "CREATE TABLE items (id serial PRIMARY KEY, name text NOT NULL, jail text NOT NULL);\n"
                   + "".join(f"INSERT INTO items (name, jail) VALUES ({_sql_literal(row)}, "
                             f"{_sql_literal(a['name'] + ' ' + a['ip'])});\n" for row in a["content"])
                   + f"ALTER TABLE items OWNER TO {a['db']['user']};\n",
        } for a in present],
        "proxy_vhosts": [{
            "server_name": a["domain"],
            "aliases": a["aliases"],
            "document_root": "/var/www/proxy",
            "config": f"ProxyPreserveHost On\nProxyPass / http://{a['ip']}/\nProxyPassReverse / http://{a['ip']}/",
        } for a in present],
    }


class FilterModule:
    """jailhost.jails apps filters."""

    def filters(self):
        return {"apps_plan": apps_plan}
