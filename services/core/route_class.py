"""The route class of every router: a sync endpoint that answers a finished ``Response``
ends its own unit of work.

FastAPI runs a sync endpoint in a worker thread, then the request session's exit
(``deps._session``) would need a second hop to the thread pool to commit. Committing in
the endpoint's own thread, right after it returns, saves that hop; the session's exit then
only closes it (no I/O) or, if the endpoint raised, rolls it back. Only when the answer is
already a ``Response``: a returned model is still to be validated against the route's
``response_model``, and a failure there must roll back, so that session is committed
by the dependency after it.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

from fastapi.routing import APIRoute
from sqlalchemy.orm import Session
from starlette.responses import Response


class UnitOfWorkRoute(APIRoute):
    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        if not inspect.iscoroutinefunction(endpoint):
            endpoint = _committing(endpoint)
        super().__init__(path, endpoint, **kwargs)


def _committing(endpoint: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(endpoint)  # FastAPI reads the signature through __wrapped__
    def run(*args: Any, **kwargs: Any) -> Any:
        answer = endpoint(*args, **kwargs)
        if isinstance(answer, Response):
            for value in kwargs.values():
                if isinstance(value, Session):
                    value.commit()
        return answer

    return run
