# Copyright (c) 2026, jailhost.jails contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""rootfs__firejail_keys (roles/rootfs/vars/main.yml) against the firejail.config keys that
firejail itself parses, in both releases we run on: 0.9.72 (Debian 12) and 0.9.74 (Debian 13).

An unknown line in firejail.config makes every firejail run fail ("Error: invalid line N in
firejail configuration file"), so a key the role lets through must be one that BOTH versions
accept. The two sets below are the keys of checkcfg() in src/firejail/checkcfg.c of
netblue30/firejail at the tags 0.9.72 and 0.9.74 (PARSE_YESNO and the strncmp'ed keys); the only
difference is etc-hide-blacklisted, removed by commit c2b6b6b1a ("private-etc rework") and
rejected by Debian 13's firejail (checked on a trixie lab host, docs/jails.md).
"""

from __future__ import annotations

from pathlib import Path

import yaml

VARS = Path(__file__).resolve().parents[4] / 'roles' / 'rootfs' / 'vars' / 'main.yml'
DEFAULTS = Path(__file__).resolve().parents[4] / 'roles' / 'rootfs' / 'defaults' / 'main.yml'

KEYS_0_9_74 = frozenset('''
allow-tray apparmor arp-probes bind browser-allow-drm browser-disable-u2f chroot dbus disable-mnt
file-copy-limit file-transfer firejail-prompt force-nonewprivs join join-timeout name-change
netfilter-default network overlayfs private-bin private-bin-no-local private-cache private-etc
private-home private-lib private-opt private-srv quiet-by-default restricted-network seccomp
seccomp-error-action seccomp-filter-add seccomp-log tracelog userns whitelist-disable-topdir
x11 xephyr-extra-params xephyr-screen xephyr-window-title xpra-attach xpra-extra-params
xvfb-extra-params xvfb-screen
'''.split())
KEYS_0_9_72 = KEYS_0_9_74 | {'etc-hide-blacklisted'}


def role_keys() -> list[str]:
    return yaml.safe_load(VARS.read_text(encoding='utf-8'))['rootfs__firejail_keys']


def test_every_key_the_role_allows_is_accepted_by_both_firejail_versions():
    keys = role_keys()
    assert len(keys) == len(set(keys))
    assert set(keys) <= KEYS_0_9_72 & KEYS_0_9_74, set(keys) - (KEYS_0_9_72 & KEYS_0_9_74)


def test_the_key_debian_13_rejects_is_not_allowed():
    assert 'etc-hide-blacklisted' not in role_keys()
    assert KEYS_0_9_72 - KEYS_0_9_74 == {'etc-hide-blacklisted'}


def test_the_defaults_use_only_allowed_keys():
    defaults = yaml.safe_load(DEFAULTS.read_text(encoding='utf-8'))['rootfs_firejail_config']
    assert set(defaults) <= set(role_keys())
    assert defaults['chroot'] == 'yes'
