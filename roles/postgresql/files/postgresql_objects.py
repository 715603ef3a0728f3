"""Create the declared login roles and databases of the jailed PostgreSQL server, idempotently.

Run on the jail host by the postgresql role (python3 -c), with a JSON document on stdin:
  {"psql": [argv of psql connected as postgres], "check": bool,
   "users": [{"name", "password"}], "databases": [{"name", "owner"}]}
Prints {"changed": bool, "actions": [...]} (no secrets). Nothing is ever dropped. Passwords never
reach the server in clear text: the SCRAM-SHA-256 verifier is computed here, and a stored verifier
is compared with the declared password, so a password is only changed when it differs.
"""

import base64
import hashlib
import hmac
import json
import os
import re
import subprocess
import sys
import unicodedata

ITERATIONS = 4096  # PostgreSQL's default scram_iterations
VERIFIER = re.compile(r"^SCRAM-SHA-256\$(\d+):([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+):([A-Za-z0-9+/=]+)$")


def prepare(password):
    # libpq applies SASLprep; for ASCII passwords that is the identity, NFKC covers the usual rest.
    return (password if password.isascii() else unicodedata.normalize("NFKC", password)).encode()


def keys(password, salt, iterations):
    salted = hashlib.pbkdf2_hmac("sha256", prepare(password), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    return stored_key, server_key


def verifier(password):
    salt = os.urandom(16)
    stored_key, server_key = keys(password, salt, ITERATIONS)
    return (f"SCRAM-SHA-256${ITERATIONS}:{_b64(salt)}${_b64(stored_key)}:{_b64(server_key)}")


def _b64(data):
    return base64.b64encode(data).decode()


def matches(password, stored):
    match = VERIFIER.match(stored or "")
    if not match:
        return False
    iterations, salt, stored_key, server_key = match.groups()
    expected = keys(password, base64.b64decode(salt), int(iterations))
    return all(hmac.compare_digest(a, base64.b64decode(b)) for a, b in zip(expected, (stored_key, server_key)))


def psql(argv, sql):
    proc = subprocess.run(argv, input=sql, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        print(json.dumps({"failed": True, "msg": proc.stderr.strip()}))
        sys.exit(1)
    return proc.stdout


def main():
    spec = json.load(sys.stdin)
    state = json.loads(psql(spec["psql"], """
        SELECT json_build_object(
          'roles', (SELECT coalesce(json_object_agg(rolname, json_build_object(
                      'password', rolpassword, 'login', rolcanlogin)), '{}') FROM pg_authid),
          'databases', (SELECT coalesce(json_object_agg(datname, pg_get_userbyid(datdba)), '{}')
                        FROM pg_database));
    """))
    statements, actions = [], []
    for user in spec["users"]:
        name, current = user["name"], state["roles"].get(user["name"])
        if current is None:
            statements.append(f"CREATE ROLE \"{name}\" LOGIN PASSWORD '{verifier(user['password'])}';")
            actions.append(f"create role {name}")
            continue
        if not current["login"]:
            statements.append(f"ALTER ROLE \"{name}\" LOGIN;")
            actions.append(f"allow role {name} to log in")
        if not matches(user["password"], current["password"]):
            statements.append(f"ALTER ROLE \"{name}\" PASSWORD '{verifier(user['password'])}';")
            actions.append(f"change the password of role {name}")
    for database in spec["databases"]:
        name, owner = database["name"], database["owner"]
        current = state["databases"].get(name)
        if current is None:
            statements.append(f"CREATE DATABASE \"{name}\" OWNER \"{owner}\";")
            actions.append(f"create database {name} owned by {owner}")
        elif current != owner:
            statements.append(f"ALTER DATABASE \"{name}\" OWNER TO \"{owner}\";")
            actions.append(f"change the owner of database {name} from {current} to {owner}")
    if statements and not spec["check"]:
        # One statement per line, each in its own transaction (CREATE DATABASE cannot be in one).
        psql(spec["psql"], "\n".join(statements) + "\n")
    print(json.dumps({"changed": bool(statements), "actions": actions}))


main()
