"""sufast: write handlers in Python, serve them from Rust.

>>> from sufast import App
>>> app = App()
>>> @app.get("/")
... def hello():
...     return {"message": "hello"}
>>> app.run()  # doctest: +SKIP
"""

from . import status
from ._version import __version__
from .applications import App
from .background import BackgroundTasks
from .compression import Compression
from .cors import CORS
from .exceptions import HTTPException, RequestValidationError, RouteError, RouteWarning, SufastError
from .forms import FormData, UploadFile
from .params import Body, Cookie, Depends, File, Form, Header, Path, Query
from .routing import Router
from .requests import ClientDisconnect, Request
from .responses import FileResponse, HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response, StreamingResponse
from .sse import EventSourceResponse, ServerSentEvent
from .staticfiles import StaticFiles
from .websockets import WebSocket, WebSocketDisconnect

#: The seed's name for ``App``.
Sufast = App

__all__ = [
    "App",
    "Sufast",
    "CORS",
    "Compression",
    "Response",
    "JSONResponse",
    "HTMLResponse",
    "PlainTextResponse",
    "RedirectResponse",
    "StreamingResponse",
    "FileResponse",
    "EventSourceResponse",
    "ServerSentEvent",
    "Request",
    "ClientDisconnect",
    "Depends",
    "BackgroundTasks",
    "Router",
    "Header",
    "Body",
    "Cookie",
    "Query",
    "Path",
    "Form",
    "File",
    "UploadFile",
    "FormData",
    "StaticFiles",
    "WebSocket",
    "WebSocketDisconnect",
    "HTTPException",
    "RequestValidationError",
    "SufastError",
    "RouteError",
    "RouteWarning",
    "status",
    "__version__",
]
