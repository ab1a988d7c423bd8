# Partial stub: what flaskstack.websocket uses of uWSGI's embedded module (it exists only inside
# uWSGI's workers and has no type information); any other name is Any.
from collections.abc import Callable
from typing import Any

websocket_handshake: Callable[..., Any]

def set_user_harakiri(seconds: int, /) -> None: ...
def __getattr__(name: str) -> Any: ...
