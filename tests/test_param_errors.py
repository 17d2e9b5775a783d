"""Query, path, header and cookie parameters: the types they take and
their 422s, in FastAPI's shape, over real HTTP."""

from __future__ import annotations

import datetime
import enum
import uuid
from typing import List, Literal, Optional

from sufast import App, Cookie, Header
from sufast.testclient import TestClient


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


def test_enum_literal_date_and_list_query_parameters_are_converted():
    app = App()

    @app.get("/q")
    def q(color: Color, size: Literal["s", "m"] = "s", day: Optional[datetime.date] = None, ids: List[int] = []):
        return {"color": color.value, "size": size, "day": day and day.isoformat(), "ids": ids}

    with TestClient(app) as client:
        got = client.get("/q", params={"color": "blue", "size": "m", "day": "2026-12-01", "ids": ["1", "2"]}).json()
        assert got == {"color": "blue", "size": "m", "day": "2026-12-01", "ids": [1, 2]}
        bad = client.get("/q", params={"color": "green", "day": "soon", "ids": ["1", "x"]})
        assert bad.status_code == 422
        errors = bad.json()["detail"]
        assert [(e["type"], e["loc"], e["input"]) for e in errors] == [
            ("enum", ["query", "color"], "green"),
            ("date_parsing", ["query", "day"], "soon"),
            ("int_parsing", ["query", "ids", 1], "x"),
        ]
        assert errors[2]["msg"] == "Input should be a valid integer, unable to parse string as an integer"


def test_every_source_reports_missing_and_bad_values_at_once():
    app = App()

    @app.get("/items/{item_id}")
    def item(item_id: uuid.UUID, flag: bool, token: str = Header(), session: int = Cookie()):
        return {"ok": True}

    with TestClient(app) as client:
        reply = client.get("/items/nope", params={"flag": "maybe"}, cookies={"session": "abc"})
        assert reply.status_code == 422
        assert reply.json() == {
            "detail": [
                {"type": "uuid_parsing", "loc": ["path", "item_id"], "msg": "Input should be a valid UUID", "input": "nope"},
                {"type": "bool_parsing", "loc": ["query", "flag"], "msg": "Input should be a valid boolean, unable to interpret input", "input": "maybe"},
                {"type": "missing", "loc": ["header", "token"], "msg": "Field required", "input": None},
                {"type": "int_parsing", "loc": ["cookie", "session"], "msg": "Input should be a valid integer, unable to parse string as an integer", "input": "abc"},
            ]
        }
        ok = client.get(f"/items/{uuid.uuid4()}", params={"flag": "y"}, headers={"token": "t"}, cookies={"session": "5"})
        assert ok.json() == {"ok": True}
