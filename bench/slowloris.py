"""1,500 slow-header connections against a sufast server limited to 1,024
descriptors (so max_connections 896): a probe's latency every second, and
when the server closed each slow connection. Loopback, bounded to 16 s.

    .venv-test/bin/python bench/slowloris.py
"""
import resource, selectors, socket, subprocess, sys, time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8192), hard))
SERVER = """
import sys, resource
sys.path.insert(0, {python!r})
resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 1024))
from sufast import App
app = App()
app.get("/")(lambda: "up")
port = app.start(host="127.0.0.1", production=True)
print(port, flush=True)
sys.stdin.readline()
"""
proc = subprocess.Popen([sys.executable, "-c", SERVER.format(python=str(ROOT / "python"))], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
port = int(proc.stdout.readline())
slow = []
t0 = time.monotonic()
for _ in range(1500):
    s = socket.socket(); s.setblocking(False)
    try: s.connect(("127.0.0.1", port))
    except BlockingIOError: pass
    slow.append((s, time.monotonic()))
time.sleep(0.2)  # let the connects complete before the partial heads
for s, _ in slow:
    try: s.send(b"GET / HTTP/1.1\r\nHost: x\r\n")
    except OSError: pass
sel = selectors.DefaultSelector()
for s, t in slow: sel.register(s, selectors.EVENT_READ, t)
closed_after = []
probes = []
next_probe = time.monotonic()
while time.monotonic() - t0 < 16:
    for key, _ in sel.select(0.05):
        try: data = key.fileobj.recv(4096)
        except OSError: data = b""
        if not data:
            closed_after.append(time.monotonic() - key.data); sel.unregister(key.fileobj)
    if time.monotonic() >= next_probe:
        next_probe += 1
        start = time.monotonic()
        try:
            c = socket.create_connection(("127.0.0.1", port), timeout=3)
            c.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            ok = c.recv(100).startswith(b"HTTP/1.1 200"); c.close()
        except OSError as e:
            ok = f"error {e}"
        probes.append((round(time.monotonic() - t0, 1), ok, round((time.monotonic() - start) * 1000, 1)))
print("probes (t s, ok, latency ms):", probes)
print(f"slow closed by server: {len(closed_after)} of 1500; within 11 s of their start: {sum(1 for a in closed_after if a <= 11)}; max {max(closed_after) if closed_after else None:.1f} s")
proc.stdin.write("\n"); proc.stdin.flush(); proc.wait(10)
