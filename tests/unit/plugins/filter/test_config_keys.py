"""config_keys must give what one lineinfile per key gives."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.jailhost.jails.plugins.filter.config_keys import config_keys

FIREJAIL = """\
# arp-probes 2
# chroot no
chroot no
# force-nonewprivs no
xephyr-screen 640x480
# xephyr-screen 800x600
"""


def test_sets_the_last_matching_line_and_keeps_the_others():
    out = config_keys(FIREJAIL, {"chroot": "yes", "force-nonewprivs": "yes"})
    assert out == FIREJAIL.replace("\nchroot no", "\nchroot yes").replace(
        "# force-nonewprivs no", "force-nonewprivs yes")


def test_appends_a_missing_key_and_is_stable():
    once = config_keys(FIREJAIL, {"bind": "no"})
    assert once.endswith("# xephyr-screen 800x600\nbind no\n")
    assert config_keys(once, {"bind": "no"}) == once


def test_a_key_is_not_a_prefix_match():
    assert config_keys("chroot-extra 1\n", {"chroot": "yes"}) == "chroot-extra 1\nchroot yes\n"


def test_values_are_strings_and_text_without_final_newline():
    assert config_keys("x 1", {"x": 2}) == "x 2\n"


@pytest.mark.parametrize("settings", [{"bad key": "1"}, {"a": "1\n2"}, ["chroot"]])
def test_bad_settings(settings):
    with pytest.raises(AnsibleFilterError):
        config_keys("", settings)
