from collections.abc import Sequence
from typing import Any

def zxcvbn(password: str, user_inputs: Sequence[Any] | None = ...,
           max_length: int = ...) -> dict[str, Any]: ...
