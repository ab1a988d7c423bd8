"""The WebSocket example (examples/websocket/app.py, copied here by the tests as wsexample.py)
plus a slow ordinary route, to show request_timeout still applies to everything else."""

import time

from wsexample import app


@app.get("/slow/<float:seconds>")
def slow(seconds: float) -> str:
    time.sleep(seconds)
    return "slept"
