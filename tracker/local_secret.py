"""The click secret of `tracker run`: generated once per data directory, for the demo on a laptop.

Signed click links need a secret, and the demo page should work out of the box. Shipping a
default secret would let anyone sign redirects on every deployment that kept it, so none is
shipped: `tracker run` (the laptop command) makes a random one the first time, keeps it in
`<data dir>/click-secret` (readable by its owner only) and reuses it, so links it signed stay
valid across restarts. `tracker serve` never does this: a deployment sets TRACKER_CLICK_SECRET,
or /c stays off (501).
"""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path

log = logging.getLogger(__name__)

FILE_NAME = "click-secret"
#: Random bytes in a generated secret (its text is longer: URL-safe base64).
SECRET_BYTES = 32


def local_click_secret(data_dir: Path) -> str:
    """The secret kept in `data_dir`, created if there is none yet (mode 0600).

    The new secret is written to a file of this process and then hard-linked into place, so a
    process starting at the same moment reads either no file or a complete one.
    """
    path = data_dir / FILE_NAME
    if not path.exists():
        draft = data_dir / f".{FILE_NAME}.{os.getpid()}"
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as file:
            file.write(secrets.token_urlsafe(SECRET_BYTES) + "\n")
        try:
            os.link(draft, path)
            log.info("generated a click signing secret for this data directory in %s; "
                     "deployments set TRACKER_CLICK_SECRET instead", path)
        except FileExistsError:
            pass  # another process made one first: use theirs
        finally:
            draft.unlink()
    return path.read_text().strip()
