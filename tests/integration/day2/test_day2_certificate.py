"""Rotating the TLS certificate (docs/operations.md): a new certificate and key given to the
apache role are served after a graceful reload, without restarting the web jail; a key that does
not belong to the certificate is refused and the served certificate stays; going back to the
self-signed certificate serves the one generated before."""

from __future__ import annotations

import hashlib
import socket
import ssl
import subprocess

import pytest

from hostlib import jail_pids, load_vars, public_address, run_play

VARS = load_vars(__file__)
ROLE = {"roles": [{"role": "jailhost.jails.apache"}]}


def served_fingerprint(host) -> str:
    context = ssl._create_unverified_context()
    with socket.create_connection((public_address(host), 443), timeout=10) as sock:
        with context.wrap_socket(sock, server_hostname="www.example.test") as tls:
            return hashlib.sha256(tls.getpeercert(binary_form=True)).hexdigest()


def new_pair(tmp_path, name: str) -> tuple[str, str, str]:
    """A certificate and key made on the controller: (cert PEM, key PEM, SHA-256 of the DER)."""
    key, crt = tmp_path / f"{name}.key", tmp_path / f"{name}.crt"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-sha256", "-nodes", "-days", "30",
                    "-subj", "/CN=www.example.test", "-addext", "subjectAltName=DNS:www.example.test",
                    "-addext", "basicConstraints=critical,CA:FALSE", "-keyout", str(key), "-out", str(crt)],
                   check=True, capture_output=True)
    der = subprocess.run(["openssl", "x509", "-in", str(crt), "-outform", "DER"], check=True, capture_output=True).stdout
    return crt.read_text(), key.read_text(), hashlib.sha256(der).hexdigest()


SELFSIGNED = "/var/lib/jailhost/jails/web/root/etc/apache2/tls/selfsigned.crt"


@pytest.fixture
def selfsigned(host):
    """The fingerprint of the self-signed certificate the role generated; served again after the test."""
    der = host.check_output(f"openssl x509 -in {SELFSIGNED} -outform DER | sha256sum")
    fingerprint = der.split()[0]
    yield fingerprint
    assert served_fingerprint(host) == fingerprint


def test_rotate_the_certificate_then_back_to_self_signed(host, tmp_path, selfsigned):
    crt, key, fingerprint = new_pair(tmp_path, "rotated")
    other_crt, other_key, _ = new_pair(tmp_path, "other")
    main = jail_pids(host, "web")[0]

    rotated = run_play(host, ROLE, tmp_path, extra_vars={**VARS, "apache_tls_certificate": crt, "apache_tls_key": key})
    assert rotated.returncode == 0, rotated.stdout + rotated.stderr
    assert served_fingerprint(host) == fingerprint
    assert jail_pids(host, "web")[0] == main, "a certificate change restarted the jail instead of a graceful reload"
    assert key not in rotated.stdout + rotated.stderr  # the key is never logged
    key_file = host.file("/var/lib/jailhost/jails/web/root/etc/apache2/tls/server.key")
    assert (key_file.user, key_file.mode) == ("root", 0o600)

    # A key of another certificate: refused before any reload, the rotated certificate stays served.
    mismatch = run_play(host, ROLE, tmp_path,
                        extra_vars={**VARS, "apache_tls_certificate": crt, "apache_tls_key": other_key})
    assert mismatch.returncode != 0
    assert "rejected and the previous one restored" in mismatch.stdout
    assert served_fingerprint(host) == fingerprint

    back = run_play(host, ROLE, tmp_path, extra_vars=VARS)
    assert back.returncode == 0, back.stdout + back.stderr
    assert other_crt not in back.stdout
