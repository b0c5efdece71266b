"""`textgen serve`: the loaded runs as a web service (textgen/serve/)."""

import errno
import ipaddress
import os
import socket
import urllib.parse
from pathlib import Path
from typing import Annotated

import typer

from textgen.cli.app import app, err
from textgen.cli.options import DEFAULT_DIR, CheckpointDir, path_given
from textgen.errors import TextgenError
from textgen.serve.requests import (
    DEFAULT_MAX_LENGTH,
    DEFAULT_MAX_N,
    DEFAULT_MAX_PROMPT,
    Limits,
    api_key_problem,
)

API_KEY_ENV = "TEXTGEN_API_KEY"
DEFAULT_PORTS = {"http": 80, "https": 443}  # left out of an Origin header by browsers
GRACEFUL_SHUTDOWN_S = 3  # open streams get this long to finish after SIGINT/SIGTERM


@app.command()
def serve(
    runs: Annotated[list[str] | None, typer.Argument(
        help="Runs to serve: names under --checkpoint-dir, run folders or .keras files. "
             "Default: the latest run of each mode.", show_default=False)] = None,
    host: Annotated[str, typer.Option(
        help="Address to listen on; anything but 127.0.0.1 exposes the server to the network "
             "(use --api-key-file then).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port.")] = 8000,
    api_key_file: Annotated[Path | None, typer.Option(
        parser=path_given,
        help=f"File holding the API key every request but the page and /healthz must send "
             f"as 'Authorization: Bearer KEY' (or env {API_KEY_ENV}).")] = None,
    max_length: Annotated[int, typer.Option(
        min=1, help="The most characters one sample may ask for.")] = DEFAULT_MAX_LENGTH,
    max_n: Annotated[int, typer.Option(
        min=1, help="The most samples one request may ask for (a list of prompts: n for "
                    "each).")] = DEFAULT_MAX_N,
    max_prompt: Annotated[int, typer.Option(
        min=1, help="The most characters a request's seed, prompt or chat may make (the "
                    "model reads them one a step).")] = DEFAULT_MAX_PROMPT,
    cors_origin: Annotated[list[str] | None, typer.Option(
        help="An origin (scheme://host[:port]) whose web pages may call the API from a "
             "browser, or '*' for any; repeat for more. Default: none, so only the "
             "playground, served from here, can.", show_default=False)] = None,
    checkpoint_dir: CheckpointDir = DEFAULT_DIR,
) -> None:
    """Serve trained runs over HTTP: /v1/generate and /v1/classify, OpenAI-compatible
    /v1/completions and /v1/chat/completions, streaming, and a playground page at /."""
    key = _api_key(api_key_file)
    origins = [_origin(value) for value in cors_origin or []]
    loopback = _check_listening_address(host, port)
    from textgen.serve.models import load_models

    models = load_models(runs or [], checkpoint_dir)
    from textgen.serve.app import create_app, run_server

    application = create_app(models, Limits(max_length, max_n, max_prompt), key,
                             cors_origins=origins, loopback_names_only=loopback and not key)
    listing = ", ".join(f"{name} ({model.mode})" for name, model in models.items())
    guarded = " (API key required)" if key else ""
    shared = f"; web pages from {', '.join(origins)} may call it" if origins else ""
    if not loopback and not key:
        err.print(f"warning: --host {host} without an API key: anyone who can reach this "
                  "machine may use the server; give --api-key-file", markup=False)
    err.print(f"serving {listing} on http://{_url_host(host)}:{port}/{guarded}{shared}; "
              "Ctrl-C to stop", markup=False)
    run_server(application, models, host, port, GRACEFUL_SHUTDOWN_S)


def _url_host(host: str) -> str:
    """A host as URLs write it: an IPv6 address in brackets."""
    return f"[{host}]" if ":" in host else host


def _api_key(path: Path | None) -> str | None:
    """The key from --api-key-file, else from the environment (unset or blank: none); either
    way stripped (HTTP drops the spaces around a header's value, so no client could send
    them) and one word a client can send."""
    if path is None:
        key, source = os.environ.get(API_KEY_ENV, "").strip(), API_KEY_ENV
        if not key:
            return None
    else:
        source = f"--api-key-file {path}"
        try:
            key = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise TextgenError(f"{source}: cannot be read ({exc.strerror})") from None
        except UnicodeDecodeError:
            raise TextgenError(f"{source}: not UTF-8 text; put the key in a text file") from None
    problem = api_key_problem(key)
    if problem:
        raise TextgenError(f"{source}: {problem}")
    return key


def _origin(value: str) -> str:
    """A --cors-origin as browsers send it in `Origin`: scheme, host and port, no path (a
    browser never sends one, so an origin with a path would match nothing, silently)."""
    if value == "*":
        return value
    problem = TextgenError(f"--cors-origin {value}: not an origin; give scheme://host[:port] "
                           "(e.g. https://example.org) or '*'")
    parts = urllib.parse.urlsplit(value.strip())
    try:
        port, host = parts.port, parts.hostname
        if parts.scheme.lower() not in DEFAULT_PORTS or not host or parts.username is not None \
                or parts.path not in ("", "/") or parts.query or parts.fragment:
            raise problem
        host = host.encode("idna").decode("ascii")  # as a browser sends a Unicode name
    except (ValueError, UnicodeError):  # a port that is not a number; a bad name
        raise problem from None
    scheme = parts.scheme.lower()
    host = f"[{host}]" if ":" in host else host  # an IPv6 address, bracketed as in URLs
    shown_port = "" if port in (None, DEFAULT_PORTS[scheme]) else f":{port}"  # browsers omit it
    return f"{scheme}://{host}{shown_port}"


def _check_listening_address(host: str, port: int) -> bool:
    """A taken port or an unknown address is one line, before the models load. Returns
    whether the address is a loopback one (only this machine can connect to it)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        hint = ""
        if host.startswith("[") and host.endswith("]"):  # as a URL writes an IPv6 address
            hint = f"; give the address without brackets: --host {host[1:-1]}"
        elif host.count(":") == 1 and host.rpartition(":")[2].isdigit():  # a host:port
            name, _, number = host.rpartition(":")
            hint = f"; give the port on its own: --host {name} --port {number}"
        raise TextgenError(f"--host {host}: not an address of this machine{hint}") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            fix = ("choose another --port, or stop the program using it"
                   if exc.errno == errno.EADDRINUSE else "choose another --host")
            raise TextgenError(f"{_url_host(host)}:{port}: cannot listen there "
                               f"({exc.strerror}); {fix}") from None
    return all(ipaddress.ip_address(info[4][0].split("%")[0]).is_loopback for info in infos)
