from typing import Any

from flask_admin import BaseView

class ModelView(BaseView):
    def __init__(self, model: Any, session: Any, name: str | None = ...,
                 category: str | None = ..., endpoint: str | None = ..., url: str | None = ...,
                 **kwargs: Any) -> None: ...
    def on_model_change(self, form: Any, model: Any, is_created: bool) -> None: ...

def __getattr__(name: str) -> Any: ...
