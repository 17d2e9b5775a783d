"""Routers over real HTTP: prefixes, nesting, tags, and dependencies of
the app, the router and the route, in that order."""

from __future__ import annotations

from typing import List

import pytest

from sufast import App, Depends, Header, HTTPException, Router, RouteError
from sufast.testclient import TestClient


def test_nested_routers_with_prefixes_tags_and_dependencies_in_order():
    order: List[str] = []

    def app_wide():
        order.append("app")

    def api_key(x_key: str = Header()):
        order.append("router")
        if x_key != "k":
            raise HTTPException(403, "bad key")

    def include_level():
        order.append("include")

    def route_level():
        order.append("route")

    app = App(dependencies=[Depends(app_wide)])
    articles = Router(prefix="/articles", tags=["articles"], dependencies=[Depends(api_key)])
    comments = Router(prefix="/{slug}/comments", tags=["comments"])

    @articles.get("")
    def list_articles():
        return ["a", "b"]

    @articles.get("/{slug}", dependencies=[Depends(route_level)])
    def article(slug: str):
        return {"slug": slug, "order": list(order)}

    @comments.get("/{cid:int}")
    def comment(slug: str, cid: int):
        return {"slug": slug, "cid": cid}

    articles.include_router(comments)
    app.include_router(articles, prefix="/api", dependencies=[Depends(include_level)])

    assert sorted(r.path for r in app.routes) == ["/api/articles", "/api/articles/{slug}", "/api/articles/{slug}/comments/{cid:int}"]
    tags = {r.path: r.tags for r in app.routes}
    assert tags["/api/articles/{slug}/comments/{cid:int}"] == ["articles", "comments"]
    # Dependencies make the zero-argument list_articles a per-request route.
    assert {r.tier for r in app.routes} == {"dynamic"}
    key = {"X-Key": "k"}
    with TestClient(app) as client:
        assert client.get("/api/articles/hello", headers=key).json() == {"slug": "hello", "order": ["app", "include", "router", "route"]}
        assert client.get("/api/articles", headers=key).json() == ["a", "b"]
        assert client.get("/api/articles/hello/comments/3", headers=key).json() == {"slug": "hello", "cid": 3}
        denied = client.get("/api/articles/hello/comments/3", headers={"X-Key": "no"})
        assert (denied.status_code, denied.json()) == (403, {"detail": "bad key"})
        missing = client.get("/api/articles")
        assert (missing.status_code, missing.json()["detail"][0]["loc"]) == (422, ["header", "x-key"])


def test_router_mistakes_raise():
    with pytest.raises(ValueError, match="must start with '/' and not end with '/'"):
        Router(prefix="api/")
    with pytest.raises(ValueError, match="must start with '/'"):
        Router().include_router(Router(), prefix="x")
    router = Router(prefix="/r")
    router.get("/{id}")(lambda user_id: user_id)
    with pytest.raises(RouteError, match=r"route GET /r/\{id\}: handler .*<lambda>: path parameter 'id'"):
        App().include_router(router)
    with pytest.raises(RouteError, match=r"dependencies must be Depends"):
        App().get("/x", dependencies=[lambda: 1])(lambda: 1)
