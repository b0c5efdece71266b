"""Reading and checking request bodies: every problem is a RequestError naming the field.

The sampling values are checked by SamplingSettings, the same object `textgen sample` uses,
so the server accepts and refuses exactly what the CLI does.
"""

from __future__ import annotations

import json
import math
import re
import sys
from dataclasses import dataclass, field, replace
from typing import Any

from textgen.errors import FieldError, TextgenError, check_field
from textgen.generate.sampling import DEFAULT_SAMPLING, SamplingSettings
from textgen.reading import MemberGivenTwice, lone_surrogate, unique_members

MAX_BODY_BYTES = 1_000_000
# A client's value longer than this (a path, a field's name or value) is cut where a message
# or the access log quotes it, and a message is at most MAX_MESSAGE_CHARS: a 900 kB field
# name is not sent back twice.
MAX_QUOTED_CHARS = 200
MAX_MESSAGE_CHARS = 2000
JSON_MEDIA_TYPE = "application/json"
DEFAULT_MAX_LENGTH = 5000
DEFAULT_MAX_N = 16
DEFAULT_N = 1  # samples a request gets when it names no 'n', as OpenAI's APIs
# A seed is read one character a step inside the shared batch (a few seconds for 10,000 at
# the bases' size), so a long one holds a place for minutes: refused, as APIs refuse prompts
# over their context length.
DEFAULT_MAX_PROMPT = 10_000
MAX_CLASSIFY_TEXTS = 1000
# Every step checks every stop text, for every sample in the shared batch: a few short ones
# suffice (OpenAI takes 4), and thousands would slow every client.
MAX_STOPS = 16
MAX_STOP_CHARS = 1000
# The OpenAI completions API's own defaults (its clients rely on them).
OPENAI_MAX_TOKENS = 16
OPENAI_TEMPERATURE = 1.0
# The sampling fields the completions API names otherwise (its `seed` is our rng_seed).
COMPLETION_NAMES = {"length": "max_tokens", "seed": "prompt", "rng_seed": "seed"}
# OpenAI fields that change what comes back and that textgen does not implement, with the
# values that mean "off" (what leaving the field out does). Any other value is refused: a
# silently ignored field would return something other than what the client asked for.
UNSUPPORTED_SAMPLING = {"presence_penalty": (0,), "frequency_penalty": (0,),
                        "logit_bias": ({},)}
UNSUPPORTED_COMPLETION = {**UNSUPPORTED_SAMPLING, "logprobs": (), "suffix": ("",),
                          "best_of": (1,)}
UNSUPPORTED_CHAT = {**UNSUPPORTED_SAMPLING, "logprobs": (False,), "top_logprobs": (0,),
                    "response_format": ({"type": "text"},), "tools": ([],),
                    "tool_choice": ("none", "auto"), "functions": ([],),
                    "function_call": ("none", "auto"),
                    "modalities": (["text"],), "audio": (), "prediction": (),
                    "reasoning_effort": (), "verbosity": (), "web_search_options": ()}
# The fields each endpoint reads; any other is refused (400), so a misspelt one is not
# silently left at its default. The OpenAI APIs' bookkeeping fields change nothing in the
# text and are accepted, as OpenAI's clients may send them.
GENERATE_FIELDS = {"model", "seed", "length", "temperature", "top_k", "top_p", "rng_seed",
                   "stop", "n", "skip_unknown", "text_limits", "stream"}
CLASSIFY_FIELDS = {"model", "texts"}
# OpenAI's stream_options; include_obfuscation only pads its chunks, so it changes no text
STREAM_OPTIONS = {"include_usage", "include_obfuscation"}
OPENAI_BOOKKEEPING = {  # with the JSON types OpenAI takes for them (checked, as OpenAI does)
    "user": ((str,), "a string"), "safety_identifier": ((str,), "a string"),
    "prompt_cache_key": ((str,), "a string"), "prompt_cache_retention": ((str,), "a string"),
    "metadata": ((dict,), "an object"), "store": ((bool,), "true or false"),
    "service_tier": ((str,), "a string"), "parallel_tool_calls": ((bool,), "true or false")}
OPENAI_SAMPLING_FIELDS = {"model", "temperature", "top_p", "top_k", "n", "stop", "seed",
                          "stream", "stream_options", "skip_unknown", "text_limits",
                          *OPENAI_BOOKKEEPING}
COMPLETION_FIELDS = {*OPENAI_SAMPLING_FIELDS, "prompt", "max_tokens", "echo",
                     *UNSUPPORTED_COMPLETION}
CHAT_FIELDS = {*OPENAI_SAMPLING_FIELDS, "messages", "max_tokens", "max_completion_tokens",
               *UNSUPPORTED_CHAT}


def shortened(text: str) -> str:
    """A client's text as messages and the log quote it: its first MAX_QUOTED_CHARS."""
    return text if len(text) <= MAX_QUOTED_CHARS else text[:MAX_QUOTED_CHARS] + "..."


def briefly(message: str) -> str:
    """A message with each run of over MAX_QUOTED_CHARS characters without a space (a long
    value it quotes) cut, and its middle left out past MAX_MESSAGE_CHARS (its start says
    what is wrong, its end what to do)."""
    message = re.sub(rf"\S{{{MAX_QUOTED_CHARS + 1},}}", lambda m: shortened(m.group()),
                     message)
    if len(message) <= MAX_MESSAGE_CHARS:
        return message
    half = MAX_MESSAGE_CHARS // 2
    return (f"{message[:half]}... ({len(message) - 2 * half:,} characters left out) ..."
            f"{message[-half:]}")


class RequestError(Exception):
    """A request the server refuses: HTTP status, message, and the field at fault (each cut
    to a readable length: they may quote the client's values)."""

    def __init__(self, status: int, message: str, param: str | None = None,
                 kind: str = "invalid_request_error", code: str | None = None,
                 headers: dict[str, str] | None = None):
        message = briefly(message)
        param = None if param is None else shortened(param)
        super().__init__(message)
        self.status, self.message, self.param, self.kind = status, message, param, kind
        self.code, self.headers = code, headers

    def body(self) -> dict[str, Any]:
        """OpenAI's error shape, which its clients show as it is."""
        return {"error": {"message": self.message, "type": self.kind, "param": self.param,
                          "code": self.code}}

    @classmethod
    def too_large(cls) -> RequestError:
        # The connection closes: the rest of the body is not read, so it cannot carry on.
        return cls(413, f"the body is over {MAX_BODY_BYTES:,} bytes; send fewer or shorter "
                        "texts in each request", headers={"Connection": "close"})

    @classmethod
    def of_error(cls, error: TextgenError, names: dict[str, str] | None = None
                    ) -> RequestError:
        """A 400 for an error of the settings: a bad value of a field (a FieldError), named as
        the request names it (`names` maps the settings' field names to the request's where
        they differ), is `param`; the message names fields `'field'` and a setting that would
        help as JSON (`"skip_unknown": true`)."""
        names = names or {}

        def param(name: str) -> str:
            return names.get(name, name)

        message = error.render(lambda name: f"'{param(name)}'",
                               lambda name, value: f'"{param(name)}": {json.dumps(value)}')
        return cls(400, message, param(error.field) if error.field else None)


def api_key_problem(key: str) -> str | None:
    """Why no client could send `key` as 'Authorization: Bearer KEY', None if one can: HTTP
    drops the spaces around a header's value, and clients write headers in ASCII (OpenAI's
    raise on any other character)."""
    if not key or any(c.isspace() for c in key):
        return "needs one key on one line, without spaces"
    if not (key.isascii() and key.isprintable()):
        return ("holds characters other than printable ASCII, which HTTP clients cannot send "
                "in a header; use letters, digits and punctuation")
    return None


@dataclass(frozen=True)
class Limits:
    max_length: int = DEFAULT_MAX_LENGTH
    max_n: int = DEFAULT_MAX_N
    max_prompt: int = DEFAULT_MAX_PROMPT

    def __post_init__(self) -> None:  # the Python API's create_app too, not only the CLI's
        for name in ("max_length", "max_n", "max_prompt"):
            value = getattr(self, name)
            check_field(isinstance(value, int) and not isinstance(value, bool) and value >= 1,
                        name, f"must be a whole number >= 1, got {value!r}")

    def length_by_default(self, default_length: int) -> int:
        """A request's length when it names none: the API's default, within --max-length."""
        return min(default_length, self.max_length)


def generate_defaults(limits: Limits) -> dict[str, Any]:
    """What `POST /v1/generate` uses for a field it is not sent (`/v1/models` shows it, so the
    playground starts from the server's values, within its limits)."""
    d = DEFAULT_SAMPLING
    return {"temperature": d.temperature, "length": limits.length_by_default(d.length),
            "top_k": d.top_k, "top_p": d.top_p, "n": DEFAULT_N}


@dataclass(frozen=True)
class GenerateRequest:
    model: str | None
    seeds: tuple[str | None, ...]  # the prompts (None: the model's default seed)
    settings: list[SamplingSettings]  # one per sample of each seed (rng_seed + i)
    stream: bool
    names: dict[str, str] = field(default_factory=dict)  # field -> the request's name for it
    include_usage: bool = False  # OpenAI's stream_options: a last chunk with the usage
    echo: bool = False  # OpenAI completions' echo: each completion starts with the prompt

    def samples(self) -> list[tuple[int, SamplingSettings]]:
        """(which seed, settings) for every sample, in OpenAI's order: sample p * n + i is
        the i-th of prompt p, so a prompt's samples do not depend on the others."""
        return [(p, settings) for p in range(len(self.seeds)) for settings in self.settings]


def check_body_format(content_type: str | None, content_encoding: str | None) -> str | None:
    """A body is JSON, sent as such and not compressed (415 otherwise). Requiring the JSON
    media type also keeps other sites' pages from posting to a server without a key: a
    browser sends it from another origin only after a CORS preflight the server refuses.
    Returns the charset the Content-Type declares, if any (said if the body fails as text)."""
    if content_encoding and content_encoding.strip().lower() != "identity":
        raise RequestError(415, f"the body is {content_encoding}-encoded; send it "
                                "uncompressed (no Content-Encoding)")
    media, *parameters = (content_type or "").split(";")
    if media.strip().lower() != JSON_MEDIA_TYPE:
        sent = f"'{shortened(content_type)}'" if content_type else "no Content-Type"
        raise RequestError(415, f"the body must be JSON sent with 'Content-Type: "
                                f"{JSON_MEDIA_TYPE}', got {sent} (curl: add -H "
                                f"'Content-Type: {JSON_MEDIA_TYPE}')")
    for parameter in parameters:
        key, _, value = parameter.partition("=")
        if key.strip().lower() == "charset":
            return value.strip().strip('"')
    return None


class _GivenTwice(dict):
    """An object of the body that names a member twice, kept in its place so that the error
    can name the member by its path (`messages[0].role`), as OpenAI's `param` does."""

    def __init__(self, name: str):
        super().__init__()
        self.name = name


def _path_given_twice(body: Any) -> str | None:
    """The path of the first member named twice in one object of `body`, None if none is."""
    pending: list[tuple[Any, str]] = [(body, "")]
    while pending:
        value, path = pending.pop()
        if isinstance(value, _GivenTwice):
            return f"{path}.{value.name}" if path else value.name
        if isinstance(value, dict):
            pending += [(v, f"{path}.{k}" if path else k) for k, v in reversed(value.items())]
        elif isinstance(value, list):
            pending += [(v, f"{path}[{i}]") for i, v in reversed(list(enumerate(value)))]
    return None


def _whole_number(digits: str) -> int:
    """A JSON integer; one past Python's limit on digits is the client's to shorten (Python's
    own error advises the server's code)."""
    limit = sys.get_int_max_str_digits()  # 0: no limit
    if limit and len(digits.lstrip("-")) > limit:
        raise RequestError(400, f"the body holds a number of {len(digits.lstrip('-')):,} "
                                f"digits, over the {limit:,} a number may have; send a "
                                "shorter one")
    return int(digits)


def _finite_number(text: str) -> float:
    """A JSON number with a fraction or exponent; one past a double's range (1e99999) is the
    client's (read as infinity, it was said back as `Infinity`, which it never sent)."""
    value = float(text)
    if not math.isfinite(value):
        raise RequestError(400, f"the body holds the number {shortened(text)}, out of the "
                                "range of a double (about 1.8e308 at most); send a smaller one")
    return value


def parse_json(raw: bytes, charset: str | None = None) -> dict[str, Any]:
    """The body as a JSON object; `charset`, the one its Content-Type declared, is named if
    the bytes are not text (JSON is UTF-8, RFC 8259; UTF-16 and -32 are told by their bytes,
    and ASCII is UTF-8)."""
    if len(raw) > MAX_BODY_BYTES:
        raise RequestError.too_large()
    given_twice = False

    def marking_twice(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        nonlocal given_twice
        try:
            return unique_members(pairs)
        except MemberGivenTwice as exc:
            given_twice = True
            return _GivenTwice(exc.name)

    try:
        body = json.loads(raw, object_pairs_hook=marking_twice, parse_int=_whole_number,
                          parse_float=_finite_number)
    except UnicodeDecodeError as exc:
        declared = f" (it is declared as charset={shortened(charset)})" if charset else ""
        # json reads UTF-16 or -32 where the first bytes say so (a BOM, zero bytes): named,
        # so the message says what was tried
        told = "" if exc.encoding.replace("-", "").lower() == "utf8" else (
            f", and its first bytes read as {exc.encoding.upper()} fail too")
        raise RequestError(400, f"the body is not UTF-8{declared}{told}: {exc}; JSON is read "
                                "as UTF-8, so send it so") from None
    except ValueError as exc:  # invalid JSON
        raise RequestError(400, f"the body is not valid JSON ({exc})") from None
    except RecursionError:  # arrays or objects nested past Python's stack
        raise RequestError(400, "the body's JSON is nested too deeply") from None
    twice = _path_given_twice(body) if given_twice else None
    if twice:  # which one counts RFC 8259 leaves open: the client means one of them
        raise RequestError(400, f"'{twice}' is given twice in one object; send it once", twice)
    if not isinstance(body, dict):
        raise RequestError(400, "the body must be a JSON object")
    half = lone_surrogate(body)
    if half is not None:
        raise RequestError(400, f"the body holds {half!r}, a lone surrogate escape, which is "
                                "not a character; send the text as UTF-8")
    return body


def _field(body: dict, name: str, kinds: tuple[type, ...], default: Any = None,
           what: str = "") -> Any:
    value = body.get(name, default)
    if value is None:
        return default
    ok = isinstance(value, kinds) and not (isinstance(value, bool) and bool not in kinds)
    if ok and isinstance(value, float) and not math.isfinite(value):
        ok = False
    if not ok:
        raise RequestError(400, f"'{name}' must be {what}, got {json.dumps(value)}", name)
    return value


def _int(body: dict, name: str, default: int | None, low: int | None,
         high: int | None = None, cap_name: str = "") -> int | None:
    value = _field(body, name, (int,), default, "a whole number")
    if value is None:
        return None
    if low is not None and value < low:
        raise RequestError(400, f"'{name}' must be >= {low}, got {value}", name)
    if high is not None and value > high:
        raise RequestError(400, f"'{name}' must be <= {high} (this server's {cap_name}), "
                                f"got {value}", name)
    return value


def refuse_unsupported(body: dict, fields: dict[str, tuple[Any, ...]]) -> None:
    """A 400 for the first field of `fields` set to something other than off (absent, null,
    or one of its listed values)."""
    for name, off in fields.items():
        value = body.get(name)
        if value is None or any(value == o and isinstance(value, bool) == isinstance(o, bool)
                                for o in off):
            continue
        raise RequestError(400, f"'{name}' is not supported by textgen's server (got "
                                f"{json.dumps(value)}); leave it out", name)


def refuse_unknown(body: dict, known: set[str]) -> None:
    """A 400 naming the first field the endpoint does not read."""
    unknown = sorted(set(body) - known)
    if unknown:
        raise RequestError(400, f"unknown field {json.dumps(unknown[0])}; this endpoint takes "
                                f"{', '.join(sorted(known))}", unknown[0])


def _stops(body: dict, name: str) -> tuple[str, ...]:
    value = body.get(name)
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise RequestError(400, f"'{name}' must be a non-empty string or a list of them", name)
    if len(value) > MAX_STOPS or max(map(len, value), default=0) > MAX_STOP_CHARS:
        raise RequestError(400, f"'{name}' may hold at most {MAX_STOPS} texts of at most "
                                f"{MAX_STOP_CHARS:,} characters, got {len(value):,} of up to "
                                f"{max(map(len, value)):,}", name)
    return tuple(value)


def _settings(names: dict[str, str], values: dict[str, Any]) -> SamplingSettings:
    """SamplingSettings; a bad value is a 400 naming the request's field (see `names`)."""
    try:
        return SamplingSettings(**values)
    except FieldError as exc:
        raise RequestError.of_error(exc, names) from None


def _textgen_sampling(body: dict[str, Any]) -> dict[str, Any]:
    """The sampling fields both APIs take by textgen's names and defaults: `top_k`,
    `skip_unknown`, `text_limits` and `stop`."""
    d = DEFAULT_SAMPLING
    return {"top_k": _int(body, "top_k", d.top_k, 1),
            "skip_unknown": _field(body, "skip_unknown", (bool,), d.skip_unknown,
                                   "true or false"),
            "text_limits": _field(body, "text_limits", (bool,), d.text_limits, "true or false"),
            "stop": _stops(body, "stop")}


def parse_generate(body: dict[str, Any], limits: Limits) -> GenerateRequest:
    """`POST /v1/generate`: textgen sample's options, by their Python names."""
    refuse_unknown(body, GENERATE_FIELDS)
    d = DEFAULT_SAMPLING
    n = _int(body, "n", DEFAULT_N, 1, limits.max_n, "--max-n")
    rng_seed = _int(body, "rng_seed", None, None)
    values = {
        "temperature": _field(body, "temperature", (int, float), d.temperature, "a number"),
        "length": _int(body, "length", limits.length_by_default(d.length), 1,
                       limits.max_length, "--max-length"),
        "top_p": _field(body, "top_p", (int, float), d.top_p, "a number"),
        **_textgen_sampling(body),
    }
    settings = _settings({}, {**values, "rng_seed": rng_seed}).numbered(n)
    return GenerateRequest(_field(body, "model", (str,), None, "a model name"),
                           (_field(body, "seed", (str,), None, "a string"),), settings,
                           _field(body, "stream", (bool,), False, "true or false"))


def parse_completion(body: dict[str, Any], limits: Limits) -> GenerateRequest:
    """`POST /v1/completions` in the OpenAI API's terms (prompt, max_tokens, seed...); a list
    of prompts gets n completions each, counted together against the server's --max-n."""
    refuse_unknown(body, COMPLETION_FIELDS)
    prompts = _prompts(body.get("prompt"))
    refuse_unsupported(body, UNSUPPORTED_COMPLETION)
    request = parse_openai_sampling(body, limits, None, COMPLETION_NAMES, OPENAI_MAX_TOKENS)
    asked = len(prompts) * len(request.settings)
    if asked > limits.max_n:
        raise RequestError(400, f"{len(prompts)} prompts x 'n' {len(request.settings)} ask for "
                                f"{asked} completions; this server gives at most "
                                f"{limits.max_n} a request (its --max-n): send fewer prompts, "
                                "or a smaller 'n'", "prompt")
    return replace(request, seeds=prompts,
                   echo=_field(body, "echo", (bool,), False, "true or false"))


def _prompts(value: Any) -> tuple[str | None, ...]:
    """The completions API's `prompt`: a string or a non-empty list of them (an empty or
    absent prompt starts from the model's default seed, as textgen sample does)."""
    if value is None or isinstance(value, str):
        return (value or None,)
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return tuple(v or None for v in value)
    raise RequestError(400, "'prompt' must be a string or a non-empty list of strings "
                            "(token ids mean nothing to a character model)", "prompt")


def parse_openai_sampling(body: dict[str, Any], limits: Limits, prompt: str | None,
                          names: dict[str, str], default_length: int) -> GenerateRequest:
    """The sampling fields the OpenAI completions and chat APIs share (`model`, `temperature`,
    `top_p`, `n`, `stop`, `seed`, `stream`, `stream_options`, and the length under
    `names["length"]`), plus textgen's `top_k` and `skip_unknown`, checked as `textgen
    sample` checks them; `names` maps the settings' fields to the request's (see
    COMPLETION_NAMES)."""
    for name, (kinds, what) in OPENAI_BOOKKEEPING.items():
        _field(body, name, kinds, what=what)
    length_field = names["length"]
    n = _int(body, "n", DEFAULT_N, 1, limits.max_n, "--max-n")
    seed = _int(body, "seed", None, None)
    top_p = _field(body, "top_p", (int, float), None, "a number")
    values = {
        "temperature": _field(body, "temperature", (int, float), OPENAI_TEMPERATURE, "a number"),
        "length": _int(body, length_field, limits.length_by_default(default_length), 1,
                       limits.max_length, "--max-length"),
        "top_p": None if top_p == 1 else top_p,
        **_textgen_sampling(body),
    }
    settings = _settings(names, {**values, "rng_seed": seed}).numbered(n)
    stream = _field(body, "stream", (bool,), False, "true or false")
    options = _field(body, "stream_options", (dict,), {}, 'an object like {"include_usage": true}')
    if options and not stream:  # as OpenAI answers: the options are the stream's
        raise RequestError(400, "'stream_options' is only allowed with \"stream\": true",
                           "stream_options")
    unknown = sorted(set(options) - STREAM_OPTIONS)
    if unknown:
        raise RequestError(400, f"'stream_options' has an unknown key {json.dumps(unknown[0])}; "
                                f"it takes {', '.join(sorted(STREAM_OPTIONS))}", "stream_options")
    include_usage = options.get("include_usage", False)
    if not isinstance(include_usage, bool):
        raise RequestError(400, "'stream_options.include_usage' must be true or false",
                           "stream_options")
    return GenerateRequest(_field(body, "model", (str,), None, "a model name"), (prompt,),
                           settings, stream, names, include_usage)


def parse_classify(body: dict[str, Any]) -> tuple[str | None, list[str]]:
    """`POST /v1/classify`: {"model", "texts": [...]}."""
    refuse_unknown(body, CLASSIFY_FIELDS)
    texts = body.get("texts")
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        raise RequestError(400, "'texts' must be a non-empty list of strings", "texts")
    if len(texts) > MAX_CLASSIFY_TEXTS:
        raise RequestError(400, f"'texts' holds {len(texts):,} texts; at most "
                                f"{MAX_CLASSIFY_TEXTS:,} per request: send the rest in more "
                                "requests", "texts")
    return _field(body, "model", (str,), None, "a model name"), texts
