"""The web service: an ASGI app (Starlette) over the loaded runs.

    GET  /                 the playground page (one file, no build step, works offline)
    GET  /healthz          liveness, no key needed
    GET  /favicon.ico      204: the page's icon is inline
    GET  /v1/models        the loaded runs (the OpenAI API's list shape, plus textgen's facts,
                           the server's limits and /v1/generate's defaults)
    GET  /v1/models/NAME   one of them (the OpenAI API's retrieve)
    POST /v1/generate      textgen sample's options and results; "stream": true sends SSE
    POST /v1/classify      textgen classify predict's labels and probabilities
    POST /v1/completions   the OpenAI completions API, so its clients work unchanged
    POST /v1/chat/completions  the OpenAI chat API over a generator (serve/chat.py: the
                           messages as a play script the model continues)

Errors are JSON in the OpenAI API's shape, with the field at fault, never a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import json
import logging
import signal
import sys
import time
import urllib.parse
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager
from dataclasses import asdict, replace
from importlib import resources
from typing import Any, TypeVar

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from textgen.errors import FieldError, TextgenError
from textgen.modes import Mode, wrong_mode
from textgen.serve.chat import (
    chat_chunk,
    chat_response,
    check_characters,
    delta_choice,
    parse_chat,
)
from textgen.serve.engine import Stream
from textgen.serve.models import Served, ServedGenerator, stop_generators, training_figures
from textgen.serve.requests import (
    MAX_BODY_BYTES,
    GenerateRequest,
    Limits,
    RequestError,
    api_key_problem,
    check_body_format,
    generate_defaults,
    parse_classify,
    parse_completion,
    parse_generate,
    parse_json,
    shortened,
)

OPEN_PATHS = {"/", "/healthz", "/favicon.ico"}  # reachable without the API key
CLIENT_CLOSED = 499  # nginx's status for a request its client left: logged, never read
DISCONNECT_POLL_S = 0.05
BUSY_RETRY_AFTER_S = 2  # a busy server's Retry-After: streams end every few seconds
CORS_MAX_AGE_S = 600  # how long a browser may reuse a preflight's answer
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")  # and any name under .localhost
REPORTED = "textgen.reported"  # the scope key holding the bug server_error already logged
T = TypeVar("T")


class ClientGone(Exception):
    """The client disconnected before its answer was ready."""


async def unless_disconnected(request: Request, work: Coroutine[Any, Any, T]) -> T:
    """Await `work`, cancelling it if the client disconnects first, so an abandoned request's
    samples leave the batch instead of running to their length (a stream's do when its
    response closes). Raises ClientGone then."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_disconnection(request))
    try:
        done, _ = await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    except BaseException:  # the handler itself cancelled (the server stopping)
        task.cancel()
        raise
    finally:
        watcher.cancel()
    if task in done:
        return task.result()
    if watcher.exception() is not None:  # not a disconnect: the client may be there
        return await task
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task  # its streams leave the engine's batch
    raise ClientGone


async def _disconnection(request: Request) -> None:
    """Returns when the client disconnects (the body has been read: nothing else comes; a
    server that says otherwise is asked again a little later, not in a busy loop)."""
    while (await request.receive())["type"] != "http.disconnect":
        await asyncio.sleep(DISCONNECT_POLL_S)


def create_app(models: dict[str, Served], limits: Limits | None = None,
               api_key: str | None = None, log: Callable[[str], None] | None = None,
               cors_origins: Sequence[str] = (), loopback_names_only: bool = False
               ) -> AccessLog:
    """The app serving `models` (already loaded); `api_key` guards everything but the page and
    /healthz; `log` gets one access line per request (default: stderr); web pages from
    `cors_origins` ("*": any) may call the API from a browser; `loopback_names_only` answers
    only requests addressed to a loopback name (localhost, 127.0.0.1, [::1]...: for a server
    on a loopback address without a key, so a web page cannot reach it through a name its
    site controls)."""
    started = int(time.time())
    limits = limits or Limits()
    key_problem = api_key_problem(api_key) if api_key is not None else None
    if key_problem:
        raise FieldError("api_key", key_problem)

    def no_such_model(name: str) -> RequestError:
        return RequestError(404, f"no model named {name!r}; loaded: "
                                 f"{', '.join(models) or 'none'}", "model",
                            code="model_not_found")

    def served(name: str | None, mode: Mode) -> Served:
        if name is None:
            for model in models.values():
                if not wrong_mode(model.mode, mode):
                    return model
            raise RequestError(404, f"no {mode} model is loaded", "model",
                               code="model_not_found")
        model = models.get(name)
        if model is None:
            raise no_such_model(name)
        if wrong_mode(model.mode, mode):
            raise RequestError(400, f"{name!r} is a {model.mode} model, not a {mode} model",
                               "model")
        return model

    async def page(request: Request) -> Response:
        html = resources.files("textgen.serve").joinpath("page.html").read_text("utf-8")
        return HTMLResponse(html)

    async def favicon(request: Request) -> Response:
        # The page carries its icon inline; a browser still asks for /favicon.ico (e.g. on
        # /v1/models): "no content" rather than a 404 in its console and the access log.
        return Response(status_code=204)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok", "models": len(models)})

    def model_entry(name: str, model: Served) -> dict[str, Any]:
        return {"id": name, "object": "model", "created": started, "owned_by": "textgen",
                "mode": model.mode, **model.describe(),
                "training": training_figures(model.choice.meta)}

    async def list_models(request: Request) -> Response:
        # The server's limits and /v1/generate's defaults ride along, for the playground.
        return JSONResponse({"object": "list",
                             "data": [model_entry(name, model) for name, model in models.items()],
                             "limits": asdict(limits),
                             "generate_defaults": generate_defaults(limits)})

    async def one_model(request: Request) -> Response:
        """OpenAI's `GET /v1/models/{model}` (its clients' models.retrieve)."""
        name = request.path_params["name"]
        if not name:
            raise HTTPException(404)
        if name not in models:
            raise no_such_model(name)
        return JSONResponse(model_entry(name, models[name]))

    async def generate(request: Request) -> Response:
        req = parse_generate(await read_body(request), limits)
        model = served(req.model, Mode.generate)
        req, seeds = prepared(model, req, limits)
        streams = start_streams(model, seeds, req)
        if req.stream:
            return sse(generate_events(model, streams, req))
        texts, reasons = await unless_disconnected(request, collect(model, streams))
        return JSONResponse({"model": model.name, "samples": texts, "finish_reasons": reasons})

    async def generate_events(model: ServedGenerator, streams: list[Stream],
                              req: GenerateRequest) -> AsyncIterator[str]:
        reasons: list[str | None] = [None] * len(req.samples())
        async for kind, index, value in run_streams(model, streams):
            if kind == "text":
                yield event("text", {"index": index, "text": value})
            else:
                reasons[index] = value
        yield event("end", {"finish_reasons": reasons})

    async def classify(request: Request) -> Response:
        name, texts = parse_classify(await read_body(request))
        model = served(name, Mode.classify)
        results = await run_in_threadpool(model.model.classify, texts)
        return JSONResponse({"model": model.name, "results": results})

    async def completions(request: Request) -> Response:
        req = parse_completion(await read_body(request), limits)
        model = served(req.model, Mode.generate)
        req, seeds = prepared(model, req, limits)
        streams = start_streams(model, seeds, req)
        completion_id, created = f"cmpl-{uuid.uuid4().hex}", int(time.time())

        def shape(choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
            return {"id": completion_id, "object": "text_completion", "created": created,
                    "model": model.name, "choices": choices, **extra}

        def choice(index: int, text: str, reason: str | None) -> dict[str, Any]:
            return {"text": text, "index": index, "logprobs": None, "finish_reason": reason}

        # echo: each completion starts with its prompt as sent
        echoed = [(req.seeds[p] or "") if req.echo else "" for p, _ in req.samples()]
        if req.stream:
            async def chunks() -> AsyncIterator[str]:
                for index, prompt in enumerate(echoed):  # OpenAI streams it as a first chunk
                    if prompt:
                        yield data(shape([choice(index, prompt, None)]))
                generated = [0] * len(echoed)
                async for index, text, reason in completion_pieces(model, streams, seeds,
                                                                   req, generated):
                    yield data(shape([choice(index, text, reason)]))
                if req.include_usage:
                    yield data(shape([], usage=usage_of(seeds, generated)))
                yield "data: [DONE]\n\n"
            return sse(chunks())
        completions, usage = await unless_disconnected(
            request, collect_completions(model, streams, seeds, req))
        return JSONResponse(shape([choice(i, echoed[i] + text, reason) for i, (text, reason)
                                   in enumerate(completions)], usage=usage))

    async def chat_completions(request: Request) -> Response:
        chat = parse_chat(await read_body(request), limits)
        req = chat.request
        model = served(req.model, Mode.generate)
        check_characters(chat, model.sampler.vocab)
        req, seeds = prepared(model, req, limits)
        streams = start_streams(model, seeds, req)
        completion_id, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
        if req.stream:
            async def chunks() -> AsyncIterator[str]:
                def chunk(choices: list[dict[str, Any]], **extra: Any) -> str:
                    return data(chat_chunk(completion_id, created, model.name, choices,
                                           **extra))

                for index in range(len(req.settings)):  # OpenAI's first delta: the role
                    yield chunk([delta_choice(index, {"role": "assistant", "content": ""})])
                generated = [0] * len(req.settings)
                async for index, text, reason in completion_pieces(model, streams, seeds,
                                                                   req, generated):
                    if text:
                        yield chunk([delta_choice(index, {"content": text})])
                    if reason is not None:
                        yield chunk([delta_choice(index, {}, reason)])
                if req.include_usage:
                    yield chunk([], usage=usage_of(seeds, generated))
                yield "data: [DONE]\n\n"
            return sse(chunks())
        replies, usage = await unless_disconnected(
            request, collect_completions(model, streams, seeds, req))
        return JSONResponse(chat_response(completion_id, created, model.name, replies, usage))

    async def collect_completions(model: ServedGenerator, streams: list[Stream],
                                  seeds: list[str], req: GenerateRequest
                                  ) -> tuple[list[tuple[str, str]], dict[str, int]]:
        """Each sample's (completion, finish_reason) and the request's usage."""
        texts, reasons = await collect(model, streams)
        samples = req.samples()
        completions = [(without_stop(text[len(seeds[p]):], reason, settings.stop, seeds[p]),
                        reason)
                       for text, reason, (p, settings) in zip(texts, reasons, samples,
                                                              strict=True)]
        generated = [len(text) - len(seeds[p]) for text, (p, _) in zip(texts, samples,
                                                                        strict=True)]
        return completions, usage_of(seeds, generated)

    async def completion_pieces(model: ServedGenerator, streams: list[Stream],
                                seeds: list[str], req: GenerateRequest, generated: list[int]
                                ) -> AsyncIterator[tuple[int, str, str | None]]:
        """(index, text, None) as each sample's completion grows, then (index, rest,
        finish_reason) once: without the prompt, and without the stop text that ended it,
        as the OpenAI API streams. `generated[index]` counts the sample's characters."""
        # Hold back as much text as the longest stop text until the sample is known to go on
        # (its end event comes after its last text).
        samples = req.samples()
        held = [""] * len(samples)
        skip = [len(seeds[p]) for p, _ in samples]  # the seed is not part of a completion
        hold = max((len(t) for s in req.settings for t in s.stop), default=0)
        async for kind, index, value in run_streams(model, streams):
            if kind == "text":
                cut = min(skip[index], len(value))
                skip[index] -= cut
                held[index] += value[cut:]
                generated[index] += len(value) - cut
                ready = held[index][: max(len(held[index]) - hold, 0)]
                held[index] = held[index][len(ready):]
                if ready:
                    yield index, ready, None
            else:
                # (a stop text begun in the prompt: all that was generated is held)
                p, settings = samples[index]
                yield index, without_stop(held[index], value, settings.stop, seeds[p]), value

    async def run_streams(model: ServedGenerator, streams: list[Stream]
                          ) -> AsyncIterator[tuple[str, int, str]]:
        """The events of a request's streams (start_streams) until each has ended; its
        streams are cancelled if the client leaves first."""
        try:
            open_streams = len(streams)
            while open_streams:
                item = await streams[0].events.get()  # a request's streams share one queue
                if item[0] == "end":
                    open_streams -= 1
                yield item
        finally:
            for stream in streams:
                model.engine.cancel(stream)

    async def collect(model: ServedGenerator, streams: list[Stream]
                      ) -> tuple[list[str], list[str]]:
        texts = [""] * len(streams)
        reasons = [""] * len(texts)
        async for kind, index, value in run_streams(model, streams):
            if kind == "text":
                texts[index] += value
            else:
                reasons[index] = value
        if "cancelled" in reasons:  # the server stopping (a client that left gets no answer)
            raise shutting_down()
        return texts, reasons

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        stop_generators(models)

    routes = [Route("/", page), Route("/healthz", healthz),
              Route("/v1/models", list_models),
              Route("/v1/models/{name:path}", one_model),
              Route("/v1/generate", generate, methods=["POST"]),
              Route("/v1/classify", classify, methods=["POST"]),
              Route("/v1/completions", completions, methods=["POST"]),
              Route("/v1/chat/completions", chat_completions, methods=["POST"]),
              Route("/favicon.ico", favicon)]
    app = Starlette(routes=routes, lifespan=lifespan,
                    exception_handlers={RequestError: request_error, ClientGone: client_gone,
                                        ClientDisconnect: client_gone,
                                        TextgenError: textgen_error, 404: not_found,
                                        405: not_allowed, Exception: server_error})
    # A path with a trailing slash gets a JSON 404 naming the right one, not a redirect that
    # a POST's client may not follow (and that would name whatever Host was sent).
    app.router.redirect_slashes = False
    guarded: Any = KeyGuard(app, api_key) if api_key else app
    if cors_origins:
        # Outside the key: a browser's preflight carries no key, and a 401 must carry the
        # CORS headers for the calling page to read it. Any request header is allowed: the
        # origins are trusted, and OpenAI's JavaScript client sends headers of its own.
        guarded = JsonCORS(guarded, allow_origins=list(cors_origins),
                           allow_methods=["GET", "POST"], allow_headers=["*"],
                           expose_headers=["Retry-After"],  # a busy 503's advice
                           max_age=CORS_MAX_AGE_S)
    if loopback_names_only:
        guarded = LoopbackNamesOnly(guarded)
    return AccessLog(guarded, log or log_to_stderr)


def prepared(model: ServedGenerator, req: GenerateRequest, limits: Limits
             ) -> tuple[GenerateRequest, list[str]]:
    """The request with its stop texts read as `textgen sample` reads them, and each seed as
    it would use it: unknown characters named (400) or dropped; one longer than the server's
    --max-prompt refused (400). Of several prompts, the one at fault is named by its place
    (`prompt[2]`)."""
    req = replace(req, settings=[model.sampler.prepare_settings(s) for s in req.settings])
    seeds = []
    for place, seed in enumerate(req.seeds):
        name = req.names.get("seed", "seed")
        if len(req.seeds) > 1:
            name = f"{name}[{place}]"
        seed = model.sampler.default_seed if seed is None else seed
        try:
            seed = model.sampler.prepare_seed(seed, req.settings[0].skip_unknown)
        except FieldError as exc:
            raise RequestError.of_error(exc, {**req.names, "seed": name}) from None
        if len(seed) > limits.max_prompt:
            raise RequestError(400, f"'{name}' makes a prompt of {len(seed):,} characters; "
                                    f"this server reads at most {limits.max_prompt:,} (its "
                                    "--max-prompt): send the end of the text", name)
        seeds.append(seed)
    return req, seeds


def start_streams(model: ServedGenerator, seeds: list[str], req: GenerateRequest
                  ) -> list[Stream]:
    """The request's samples submitted to the shared batch, sharing one event queue; a 503
    at once, with Retry-After, when they would overfill the batch and its waiting room. The
    check and the submits run with no await between them, so concurrent requests cannot
    all pass the check before any submits."""
    wanted, room = len(req.samples()), model.engine.room()
    if wanted > room:
        raise RequestError(503, f"the server is busy: {wanted} sample(s) asked for, room for "
                                f"{max(room, 0)} now; retry in a few seconds",
                           kind="server_error", code="server_busy",
                           headers={"Retry-After": str(BUSY_RETRY_AFTER_S)})
    events: asyncio.Queue = asyncio.Queue()
    streams: list[Stream] = []
    try:
        for index, (p, settings) in enumerate(req.samples()):
            streams.append(model.engine.submit(seeds[p], settings, events, index))
    except BaseException:
        for stream in streams:
            model.engine.cancel(stream)
        raise
    return streams


def usage_of(prompts: list[str], generated: list[int]) -> dict[str, int]:
    """OpenAI's usage, counted in characters (a character model's tokens): each prompt once,
    however many samples it has."""
    read, used = sum(len(p) for p in prompts), sum(generated)
    return {"prompt_tokens": read, "completion_tokens": used, "total_tokens": read + used}


def without_stop(text: str, reason: str, stops: tuple[str, ...], prompt: str) -> str:
    """A completion ending in a stop text, without it (as the OpenAI API returns it); a stop
    text begun in the prompt loses only its completed part."""
    if reason == "stop":
        for stop in stops:
            if (prompt[-len(stop):] + text).endswith(stop):
                return text[: max(0, len(text) - len(stop))]
    return text


async def read_body(request: Request) -> dict[str, Any]:
    """The JSON body, refused past MAX_BODY_BYTES without reading the rest."""
    charset = check_body_format(request.headers.get("content-type"),
                                request.headers.get("content-encoding"))
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise RequestError.too_large()
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise RequestError.too_large()
        chunks.append(chunk)
    return parse_json(b"".join(chunks), charset)


# JavaScript's line ends include U+2028 and U+2029, which JSON may hold raw: a page that reads
# `data:` lines with a regular expression would cut the JSON there, so they go out escaped.
_JS_LINE_ENDS = str.maketrans({"\u2028": "\\u2028", "\u2029": "\\u2029"})


def sse_json(payload: dict[str, Any]) -> str:
    """An event's JSON on one line for every reader: UTF-8, the two JavaScript line ends
    escaped."""
    return json.dumps(payload, ensure_ascii=False).translate(_JS_LINE_ENDS)


def event(name: str, payload: dict[str, Any]) -> str:
    return f"event: {name}\ndata: {sse_json(payload)}\n\n"


def data(payload: dict[str, Any]) -> str:
    return f"data: {sse_json(payload)}\n\n"


def sse(events: AsyncIterator[str]) -> StreamingResponse:
    return StreamingResponse(events, media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


def run_server(app: AccessLog, models: dict[str, Served], host: str, port: int,
               grace_s: float) -> None:
    """Serve with uvicorn until SIGINT/SIGTERM. Open streams then get `grace_s` to finish; one
    second before uvicorn would cut their connections, the ones still running are ended as
    "cancelled", so every client reads a complete response."""
    import threading

    import uvicorn

    class Server(uvicorn.Server):
        stopped_by: int | None = None

        def handle_exit(self, sig: int, frame: Any) -> None:
            if not self.should_exit:
                self.stopped_by = sig
                cancel_after = max(0.0, grace_s - 1)
                timer = threading.Timer(cancel_after, stop_generators, (models,))
                timer.daemon = True
                timer.start()
                if samples := samples_being_written(models):  # said: a wait is no hang
                    again = "; Ctrl-C again stops at once" if sig == signal.SIGINT else ""
                    print(f"stopping: {samples} sample(s) being written get up to {cancel_after:g} "
                          f"s to end{again}", file=sys.stderr, flush=True)
            elif sig == signal.SIGINT:  # uvicorn now cancels the requests still running
                logging.getLogger("uvicorn.error").addFilter(CancelledAtExit())
            super().handle_exit(sig, frame)

    logging.getLogger("asyncio").addFilter(WritesAfterClientLeft())
    server = Server(uvicorn.Config(app, host=host, port=port, log_level="warning",
                                   access_log=False, timeout_graceful_shutdown=grace_s))
    server.run()  # uvicorn raises the signal that stopped it again, as the process had it
    if server.stopped_by == signal.SIGINT:  # inherited as ignored (a background job): 130
        raise KeyboardInterrupt


class WritesAfterClientLeft(logging.Filter):
    """Drops asyncio's "socket.send() raised exception." warnings: it writes one for each
    write to a connection its client has closed, until the stream notices (dozens for a few
    abandoned streams), where the access log already says 499 once."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != "socket.send() raised exception."


class CancelledAtExit(logging.Filter):
    """Once a second Ctrl-C stops the server at once: drops uvicorn's tracebacks of the
    requests (and the lifespan) it cancels, as the user asked."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], asyncio.CancelledError):
            return False
        return not str(record.msg).rstrip().endswith("asyncio.exceptions.CancelledError")


def samples_being_written(models: dict[str, Served]) -> int:
    """Sequences the served generators are writing now (a request's n samples are n)."""
    return sum(model.engine.unfinished for model in models.values()
               if isinstance(model, ServedGenerator))


async def request_error(request: Request, exc: RequestError) -> Response:
    return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)


async def client_gone(request: Request, exc: ClientGone | ClientDisconnect) -> Response:
    """The client left before its answer (while its body was read, or later)."""
    return Response(status_code=CLIENT_CLOSED)


async def textgen_error(request: Request, exc: TextgenError) -> Response:
    """A problem a request caused deeper down: a 400, naming the field when the error has one."""
    refused = RequestError.of_error(exc)
    return JSONResponse(refused.body(), status_code=refused.status)


async def not_found(request: Request, exc: Exception) -> Response:
    path = request.url.path
    known = {route.path for route in request.app.routes}
    if path.rstrip("/") in known:
        hint = f"; did you mean {path.rstrip('/')} (no slash at the end)?"
    elif f"/v1{path}" in known:
        hint = f"; did you mean /v1{path} (a client's base URL ends in /v1)?"
    else:
        hint = ""
    return JSONResponse(RequestError(404, f"no such endpoint: {shortened(path)}{hint}").body(),
                        status_code=404)


async def not_allowed(request: Request, exc: HTTPException) -> Response:
    return JSONResponse(RequestError(405, f"{request.method} is not allowed on "
                                          f"{request.url.path}").body(), status_code=405,
                        headers=exc.headers)  # the route's methods, as `Allow` (RFC 9110)


async def server_error(request: Request, exc: Exception) -> Response:
    """A bug: a JSON 500 (the traceback goes to the server's log, not to the client)."""
    import traceback

    traceback.print_exception(exc, file=sys.stderr)
    request.scope[REPORTED] = exc  # Starlette re-raises it: AccessLog stops it there
    return JSONResponse(RequestError(500, "internal error; see the server's log",
                                     kind="server_error").body(), status_code=500)


def log_to_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def shutting_down() -> RequestError:
    """The answer to a request the stopping server cut short."""
    return RequestError(503, "the server is shutting down and cut the request short; send it "
                             "again when the server is back", kind="server_error",
                        code="server_shutting_down", headers={"Connection": "close"})


class AccessLog:
    """ASGI middleware, the outermost: one access line per request (method, path, status,
    duration). Never logs headers, so the API key never reaches the log."""

    def __init__(self, app: Any, log: Callable[[str], None]):
        self.app, self.log = app, log

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, status, answered = time.monotonic(), [None], [False]

        async def send_and_note(message: dict) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                answered[0] = True
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        except Exception as exc:
            if scope.get(REPORTED) is not exc:  # server_error logged it and sent the 500
                raise
        except asyncio.CancelledError:
            # A second Ctrl-C cancels the requests still running: one not yet answered gets
            # the stopping server's JSON 503 (uvicorn's own answer is a plain-text 500).
            if status[0] is None:
                refused = shutting_down()
                with contextlib.suppress(Exception):  # its client may be gone
                    await JSONResponse(refused.body(), status_code=refused.status,
                                       headers=refused.headers)(scope, receive, send_and_note)
            raise
        finally:
            elapsed = (time.monotonic() - started) * 1000
            # A stream its client left is cut short: logged as the requests left unanswered.
            sent = 500 if status[0] is None else status[0]  # none sent: uvicorn's own 500
            shown = sent if answered[0] or sent >= 400 else CLIENT_CLOSED
            # Quoted as sent, so a path cannot forge a log line (%0A) or colour a terminal.
            path = urllib.parse.quote(shortened(scope["path"]), safe="/:@!$&'()*+,;=-._~")
            self.log(f"{scope['method']} {path} {shown} {elapsed:.1f} ms")


class JsonCORS(CORSMiddleware):
    """Starlette's CORS, a refused preflight answered in the API's JSON error shape (its own
    answer is plain text), with the same headers."""

    def preflight_response(self, request_headers: Any) -> Response:
        answer = super().preflight_response(request_headers)
        if answer.status_code == 200:
            return answer
        origin = request_headers.get("origin", "")
        refused = bytes(answer.body).decode().removeprefix("Disallowed CORS ").split(", ")
        allowed = {"origin": "origins allowed: " + (
                       "any" if self.allow_all_origins else ", ".join(sorted(self.allow_origins))
                   ) + ", by --cors-origin",
                   "method": "methods allowed: " + ", ".join(self.allow_methods)}
        reasons = [allowed[what] for what in refused if what in allowed]
        told = f" ({'; '.join(reasons)})" if reasons else ""
        headers = {name: value for name, value in answer.headers.items()
                   if name.lower() not in ("content-type", "content-length")}
        return JSONResponse(RequestError(
            answer.status_code, f"a page from {shortened(origin)!r} may not call this server: "
            f"its {' and '.join(refused)} {'is' if len(refused) == 1 else 'are'} not allowed"
            f"{told}",
            code="cors_not_allowed").body(), status_code=answer.status_code, headers=headers)


class KeyGuard:
    """ASGI middleware: the API key, compared in constant time; the page and /healthz are
    open."""

    def __init__(self, app: Any, api_key: str):
        self.app, self.key = app, api_key.encode()

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] == "http" and scope["path"] not in OPEN_PATHS and \
                not self._authorised(scope):
            await JSONResponse(RequestError(
                401, "missing or wrong API key; send 'Authorization: Bearer KEY'",
                code="invalid_api_key").body(), status_code=401,
                headers={"WWW-Authenticate": "Bearer"})(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _authorised(self, scope: dict) -> bool:
        header = dict(scope["headers"]).get(b"authorization", b"")
        scheme, _, token = header.partition(b" ")
        return scheme.lower() == b"bearer" and hmac.compare_digest(token.strip(), self.key)


class LoopbackNamesOnly:
    """ASGI middleware: a 403 for a request whose Host is not a loopback name (with any
    port: is_loopback_name), so a page whose site's name is made to resolve to 127.0.0.1
    (DNS rebinding) cannot read or drive a server that has no key."""

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] == "http":
            host = dict(scope["headers"]).get(b"host", b"").decode("latin-1").strip().lower()
            name = host[: host.index("]") + 1] if host.startswith("[") and "]" in host \
                else host.split(":")[0]
            if not is_loopback_name(name):
                await JSONResponse(RequestError(
                    403, f"this server answers only to {', '.join(LOOPBACK_NAMES)} (the Host "
                         f"was {shortened(host)!r}); to reach it by another name, serve it "
                         "with --api-key-file", code="host_not_allowed").body(),
                    status_code=403)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def is_loopback_name(name: str) -> bool:
    """localhost (or a name under .localhost), or a loopback address (127.0.0.2, [::1]...)."""
    if name in LOOPBACK_NAMES or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name.strip("[]")).is_loopback
    except ValueError:
        return False
