"""Peak RSS of a sufast server while it takes 16 concurrent 16 MiB request
bodies to a per-request handler, per MiB of body in flight.

    .venv-test/bin/python bench/body_memory.py [PYTHONPATH of the sufast to measure]

Loopback only; the server is a child process, its peak read from
/proc/<pid>/status (VmHWM) after the bodies and before it stops."""

import concurrent.futures
import http.client
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BODIES, SIZE = 16, 16 * 1024 * 1024

SERVER = """
import sys
from sufast import App
app = App(threads=16, max_body_size=32 * 1024 * 1024)

@app.post("/size")
def size(body: bytes):
    return {"size": len(body)}

port = app.start(host="127.0.0.1", production=True)
print(port, flush=True)
sys.stdin.readline()
"""


def kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise LookupError(field)


def post(port: int, body: bytes) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    conn.request("POST", "/size", body=body, headers={"Content-Type": "application/octet-stream"})
    reply = conn.getresponse()
    reply.read()
    return reply.status


def main() -> None:
    env = dict(os.environ, PYTHONPATH=sys.argv[1] if len(sys.argv) > 1 else str(ROOT / "python"))
    proc = subprocess.Popen([sys.executable, "-c", SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
    port = int(proc.stdout.readline())
    idle = kib(proc.pid, "VmRSS")
    body = os.urandom(SIZE)
    with concurrent.futures.ThreadPoolExecutor(BODIES) as pool:
        statuses = list(pool.map(lambda _: post(port, body), range(BODIES)))
    peak = kib(proc.pid, "VmHWM")
    proc.stdin.write("\n")
    proc.stdin.flush()
    proc.wait(30)
    assert statuses == [200] * BODIES, statuses
    in_flight = BODIES * SIZE / 2**20
    print(f"idle {idle / 1024:.0f} MiB, peak {peak / 1024:.0f} MiB with {in_flight:.0f} MiB of bodies in flight: "
          f"{(peak - idle) / 1024 / in_flight:.2f} MiB per MiB of body")


if __name__ == "__main__":
    main()
