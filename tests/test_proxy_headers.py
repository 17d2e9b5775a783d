"""``forwarded_allow_ips``: the client and scheme a trusted proxy names
reach ``request.client``, ``request.url`` and the access log; from anyone
else the forwarding headers are ignored."""

from __future__ import annotations

import json

import pytest
from conftest import request

from sufast import App, Request, SufastError


def who(make_app, **options) -> App:
    app = make_app(**options)

    @app.get("/who")
    def whoami(request: Request):
        client = request.client
        return {"host": client.host, "port": client.port, "scheme": request.scheme, "url": request.url}

    return app


def ask(port: int, headers) -> dict:
    reply = request(port, "GET", "/who?q=1", headers=headers)
    assert reply.status == 200, reply
    return json.loads(reply.body)


FORWARDED = {"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https", "Host": "example.com"}


def test_a_trusted_proxy_names_the_client_and_scheme(make_app):
    port = who(make_app, forwarded_allow_ips=["127.0.0.1"]).start()
    seen = ask(port, FORWARDED)
    assert seen == {"host": "203.0.113.7", "port": 0, "scheme": "https", "url": "https://example.com/who?q=1"}
    # Without the headers, the peer itself.
    seen = ask(port, {"Host": "example.com"})
    assert seen["host"] == "127.0.0.1" and seen["port"] > 0 and seen["url"] == "http://example.com/who?q=1"


@pytest.mark.parametrize("trusted", [None, [], ["10.0.0.1"], ["192.168.0.0/16", "::1"]])
def test_headers_from_an_untrusted_peer_are_ignored(make_app, trusted):
    port = who(make_app, forwarded_allow_ips=trusted).start()
    seen = ask(port, FORWARDED)
    assert (seen["host"], seen["scheme"]) == ("127.0.0.1", "http")
    assert seen["port"] > 0


def test_the_client_is_the_rightmost_hop_no_proxy_vouches_for(make_app):
    port = who(make_app, forwarded_allow_ips="127.0.0.0/8, 10.0.0.0/8").start()
    # A client-written first hop, then the hops trusted proxies appended.
    seen = ask(port, {"X-Forwarded-For": "198.51.100.66, 203.0.113.7:4711, 10.1.1.1"})
    assert (seen["host"], seen["port"]) == ("203.0.113.7", 4711)


def test_forwarded_is_used_without_x_forwarded_for(make_app):
    port = who(make_app, forwarded_allow_ips=["*"]).start()
    seen = ask(port, {"Forwarded": 'for="[2001:db8::17]:4711";proto=https;by=10.0.0.1'})
    assert (seen["host"], seen["port"], seen["scheme"]) == ("2001:db8::17", 4711, "https")
    seen = ask(port, {"Forwarded": "for=192.0.2.60", "X-Forwarded-For": "192.0.2.61"})
    assert seen["host"] == "192.0.2.61"


def test_start_replaces_the_apps_list_while_it_serves(make_app):
    app = who(make_app)
    port = app.start(forwarded_allow_ips=["127.0.0.1"])
    assert ask(port, FORWARDED)["host"] == "203.0.113.7"
    app.stop()
    port = app.start()
    assert ask(port, FORWARDED)["host"] == "127.0.0.1"


def test_the_access_log_names_the_forwarded_client(make_app, capfd):
    port = who(make_app, forwarded_allow_ips=["127.0.0.1"]).start(access_log=True)
    ask(port, FORWARDED)
    assert '203.0.113.7 - - [' in capfd.readouterr().err


def test_a_bad_list_raises_where_the_app_is_made():
    with pytest.raises(SufastError, match=r'forwarded_allow_ips: "10\.0\.0\.0/33" is not an IP address'):
        App(forwarded_allow_ips=["10.0.0.0/33"])
    with pytest.raises(SufastError, match="forwarded_allow_ips"):
        App(forwarded_allow_ips=["proxy.internal"])
    with pytest.raises(TypeError, match="forwarded_allow_ips must be strings"):
        App(forwarded_allow_ips=[127001])
    App(forwarded_allow_ips=["127.0.0.1", "::1", "10.0.0.0/8", "fd00::/8", "*"])
