"""The HTTP face of the backend: a FastAPI app, thin routes over :class:`Backend`.

Label Studio's ML protocol (read from Label Studio 1.23's
``ml/api_connector.py``): ``GET /health`` (1 s timeout), ``POST /setup`` (3 s),
``POST /predict`` (100 s; a batch of tasks, or one task with a ``context`` of
smart-tool regions), ``POST /webhook`` (every project event, and
``START_TRAINING``), the legacy ``POST /train``, ``GET /versions``.

- ``/health`` and ``/`` are ``async`` and read only plain fields: they answer
  at once while predictions run in the thread pool and the model loads.
- Every other route runs its work in the thread pool, so the event loop
  stays free.
- With ``--basic-auth`` every route but ``/health`` needs it (compared in
  constant time).
- Bodies over ``--max-body`` are refused with 413 while they arrive;
  malformed JSON is a 400; the memory budget and unreachable images of one
  interactive task are a 422; anything unexpected is a 500 with a JSON body
  and the request id, never a page or a traceback.
"""

from __future__ import annotations

import base64
import hmac
import logging
import time
import uuid
from contextlib import asynccontextmanager

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from annot.errors import AnnotError

from .backend import Backend, RequestError
from .config import ServeConfig

log = logging.getLogger("annot.serve")
OPEN = {"/health"}  # reachable without credentials (Label Studio's connection check)


# Label Studio registers the backend's /webhook without the credentials it uses for the backend itself
WEBHOOK_AUTH_HINT = ("; Label Studio sends webhooks without the ML backend's basic auth: add the header "
                     "Authorization: Basic <base64 of USER:PASSWORD> to the project's webhook (Settings > Webhooks)")


class TooLarge(Exception):
    pass


class Guard:
    """ASGI middleware: request id, basic auth, body size limit, one log line per request."""

    def __init__(self, app, config: ServeConfig):
        self.app, self.config = app, config
        auth = config.basic_auth
        self.expected = f"Basic {base64.b64encode(f'{auth[0]}:{auth[1]}'.encode()).decode()}".encode() if auth else None

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        rid = headers.get(b"x-request-id", b"").decode("latin-1")[:64] or uuid.uuid4().hex[:12]
        scope.setdefault("state", {})["request_id"] = rid
        t0, status = time.perf_counter(), {"code": 500}

        async def send_with_id(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", rid.encode())]
            await send(message)

        try:
            if self.expected is not None and scope["path"] not in OPEN and \
                    not hmac.compare_digest(headers.get(b"authorization", b""), self.expected):
                reason = ("no or wrong credentials" + (WEBHOOK_AUTH_HINT if scope["path"] == "/webhook" else ""))
                log.warning("request refused", extra={"request_id": rid, "path": scope["path"], "status": 401,
                                                      "reason": reason})
                return await _json(send_with_id, 401, {"error": "authentication required"},
                                   [(b"www-authenticate", b'Basic realm="annot"')])
            length = headers.get(b"content-length")
            if length is not None and length.isdigit() and int(length) > self.config.max_body:
                return await _json(send_with_id, 413, {"error": f"request body over {self.config.max_body} bytes"})
            received = {"n": 0}

            async def limited():
                message = await receive()
                if message["type"] == "http.request":
                    received["n"] += len(message.get("body", b""))
                    if received["n"] > self.config.max_body:
                        raise TooLarge
                return message

            scope["state"]["max_body"] = self.config.max_body
            await self.app(scope, limited, send_with_id)  # the app answers TooLarge with a 413
        finally:
            log.info("request", extra={"request_id": rid, "method": scope.get("method"), "path": scope["path"],
                                       "status": status["code"], "ms": round((time.perf_counter() - t0) * 1000, 1)})


async def _json(send, status: int, body: dict, headers=()):
    data = orjson.dumps(body)
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode()),
                            *headers]})
    await send({"type": "http.response.body", "body": data})


async def _body(request: Request) -> dict:
    raw = await request.body()
    try:
        body = orjson.loads(raw) if raw else {}
    except orjson.JSONDecodeError as e:
        raise RequestError(400, f"malformed JSON: {e}") from None
    if not isinstance(body, dict):
        raise RequestError(400, "the request body must be a JSON object")
    return body


def create_app(config: ServeConfig, backend: Backend | None = None) -> FastAPI:
    backend = backend or Backend(config)

    @asynccontextmanager
    async def lifespan(_app):
        backend.start()
        yield
        backend.close()

    app = FastAPI(title="annot ML backend", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.backend = backend

    def refused(request: Request, status: int, reason: str) -> JSONResponse:
        """An answer Label Studio shows only as "4xx Client Error" (it drops the
        body): the reason goes to the log too."""
        log.warning("request refused", extra={"request_id": request.scope.get("state", {}).get("request_id"),
                                              "path": request.url.path, "status": status, "reason": reason})
        return JSONResponse({"error": reason}, status_code=status)

    @app.exception_handler(TooLarge)
    async def too_large(request: Request, e: TooLarge):
        return refused(request, 413, f"request body over {request.scope['state']['max_body']} bytes")

    @app.exception_handler(RequestError)
    async def request_error(request: Request, e: RequestError):
        return refused(request, e.status, str(e))

    @app.exception_handler(AnnotError)
    async def annot_error(request: Request, e: AnnotError):
        return refused(request, 422, str(e))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, e: StarletteHTTPException):  # 404, 405: the same {"error"} shape
        return refused(request, e.status_code, f"{request.method} {request.url.path}: {e.detail}")

    @app.exception_handler(Exception)
    async def unexpected(request: Request, e: Exception):
        rid = request.scope.get("state", {}).get("request_id")
        log.exception("internal error", extra={"request_id": rid})
        return JSONResponse({"error": "internal error", "request_id": rid}, status_code=500)

    @app.get("/health")
    @app.get("/")
    async def health():
        return backend.health()

    @app.post("/setup")
    async def setup(request: Request):
        return await run_in_threadpool(backend.setup, await _body(request))

    @app.post("/predict")
    async def predict(request: Request):
        body = await _body(request)
        return await run_in_threadpool(backend.predict, body, request.scope["state"]["request_id"])

    @app.post("/webhook", status_code=201)
    async def webhook(request: Request):
        return await run_in_threadpool(backend.webhook, await _body(request))

    @app.post("/train", status_code=201)
    async def train(request: Request):
        return await run_in_threadpool(backend.train, await _body(request))

    @app.get("/versions")
    async def versions():
        return await run_in_threadpool(backend.versions)

    return Guard(app, config)


def app_from_env():
    """For ``uvicorn --factory`` with several workers: the config comes from the environment."""
    from .logs import configure

    configure()
    return create_app(ServeConfig.from_env())
