"""A real HTTP webhook receiver on 127.0.0.1 that can be told to fail first."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    status: int

    @property
    def event(self) -> dict[str, Any]:
        return dict(json.loads(self.body))


@dataclass
class Receiver:
    fail_first: int = 0  # answer 503 to the first n tries of each event id
    fail_ids: set[str] = field(default_factory=set)  # only these ids fail (all if empty)
    delay: float = 0.0  # seconds before answering, to widen races in concurrency tests
    log: list[Received] = field(default_factory=list)
    tries: Counter[str] = field(default_factory=Counter)
    url: str = ""

    def accepted(self) -> list[Received]:
        return [r for r in self.log if 200 <= r.status < 300]

    def accepted_ids(self) -> list[str]:
        return [r.headers["webhook-id"] for r in self.accepted()]


def serve(receiver: Receiver) -> ThreadingHTTPServer:
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            time.sleep(receiver.delay)
            message_id = self.headers.get("webhook-id", "")
            with lock:
                receiver.tries[message_id] += 1
                failing = not receiver.fail_ids or message_id in receiver.fail_ids
                status = 503 if failing and receiver.tries[message_id] <= receiver.fail_first else 200
                receiver.log.append(Received({k.lower(): v for k, v in self.headers.items()}, body, status))
            self.send_response(status)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hooks"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server
