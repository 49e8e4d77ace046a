"""Where secrets live when nobody configured one: a folder of the user's, apart from the data.

Whoever can write ``$AIOPS_HOME`` (the ledger, the store) must not thereby read the keys that
vouch for it, so the audit HMAC key and the local signing keys default to a folder outside it:
``$AIOPS_KEY_DIR``, else ``$XDG_CONFIG_HOME/aiops/keys``, else ``~/.config/aiops/keys``. The folder
is created 0700 and each key file 0600.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

KEY_DIR_ENV = "AIOPS_KEY_DIR"


def key_dir() -> Path:
    """The key folder, created 0700 if missing (an existing folder keeps its mode)."""
    configured = os.environ.get(KEY_DIR_ENV, "").strip()
    if configured:
        folder = Path(configured).expanduser()
    else:
        config_home = os.environ.get("XDG_CONFIG_HOME", "").strip()
        base = Path(config_home).expanduser() if config_home else Path.home() / ".config"
        folder = base / "aiops" / "keys"
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    return folder.absolute()


def scoped_key_path(scope: str, name: str) -> Path:
    """The key file ``name`` of one deployment (``scope``: e.g. its ledger URL), so two homes on
    one machine do not share a key by accident."""
    digest = hashlib.sha256(scope.encode("utf-8")).hexdigest()[:16]
    folder = key_dir() / digest
    folder.mkdir(mode=0o700, exist_ok=True)
    return folder / name
