"""``annot serve``'s app on a real uvicorn server in a thread, for tests."""

from __future__ import annotations

import threading
import time

import httpx


class LiveServer:
    """An app (``create_app``'s) on uvicorn in a thread, on a free port of 127.0.0.1."""

    def __init__(self, app):
        import socket

        import uvicorn

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.backend = app.app.state.backend
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_config=None,
                                                    access_log=False))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.05)
        return self

    def wait_ready(self, client: httpx.Client, state: str = "ready", timeout: float = 120) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            h = client.get(f"{self.url}/health").json()
            if h["model_state"] == state and h["interactive"] != "loading":
                return h
            assert time.monotonic() < deadline, h
            time.sleep(0.1)

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(10)
