"""A fixture library module for the preload setting: records which process imported it."""

import os

SEEN = os.environ.get("PROBE_SEEN", "")
if SEEN:
    with open(SEEN, "a") as f:
        f.write(f"preloaded in {os.getpid()}\n")
