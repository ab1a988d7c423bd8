"""A fixture app that is slow to load: its import touches ``$GATE.loading``, then waits until
the file ``$GATE`` exists."""

import os
import time

open(os.environ["GATE"] + ".loading", "w").close()
for _ in range(1200):
    if os.path.exists(os.environ["GATE"]):
        break
    time.sleep(0.05)


def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"gated"]
