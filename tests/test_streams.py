"""Streamed responses (StreamingResponse, returned generators) and
FileResponse, over real HTTP: chunks as they come, backpressure from a
slow reader, a client that leaves, a producer that fails, bounded memory
for 1 GB, a stalled reader cut off, and a stop with streams open."""

import asyncio
import http.client
import os
import socket
import threading
import time

import pytest

from sufast import App, FileResponse, Header, Response, StreamingResponse
from sufast.testclient import TestClient

from conftest import connect, request

MiB = 1024 * 1024


def wait_for(condition, timeout=10.0, what="the condition"):
    """Polls ``condition`` until it is true, or fails after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def rss_bytes(pid="self"):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def read_head(sock):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        assert chunk, f"closed before the head: {data!r}"
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return head.decode("latin-1"), rest


def test_returned_generators_and_streaming_responses_stream(client, app):
    @app.get("/lines", headers={"content-type": "text/plain; charset=utf-8"})
    def lines():
        for n in range(3):
            yield f"line {n}\n"

    @app.get("/async/{count}")
    async def counted(count: int):
        async def chunks():
            for n in range(count):
                await asyncio.sleep(0)
                yield b"%d;" % n

        return StreamingResponse(chunks(), media_type="text/csv", headers={"x-kind": "async"})

    @app.get("/listed")
    def listed():
        return StreamingResponse([b"a", "b", bytearray(b"c")], status_code=201)

    response = client.get("/lines")
    assert response.status_code == 200
    assert response.text == "line 0\nline 1\nline 2\n"
    assert response.headers["transfer-encoding"] == "chunked"
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert "content-length" not in response.headers

    response = client.get("/async/4")
    assert response.text == "0;1;2;3;"
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.headers["x-kind"] == "async"

    response = client.get("/listed")
    assert (response.status_code, response.content) == (201, b"abc")
    # HEAD gets the head and no body.
    assert client.head("/lines").content == b""


def test_streaming_responses_are_never_stored():
    app = App()
    made = []

    @app.get("/fresh")
    def fresh():
        made.append(1)
        return StreamingResponse(iter([b"%d" % len(made)]))

    with TestClient(app) as client:
        assert client.get("/fresh").text == "2"
        assert client.get("/fresh").text == "3"
    assert app.routes[0].tier == "dynamic"


def test_chunks_arrive_before_the_stream_ends(app):
    release = threading.Event()

    @app.get("/slow")
    def slow():
        yield b"first"
        release.wait(10)
        yield b"second"

    port = app.start(access_log=False)
    with connect(port) as sock:
        sock.sendall(b"GET /slow HTTP/1.1\r\nhost: x\r\n\r\n")
        head, rest = read_head(sock)
        assert head.startswith("HTTP/1.1 200")
        while b"first" not in rest:
            rest += sock.recv(4096)
        release.set()
        while not rest.endswith(b"0\r\n\r\n"):
            rest += sock.recv(4096)
        assert b"second" in rest


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_slow_reader_holds_the_producer_back(make_app, kind):
    app = make_app(stream_buffer=64 * 1024)
    produced = [0]
    chunk = b"x" * 65536

    if kind == "sync":
        @app.get("/flood")
        def flood():
            while True:
                produced[0] += len(chunk)
                yield chunk
    else:
        @app.get("/flood")
        async def flood():
            async def chunks():
                while True:
                    produced[0] += len(chunk)
                    yield chunk

            return StreamingResponse(chunks())

    port = app.start(access_log=False)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    sock.settimeout(10)
    sock.connect(("127.0.0.1", port))
    with sock:
        sock.sendall(b"GET /flood HTTP/1.1\r\nhost: x\r\n\r\n")
        read_head(sock)

        def stalled():
            before = produced[0]
            time.sleep(0.2)
            return produced[0] == before

        wait_for(stalled, what="the producer to stop while nobody reads")
        held = produced[0]
        # The buffer, the socket buffers and the chunks in flight; a
        # producer nothing held back would be far past this.
        assert held < 16 * MiB, held
        # Reading lets it go on.
        received = 0
        while received < held + 4 * MiB:
            received += len(sock.recv(1 << 20))
        assert produced[0] > held


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_client_that_leaves_closes_the_generator(app, kind):
    closed = threading.Event()
    started = threading.Event()

    if kind == "sync":
        @app.get("/forever")
        def forever():
            try:
                while True:
                    started.set()
                    yield b"tick\n" * 1000
            finally:
                closed.set()
    else:
        @app.get("/forever")
        async def forever():
            async def ticks():
                try:
                    while True:
                        started.set()
                        yield b"tick\n" * 1000
                        await asyncio.sleep(0.001)
                finally:
                    closed.set()

            return StreamingResponse(ticks())

    port = app.start(access_log=False)
    with connect(port) as sock:
        sock.sendall(b"GET /forever HTTP/1.1\r\nhost: x\r\n\r\n")
        read_head(sock)
        assert started.wait(10)
    assert closed.wait(10), "the generator was not closed after its client left"
    # The server goes on serving.
    assert request(port, "GET", "/nothing").status == 404


def test_a_failing_producer_cuts_the_response_short(app, caplog):
    @app.get("/broken")
    def broken():
        yield b"partial"
        raise RuntimeError("the source failed")

    port = app.start(access_log=False)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/broken")
    response = conn.getresponse()
    assert response.status == 200
    with pytest.raises(http.client.IncompleteRead) as cut:
        response.read()
    assert cut.value.partial == b"partial"
    conn.close()
    assert any("the stream raised RuntimeError" in r.getMessage() for r in caplog.records)

    @app.get("/bad-chunk")
    def bad_chunk():
        yield 42

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/bad-chunk")
    with pytest.raises(http.client.IncompleteRead):
        conn.getresponse().read()
    conn.close()
    assert request(port, "GET", "/nothing").status == 404


def test_a_stalled_reader_is_disconnected_after_send_timeout(make_app):
    app = make_app(stream_buffer=16 * 1024, send_timeout=0.3)
    closed = threading.Event()

    @app.get("/flood")
    async def flood():
        async def chunks():
            try:
                while True:
                    yield b"x" * 65536
            finally:
                closed.set()

        return StreamingResponse(chunks())

    port = app.start(access_log=False)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
    sock.settimeout(10)
    sock.connect(("127.0.0.1", port))
    with sock:
        sock.sendall(b"GET /flood HTTP/1.1\r\nhost: x\r\n\r\n")
        read_head(sock)
        # Read nothing: after send_timeout the stream is closed.
        assert closed.wait(10), "the stalled stream was not closed"
        received = 0
        try:
            while True:
                data = sock.recv(1 << 20)
                if not data:
                    break
                received += len(data)
        except ConnectionResetError:
            pass
    assert request(port, "GET", "/nothing").status == 404


def test_a_1_gb_stream_and_a_1_gb_file_keep_memory_bounded(app, tmp_path):
    chunk = b"z" * MiB
    big = tmp_path / "big.bin"
    with open(big, "wb") as f:
        f.truncate(1024 * MiB)

    @app.get("/generated")
    def generated():
        for _ in range(1024):
            yield chunk

    @app.get("/file")
    def file():
        return FileResponse(big)

    port = app.start(access_log=False)
    for path in ("/generated", "/file"):
        base = rss_bytes()
        peak = base
        with connect(port) as sock:
            sock.sendall(f"GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n".encode())
            head, rest = read_head(sock)
            assert head.startswith("HTTP/1.1 200"), head
            received = len(rest)
            buffer = bytearray(1 << 20)
            while True:
                n = sock.recv_into(buffer)
                if not n:
                    break
                received += n
                if received % (64 * MiB) < n:
                    peak = max(peak, rss_bytes())
        peak = max(peak, rss_bytes())
        # The body and the chunk framing (for the stream) all arrived.
        assert received >= 1024 * MiB, (path, received)
        assert peak - base < 50 * MiB, (path, (peak - base) // MiB)


def test_a_stop_drains_streams_then_closes_them():
    app = App()
    closed = threading.Event()
    started = threading.Event()

    @app.get("/endless")
    async def endless():
        async def ticks():
            try:
                while True:
                    started.set()
                    yield b"tick\n"
                    await asyncio.sleep(0.01)
            finally:
                closed.set()

        return StreamingResponse(ticks())

    port = app.start(access_log=False)
    try:
        sock = connect(port)
        sock.sendall(b"GET /endless HTTP/1.1\r\nhost: x\r\n\r\n")
        read_head(sock)
        assert started.wait(10)
        begun = time.monotonic()
        app.stop(timeout=0.5)
        # It was served until the deadline, then cut.
        assert time.monotonic() - begun >= 0.4
        data = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            data += chunk
        assert not data.endswith(b"0\r\n\r\n")
        sock.close()
        assert closed.wait(10)
    finally:
        app.stop(timeout=0)


def test_middleware_sees_streaming_responses_and_can_add_headers(app, client):
    @app.middleware("http")
    async def stamp(request, call_next):
        response = await call_next(request)
        response.headers["x-stamped"] = type(response).__name__
        return response

    @app.get("/s")
    async def s():
        async def chunks():
            yield "a"
            yield "b"

        return StreamingResponse(chunks())

    response = client.get("/s")
    assert response.text == "ab"
    assert response.headers["x-stamped"] == "StreamingResponse"


def test_streams_get_app_wide_headers_and_no_compression(make_app):
    from sufast import Compression

    app = make_app(headers={"x-app": "1"}, compression=Compression(minimum_size=10))

    @app.get("/s")
    def s():
        yield b"a" * 5000

    with TestClient(app) as client:
        response = client.get("/s", headers={"accept-encoding": "gzip"})
    assert response.headers["x-app"] == "1"
    assert "content-encoding" not in response.headers
    assert response.content == b"a" * 5000


# FileResponse -----------------------------------------------------------


def test_file_responses_are_sent_by_the_server_with_validators_and_ranges(app, client, tmp_path):
    report = tmp_path / "report.csv"
    report.write_bytes(b"id,name\n" + b"1,ada\n" * 100)

    @app.get("/report")
    def get_report():
        return FileResponse(report, filename="report.csv")

    @app.get("/named")
    def named():
        return FileResponse(str(report), filename="résumé.txt", media_type="text/plain", headers={"x-source": "disk"})

    @app.get("/gone")
    def gone():
        return FileResponse(tmp_path / "missing.txt")

    response = client.get("/report")
    assert response.status_code == 200
    assert response.content == report.read_bytes()
    assert response.headers["content-length"] == str(report.stat().st_size)
    assert response.headers["content-type"].startswith("text/csv")
    assert response.headers["content-disposition"] == 'attachment; filename="report.csv"'
    etag = response.headers["etag"]
    assert etag.startswith('W/"')
    assert "last-modified" in response.headers

    assert client.get("/report", headers={"if-none-match": etag}).status_code == 304
    modified = response.headers["last-modified"]
    assert client.get("/report", headers={"if-modified-since": modified}).status_code == 304

    part = client.get("/report", headers={"range": "bytes=0-6"})
    assert part.status_code == 206
    assert part.content == b"id,name"
    assert part.headers["content-range"] == f"bytes 0-6/{report.stat().st_size}"
    assert client.get("/report", headers={"range": "bytes=99999-"}).status_code == 416

    response = client.get("/named")
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert response.headers["content-disposition"] == "attachment; filename*=utf-8''r%C3%A9sum%C3%A9.txt"
    assert response.headers["x-source"] == "disk"

    response = client.get("/gone")
    assert response.status_code == 404
    assert response.json() == {"detail": "Not Found"}

    head = client.head("/report")
    assert head.content == b""
    assert head.headers["content-length"] == str(report.stat().st_size)

    # A newer file is a new ETag.
    report.write_bytes(b"id,name\n")
    os.utime(report, (time.time() + 5, time.time() + 5))
    assert client.get("/report", headers={"if-none-match": etag}).status_code == 200


def test_a_header_param_reads_last_event_id_for_resuming(client, app):
    @app.get("/resume")
    def resume(last_event_id: str = Header("0")):
        start = int(last_event_id)

        def numbers():
            for n in range(start + 1, start + 3):
                yield f"{n}\n"

        return StreamingResponse(numbers(), media_type="text/plain")

    assert client.get("/resume", headers={"last-event-id": "7"}).text == "8\n9\n"
    assert client.get("/resume").text == "1\n2\n"


def test_a_plain_response_still_streams_nothing(client, app):
    @app.get("/plain")
    def plain():
        return Response(b"whole", media_type="text/plain")

    response = client.get("/plain")
    assert response.headers["content-length"] == "5"
    assert "transfer-encoding" not in response.headers


def test_a_stream_quiet_for_longer_than_keepalive_timeout_is_not_cut(make_app):
    # The connection's idle deadline is for the time between requests; a
    # response still on its way is no idle connection.
    app = make_app(keepalive_timeout=0.2)
    release = threading.Event()

    @app.get("/pause")
    def pause():
        yield b"before "
        release.wait(10)
        yield b"after"

    port = app.start(access_log=False)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/pause")
    response = conn.getresponse()
    assert response.read(7) == b"before "
    time.sleep(0.6)  # three keep-alive timeouts with nothing sent
    release.set()
    assert response.read() == b"after"
    conn.close()


# request.stream() -------------------------------------------------------


def test_request_bodies_stream_in_with_bounded_memory(make_app):
    from sufast import Request

    app = make_app(max_body_size=512 * MiB, stream_buffer=256 * 1024)

    @app.post("/upload")
    async def upload(request: Request):
        size = pieces = 0
        async for chunk in request.stream():
            size += len(chunk)
            pieces += 1
        return {"size": size, "pieces": pieces}

    @app.post("/sync")
    def sync_upload(request: Request):
        return {"size": sum(len(chunk) for chunk in request.stream())}

    assert [r.table_entry().get("stream") for r in app.routes] == [True, True]
    port = app.start(access_log=False)
    chunk = b"u" * MiB

    def body():
        for _ in range(200):
            yield chunk

    base = rss_bytes()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("POST", "/upload", body=body(), headers={"content-length": str(200 * MiB)})
    reply = conn.getresponse()
    assert reply.status == 200
    answer = __import__("json").loads(reply.read())
    conn.close()
    assert answer["size"] == 200 * MiB and answer["pieces"] > 1
    # Read whole, 200 MiB would have been held at once.
    assert rss_bytes() - base < 50 * MiB
    reply = request(port, "POST", "/sync", body=b"s" * 100_000)
    assert reply.status == 200 and reply.text == '{"size":100000}'


def test_a_streamed_body_over_the_limit_or_gone_fails_the_read(make_app):
    from sufast import ClientDisconnect, Request

    app = make_app(max_body_size=1 * MiB)
    seen = {}

    @app.post("/limited")
    async def limited(request: Request):
        size = 0
        try:
            async for chunk in request.stream():
                size += len(chunk)
        except Exception as exc:
            seen["error"] = exc
            raise
        return {"size": size}

    port = app.start(access_log=False)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.putrequest("POST", "/limited")
    conn.putheader("transfer-encoding", "chunked")
    conn.endheaders()
    piece = b"x" * 65536
    try:
        for _ in range(40):
            conn.send(b"%x\r\n%s\r\n" % (len(piece), piece))
        conn.send(b"0\r\n\r\n")
    except (BrokenPipeError, ConnectionResetError):
        pass
    reply = conn.getresponse()
    assert reply.status == 413
    assert b"max_body_size" in reply.read()
    conn.close()

    done = threading.Event()

    @app.post("/left")
    def left(request: Request):
        try:
            for _ in request.stream():
                pass
        except ClientDisconnect as exc:
            seen["left"] = exc
        finally:
            done.set()
        return {}

    with connect(port) as sock:
        sock.sendall(b"POST /left HTTP/1.1\r\nhost: x\r\ncontent-length: 100000\r\n\r\n" + b"y" * 1000)
    assert done.wait(10)
    assert isinstance(seen.get("left"), ClientDisconnect)


def test_body_still_works_where_the_body_streams_and_stream_works_everywhere(client, app):
    from sufast import Request

    @app.post("/either")
    async def either(request: Request, whole: bool = False):
        if whole:
            return {"body": (await request.body()).decode()}
        return {"chunks": [chunk.decode() async for chunk in request.stream()]}

    @app.post("/plain")
    def plain(request: Request, n: int = 0):
        return {"chunks": [chunk.decode() for chunk in request.stream()], "n": n}

    assert client.post("/either?whole=true", content=b"abc").json() == {"body": "abc"}
    assert "".join(client.post("/either", content=b"abcdef").json()["chunks"]) == "abcdef"
    assert client.post("/plain", content=b"xyz").json() == {"chunks": ["xyz"], "n": 0}
