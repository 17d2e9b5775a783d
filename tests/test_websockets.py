"""WebSockets over a real socket, with the ``websockets`` package as the
client: echo of text, binary and JSON, close codes both ways, 1,000
messages, an oversize message, 100 sockets at once, a handler that
raises, a refusal before accept, subprotocols, parameters and
dependencies, and a stop with sockets open."""

import asyncio
import threading

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect as ws_connect

from sufast import App, Depends, HTTPException, WebSocket, WebSocketDisconnect

from conftest import request


def url(port, path):
    return f"ws://127.0.0.1:{port}{path}"


@pytest.fixture
def served(make_app):
    """An app with the echo routes, started; yields (app, port, seen)."""
    app = make_app(headers={"x-app": "1"}, ws_max_size=64 * 1024)
    seen = {}

    @app.websocket("/echo")
    async def echo(websocket: WebSocket):
        await websocket.accept()
        async for message in websocket:
            if isinstance(message, str):
                await websocket.send_text(message)
            else:
                await websocket.send_bytes(message)
        seen["close"] = websocket.close_code

    @app.websocket("/json")
    async def json_echo(websocket: WebSocket):
        await websocket.accept()
        while True:
            try:
                data = await websocket.receive_json()
            except WebSocketDisconnect as gone:
                seen["json close"] = gone.code
                return
            await websocket.send_json({"got": data})

    @app.websocket("/bye")
    async def bye(websocket: WebSocket):
        await websocket.accept()
        await websocket.send_text("bye")
        await websocket.close(4000, "done here")

    @app.websocket("/boom")
    async def boom(websocket: WebSocket):
        await websocket.accept()
        await websocket.receive_text()
        raise RuntimeError("the handler failed")

    @app.websocket("/private")
    async def private(websocket: WebSocket):
        await websocket.close()

    @app.websocket("/unready")
    async def unready(websocket: WebSocket):
        raise RuntimeError("before accept")

    def user(token: str = "") -> str:
        if token != "secret":
            raise HTTPException(401, "a token is needed")
        return "ada"

    @app.websocket("/rooms/{room}")
    async def rooms(websocket: WebSocket, room: str, name: str = Depends(user), limit: int = 3):
        await websocket.accept(subprotocol="chat.v1" if "chat.v1" in websocket.headers.get("sec-websocket-protocol", "") else None)
        await websocket.send_json({"room": room, "user": name, "limit": limit, "path": websocket.path_params})
        await websocket.close()

    port = app.start(access_log=False)
    yield app, port, seen


def test_text_binary_and_json_echo(served):
    app, port, seen = served
    with ws_connect(url(port, "/echo")) as ws:
        ws.send("héllo")
        assert ws.recv() == "héllo"
        ws.send(b"\x00\x01\xff")
        assert ws.recv() == b"\x00\x01\xff"
        for n in range(1000):
            ws.send(f"message {n}")
        assert [ws.recv() for _ in range(1000)] == [f"message {n}" for n in range(1000)]
    with ws_connect(url(port, "/json")) as ws:
        ws.send('{"a": [1, 2]}')
        assert ws.recv() == '{"got":{"a":[1,2]}}'
    assert request(port, "GET", "/nothing").status == 404


def test_close_codes_both_ways(served):
    app, port, seen = served
    with ws_connect(url(port, "/bye")) as ws:
        assert ws.recv() == "bye"
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv()
    assert closed.value.rcvd.code == 4000
    assert closed.value.rcvd.reason == "done here"

    ws = ws_connect(url(port, "/json"))
    ws.close(4001, "client leaves")
    wait_for(lambda: "json close" in seen)
    assert seen["json close"] == 4001


def test_a_handler_that_raises_closes_with_1011(served, caplog):
    app, port, seen = served
    with ws_connect(url(port, "/boom")) as ws:
        ws.send("go")
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv()
    assert closed.value.rcvd.code == 1011
    assert any("the WebSocket handler raised RuntimeError" in r.getMessage() for r in caplog.records)


def test_refusals_before_accept_are_http_answers(served):
    app, port, seen = served
    with pytest.raises(InvalidStatus) as refused:
        ws_connect(url(port, "/private"))
    assert refused.value.response.status_code == 403
    with pytest.raises(InvalidStatus) as refused:
        ws_connect(url(port, "/unready"))
    assert refused.value.response.status_code == 500
    with pytest.raises(InvalidStatus) as refused:
        ws_connect(url(port, "/rooms/lobby"))
    assert refused.value.response.status_code == 401
    assert b"a token is needed" in refused.value.response.body
    # A plain request is told to upgrade.
    plain = request(port, "GET", "/echo")
    assert plain.status == 426
    assert "detail" in plain.text


def test_parameters_dependencies_subprotocols_and_app_headers(served):
    app, port, seen = served
    with ws_connect(url(port, "/rooms/lobby?token=secret&limit=5"), subprotocols=["chat.v1"]) as ws:
        assert ws.subprotocol == "chat.v1"
        assert ws.response.headers["x-app"] == "1"
        assert ws.recv() == '{"room":"lobby","user":"ada","limit":5,"path":{"room":"lobby"}}'


def test_an_oversize_message_is_refused_with_1009(served):
    app, port, seen = served
    with ws_connect(url(port, "/echo"), max_size=None) as ws:
        ws.send("x" * 1000)
        assert ws.recv() == "x" * 1000
        ws.send("y" * (64 * 1024 + 1))
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv()
    assert closed.value.rcvd.code == 1009
    wait_for(lambda: "close" in seen)
    assert seen["close"] == 1009
    # The server goes on.
    with ws_connect(url(port, "/echo")) as ws:
        ws.send("again")
        assert ws.recv() == "again"


def test_a_hundred_sockets_at_once(served):
    app, port, seen = served
    sockets = [ws_connect(url(port, "/echo")) for _ in range(100)]
    try:
        for n, ws in enumerate(sockets):
            ws.send(f"from {n}")
        for n, ws in enumerate(sockets):
            assert ws.recv() == f"from {n}"
    finally:
        for ws in sockets:
            ws.close()


def test_a_websocket_handler_must_be_async():
    app = App()
    with pytest.raises(Exception, match="must be async def"):
        @app.websocket("/sync")
        def sync_handler(websocket):
            pass


def test_a_stop_closes_open_sockets_with_1001():
    app = App()
    inside = threading.Event()
    ended = {}

    @app.websocket("/wait")
    async def wait(websocket: WebSocket):
        await websocket.accept()
        inside.set()
        try:
            await websocket.receive_text()
        except WebSocketDisconnect as gone:
            ended["code"] = gone.code

    port = app.start(access_log=False)
    try:
        ws = ws_connect(url(port, "/wait"))
        assert inside.wait(10)
        app.stop(timeout=5)
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
        assert closed.value.rcvd.code == 1001
        ws.close()
    finally:
        app.stop(timeout=0)


def wait_for(condition, timeout=10.0):
    import time

    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_the_async_iterator_and_iter_helpers(make_app):
    app = make_app()
    got = []

    @app.websocket("/collect")
    async def collect(websocket: WebSocket):
        await websocket.accept()
        async for text in websocket.iter_text():
            got.append(text)
            if text == "last":
                await websocket.send_text(str(len(got)))
        await asyncio.sleep(0)

    port = app.start(access_log=False)
    with ws_connect(url(port, "/collect")) as ws:
        for word in ("a", "b", "last"):
            ws.send(word)
        assert ws.recv() == "3"
    wait_for(lambda: got == ["a", "b", "last"])
