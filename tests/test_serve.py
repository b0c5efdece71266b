"""`textgen serve`: every endpoint in-process (Starlette's TestClient), the errors, streaming,
the API key, the access log, and batching that never changes a request's text."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from tests.conftest import run_without_tensorflow
from textgen.generate.sampling import SamplingSettings, load_sampler
from textgen.serve.requests import MAX_BODY_BYTES, Limits

pytest.importorskip("httpx")


@pytest.fixture(scope="module")
def classifier_run(tiny_classifier_run):
    return tiny_classifier_run


@pytest.fixture(scope="module")
def served(tiny_run, classifier_run):
    from textgen.serve.models import load_models

    models = load_models([str(tiny_run.path), str(classifier_run.path)], tiny_run.path.parent)
    yield models
    for model in models.values():
        if model.mode == "generate":
            model.engine.stop()


def make_client(served, **options):
    from starlette.testclient import TestClient

    from textgen.serve.app import create_app

    lines: list[str] = []
    app = create_app(served, log=lines.append, **options)
    return TestClient(app, raise_server_exceptions=False), lines


@pytest.fixture(scope="module")
def client(served):
    client, lines = make_client(served, limits=Limits(max_length=300, max_n=4))
    client.log_lines = lines
    return client  # the engines stay up for the module; `served` stops them


def sse_events(response) -> list[tuple[str | None, str]]:
    events, name = [], None
    for line in response.iter_lines():
        if line.startswith("event: "):
            name = line[len("event: "):]
        elif line.startswith("data: "):
            events.append((name, line[len("data: "):]))
            name = None
    return events


def test_models_lists_both_modes_with_their_facts(client, tiny_run):
    body = client.get("/v1/models").json()
    assert body["object"] == "list"
    by_id = {m["id"]: m for m in body["data"]}
    assert by_id[tiny_run.path.name]["mode"] == "generate"
    vocab = load_sampler(tiny_run).vocab
    assert by_id[tiny_run.path.name]["vocab_size"] == len(vocab)
    assert by_id[tiny_run.path.name]["vocabulary"] == "".join(vocab.chars)
    assert by_id["moods"]["classes"] == ["neg", "pos"]
    assert by_id["moods"]["training"]["epochs_done"] == 3
    assert client.get("/v1/models/moods").json() == by_id["moods"]  # OpenAI's retrieve
    missing = client.get("/v1/models/nope")
    assert missing.status_code == 404 and missing.json()["error"]["param"] == "model"
    assert client.get("/healthz").json() == {"status": "ok", "models": 2}


def test_the_servers_limits_are_checked_where_the_python_api_makes_them():
    from textgen.errors import FieldError

    for bad in ({"max_length": 0}, {"max_n": -1}, {"max_prompt": 2.5}):
        with pytest.raises(FieldError, match=f"^{next(iter(bad))} must be a whole number >= 1"):
            Limits(**bad)


def test_models_gives_the_limits_and_the_defaults_a_request_may_send_back(client, tiny_run):
    # This server's --max-length is 300, under the sampler's 500: the playground sends back
    # what /v1/models gives it, and must not be refused for it.
    body = client.get("/v1/models").json()
    assert body["limits"] == {"max_length": 300, "max_n": 4, "max_prompt": 10_000}
    defaults = body["generate_defaults"]
    assert defaults == {"temperature": 0.8, "length": 300, "top_k": None, "top_p": None, "n": 1}
    sent = {name: value for name, value in defaults.items() if value is not None}
    answer = client.post("/v1/generate", json={"model": tiny_run.path.name, "seed": "To",
                                               "rng_seed": 0, **sent})
    assert answer.status_code == 200
    assert len(answer.json()["samples"][0]) == 2 + 300


def test_generate_gives_the_text_textgen_sample_gives(client, tiny_run):
    sampler = load_sampler(tiny_run)
    response = client.post("/v1/generate", json={"seed": "To be", "length": 80,
                                                 "temperature": 0.7, "rng_seed": 3, "n": 3,
                                                 "stop": ["ing"]})
    assert response.status_code == 200, response.text
    body = response.json()
    expected = [sampler.sample_with_reason("To be", SamplingSettings(
        temperature=0.7, length=80, rng_seed=3 + i, stop=("ing",))) for i in range(3)]
    assert body["samples"] == [e.text for e in expected]
    assert body["finish_reasons"] == [e.finish_reason for e in expected]


def test_streamed_generation_arrives_in_pieces_then_says_why_it_ended(client):
    request = {"seed": "Whether", "length": 150, "rng_seed": 9, "n": 2, "stream": True}
    with client.stream("POST", "/v1/generate", json=request) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = sse_events(response)
    texts = ["", ""]
    for name, data in events[:-1]:
        assert name == "text"
        piece = json.loads(data)
        texts[piece["index"]] += piece["text"]
    assert events[-1][0] == "end"
    assert json.loads(events[-1][1]) == {"finish_reasons": ["length", "length"]}
    # streamed as generated, not in one piece: the seed, the first character at once, the rest
    assert all(sum(json.loads(data)["index"] == i for _, data in events[:-1]) >= 3
               for i in range(2))
    whole = client.post("/v1/generate", json={**request, "stream": False}).json()
    assert texts == whole["samples"] and texts[0].startswith("Whether")


def test_a_streamed_line_separator_cannot_cut_an_event_for_a_web_page():
    """JavaScript ends lines at U+2028 and U+2029 too: a page that reads `data:` lines with a
    regular expression (the playground's) must get them escaped, the JSON unchanged."""
    from textgen.serve.app import data, event

    text = "one\u2028two\u2029three\u00e9"
    for written in (event("text", {"text": text}), data({"text": text})):
        assert "\u2028" not in written and "\u2029" not in written and "\u00e9" in written
        line = written.split("data: ", 1)[1].split("\n", 1)[0]
        assert json.loads(line) == {"text": text}


def test_classify_gives_what_classify_predict_gives(client, served, classifier_run):
    from textgen.classify.inference import NumpyClassifier
    from textgen.classify.prediction import predict_texts
    from textgen.runs import find_model

    # The server labels with the NumPy classifier: serving a classifier loads no TensorFlow.
    assert isinstance(served["moods"].model.predictor, NumpyClassifier)

    texts = ["a wonderful brilliant film", "an awful boring mess", "the plot", "zzz qqq"]
    body = client.post("/v1/classify", json={"model": "moods", "texts": texts}).json()
    expected = predict_texts(texts, find_model(classifier_run.path, mode="classify"))
    assert [r["label"] for r in body["results"]] == [e["label"] for e in expected]
    for got, want in zip(body["results"], expected, strict=True):
        assert got["probabilities"] == pytest.approx(want["probabilities"], abs=1e-6)
        assert got["known_words"] == want["known_words"]
    assert body["results"][3]["known_words"] == 0  # its label is the model's prior
    assert body["results"][0]["label"] == "pos" and body["results"][1]["label"] == "neg"


def test_openai_completions_shape_stop_and_stream(client, tiny_run):
    sampler = load_sampler(tiny_run)
    request = {"model": tiny_run.path.name, "prompt": "To be", "max_tokens": 60,
               "temperature": 0.9, "seed": 5, "n": 2, "stop": ["e"]}
    body = client.post("/v1/completions", json=request).json()
    assert body["object"] == "text_completion" and body["id"].startswith("cmpl-")
    for choice in body["choices"]:
        alone = sampler.sample_with_reason("To be", SamplingSettings(
            temperature=0.9, length=60, rng_seed=5 + choice["index"], stop=("e",)))
        completion = alone.text[len("To be"):]
        if alone.finish_reason == "stop":
            completion = completion[:-1]  # the stop text is left out, as OpenAI does
        assert choice["text"] == completion
        assert choice["finish_reason"] == alone.finish_reason
    assert body["usage"]["prompt_tokens"] == 5
    with client.stream("POST", "/v1/completions", json={**request, "stream": True}) as response:
        events = sse_events(response)
    assert events[-1] == (None, "[DONE]")
    streamed = ["", ""]
    reasons = [None, None]
    for _, data in events[:-1]:
        choice = json.loads(data)["choices"][0]
        streamed[choice["index"]] += choice["text"]
        reasons[choice["index"]] = choice["finish_reason"] or reasons[choice["index"]]
    assert streamed == [c["text"] for c in body["choices"]]
    assert reasons == [c["finish_reason"] for c in body["choices"]]


def test_a_windows_line_end_as_a_stop_text_stops_at_the_models_line_end(client, tiny_run):
    """Seeds read "\r\n" as a line end; stop texts did not, so a Windows client's stop
    never matched the "\n" the model writes."""
    request = {"model": tiny_run.path.name, "prompt": "To be", "max_tokens": 300, "seed": 4}
    unix = client.post("/v1/completions", json={**request, "stop": "\n"}).json()["choices"]
    windows = client.post("/v1/completions", json={**request, "stop": ["\r\n"]}).json()
    assert unix[0]["finish_reason"] == "stop"
    assert windows["choices"] == unix
    sampler = load_sampler(tiny_run)
    alone = sampler.sample_with_reason("To be", SamplingSettings(length=300, rng_seed=4,
                                                                 stop=("\r\n",)))
    assert alone.finish_reason == "stop" and alone.text.endswith("\n")


def test_completions_echo_the_prompt_and_take_the_off_values_of_what_they_lack(client,
                                                                               tiny_run):
    request = {"model": tiny_run.path.name, "prompt": "To be", "max_tokens": 20, "seed": 3,
               "n": 2}
    plain = client.post("/v1/completions", json=request).json()["choices"]
    # What OpenAI clients send as "off" passes, and changes nothing.
    offs = {"logprobs": None, "best_of": 1, "suffix": "", "presence_penalty": 0,
            "frequency_penalty": 0.0, "logit_bias": {}, "echo": False}
    assert client.post("/v1/completions", json={**request, **offs}).json()["choices"] == plain
    echoed = client.post("/v1/completions", json={**request, "echo": True}).json()["choices"]
    assert [c["text"] for c in echoed] == ["To be" + c["text"] for c in plain]
    with client.stream("POST", "/v1/completions",
                       json={**request, "echo": True, "stream": True}) as response:
        events = sse_events(response)
    streamed = ["", ""]
    for _, data in events[:-1]:
        choice = json.loads(data)["choices"][0]
        streamed[choice["index"]] += choice["text"]
    assert streamed == [c["text"] for c in echoed]


def test_a_list_of_prompts_gets_each_prompts_completions_in_openai_order(client, tiny_run):
    request = {"model": tiny_run.path.name, "max_tokens": 20, "seed": 7, "n": 2}
    prompts = ["To be", ""]  # "" starts from the model's default seed; 4 samples: --max-n
    alone = [client.post("/v1/completions", json={**request, "prompt": p}).json()
             for p in prompts]
    batch = client.post("/v1/completions", json={**request, "prompt": prompts,
                                                  "echo": True}).json()
    # Choice p * n + i is prompt p's i-th, the same text as when the prompt comes alone.
    assert [c["index"] for c in batch["choices"]] == list(range(4))
    assert [c["text"] for c in batch["choices"]] == [
        p + c["text"] for p, single in zip(prompts, alone, strict=True)
        for c in single["choices"]]
    assert batch["usage"]["prompt_tokens"] == sum(a["usage"]["prompt_tokens"] for a in alone)
    assert batch["usage"]["completion_tokens"] == 4 * 20
    with client.stream("POST", "/v1/completions",
                       json={**request, "prompt": prompts, "stream": True}) as response:
        events = sse_events(response)
    streamed = [""] * 4
    for _, data in events[:-1]:
        choice = json.loads(data)["choices"][0]
        streamed[choice["index"]] += choice["text"]
    assert streamed == [c["text"] for single in alone for c in single["choices"]]


# The tiny model's text has no "U": its users are named ("Tom"), as a play's speakers are.
CHAT = [{"role": "system", "content": "To be"},
        {"role": "user", "name": "Tom", "content": "And by "},
        {"role": "assistant", "name": "Ophelia", "content": "the"},
        {"role": "user", "name": "Tom", "content": [{"type": "text", "text": "Whether"}]}]
TOM = [{"role": "user", "name": "Tom", "content": "To be"}]  # a valid chat
# The documented layout (serve/chat.py): a paragraph per system message, then speeches.
CHAT_PROMPT = "To be\n\nTom:\nAnd by\n\nOphelia:\nthe\n\nTom:\nWhether\n\nOphelia:\n"


def test_openai_chat_completions_shape_template_and_stream(client, tiny_run):
    sampler = load_sampler(tiny_run)
    request = {"model": tiny_run.path.name, "messages": CHAT, "max_completion_tokens": 60,
               "temperature": 0.9, "seed": 5, "n": 3, "stop": ["e"]}
    response = client.post("/v1/chat/completions", json=request)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["object"] == "chat.completion" and body["id"].startswith("chatcmpl-")
    assert body["model"] == tiny_run.path.name and len(body["choices"]) == 3
    generated = 0
    for choice in body["choices"]:
        # The reply is what the model writes after the prompt, ending at a blank line too.
        alone = sampler.sample_with_reason(CHAT_PROMPT, SamplingSettings(
            temperature=0.9, length=60, rng_seed=5 + choice["index"], stop=("e", "\n\n")))
        reply = alone.text[len(CHAT_PROMPT):]
        generated += len(reply)
        if alone.finish_reason == "stop":
            reply = reply.removesuffix("\n\n").removesuffix("e")  # left out, as OpenAI does
        assert choice["message"] == {"role": "assistant", "content": reply, "refusal": None}
        assert choice["finish_reason"] == alone.finish_reason
    assert body["usage"] == {"prompt_tokens": len(CHAT_PROMPT), "completion_tokens": generated,
                             "total_tokens": len(CHAT_PROMPT) + generated}

    streamed_request = {**request, "stream": True, "stream_options": {"include_usage": True}}
    with client.stream("POST", "/v1/chat/completions", json=streamed_request) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = sse_events(response)
    assert events[-1] == (None, "[DONE]")
    chunks = [json.loads(data) for _, data in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == body["usage"]
    first = [c["choices"][0] for c in chunks[:3]]  # each choice opens with the role
    assert [(c["index"], c["delta"]) for c in first] == [
        (i, {"role": "assistant", "content": ""}) for i in range(3)]
    replies, reasons = ["", "", ""], [None, None, None]
    for chunk in chunks[3:-1]:
        (choice,) = chunk["choices"]
        assert reasons[choice["index"]] is None  # nothing after a choice's finish_reason
        replies[choice["index"]] += choice["delta"].get("content", "")
        reasons[choice["index"]] = choice["finish_reason"]
    assert replies == [c["message"]["content"] for c in body["choices"]]
    assert reasons == [c["finish_reason"] for c in body["choices"]]


def test_chat_replies_end_at_a_blank_line_and_drop_unknown_characters_on_request(client):
    # Greedy, long: the reply ends at the blank line that ends a speech, or at the length.
    body = client.post("/v1/chat/completions", json={
        "messages": [{"role": "user", "content": "To ☃be"}], "skip_unknown": True,
        "temperature": 0, "max_tokens": 300}).json()
    prompt = "ser:\nTo be\n\nAssistant:\n"  # "U" and "☃" dropped, as the seed's are
    assert body["usage"]["prompt_tokens"] == len(prompt)
    (choice,) = body["choices"]
    assert "\n\n" not in choice["message"]["content"]
    assert choice["finish_reason"] == "stop" or body["usage"]["completion_tokens"] == 300
    completion = client.post("/v1/completions", json={
        "prompt": "To ☃be", "skip_unknown": True, "max_tokens": 5}).json()
    assert completion["usage"]["prompt_tokens"] == len("To be")
    # Unicode's other form of a character the model knows is that character: U+037E (Greek
    # question mark) is ';' composed, in a message as in a prompt (both were a 400)
    message = {"role": "user", "name": "The", "content": "To sleep\u037e"}
    for path, fields in (("/v1/chat/completions", {"messages": [message]}),
                         ("/v1/completions", {"prompt": "To sleep\u037e"})):
        response = client.post(path, json={**fields, "max_tokens": 5})
        assert response.status_code == 200, response.json()


@pytest.mark.parametrize(("path", "body", "status", "param", "message"), [
    ("/v1/generate", b"{not json", 400, None, "not valid JSON"),
    ("/v1/generate", b"[1, 2]", 400, None, "must be a JSON object"),
    ("/v1/generate", {"temperature": "hot"}, 400, "temperature", "must be a number"),
    ("/v1/generate", {"temperature": -1}, 400, "temperature", "'temperature' must be a"),
    ("/v1/generate", {"top_p": 1.5}, 400, "top_p", "'top_p' must be in (0, 1]"),
    ("/v1/generate", {"length": 301}, 400, "length", "<= 300 (this server's --max-length)"),
    ("/v1/generate", {"n": 5}, 400, "n", "<= 4 (this server's --max-n)"),
    ("/v1/generate", {"length": True}, 400, "length", "a whole number"),
    ("/v1/generate", {"model": "nope"}, 404, "model", "no model named 'nope'"),
    ("/v1/generate", {"model": "moods"}, 400, "model", "is a classify model"),
    ("/v1/generate", {"seed": "To be ☃"}, 400, "seed", "'☃' (U+2603)"),
    ("/v1/generate", {"stop": [""]}, 400, "stop", "non-empty string"),
    ("/v1/classify", {"texts": "one"}, 400, "texts", "non-empty list of strings"),
    ("/v1/classify", {"texts": ["x"], "model": "../../etc/passwd"}, 404, "model", "no model"),
    ("/v1/completions", {"max_tokens": 0}, 400, "max_tokens", ">= 1"),
    ("/v1/completions", {"prompt": [1, 2]}, 400, "prompt", "a non-empty list of strings"),
    ("/v1/completions", {"prompt": []}, 400, "prompt", "a non-empty list of strings"),
    ("/v1/completions", {"prompt": ["To", "be", "or"], "n": 2}, 400, "prompt",
     "3 prompts x 'n' 2 ask for 6 completions; this server gives at most 4"),
    ("/v1/completions", {"prompt": ["To", "be ☃"]}, 400, "prompt[1]",
     "'prompt[1]' has characters the model never saw: '☃'"),
    ("/v1/chat/completions", {}, 400, "messages", "'messages' must be a non-empty list"),
    ("/v1/chat/completions", {"messages": []}, 400, "messages", "non-empty list"),
    ("/v1/chat/completions", {"messages": ["hi"]}, 400, "messages[0]", "an object"),
    ("/v1/chat/completions", {"messages": [{"role": "tool", "content": "x"}]}, 400,
     "messages[0].role", "must be one of system, developer, user, assistant"),
    ("/v1/chat/completions", {"messages": [{"role": "user"}]}, 400, "messages[0].content",
     "must be a string"),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "x"}}]}]}, 400, "messages[0].content",
     "text parts"),
    ("/v1/chat/completions", {"messages": [{"role": "user", "name": "", "content": "a"}]},
     400, "messages[0].name", "a speaker name"),
    # a carriage return (read as a line end) split the speaker line in two
    ("/v1/chat/completions", {"messages": [{"role": "user", "name": "A\rB", "content": "a"}],
                              "skip_unknown": True},
     400, "messages[0].name", "a speaker name of 1 to 64 characters on one line, got \"A\\rB\""),
    ("/v1/chat/completions", {"messages": [{"role": "user", "name": "A\u2028B",
                                            "content": "a"}]},
     400, "messages[0].name", "on one line"),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "To be"}]}, 400,
     "messages[0].name", "the speaker name 'User' of 'messages[0]' has characters the model "
     "never saw: 'U' (U+0055)"),
    ("/v1/chat/completions", {"messages": [{"role": "user", "name": "Tom",
                                            "content": "To be ☃"}]}, 400,
     "messages[0].content", "'☃' (U+2603); change the text or send \"skip_unknown\": true"),
    ("/v1/chat/completions", {"model": "moods", "messages": TOM}, 400, "model",
     "is a classify model"),
    ("/v1/chat/completions", {"messages": TOM, "max_completion_tokens": 301}, 400,
     "max_completion_tokens", "<= 300 (this server's --max-length)"),
    ("/v1/chat/completions", {"messages": TOM, "max_tokens": 0}, 400, "max_tokens", ">= 1"),
    ("/v1/chat/completions", {"messages": TOM, "max_tokens": 5, "max_completion_tokens": 6},
     400, "max_tokens", "not both"),
    ("/v1/chat/completions", {"messages": TOM, "temperature": "hot"}, 400, "temperature",
     "must be a number"),
    ("/v1/chat/completions", {"messages": TOM, "top_p": 1.5}, 400, "top_p",
     "'top_p' must be in (0, 1]"),
    ("/v1/chat/completions", {"messages": TOM, "n": 5}, 400, "n", "<= 4"),
    ("/v1/chat/completions", {"messages": TOM, "stop": [""]}, 400, "stop", "non-empty"),
    ("/v1/chat/completions", {"messages": TOM, "stream": True,
                              "stream_options": {"include_usage": 1}},
     400, "stream_options", "true or false"),
    ("/v1/completions", {"stream_options": {"include_usage": True}}, 400, "stream_options",
     'only allowed with "stream": true'),
    # OpenAI fields that would change the answer and that textgen does not implement
    ("/v1/completions", {"logprobs": 3}, 400, "logprobs", "'logprobs' is not supported"),
    ("/v1/completions", {"logprobs": 0}, 400, "logprobs", "leave it out"),
    ("/v1/completions", {"best_of": 3}, 400, "best_of", "not supported"),
    ("/v1/completions", {"suffix": "end"}, 400, "suffix", "not supported"),
    ("/v1/completions", {"presence_penalty": 0.5}, 400, "presence_penalty", "not supported"),
    ("/v1/completions", {"frequency_penalty": False}, 400, "frequency_penalty",
     "not supported"),
    ("/v1/completions", {"echo": "yes"}, 400, "echo", "true or false"),
    ("/v1/chat/completions", {"messages": TOM, "logprobs": True}, 400, "logprobs",
     "not supported"),
    ("/v1/chat/completions", {"messages": TOM, "top_logprobs": 2}, 400, "top_logprobs",
     "not supported"),
    ("/v1/chat/completions", {"messages": TOM, "logit_bias": {"50": 5}}, 400, "logit_bias",
     "not supported"),
    ("/v1/chat/completions", {"messages": TOM, "response_format": {"type": "json_object"}},
     400, "response_format", "'response_format' is not supported"),
    ("/v1/chat/completions", {"messages": TOM, "tools": [{"type": "function"}]}, 400, "tools",
     "not supported"),
    # A field no endpoint reads (a typo, another API's) is named, not left at its default.
    ("/v1/generate", {"lenght": 5}, 400, "lenght", 'unknown field "lenght"; this endpoint '
     "takes length, model, n, rng_seed, seed, skip_unknown, stop, stream, temperature, "
     "text_limits, top_k, top_p"),
    ("/v1/classify", {"texts": ["x"], "labels": ["a"]}, 400, "labels", 'unknown field "labels"'),
    ("/v1/completions", {"max_new_tokens": 5}, 400, "max_new_tokens", "unknown field"),
    ("/v1/chat/completions", {"messages": TOM, "echo": True}, 400, "echo", "unknown field"),
    ("/v1/completions", {"top_k": 0}, 400, "top_k", "'top_k' must be >= 1"),
    ("/v1/generate", {"top_p": 10**400}, 400, "top_p", "got a number of about 400 digits"),
    ("/v1/generate", b'{"length": 1' + b"0" * 5000 + b"}", 400, None,
     "a number of 5,001 digits, over the 4,300"),
    ("/v1/generate", b"[" * 100_000 + b"]" * 100_000, 400, None, "nested too deeply"),
    # JSON's escapes can write half a surrogate pair, which is no character
    ("/v1/classify", b'{"texts": ["\\ud800 x"]}', 400, None, "'\\ud800', a lone surrogate"),
    ("/v1/completions", b'{"prompt": "To\\udfff", "stream": true}', 400, None,
     "lone surrogate"),
    ("/v1/generate", b'{"\\ud800": 1}', 400, None, "lone surrogate"),
    ("/v1/generate", {"stop": ["QQ"] * 17}, 400, "stop", "at most 16 texts"),
    ("/v1/completions", {"stop": "Q" * 1001}, 400, "stop", "of at most 1,000 characters"),
    ("/v1/completions", {"stream": True, "stream_options": {"include_usage": True, "foo": 1}},
     400, "stream_options", 'unknown key "foo"'),
    ("/v1/classify", {"texts": ["good", " "]}, 400, "texts[1]", "'texts[1]' is empty"),
    ("/v1/classify", {"texts": ["\u200b"]}, 400, "texts[0]", "'texts[0]' is empty"),
    ("/v1/classify", {"texts": ["x"] * 1001}, 400, "texts", "send the rest in more requests"),
    ("/v1/generate", {"seed": ""}, 400, "seed", "'seed' is empty; give text to start from"),
    ("/v1/generate", {"seed": "\u017e", "skip_unknown": True}, 400, "seed",
     "holds only characters the model never saw"),
    # a misspelt field of a message was ignored: the speaker became User
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "to be", "nmae": "I"}]},
     400, "messages[0].nmae",
     "unknown field \"nmae\" in 'messages[0]'; a message takes role, content, name"),
    ("/v1/chat/completions", {"messages": [{"role": "assistant", "content": "to be",
                                            "tool_calls": [{"id": "x"}]}]},
     400, "messages[0].tool_calls", "'messages[0].tool_calls' is not supported"),
])
def test_bad_requests_get_a_json_error_naming_the_field(client, path, body, status, param,
                                                        message):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    response = client.post(path, content=raw, headers={"Content-Type": "application/json"})
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert message in error["message"] and error["param"] == param
    assert client.get("/healthz").status_code == 200  # the server lives on


def test_a_long_value_is_quoted_cut_in_the_error(client):
    """The client's 900 kB field name came back twice in full (1.8 MB)."""
    for path, body, status in (("/v1/generate", {"x" * 900_000: 1}, 400),
                               ("/v1/generate", {"model": "y" * 900_000}, 404),
                               ("/v1/generate", {"temperature": "z " * 300_000}, 400)):
        response = client.post(path, json=body)
        assert response.status_code == status, response.text[:300]
        assert len(response.content) < 5000, (path, len(response.content))
        error = response.json()["error"]
        assert error["param"] is None or len(error["param"]) <= 203
    assert client.get("/healthz").status_code == 200


def test_chat_messages_read_windows_line_ends_and_take_back_an_answer(client):
    """`\r\n` was refused in chat (a character the model never saw) where every other
    endpoint reads it as a line end; an answer sent back holds "refusal": null."""
    body = client.post("/v1/chat/completions", json={
        "messages": [{"role": "user", "content": "to be\r\nor not", "name": "ham"},
                     {"role": "assistant", "content": "to be", "refusal": None,
                      "name": "hor"},
                     {"role": "assistant", "content": "or not", "refusal": "", "name": "hor"}],
        "max_tokens": 3})
    assert body.status_code == 200, body.text


def test_the_openai_endpoints_take_top_k_and_their_bookkeeping_fields(client):
    base = {"prompt": "To be", "max_tokens": 40, "temperature": 1.5}
    greedy = client.post("/v1/completions", json={**base, "temperature": 0}).json()
    texts = {client.post("/v1/completions", json={**base, "top_k": 1, "seed": seed,
                                                  "user": "u-1", "metadata": {"a": "b"},
                                                  "store": False}).json()["choices"][0]["text"]
             for seed in (1, 2)}
    assert texts == {greedy["choices"][0]["text"]}  # top_k 1 is greedy, whatever the seed
    chat = client.post("/v1/chat/completions", json={
        "messages": TOM, "max_tokens": 5, "top_k": 1, "response_format": {"type": "text"},
        "tool_choice": "none", "service_tier": "auto"})
    assert chat.status_code == 200, chat.text
    for name, bad in (("user", 5), ("metadata", [1, 2]), ("store", "yes")):
        wrong = client.post("/v1/completions", json={**base, name: bad})
        assert wrong.status_code == 400 and wrong.json()["error"]["param"] == name


def test_a_reworded_check_still_names_its_field(client, monkeypatch):
    """The server takes the field from the error, never from its wording."""
    from textgen.generate import sampling

    check = sampling.check_field
    monkeypatch.setattr(sampling, "check_field",
                        lambda ok, field, problem: check(ok, field, "reads otherwise now"))
    for path, body, param in (("/v1/generate", {"top_p": 1.5}, "top_p"),
                              ("/v1/completions", {"temperature": -1}, "temperature")):
        response = client.post(path, json=body)
        assert response.status_code == 400
        assert response.json()["error"]["param"] == param
        assert response.json()["error"]["message"] == f"'{param}' reads otherwise now"


def test_a_prompt_with_unknown_characters_names_the_prompt(client):
    response = client.post("/v1/completions", json={"prompt": "To be \u017e"})
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "prompt"  # `seed` is the random seed there
    assert response.json()["error"]["message"].startswith("'prompt' has characters the model")
    response = client.post("/v1/generate", json={"seed": "To be \u017e"})
    assert response.json()["error"]["param"] == "seed"
    assert response.json()["error"]["message"].endswith(
        'pass "skip_unknown": true to drop them')


def test_a_prompt_over_the_servers_max_prompt_is_refused_naming_its_field(served):
    client, _ = make_client(served, limits=Limits(max_prompt=20))
    for path, body, param in [
            ("/v1/generate", {"seed": "To be " * 4}, "seed"),
            ("/v1/completions", {"prompt": "To be " * 4}, "prompt"),
            ("/v1/chat/completions", {"messages": TOM * 2}, "messages")]:
        error = client.post(path, json=body)
        assert error.status_code == 400, path
        assert error.json()["error"]["param"] == param
        assert "at most 20 (its --max-prompt)" in error.json()["error"]["message"]
    at_limit = client.post("/v1/completions", json={"prompt": "To be " * 3 + "to",
                                                     "max_tokens": 3})
    assert at_limit.status_code == 200
    assert at_limit.json()["usage"]["prompt_tokens"] == 20


def test_big_bodies_unknown_paths_and_methods_are_json_errors(client):
    big = client.post("/v1/generate", content=b"x" * (MAX_BODY_BYTES + 1),
                      headers={"Content-Type": "application/json"})
    assert big.status_code == 413 and "over 1,000,000 bytes" in big.json()["error"]["message"]
    assert big.headers["connection"] == "close"  # the rest of the body is never read
    assert client.get("/v1/nothing").status_code == 404
    assert "no such endpoint" in client.get("/v1/nothing").json()["error"]["message"]
    # A client whose base URL lacks /v1 is told so.
    assert client.post("/completions", json={}).json()["error"]["message"] == (
        "no such endpoint: /completions; did you mean /v1/completions (a client's base URL "
        "ends in /v1)?")
    missing = client.post("/v1/completions", json={"model": "nope"})
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "model_not_found"
    # Any whole number is a random seed, as on the command line.
    for seed in (-10**30, 10**30):
        assert client.post("/v1/completions", json={"seed": seed, "max_tokens": 3,
                                                    "prompt": "To"}).status_code == 200
    not_allowed = client.get("/v1/generate")
    assert not_allowed.status_code == 405 and not_allowed.headers["Allow"] == "POST"
    skipped = client.post("/v1/generate", json={"seed": "To ☃be", "skip_unknown": True,
                                                "length": 5, "rng_seed": 1}).json()
    assert skipped["samples"][0].startswith("To be")


def test_the_api_key_guards_all_but_the_page_and_healthz(served):
    client, lines = make_client(served, api_key="s3cret-key")
    assert client.get("/v1/models").status_code == 401
    wrong = client.get("/v1/models", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and "API key" in wrong.json()["error"]["message"]
    assert wrong.json()["error"]["code"] == "invalid_api_key"  # as OpenAI names it
    good = client.get("/v1/models", headers={"Authorization": "Bearer s3cret-key"})
    assert good.status_code == 200
    assert client.get("/healthz").status_code == 200
    assert client.get("/favicon.ico").status_code == 204  # no 404 on every page load
    page = client.get("/")
    assert page.status_code == 200 and "textgen playground" in page.text
    assert "<script src=" not in page.text and "http" not in page.text.split("<script>")[1]
    assert lines and all("s3cret" not in line for line in lines)
    assert "GET /v1/models 401" in lines[0] and lines[0].endswith(" ms")



def test_a_body_must_be_json_sent_as_json(client):
    """curl's default form type, a page's text/plain or a compressed body: a 415 saying what
    to send (a page elsewhere cannot then post to a server without a key); a field given
    twice: a 400 naming it."""
    for headers in ({}, {"Content-Type": "text/plain"},
                    {"Content-Type": "application/x-www-form-urlencoded"}):
        answer = client.post("/v1/completions", content=b'{"max_tokens": 2}', headers=headers)
        assert answer.status_code == 415, headers
        assert "-H 'Content-Type: application/json'" in answer.json()["error"]["message"]
    zipped = client.post("/v1/completions", content=b"\x1f\x8b", headers={
        "Content-Type": "application/json", "Content-Encoding": "gzip"})
    assert zipped.status_code == 415 and "uncompressed" in zipped.json()["error"]["message"]
    fine = client.post("/v1/completions", content=b'{"max_tokens": 2}',
                       headers={"Content-Type": "Application/JSON; charset=utf-8"})
    assert fine.status_code == 200
    twice = client.post("/v1/completions", content=b'{"max_tokens": 2, "max_tokens": 9999}',
                        headers={"Content-Type": "application/json"})
    assert twice.status_code == 400 and twice.json()["error"]["param"] == "max_tokens"
    assert "given twice" in twice.json()["error"]["message"]
    # Inside a message the member is named by its path, as OpenAI's `param` names one.
    nested = client.post("/v1/chat/completions", headers={"Content-Type": "application/json"},
                         content=b'{"messages": [{"role": "user", "content": "Hi"}, '
                                 b'{"role": "user", "role": "assistant", "content": "A"}]}')
    assert nested.status_code == 400 and nested.json()["error"] == {
        "message": "'messages[1].role' is given twice in one object; send it once",
        "type": "invalid_request_error", "param": "messages[1].role", "code": None}
    # A number past Python's digits limit: the client is told to shorten it (Python's own
    # message advises sys.set_int_max_str_digits, the server's business).
    digits = client.post("/v1/completions", headers={"Content-Type": "application/json"},
                         content=b'{"seed": ' + b"9" * 5000 + b"}")
    message = digits.json()["error"]["message"]
    assert digits.status_code == 400 and message.startswith("the body holds a number of 5,000")
    assert "sys." not in message
    # past a double's range: it was said back as Infinity, which the client never sent
    huge = client.post("/v1/generate", headers={"Content-Type": "application/json"},
                       content=b'{"temperature": 1e99999}')
    assert huge.status_code == 400 and huge.json()["error"]["message"].startswith(
        "the body holds the number 1e99999, out of the range of a double")
    # bytes of another charset: said as such (it was "not valid JSON"), the charset named
    latin = client.post("/v1/generate", content='{"seed": "caf\u00e9"}'.encode("latin-1"),
                        headers={"Content-Type": "application/json; charset=latin-1"})
    assert latin.status_code == 400 and latin.json()["error"]["message"].startswith(
        "the body is not UTF-8 (it is declared as charset=latin-1): 'utf-8' codec can't")
    # text that reads as declared is read, whatever the label (ASCII is UTF-8; UTF-16 is
    # told by its bytes)
    for charset, body in (("us-ascii", b'{"length": 3}'), ("ISO-8859-1", b'{"length": 3}'),
                          ("utf-16", '{"length": 3}'.encode("utf-16-le"))):
        fine = client.post("/v1/generate", content=body,
                           headers={"Content-Type": f"application/json; charset={charset}"})
        assert fine.status_code == 200, (charset, fine.text)
    # a UTF-16 byte-order mark, then bytes that are not UTF-16: said as what was tried (it
    # said "not UTF-8" and quoted the UTF-16 decoder)
    odd = client.post("/v1/generate", content=b"\xff\xfe\xfd",
                      headers={"Content-Type": "application/json"})
    assert odd.status_code == 400 and odd.json()["error"]["message"].startswith(
        "the body is not UTF-8, and its first bytes read as UTF-16-LE fail too: 'utf-16-le' "
        "codec can't decode")


def test_a_trailing_slash_or_a_long_path_gets_a_json_404(client):
    slash = client.post("/v1/completions/", json={"max_tokens": 2})
    assert slash.status_code == 404 and slash.json()["error"]["message"] == (
        "no such endpoint: /v1/completions/; did you mean /v1/completions (no slash at the "
        "end)?")
    assert "did you mean /v1/models (" in client.get("/v1/models/").json()["error"]["message"]
    long = client.get("/v1/" + "x" * 20_000)
    assert long.status_code == 404 and len(long.json()["error"]["message"]) < 300
    assert len(client.log_lines[-1]) < 300


def test_a_busy_server_refuses_at_once_with_retry_after(client, served, tiny_run, monkeypatch):
    """Samples past the batch's places and its waiting room: a 503 at once, not a wait of
    minutes behind the others; the room comes back as samples end."""
    engine = served[tiny_run.path.name].engine
    room = engine.room()
    monkeypatch.setattr(engine, "max_waiting", engine.max_waiting - room + 2)  # room for 2
    busy = client.post("/v1/completions", json={"max_tokens": 2, "n": 3})
    assert busy.status_code == 503 and busy.headers["retry-after"] == "2"
    assert busy.json()["error"]["code"] == "server_busy"
    assert client.post("/v1/completions", json={"max_tokens": 2, "n": 2}).status_code == 200
    streamed = client.post("/v1/generate", json={"length": 2, "n": 2, "stream": True})
    assert streamed.status_code == 200 and "event: end" in streamed.text
    monkeypatch.undo()
    assert engine.room() == room  # every sample that ended gave its place back


def test_a_stream_cancelled_while_waiting_gives_its_place_back_at_once(served, tiny_run):
    """A client that gives up while its sample waits for a place frees that place at the
    next step, not once the batch has room; after the engine stops, a new stream ends at
    once as cancelled (a client never waits for an answer that cannot come)."""
    import asyncio

    from textgen.generate.sampling import SamplingSettings
    from textgen.serve.engine import GeneratorEngine

    engine = GeneratorEngine(served[tiny_run.path.name].sampler, max_batch=1, max_waiting=1)

    async def end_of(stream) -> str:
        while (item := await asyncio.wait_for(stream.events.get(), 5))[0] != "end":
            pass
        return item[2]

    async def scenario() -> None:
        endless = engine.submit("T", SamplingSettings(length=10**7, rng_seed=0))
        waiting = engine.submit("T", SamplingSettings(length=5, rng_seed=1))
        assert engine.room() == 0
        # both counted as being written, the one not yet in a step too (the stopping
        # server's count missed those: "78 sample(s)" of 80)
        assert engine.unfinished == 2
        engine.cancel(waiting)
        assert await end_of(waiting) == "cancelled" and engine.room() == 1
        engine.cancel(endless)
        assert await end_of(endless) == "cancelled" and engine.room() == 2
        engine.stop()
        late = engine.submit("T", SamplingSettings(length=5, rng_seed=2))
        assert await end_of(late) == "cancelled" and engine.room() == 2

    try:
        asyncio.run(scenario())
    finally:
        engine.stop()


def test_requests_arriving_together_cannot_all_pass_the_room_check(served, tiny_run):
    """The check and the submits run without an await between them: the second of two
    requests arriving in the same turn of the event loop sees the first's samples."""
    import asyncio
    import dataclasses

    from textgen.serve.app import start_streams
    from textgen.serve.engine import GeneratorEngine
    from textgen.serve.requests import Limits, RequestError, parse_completion

    engine = GeneratorEngine(served[tiny_run.path.name].sampler, max_batch=1, max_waiting=1)
    model = dataclasses.replace(served[tiny_run.path.name], engine=engine)
    req = parse_completion({"prompt": "T", "max_tokens": 10**6, "n": 2}, Limits(10**6, 4))

    async def scenario() -> None:
        first = start_streams(model, ["T"], req)
        with pytest.raises(RequestError) as refused:
            start_streams(model, ["T"], req)
        assert refused.value.status == 503
        for stream in first:
            engine.cancel(stream)

    try:
        asyncio.run(scenario())
    finally:
        engine.stop()


def test_without_a_key_on_loopback_only_loopback_names_are_answered(served):
    """A page on a site whose name is made to resolve to 127.0.0.1 (DNS rebinding) sends its
    own name as Host: refused, so it can neither read nor drive the server."""
    client, _ = make_client(served, loopback_names_only=True)
    for host in ("localhost:8000", "127.0.0.1:8000", "[::1]:8000", "LOCALHOST", "app.localhost",
                 "127.0.0.2:8000", "[0:0:0:0:0:0:0:1]:8000"):
        assert client.get("/v1/models", headers={"Host": host}).status_code == 200, host
    for host in ("evil.example", "evil.example:8000", "127.0.0.1.evil.example"):
        refused = client.get("/v1/models", headers={"Host": host})
        assert refused.status_code == 403, host
        assert refused.json()["error"]["code"] == "host_not_allowed"
        assert "--api-key-file" in refused.json()["error"]["message"]


def test_pages_from_a_cors_origin_may_call_the_api_and_others_may_not(served):
    """A browser asks first without the key (the preflight); the allowed origin's page can then
    read the answers, a 401 included, and no other origin is named in them."""
    client, lines = make_client(served, api_key="s3cret-key",
                                cors_origins=["https://app.example.org"])
    preflight = client.options("/v1/completions", headers={
        "Origin": "https://app.example.org", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type,x-stainless-os"})
    assert preflight.status_code == 200  # OpenAI's JavaScript client sends x-stainless-*
    assert preflight.headers["access-control-allow-origin"] == "https://app.example.org"
    assert "x-stainless-os" in preflight.headers["access-control-allow-headers"].lower()
    assert "OPTIONS /v1/completions 200" in lines[-1]
    allowed = {"Origin": "https://app.example.org"}
    refused = client.get("/v1/models", headers=allowed)
    assert refused.status_code == 401
    assert refused.headers["access-control-allow-origin"] == "https://app.example.org"
    good = client.get("/v1/models", headers={**allowed, "Authorization": "Bearer s3cret-key"})
    assert good.status_code == 200
    assert good.headers["access-control-allow-origin"] == "https://app.example.org"
    # a busy server's 503 advice, readable by the page (only simple headers were)
    assert good.headers["access-control-expose-headers"] == "Retry-After"
    other = client.get("/v1/models", headers={"Origin": "https://evil.example",
                                              "Authorization": "Bearer s3cret-key"})
    assert "access-control-allow-origin" not in other.headers
    # Refused in the API's JSON shape, as every other error (Starlette's is plain text).
    preflight = client.options("/v1/completions", headers={
        "Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
    assert preflight.status_code == 400 and preflight.json()["error"] == {
        "message": "a page from 'https://evil.example' may not call this server: its origin "
                   "is not allowed (origins allowed: https://app.example.org, by --cors-origin)",
        "type": "invalid_request_error", "param": None, "code": "cors_not_allowed"}
    assert "access-control-allow-origin" not in preflight.headers
    # A method refused names the methods allowed (not the origins).
    preflight = client.options("/v1/completions", headers={
        "Origin": "https://app.example.org", "Access-Control-Request-Method": "DELETE"})
    assert preflight.status_code == 400 and preflight.json()["error"]["message"] == (
        "a page from 'https://app.example.org' may not call this server: its method is not "
        "allowed (methods allowed: GET, POST)")
    both = client.options("/v1/completions", headers={
        "Origin": "https://evil.example", "Access-Control-Request-Method": "PUT"})
    assert both.json()["error"]["message"].endswith(
        "its origin and method are not allowed (origins allowed: https://app.example.org, by "
        "--cors-origin; methods allowed: GET, POST)")


def test_without_cors_origins_no_page_elsewhere_may_read_the_api(served):
    client, _ = make_client(served)
    answer = client.get("/v1/models", headers={"Origin": "https://app.example.org"})
    assert answer.status_code == 200 and "access-control-allow-origin" not in answer.headers
    preflight = client.options("/v1/completions", headers={
        "Origin": "https://app.example.org", "Access-Control-Request-Method": "POST"})
    assert preflight.status_code == 405 and "access-control-allow-origin" not in preflight.headers


def test_a_cors_origin_is_written_as_browsers_send_it():
    from textgen.cli.serve import _origin

    assert [_origin(v) for v in ("https://App.Example.org:443/", "http://localhost:80",
                                 "http://localhost:8080", "https://Bücher.example",
                                 "http://[::1]:3000", "*")] == [
        "https://app.example.org", "http://localhost", "http://localhost:8080",
        "https://xn--bcher-kva.example", "http://[::1]:3000", "*"]


@pytest.mark.parametrize("value", ["app.example.org", "https://app.example.org/page",
                                   "ftp://example.org", "https://", "https://user:pw@host",
                                   "http://host:99999"])
def test_a_cors_origin_that_is_not_an_origin_is_refused_before_loading(tmp_path, value):
    code, imported_tensorflow, stderr = run_without_tensorflow(
        "serve", "--cors-origin", value, "--checkpoint-dir", str(tmp_path))
    assert code != 0 and not imported_tensorflow
    assert f"--cors-origin {value}: not an origin" in stderr and "Traceback" not in stderr

def test_a_request_gets_the_same_text_alone_and_among_fifteen_others(client):
    def request(i: int) -> dict:
        return {"seed": "To be" if i == 0 else "And", "length": 200, "temperature": 0.8,
                "rng_seed": i, "top_k": 5 + i % 3}

    alone = client.post("/v1/generate", json=request(0)).json()["samples"][0]
    results: dict[int, str] = {}

    def call(i: int) -> None:
        results[i] = client.post("/v1/generate", json=request(i)).json()["samples"][0]

    threads = [threading.Thread(target=call, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert len(results) == 16 and results[0] == alone


def _post_scope(path: str) -> dict:
    """An ASGI scope of a JSON POST to `path`, for driving the app without a client."""
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
            "method": "POST", "scheme": "http", "path": path, "raw_path": path.encode(),
            "query_string": b"", "root_path": "", "client": ("127.0.0.1", 5),
            "server": ("127.0.0.1", 8000), "headers": [(b"content-type", b"application/json")]}


def test_a_client_that_leaves_while_sending_its_body_is_logged_499(served):
    import asyncio

    from textgen.serve.app import create_app

    lines: list[str] = []
    app = create_app(served, log=lines.append)
    incoming = [{"type": "http.disconnect"},
                {"type": "http.request", "body": b'{"seed": "To', "more_body": True}]
    sent: list[dict] = []

    async def receive() -> dict:
        return incoming.pop()

    async def send(message: dict) -> None:
        sent.append(message)

    asyncio.run(app(_post_scope("/v1/generate"), receive, send))
    assert sent[0]["status"] == 499 and len(lines) == 1
    assert lines[0].startswith("POST /v1/generate 499 ")


@pytest.mark.parametrize(("path", "body"), [
    ("/v1/generate", {"seed": "To", "length": 5000}),
    # (chat completions wait the same way, but a chat reply may end at its first blank line)
    ("/v1/completions", {"prompt": "To", "max_tokens": 5000}),
])
def test_a_client_that_leaves_before_its_answer_frees_its_place(served, tiny_run, monkeypatch,
                                                                 path, body):
    """A request that does not stream, abandoned: its samples leave the batch (once they ran
    to their length, holding the CPU for nobody), and the log says 499."""
    import asyncio
    import time

    from textgen.serve.app import create_app

    engine = served[tiny_run.path.name].engine
    cancelled = []
    cancel = engine.cancel
    monkeypatch.setattr(engine, "cancel", lambda stream: (cancelled.append(stream),
                                                          cancel(stream)))
    stepper = engine.sampler.stepper  # a step of a millisecond: 5,000 take seconds
    advance = stepper.advance
    monkeypatch.setattr(stepper, "advance", lambda *args: (time.sleep(0.001), advance(*args))[1])
    lines: list[str] = []
    app = create_app(served, log=lines.append)

    async def leave_early() -> list[dict]:
        gone, sent = asyncio.Event(), []
        incoming = [{"type": "http.request", "body": json.dumps(body).encode(),
                     "more_body": False}]

        async def receive() -> dict:
            if incoming:
                return incoming.pop()
            await gone.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict) -> None:
            sent.append(message)

        answer = asyncio.ensure_future(app(_post_scope(path), receive, send))
        await asyncio.sleep(0.3)
        gone.set()
        await asyncio.wait_for(answer, 10)
        return sent

    started = time.monotonic()
    sent = asyncio.run(leave_early())
    assert time.monotonic() - started < 5
    assert sent[0]["status"] == 499 and lines[-1].startswith(f"POST {path} 499 ")
    (stream,) = cancelled
    while not (stream.generation and stream.generation.done):  # the engine's thread ends it
        assert time.monotonic() - started < 10
        time.sleep(0.01)
    assert stream.generation.finish_reason == "cancelled"
    assert stream.generation.generated < 5000


@pytest.mark.parametrize("path", ["/v1/generate", "/v1/completions"])
def test_an_answer_the_server_stopping_cuts_short_is_a_503_not_a_partial_200(
        tiny_run, monkeypatch, path):
    """A request that does not stream, still generating when the server stops: no client
    should take the cut text for an answer (OpenAI has no "cancelled" finish_reason)."""
    import asyncio
    import time

    from textgen.serve.app import create_app
    from textgen.serve.models import load_models, stop_generators

    models = load_models([str(tiny_run.path)], tiny_run.path.parent)
    stepper = models[tiny_run.path.name].engine.sampler.stepper  # 5,000 steps take seconds
    advance = stepper.advance
    monkeypatch.setattr(stepper, "advance", lambda *args: (time.sleep(0.001), advance(*args))[1])
    lines: list[str] = []
    app = create_app(models, log=lines.append)
    body = {"seed": "To", "length": 5000} if path == "/v1/generate" else {
        "prompt": "To", "max_tokens": 5000}

    async def stopped_midway() -> list[dict]:
        sent, incoming = [], [{"type": "http.request", "body": json.dumps(body).encode(),
                               "more_body": False}]

        async def receive() -> dict:
            if incoming:
                return incoming.pop()
            await asyncio.sleep(60)  # the client stays
            return {"type": "http.disconnect"}

        async def send(message: dict) -> None:
            sent.append(message)

        answer = asyncio.ensure_future(app(_post_scope(path), receive, send))
        await asyncio.sleep(0.3)
        await asyncio.to_thread(stop_generators, models)
        await asyncio.wait_for(answer, 10)
        return sent

    sent = asyncio.run(stopped_midway())
    assert sent[0]["status"] == 503 and lines[-1].startswith(f"POST {path} 503 ")
    error = json.loads(b"".join(m.get("body", b"") for m in sent[1:]))["error"]
    assert error["code"] == "server_shutting_down" and "send it again" in (
        error["message"])


def test_a_client_that_leaves_mid_stream_frees_its_place(served, tiny_run, monkeypatch):
    import time

    engine = served[tiny_run.path.name].engine
    cancelled = []
    cancel = engine.cancel
    monkeypatch.setattr(engine, "cancel", lambda stream: (cancelled.append(stream),
                                                          cancel(stream)))
    # A step of at least a millisecond: the tiny model could otherwise write all 5,000
    # characters before the closed response reaches the server, and the test would race.
    stepper = engine.sampler.stepper
    advance = stepper.advance
    monkeypatch.setattr(stepper, "advance", lambda *args: (time.sleep(0.001), advance(*args))[1])
    client, _ = make_client(served)
    with client.stream("POST", "/v1/generate", json={"seed": "To", "length": 5000,
                                                     "stream": True}) as response:
        assert next(response.iter_lines()).startswith("event: text")
    # The response is closed: the request is cancelled and its row leaves the batch.
    deadline = time.monotonic() + 10
    while not (cancelled and cancelled[0].generation and cancelled[0].generation.done):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    generation = cancelled[0].generation
    assert generation.finish_reason == "cancelled" and generation.generated < 5000


def test_the_api_key_is_stripped_and_checked_from_the_environment_as_from_a_file(
        tmp_path, monkeypatch):
    """A key with spaces around it could never be sent (HTTP drops them): every client
    got a 401."""
    from textgen.cli.serve import API_KEY_ENV, _api_key
    from textgen.errors import TextgenError

    monkeypatch.setenv(API_KEY_ENV, " s3cret\n")
    assert _api_key(None) == "s3cret"
    monkeypatch.setenv(API_KEY_ENV, "two words")
    with pytest.raises(TextgenError, match=f"^{API_KEY_ENV}: needs one key on one line"):
        _api_key(None)
    monkeypatch.setenv(API_KEY_ENV, "  ")
    assert _api_key(None) is None
    # A key OpenAI's client cannot put in a header (it raised UnicodeEncodeError, client-side).
    monkeypatch.setenv(API_KEY_ENV, "clé")
    with pytest.raises(TextgenError, match=f"^{API_KEY_ENV}: holds characters other than "
                                           "printable ASCII"):
        _api_key(None)
    from textgen.errors import FieldError
    from textgen.serve.app import create_app

    with pytest.raises(FieldError, match="^api_key holds characters other than printable"):
        create_app({}, api_key="clé")
    binary = tmp_path / "key.bin"
    binary.write_bytes(b"\xff\xfe")
    with pytest.raises(TextgenError, match="key.bin: not UTF-8 text"):
        _api_key(binary)


def test_a_run_named_twice_and_two_runs_of_one_name_are_told_apart(tiny_run, tmp_path):
    import shutil

    from textgen.errors import TextgenError
    from textgen.serve.models import load_models

    with pytest.raises(TextgenError, match="is named twice; name each run once"):
        load_models([str(tiny_run.path), str(tiny_run.path)], tiny_run.path.parent)
    other = tmp_path / "elsewhere" / tiny_run.path.name
    shutil.copytree(tiny_run.path, other)
    with pytest.raises(TextgenError, match="two runs named .* so rename one folder"):
        load_models([str(tiny_run.path), str(other)], tiny_run.path.parent)
    # two files of one run: served under one name, so one of them (it said "named twice")
    best, last = tiny_run.path / "best.keras", tiny_run.path / "last.keras"
    with pytest.raises(TextgenError, match=f"^{best} and {last} are models of one run; models "
                       "are served by their run's name"):
        load_models([str(best), str(last)], tiny_run.path.parent)
    with pytest.raises(TextgenError, match=f"^{tiny_run.path} and {best} are models of one run"):
        load_models([str(tiny_run.path), str(best)], tiny_run.path.parent)
    with pytest.raises(TextgenError, match="is named twice"):
        load_models([str(best), str(best)], tiny_run.path.parent)


def test_a_run_without_its_last_model_is_served_by_naming_its_best_file(tiny_run, tmp_path):
    """serve has no --checkpoint: its advice names the file (it said "--checkpoint best")."""
    import shutil

    from textgen.errors import TextgenError
    from textgen.serve.models import load_models

    run = tmp_path / "nolast"
    shutil.copytree(tiny_run.path, run)
    (run / "last.keras").unlink()
    with pytest.raises(TextgenError) as refused:
        load_models([str(run)], tmp_path)
    assert refused.value.for_cli() == (
        f"{run}: no last.keras; serve its best model by naming the file: textgen serve "
        f"{run / 'best.keras'}")
    assert "nolast" in load_models([str(run / "best.keras")], tmp_path)


def test_the_access_log_quotes_paths_and_logs_a_bug_once(served, monkeypatch, capsys):
    """A path cannot forge a log line or colour the terminal; a bug's 500 is one traceback."""
    from starlette.testclient import TestClient

    from textgen.serve.app import create_app

    client, lines = make_client(served)
    client.get("/v1/models/x%0APOST%20/v1/admin%20200%200.1%20ms")
    client.get("/nope%1b%5b31mRED")
    assert lines[0].startswith("GET /v1/models/x%0APOST%20/v1/admin%20200%200.1%20ms 404 ")
    assert lines[1].startswith("GET /nope%1B%5B31mRED 404 ")

    def broken(texts):
        raise ZeroDivisionError("a bug")

    classifier = next(m for m in served.values() if m.mode == "classify")
    monkeypatch.setattr(classifier.model, "classify", broken)
    capsys.readouterr()
    # A bug raised out of the app again would be logged by uvicorn a second time.
    client = TestClient(create_app(served, log=lines.append), raise_server_exceptions=True)
    failed = client.post("/v1/classify", json={"texts": ["a fine film"]})
    assert failed.status_code == 500 and failed.json()["error"]["type"] == "server_error"
    assert capsys.readouterr().err.count("ZeroDivisionError: a bug") == 1
    assert lines[-1].startswith("POST /v1/classify 500 ")



def test_the_listening_address_is_checked_before_loading():
    """A taken port says to choose another port; an address not of this machine another
    host; a loopback address is told from one the network reaches."""
    import socket

    from textgen.cli.serve import _check_listening_address
    from textgen.errors import TextgenError

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(TextgenError, match="choose another --port"):
            _check_listening_address("127.0.0.1", port)
    nonlocal_bind = Path("/proc/sys/net/ipv4/ip_nonlocal_bind")
    if not nonlocal_bind.exists() or nonlocal_bind.read_text().strip() == "0":
        with pytest.raises(TextgenError, match="choose another --host"):
            _check_listening_address("192.0.2.1", 8000)  # TEST-NET-1: never this machine's
    assert _check_listening_address("127.0.0.1", 0)
    assert not _check_listening_address("0.0.0.0", 0)
    # written as in a URL: said how to write it
    with pytest.raises(TextgenError, match=r"^--host \[::1\]: not an address of this machine; "
                       "give the address without brackets: --host ::1$"):
        _check_listening_address("[::1]", 0)
    with pytest.raises(TextgenError, match="give the port on its own: --host 127.0.0.1 --port "
                                           "8000$"):
        _check_listening_address("127.0.0.1:8000", 0)


def test_asyncio_writes_after_a_client_left_are_not_logged_but_other_warnings_are():
    import logging

    from textgen.serve.app import WritesAfterClientLeft

    def record(message: str) -> logging.LogRecord:
        return logging.LogRecord("asyncio", logging.WARNING, __file__, 1, message, None, None)

    quiet = WritesAfterClientLeft()
    assert not quiet.filter(record("socket.send() raised exception."))
    assert quiet.filter(record("Executing <Task ...> took 0.5 seconds"))
