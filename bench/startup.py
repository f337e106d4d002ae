"""Start-up cost of the embedded default.

Measures, in the same run: time until ``bpo serve`` answers /readyz on a fresh
data dir (migrations, api, worker and beat) and the resident memory of its
process tree, against a bare FastAPI app served by uvicorn (the baseline).
Prints the ratios. Run: ``.venv/bin/python bench/startup.py``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.live import free_port


def _rss_kib(pid: int) -> int:
    """Resident memory of a process and all its descendants."""
    total, pending = 0, [pid]
    while pending:
        current = pending.pop()
        status = Path(f"/proc/{current}/status")
        if status.exists():
            for line in status.read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        children = Path(f"/proc/{current}/task/{current}/children")
        if children.exists():
            pending += [int(c) for c in children.read_text().split()]
    return total


def _time_to_ready(command: list[str], url: str, env: dict[str, str]) -> tuple[float, int]:
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while True:
            try:
                if httpx.get(url, timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None:
                raise RuntimeError(f"{command} exited")
            time.sleep(0.05)
        elapsed = time.perf_counter() - started
        time.sleep(3)  # let worker and beat settle before reading memory
        return elapsed, _rss_kib(process.pid)
    finally:
        process.terminate()
        process.wait(timeout=20)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        bare = Path(tmp) / "bare.py"
        bare.write_text(
            textwrap.dedent("""
            from fastapi import FastAPI
            app = FastAPI()
            @app.get("/readyz")
            def ready():
                return {"status": "ready"}
        """)
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("BPO_")}
        port = free_port()
        base_s, base_rss = _time_to_ready(
            [sys.executable, "-m", "uvicorn", "bare:app", "--app-dir", tmp, "--port", str(port)],
            f"http://127.0.0.1:{port}/readyz",
            env,
        )
        env["BPO_DATA_DIR"] = str(Path(tmp) / "var")
        port = free_port()
        serve_s, serve_rss = _time_to_ready(
            [sys.executable, "-m", "services.cli", "serve", "--port", str(port)],
            f"http://127.0.0.1:{port}/readyz",
            env,
        )
    print(f"bare uvicorn app : ready in {base_s:.2f} s, RSS {base_rss / 1024:.0f} MiB")
    print(f"bpo serve (fresh): ready in {serve_s:.2f} s, RSS {serve_rss / 1024:.0f} MiB (api, worker, beat)")
    print(f"ratio start time : {serve_s / base_s:.1f}x   ratio RSS: {serve_rss / base_rss:.1f}x")


if __name__ == "__main__":
    main()
