"""The WebSocket example (examples/websocket/app.py, copied here by the tests as wsexample.py)
plus a slow ordinary route, to show request_timeout still applies to everything else."""

import time

from wsexample import app


@app.get("/slow/<int:seconds>")
def slow(seconds: int) -> str:
    time.sleep(seconds)
    return "slept"
