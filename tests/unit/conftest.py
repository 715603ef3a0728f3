"""Make this working tree importable as ansible_collections.jailhost.jails.

scripts/install-deps.sh links the tree into .cache/collections; the unit tests import the plugins
through that path, exactly as Ansible does.
"""

import sys
from pathlib import Path

COLLECTIONS = Path(__file__).resolve().parents[2] / ".cache" / "collections"
if str(COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(COLLECTIONS))
