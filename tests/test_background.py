"""Background tasks over real HTTP: they run after the client has its
answer, in order, sync and async; one that raises is logged and the next
still runs."""

from __future__ import annotations

import threading
from typing import List

from sufast import BackgroundTasks


def test_tasks_run_after_the_response_in_order(app, client, caplog):
    done: List[str] = []
    release = threading.Event()
    finished = threading.Event()
    audited = threading.Event()

    def send_mail(to: str, subject: str = "hi"):
        release.wait(10)  # holds the task, never the response
        done.append(f"mail {to} {subject}")

    def broken():
        raise RuntimeError("smtp down")

    async def audit(what: str):
        done.append(f"audit {what}")
        audited.set()

    def note(what: str):
        done.append(f"note {what}")
        finished.set()

    @app.post("/signup")
    def signup(body: dict, tasks: BackgroundTasks):
        tasks.add_task(send_mail, body["email"], subject="welcome")
        tasks.add_task(broken)
        tasks.add_task(note, "sync")
        return {"ok": True}

    @app.post("/async-signup")
    async def async_signup(body: dict, tasks: BackgroundTasks):
        tasks.add_task(note, "from async")  # a sync task runs off the loop
        tasks.add_task(audit, body["email"])
        return {"ok": True}

    reply = client.post("/signup", json={"email": "ann@example.com"})
    assert (reply.status_code, reply.json()) == (200, {"ok": True})
    assert done == [], "the client got its answer before the tasks ran"
    release.set()
    assert finished.wait(5)
    assert done == ["mail ann@example.com welcome", "note sync"]
    assert "background task test_tasks_run_after_the_response_in_order.<locals>.broken raised" in caplog.text

    assert client.post("/async-signup", json={"email": "bo@example.com"}).status_code == 200
    assert audited.wait(5)  # the last task
    assert done[2:] == ["note from async", "audit bo@example.com"]
