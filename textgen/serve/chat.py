"""`POST /v1/chat/completions`: a chat's messages as one text a character-level model continues.

A character model knows no roles, only the text it was trained on, so the chat becomes a play
script in tinyshakespeare's layout (a speaker line, the speech, a blank line between speeches)
and the model writes the next speech:

    You are a helpful assistant.           each system or developer message, as a paragraph

    User:                                  each user or assistant message, as a speech
    Good morrow, sir.

    Assistant:                             the reply's speaker line ends the prompt
    <the reply: until the blank line that ends a speech (finish_reason "stop"),
     a stop text of the request, or max_completion_tokens characters ("length")>

The speaker lines are "User:" and "Assistant:", or a message's "name" ("IAGO") for its speech;
the reply is spoken by the last assistant message's speaker. The sampling fields and their
checks are the completions endpoint's (requests.parse_openai_sampling).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any

from textgen.generate.data import Vocabulary, describe_chars
from textgen.generate.sampling import DEFAULT_SAMPLING
from textgen.reading import normalise_newlines
from textgen.serve.requests import (
    CHAT_FIELDS,
    COMPLETION_NAMES,
    UNSUPPORTED_CHAT,
    GenerateRequest,
    Limits,
    RequestError,
    parse_openai_sampling,
    refuse_unknown,
    refuse_unsupported,
)

TURN_END = "\n\n"  # a blank line ends a speech in the script, so it ends the reply
SPEAKERS = {"user": "User", "assistant": "Assistant"}
INSTRUCTION_ROLES = ("system", "developer")  # no speaker: a paragraph before the speeches
ROLES = (*INSTRUCTION_ROLES, *SPEAKERS)
MAX_NAME_CHARS = 64  # OpenAI's limit on a message's name
# OpenAI's chat API has no small default length (a reply runs until it ends), so a reply's
# ceiling is `textgen sample`'s default length (capped by the server's --max-length).
CHAT_MAX_TOKENS = DEFAULT_SAMPLING.length
MESSAGE_FIELDS = ("role", "content", "name")
# OpenAI's other message fields, accepted where they are off (absent, null, or as listed): a
# client sends back the assistant messages it got ("refusal": null); any other field is a
# misspelling refused, not a name silently left out.
UNSUPPORTED_MESSAGE = {"refusal": ("",), "tool_calls": ([],), "function_call": (), "audio": (),
                       "tool_call_id": (), "annotations": ([],)}


@dataclass(frozen=True)
class ChatMessage:
    role: str
    content: str
    name: str | None = None

    @property
    def speaker(self) -> str | None:
        """The speaker line's name; None for system and developer messages."""
        if self.role in INSTRUCTION_ROLES:
            return None
        return self.name or SPEAKERS[self.role]


@dataclass(frozen=True)
class ChatRequest:
    messages: list[ChatMessage]
    reply_speaker: str
    request: GenerateRequest  # its seed is the prompt (chat_prompt)


def speech(speaker: str | None, text: str) -> str:
    return (text if speaker is None else f"{speaker}:\n{text}") + TURN_END


def reply_speaker(messages: list[ChatMessage]) -> str:
    said = [m.speaker for m in messages if m.role == "assistant"]
    return said[-1] if said else SPEAKERS["assistant"]


def chat_prompt(messages: list[ChatMessage]) -> str:
    """The script the model continues (see the module's docstring)."""
    speeches = "".join(speech(m.speaker, m.content) for m in messages)
    return f"{speeches}{reply_speaker(messages)}:\n"


def parse_chat(body: dict[str, Any], limits: Limits) -> ChatRequest:
    """`messages` checked and joined into the prompt; everything else as /v1/completions takes
    it (`max_completion_tokens`, or the older `max_tokens`, for the length). The reply also
    ends at TURN_END."""
    refuse_unknown(body, CHAT_FIELDS)
    messages = parse_messages(body.get("messages"))
    refuse_unsupported(body, UNSUPPORTED_CHAT)
    length_field = "max_completion_tokens"
    if body.get(length_field) is None:
        length_field = "max_tokens"
    elif body.get("max_tokens") not in (None, body[length_field]):
        raise RequestError(400, "give 'max_completion_tokens' or 'max_tokens', not both",
                           "max_tokens")
    names = {**COMPLETION_NAMES, "seed": "messages", "length": length_field}
    request = parse_openai_sampling(body, limits, chat_prompt(messages), names,
                                    CHAT_MAX_TOKENS)
    settings = [s if TURN_END in s.stop else replace(s, stop=(*s.stop, TURN_END))
                for s in request.settings]
    return ChatRequest(messages, reply_speaker(messages), replace(request, settings=settings))


def parse_messages(value: Any) -> list[ChatMessage]:
    if not isinstance(value, list) or not value:
        raise RequestError(400, "'messages' must be a non-empty list of messages like "
                                '{"role": "user", "content": "Good morrow"}', "messages")
    return [parse_message(item, f"messages[{i}]") for i, item in enumerate(value)]


def parse_message(item: Any, where: str) -> ChatMessage:
    if not isinstance(item, dict):
        raise RequestError(400, f"'{where}' must be an object with 'role' and 'content'", where)
    unknown = sorted(set(item) - {*MESSAGE_FIELDS, *UNSUPPORTED_MESSAGE})
    if unknown:
        raise RequestError(400, f"unknown field {json.dumps(unknown[0])} in '{where}'; a "
                                f"message takes {', '.join(MESSAGE_FIELDS)}",
                           f"{where}.{unknown[0]}")
    for key, off in UNSUPPORTED_MESSAGE.items():
        if item.get(key) is not None and item[key] not in off:
            raise RequestError(400, f"'{where}.{key}' is not supported by textgen's server "
                                    f"(got {json.dumps(item[key])}); leave it out",
                               f"{where}.{key}")
    role = item.get("role")
    if role not in ROLES:
        raise RequestError(400, f"'{where}.role' must be one of {', '.join(ROLES)}; got "
                                f"{json.dumps(role)}", f"{where}.role")
    content = item.get("content")
    if isinstance(content, list):  # content parts: only text ones can be read
        if not all(isinstance(p, dict) and p.get("type") == "text" and
                   isinstance(p.get("text"), str) for p in content):
            raise RequestError(400, f"'{where}.content' parts must be text parts like "
                                    '{"type": "text", "text": "..."} (a character model '
                                    "reads text only)", f"{where}.content")
        content = "\n".join(p["text"] for p in content)
    if not isinstance(content, str):
        raise RequestError(400, f"'{where}.content' must be a string, got "
                                f"{json.dumps(content)}", f"{where}.content")
    name = item.get("name")
    if name is not None and not (isinstance(name, str) and name.strip() and
                                 len(name) <= MAX_NAME_CHARS and name.splitlines() == [name]):
        raise RequestError(400, f"'{where}.name' must be a speaker name of 1 to "
                                f"{MAX_NAME_CHARS} characters on one line, got "
                                f"{json.dumps(name)}", f"{where}.name")
    return ChatMessage(role, content.strip(), name.strip() if name else None)


def check_characters(chat: ChatRequest, vocab: Vocabulary) -> None:
    """A 400 naming the message and the characters the model never saw (unless the request
    drops them with "skip_unknown": true, as /v1/completions does)."""
    if chat.request.settings[0].skip_unknown:
        return
    layout = vocab.unknown(":\n")
    if layout:
        raise RequestError(400, f"the model never saw {describe_chars(layout)}, which the "
                                "chat layout needs (speaker lines); use /v1/completions",
                           "messages")
    for i, message in enumerate(chat.messages):
        where = f"messages[{i}]"
        # line ends read as the seed's are (prepare_seed): \r\n is a line end
        content = message.content if "\r" in vocab.chars else normalise_newlines(
            message.content)
        unknown = vocab.unknown(vocab.known_form(content))  # as prepare_seed reads it
        if unknown:
            raise RequestError(400, f"'{where}.content' has characters the model never saw: "
                                    f"{describe_chars(unknown)}; change the text or send "
                                    '"skip_unknown": true to drop them', f"{where}.content")
        unknown = vocab.unknown(vocab.known_form(message.speaker or ""))
        if unknown:
            raise RequestError(400, f"the speaker name {message.speaker!r} of '{where}' has "
                                    f"characters the model never saw: "
                                    f"{describe_chars(unknown)}; give the message a 'name' "
                                    "the model can write", f"{where}.name")
    unknown = vocab.unknown(vocab.known_form(chat.reply_speaker))
    if unknown:
        raise RequestError(400, f"the reply's speaker name {chat.reply_speaker!r} has "
                                f"characters the model never saw: {describe_chars(unknown)}; "
                                "name the speaker with an assistant message's 'name', or "
                                'send "skip_unknown": true to drop them', "messages")


def chat_response(completion_id: str, created: int, model: str,
                  replies: list[tuple[str, str]], usage: dict[str, int]) -> dict[str, Any]:
    """OpenAI's `chat.completion` object; `replies` holds (text, finish_reason) per choice."""
    choices = [{"index": index, "message": {"role": "assistant", "content": text,
                                            "refusal": None},
                "logprobs": None, "finish_reason": reason}
               for index, (text, reason) in enumerate(replies)]
    return {"id": completion_id, "object": "chat.completion", "created": created,
            "model": model, "choices": choices, "usage": usage}


def chat_chunk(completion_id: str, created: int, model: str,
               choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    """OpenAI's `chat.completion.chunk` object (a streamed piece)."""
    return {"id": completion_id, "object": "chat.completion.chunk", "created": created,
            "model": model, "choices": choices, **extra}


def delta_choice(index: int, delta: dict[str, str], finish_reason: str | None = None
                 ) -> dict[str, Any]:
    return {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
