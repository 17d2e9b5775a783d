"""JSON sent and read over real HTTP, the same whether orjson is installed
or not: make test runs this file in both venvs. With orjson, what it would
change (integers beyond 64 bits, keys that are not strings, NaN, non-field
attributes of a dataclass) goes to the standard library."""

import dataclasses
import datetime
import decimal
import enum
import importlib.util
import json
import sys
import uuid
from typing import Optional

import pytest

from sufast import Request
from sufast import _json

BIG = 2**70 + 1


class Colour(str, enum.Enum):
    RED = "red"


@dataclasses.dataclass
class Point:
    x: float
    label: Optional[str] = None

    def __post_init__(self) -> None:
        self.cache = "not a field"  # not sent: only fields are


def test_the_encoder_is_orjson_exactly_when_it_is_installed():
    installed = importlib.util.find_spec("orjson") is not None
    assert (_json.orjson is not None) == installed
    if sys.prefix.endswith("-extras"):
        assert installed, "the extras venv tests the orjson path"


@pytest.mark.parametrize(
    "value, wire",
    [
        ({"a": 1, "b": [True, None], "s": "héllo ✓"}, '{"a":1,"b":[true,null],"s":"héllo ✓"}'),
        ({"big": BIG, "neg": -BIG}, f'{{"big":{BIG},"neg":{-BIG}}}'),
        ({1: "one", None: "none", False: "no", 2.5: "f"}, '{"1":"one","null":"none","false":"no","2.5":"f"}'),
        ([Point(1.5), Point(2.0, "b")], '[{"x":1.5,"label":null},{"x":2.0,"label":"b"}]'),
        (
            {"when": datetime.datetime(2026, 11, 25, 10, 15, 0, 7, tzinfo=datetime.timezone.utc), "day": datetime.date(2026, 1, 2)},
            '{"when":"2026-11-25T10:15:00.000007+00:00","day":"2026-01-02"}',
        ),
        ({"price": decimal.Decimal("1.10"), "id": uuid.UUID(int=5), "c": Colour.RED}, '{"price":"1.10","id":"00000000-0000-0000-0000-000000000005","c":"red"}'),
        ({"nullable": "null", "n": None, "t": (1, 2)}, '{"nullable":"null","n":null,"t":[1,2]}'),
    ],
    ids=["plain", "big-ints", "non-str-keys", "dataclasses", "dates", "decimal-uuid-enum", "nulls-and-tuples"],
)
def test_returned_values_are_sent_exactly(app, client, value, wire):
    app.get("/v")(lambda request: value)
    reply = client.get("/v")
    assert (reply.status_code, reply.headers.get("Content-Type")) == (200, "application/json")
    assert reply.content == wire.encode("utf-8")


@pytest.mark.parametrize(
    "value",
    [float("nan"), {"x": float("inf")}, [None, float("-inf")], {"p": Point(float("nan"))}, [{"a": None, "b": [1.0, float("nan")]}]],
    ids=["nan", "inf-in-dict", "-inf-beside-null", "nan-in-dataclass", "nan-nested-beside-null"],
)
def test_nan_and_infinities_are_refused_with_a_500(app, client, value):
    app.get("/bad")(lambda request: value)
    app.get("/ok")(lambda request: {"ok": None})
    client.raise_server_exceptions = False  # the 500 is under test
    reply = client.get("/bad")
    assert (reply.status_code, reply.json()) == (500, {"detail": "Internal Server Error"})
    assert client.get("/ok").content == b'{"ok":null}'


def test_floats_keep_their_value():
    floats = [0.1, 1.0, -0.0, 1e16, 1e-7, 1e22, 5e-324, 1.7976931348623157e308, 123456.789]
    for value in floats:
        sent = json.loads(_json.dump_json(value))
        assert sent == value and type(sent) is float and str(sent) == str(value)


def test_bodies_are_read_exactly(app, client):
    app.post("/echo")(lambda request: {"value": request.json(), "types": sorted({type(v).__name__ for v in request.json().values()})})

    async def echo_async(request: Request):
        return await request.json()

    app.post("/echo-async")(echo_async)
    body = f'{{"big":{BIG},"just64":18446744073709551615,"f":1.5,"s":"caf\\u00e9","n":null}}'.encode("utf-8")
    reply = client.post("/echo", content=body)
    assert reply.status_code == 200
    assert reply.json() == {
        "value": {"big": BIG, "just64": 18446744073709551615, "f": 1.5, "s": "café", "n": None},
        "types": ["NoneType", "float", "int", "str"],
    }
    assert client.post("/echo-async", content=body).content == body.replace(b"caf\\u00e9", "café".encode("utf-8"))
    # UTF-16 with its byte-order mark, as json.loads reads it.
    reply = client.post("/echo-async", content='{"k": "v"}'.encode("utf-16"))
    assert reply.json() == {"k": "v"}
    for bad in (b'{"a": ', b"\xff\xfe\xfd", b"[1, 2,]"):
        reply = client.post("/echo", content=bad)
        assert reply.status_code == 400 and isinstance(reply.json()["detail"], str), bad
