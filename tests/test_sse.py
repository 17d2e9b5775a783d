"""Server-sent events over real HTTP: the event format, keep-alive pings
while the source is quiet, Last-Event-ID, and 200 clients at once."""

import asyncio
import selectors
import threading

import pytest

from sufast import EventSourceResponse, Header, ServerSentEvent

from conftest import connect


def test_events_are_encoded_as_the_event_stream_format(client, app):
    @app.get("/events")
    async def events():
        async def source():
            yield ServerSentEvent(data="two\nlines", event="note", id="1", retry=2500)
            yield {"data": {"n": 2}, "id": "2"}
            yield "plain"
            yield ServerSentEvent(comment="just a comment")

        return EventSourceResponse(source())

    @app.get("/sync")
    def sync_events():
        return EventSourceResponse(iter(["a", "b"]), headers={"x-feed": "1"})

    response = client.get("/events")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/event-stream"
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["x-accel-buffering"] == "no"
    assert response.text == (
        "event: note\nid: 1\nretry: 2500\ndata: two\ndata: lines\n\n"
        'id: 2\ndata: {"n":2}\n\n'
        "data: plain\n\n"
        ": just a comment\n\n"
    )
    response = client.get("/sync")
    assert response.text == "data: a\n\ndata: b\n\n"
    assert response.headers["x-feed"] == "1"


def test_a_quiet_source_gets_pings(client, app):
    @app.get("/quiet")
    async def quiet():
        async def source():
            yield "first"
            await asyncio.sleep(0.3)
            yield "second"

        return EventSourceResponse(source(), ping=0.05)

    text = client.get("/quiet").text
    assert text.startswith("data: first\n\n: ping\n\n")
    assert text.endswith("data: second\n\n")


def test_last_event_id_resumes_a_feed(client, app):
    @app.get("/feed")
    async def feed(last_event_id: str = Header("0")):
        start = int(last_event_id) + 1

        async def source():
            for n in range(start, start + 2):
                yield ServerSentEvent(data=n, id=str(n))

        return EventSourceResponse(source())

    assert client.get("/feed", headers={"last-event-id": "41"}).text == "id: 42\ndata: 42\n\nid: 43\ndata: 43\n\n"


def test_event_fields_that_would_break_the_stream_are_refused():
    with pytest.raises(ValueError, match="line break"):
        ServerSentEvent(data="x", id="1\n2")
    with pytest.raises(ValueError, match="retry"):
        ServerSentEvent(retry=-1)
    with pytest.raises(ValueError, match="ping"):
        EventSourceResponse(iter([]), ping=0)


def test_two_hundred_clients_stream_at_once(app):
    clients = 200
    gates = []  # made on the app's loop (Python 3.9 binds an Event to a loop)
    joined = [0]
    all_joined = threading.Event()

    @app.get("/live")
    async def live():
        async def source():
            if not gates:
                gates.append(asyncio.Event())
            joined[0] += 1
            if joined[0] == clients:
                all_joined.set()
                gates[0].set()
            yield ServerSentEvent(data="hello", event="open")
            # Every client is connected and waiting here at once.
            await gates[0].wait()
            for n in range(3):
                yield ServerSentEvent(data=n, id=str(n))

        return EventSourceResponse(source())

    port = app.start(access_log=False)
    socks = [connect(port) for _ in range(clients)]
    selector = selectors.DefaultSelector()
    received = {}
    try:
        for sock in socks:
            sock.sendall(b"GET /live HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            sock.setblocking(False)
            selector.register(sock, selectors.EVENT_READ)
            received[sock] = b""
        open_socks = set(socks)
        assert all_joined.wait(30), f"only {joined[0]} of {clients} streams started"
        while open_socks:
            events = selector.select(timeout=30)
            assert events, f"{len(open_socks)} streams stalled"
            for key, _ in events:
                data = key.fileobj.recv(65536)
                if data:
                    received[key.fileobj] += data
                else:
                    selector.unregister(key.fileobj)
                    open_socks.discard(key.fileobj)
    finally:
        for sock in socks:
            sock.close()
        selector.close()
    for data in received.values():
        assert data.startswith(b"HTTP/1.1 200"), data[:80]
        body = data.partition(b"\r\n\r\n")[2]
        for n in range(3):
            assert b"id: %d\ndata: %d\n\n" % (n, n) in body
        assert body.endswith(b"0\r\n\r\n")
