"""The playground's web server: the page, the list of models, and replies streamed a token at a time.

    GET  /                 the page (static/index.html; its script and style from /static/, nothing from elsewhere)
    GET  /api/models       the models found, by id, with the limits and the page's default settings
    GET  /api/status       how many generations are running, and how many may
    POST /api/generate     one prompt to one or more models; the answer is a stream of JSON lines (NDJSON), one
                           event each (see columns.py), from {"type": "start", "seed": ...} to {"type": "end"}

FastAPI checks each request's fields against `GenerateRequest`; the server then holds it to `Limits`. Every
refusal is a 4xx status with one short line, {"error": "..."}, never a traceback: 400 for a body that is not
JSON or text a model cannot read, 404 for a model id it did not give out, 413 for a body too large to read,
415 for a body that is not JSON, 422 for a field out of range or over a limit, 429 when as many generations
run as may. A failure of the server itself is a 500 with one line, and its traceback goes to the terminal.

The sampling runs in worker threads, one token step at a time, so the server keeps answering while models
generate. Between two steps the generation checks whether its client is still there: when the page's Stop
button (or a closed tab) ends the connection, the generation stops and frees its place.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import sys
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path

import anyio
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException

from ch03_gpt.cli import TEMPERATURE
from coursekit import CourseError

from .checkpoints import CHARACTER_KINDS, CHAT, CLASSIFIER, Loaded
from .columns import TOP, Column, Sampling
from .settings import Limits

STATIC = Path(__file__).parent / "static"
STATIC_TYPES = {"app.js": "text/javascript; charset=utf-8", "style.css": "text/css; charset=utf-8",
                "icon.svg": "image/svg+xml"}
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
MAX_SEED = 2**32 - 1  # the course's seed range (coursekit.numbers.seed)
DEFAULT_NEW_TOKENS = 200  # the page's starting value (at most the server's limit)

# Every answer: the page may load only what this server serves (no CDN, no inline script), and may not be framed.
SECURITY_HEADERS = [
    (b"content-security-policy", b"default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; "
                                 b"base-uri 'none'; form-action 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
]


# --------------------------------------------------------------------------- the request


class _Strict(BaseModel):
    # strict: "5" is not a number and 1.5 is not a whole one; forbid: a misspelt field is an error, not ignored
    model_config = ConfigDict(strict=True, extra="forbid")


class Turn(_Strict):
    """One earlier exchange with an instruction-tuned model, as the page kept it."""

    user: str
    reply: str


class ColumnRequest(_Strict):
    model: str = Field(min_length=1, max_length=100)  # an id from /api/models: never a path
    history: list[Turn] = Field(default_factory=list, max_length=100)


class GenerateRequest(_Strict):
    prompt: str
    columns: list[ColumnRequest] = Field(min_length=1, max_length=8)
    max_new_tokens: int = Field(DEFAULT_NEW_TOKENS, ge=1)
    temperature: float = Field(TEMPERATURE, ge=0, le=10, allow_inf_nan=False)
    top_k: int | None = Field(None, ge=1)
    top_p: float | None = Field(None, gt=0, le=1, allow_inf_nan=False)
    seed: int | None = Field(None, ge=0, le=MAX_SEED)


def refuse(status: int, message: str):
    raise HTTPException(status, message)


def check_limits(body: GenerateRequest, limits: Limits, models: dict[str, Loaded]) -> None:
    """Hold a request to the server's limits, and its model ids to those the server gave out."""
    if len(body.prompt) > limits.max_prompt_chars:
        refuse(422, f"the prompt has {len(body.prompt):,} characters; the limit is {limits.max_prompt_chars:,}")
    if body.prompt == "":
        refuse(422, "the prompt is empty; type something first")
    if body.max_new_tokens > limits.max_new_tokens:
        refuse(422, f"max_new_tokens is {body.max_new_tokens:,}; the limit is {limits.max_new_tokens:,}")
    if len(body.columns) > limits.max_columns:
        refuse(422, f"{len(body.columns)} models side by side; the limit is {limits.max_columns}")
    history = sum(len(t.user) + len(t.reply) for c in body.columns for t in c.history)
    if history > limits.max_history_chars:
        refuse(422, f"the chat history has {history:,} characters; the limit is {limits.max_history_chars:,} "
                    f"(clear the chat)")
    for column in body.columns:
        if column.model not in models:
            refuse(404, f"no model {column.model[:40]!r} here; GET /api/models lists the ids")


# --------------------------------------------------------------------------- the server


@dataclass
class Running:
    """The generations in progress: how many (against `Limits.max_generations`) and their tasks."""

    count: int = 0
    tasks: set = field(default_factory=set)


class Guard:
    """Plain ASGI middleware in front of the app: the security headers on every answer; requests for another
    host name refused (a web page cannot then reach a local server through DNS rebinding); a body larger than
    the limit refused before it is read into memory; a POST that is not JSON refused."""

    def __init__(self, app, max_body: int, hosts: tuple[str, ...] | None):
        self.app, self.max_body, self.hosts = app, max_body, hosts

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *SECURITY_HEADERS]}
            await send(message)

        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        if self.hosts is not None and host_name(headers.get("host", "")) not in self.hosts:
            return await error(send_with_headers, 400, "this server answers only on this machine (127.0.0.1)")
        if scope["method"] != "POST":
            return await self.app(scope, receive, send_with_headers)
        if headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
            return await error(send_with_headers, 415, "send the request as JSON (Content-Type: application/json)")
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_body:
            return await error(send_with_headers, 413, f"the request is larger than {self.max_body:,} bytes")
        body, more = bytearray(), True
        while more:  # read the body here, up to the limit, then hand it to the app
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.max_body:
                return await error(send_with_headers, 413, f"the request is larger than {self.max_body:,} bytes")
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()  # after the body: the disconnect, when the client goes

        return await self.app(scope, replay, send_with_headers)


def host_name(host: str) -> str:
    """'127.0.0.1' of '127.0.0.1:8765', '::1' of '[::1]:8765'."""
    if host.startswith("["):
        return host[1:].split("]")[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


async def error(send, status: int, message: str) -> None:
    body = json.dumps({"error": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def short_message(exc: RequestValidationError) -> tuple[int, str]:
    """One line for FastAPI's list of validation errors: the first one, with the field it is about."""
    errors = exc.errors()
    if not errors:
        return 422, "the request is not valid"
    first = errors[0]
    if first.get("type") == "json_invalid":
        return 400, "the body is not valid JSON"
    if first.get("type") == "missing" and tuple(first.get("loc", ())) == ("body",):
        return 400, "the body is empty; send a JSON object"
    where = ".".join(str(part) for part in first.get("loc", ()) if part != "body")
    text = f"{where}: {first.get('msg', 'not valid')}" if where else str(first.get("msg", "not valid"))
    return 422, text[:200]


def model_card(model_id: str, loaded: Loaded) -> dict:
    found = loaded.found
    return {"id": model_id, "title": found.title, "where": found.shown, "kind": found.kind,
            "chapter": found.chapter, "detail": loaded.describe(), "chat": found.kind == CHAT,
            "classifier": found.kind == CLASSIFIER,
            "unit": "character" if found.kind in CHARACTER_KINDS else "token"}


def create_app(models: dict[str, Loaded], limits: Limits | None = None, hosts: tuple[str, ...] | None = LOCAL_HOSTS,
               log=None) -> FastAPI:
    """The app serving `models` (id -> loaded model) within `limits`. `hosts`: the host names it answers to
    (None: any, for a server exposed with --host); `log(text)` gets the traceback of a failure (stderr)."""
    limits = limits or Limits()
    log = log or (lambda text: print(text, file=sys.stderr, flush=True))
    # No documentation pages: FastAPI's load their scripts from a CDN, and the page must work offline.
    app = FastAPI(title="GPT course playground", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.running = running = Running()
    page = (STATIC / "index.html").read_bytes()
    assets = {name: (STATIC / name).read_bytes() for name in STATIC_TYPES}
    cards = [model_card(i, m) for i, m in models.items()]

    @app.exception_handler(RequestValidationError)
    async def invalid(_request, exc: RequestValidationError):
        status, message = short_message(exc)
        return JSONResponse({"error": message}, status_code=status)

    @app.exception_handler(HTTPException)
    async def http_error(_request, exc: HTTPException):
        return JSONResponse({"error": str(exc.detail)[:200]}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(CourseError)
    async def course_error(_request, exc: CourseError):
        return JSONResponse({"error": str(exc).splitlines()[0][:300]}, status_code=400)

    @app.exception_handler(Exception)
    async def failure(_request, exc: Exception):
        log("".join(traceback.format_exception(exc)))
        return JSONResponse({"error": "the server failed on this request; its terminal shows why"}, status_code=500)

    @app.get("/")
    async def index():
        return Response(page, media_type="text/html; charset=utf-8")

    @app.get("/static/{name}")
    async def static(name: str):
        if name not in assets:  # a fixed list of files: nothing the browser names is ever opened
            refuse(404, "no such file")
        return Response(assets[name], media_type=STATIC_TYPES[name], headers={"Cache-Control": "no-cache"})

    @app.get("/api/models")
    async def list_models():
        return {"models": cards, "limits": asdict(limits), "top": TOP,
                "defaults": {"max_new_tokens": min(DEFAULT_NEW_TOKENS, limits.max_new_tokens),
                             "temperature": TEMPERATURE, "top_k": None, "top_p": None}}

    @app.get("/api/status")
    async def status():
        return {"running": running.count, "limit": limits.max_generations}

    @app.post("/api/generate")
    async def generate(request: Request, body: GenerateRequest):
        check_limits(body, limits, models)
        if running.count >= limits.max_generations:
            refuse(429, f"{running.count} generation(s) running, the most this server runs at once; "
                        f"try again when one ends")
        running.count += 1  # no await since the check: no other request can come between them
        try:
            seed = body.seed if body.seed is not None else secrets.randbelow(MAX_SEED + 1)
            sampling = Sampling(body.max_new_tokens, body.temperature, body.top_k, body.top_p, seed)
            requests = [(c.model, [(t.user, t.reply) for t in c.history]) for c in body.columns]
            columns = await anyio.to_thread.run_sync(make_columns, models, requests, body.prompt, sampling)
        except BaseException:
            running.count -= 1
            raise
        events: asyncio.Queue = asyncio.Queue()  # unbounded, but a request makes at most columns x tokens events
        events.put_nowait({"type": "start", "seed": seed, "columns": [c.model_id for c in columns],
                           "settings": {"max_new_tokens": sampling.max_new_tokens, "temperature": sampling.temperature,
                                        "top_k": sampling.top_k, "top_p": sampling.top_p}})
        for column in columns:
            events.put_nowait(column.start_event())
        job = {"cancelled": False}
        task = asyncio.create_task(produce(request, columns, events, job, running, log))
        running.tasks.add(task)
        task.add_done_callback(running.tasks.discard)
        return StreamingResponse(consume(events, job), media_type="application/x-ndjson",
                                 headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    app.add_middleware(Guard, max_body=limits.max_body_bytes, hosts=hosts)
    return app


def make_columns(models: dict[str, Loaded], requests: list[tuple[str, list]], prompt: str,
                 sampling: Sampling) -> list[Column]:
    return [Column(i, model_id, models[model_id], prompt, history, sampling)
            for i, (model_id, history) in enumerate(requests)]


def step_all(columns: list[Column]) -> list[dict]:
    """One step of every column still going: the columns grow side by side."""
    return [event for column in columns if not column.finished for event in column.step()]


async def produce(request: Request, columns: list[Column], events: asyncio.Queue, job: dict, running: Running,
                  log) -> None:
    """Step the columns until they end or the client goes; put each event on `events`, then None.

    This task, not the response, owns the generation's place in `running`: it gives it back however the
    generation ends, even when the client went away before the response started."""
    stopped = False
    try:
        while not all(c.finished for c in columns):
            if job["cancelled"] or await request.is_disconnected():
                stopped = True
                break
            for event in await anyio.to_thread.run_sync(step_all, columns):  # a cancel waits for the step to end
                events.put_nowait(event)
        events.put_nowait({"type": "end", "stopped": stopped})
    except Exception as exc:
        log("".join(traceback.format_exception(exc)))
        events.put_nowait({"type": "error", "message": "the generation failed on the server; its terminal shows why"})
    finally:
        for column in columns:
            column.close()
        running.count -= 1
        events.put_nowait(None)


async def consume(events: asyncio.Queue, job: dict):
    """The response body: each event as a line of JSON, as soon as it is made."""
    try:
        while (event := await events.get()) is not None:
            yield (json.dumps(event) + "\n").encode()
    finally:
        job["cancelled"] = True  # the response ended (the client went): the generation stops at its next step
