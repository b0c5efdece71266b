"""One generator model served to many clients at once: a thread that runs its GenerationBatch.

Requests that arrive while others are generating join the shared batch at the next step
(continuous batching); one NumPy step advances every active sequence. The thread owns the
batch; requests reach it through a queue, and text goes back to each request's asyncio event
loop once per step (not once per character), so many streams cost little beyond the step.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field

from textgen.generate.sampling import Generation, GenerationBatch, Sampler, SamplingSettings

IDLE_WAIT_S = 0.5  # how often an idle engine looks up from its queue to see if it should stop
# A stream's text goes out at most this often (its first generated character at once): one
# event per character costs the event loop more than generating it.
FLUSH_INTERVAL_S = 0.02


@dataclass(eq=False)
class Stream:
    """A request's view of one sequence: text pieces arrive in `events` as ("text", index,
    str), the seed first, and finally ("end", index, finish_reason)."""

    seed: str
    settings: SamplingSettings
    loop: asyncio.AbstractEventLoop
    events: asyncio.Queue = field(default_factory=asyncio.Queue)
    index: int = 0  # which of a request's samples, when several share `events`
    generation: Generation | None = None
    cancelled: bool = False
    _pending: list[str] = field(default_factory=list)
    _flushed_at: float = 0.0
    _started: bool = False  # its first generated character has gone out

    def _flush(self, now: float | None = None) -> None:
        """Send the text so far: always when `now` is None, else when the first generated
        character is waiting or FLUSH_INTERVAL_S has passed."""
        if not self._pending:
            return
        if now is not None:
            first = not self._started and self.generation is not None and \
                self.generation.generated > 0
            if not first and now - self._flushed_at < FLUSH_INTERVAL_S:
                return
        self._started = self._started or (self.generation is not None and
                                          self.generation.generated > 0)
        self._flushed_at = time.monotonic() if now is None else now
        text = "".join(self._pending)
        self._pending.clear()  # the generation's callback appends to this very list
        self._send(("text", self.index, text))

    def _end(self, reason: str) -> None:
        self._flush()
        self._send(("end", self.index, reason))

    def _send(self, item: tuple) -> None:
        with contextlib.suppress(RuntimeError):  # the request's loop is gone: nobody listens
            self.loop.call_soon_threadsafe(self.events.put_nowait, item)


class GeneratorEngine:
    """Serves one loaded generator: `submit` a sequence from any thread, read its events from
    the caller's event loop, `cancel` it when the client goes away."""

    def __init__(self, sampler: Sampler, max_batch: int = 256):
        self.sampler = sampler
        self.max_batch = max_batch
        self._inbox: queue.SimpleQueue = queue.SimpleQueue()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="textgen-generator", daemon=True)
        self._thread.start()

    def submit(self, seed: str, settings: SamplingSettings, events: asyncio.Queue | None = None,
               index: int = 0) -> Stream:
        """Queue a sequence (seed already checked with sampler.prepare_seed) from the event
        loop that will read its events; it joins the batch at the next step."""
        stream = Stream(seed, settings, asyncio.get_running_loop(), events or asyncio.Queue(),
                        index)
        self._inbox.put(stream)
        return stream

    def cancel(self, stream: Stream) -> None:
        """Free the sequence's place at the next step (safe from any thread)."""
        stream.cancelled = True

    def stop(self) -> None:
        """End every sequence (reason "cancelled") and the thread."""
        self._stopping.set()
        self._inbox.put(None)
        self._thread.join(timeout=5)

    @property
    def active(self) -> int:
        return len(self._batch.active) if hasattr(self, "_batch") else 0

    def _run(self) -> None:
        self._batch = batch = GenerationBatch(self.sampler)
        streams: dict[int, Stream] = {}
        waiting: list[Stream] = []
        while not self._stopping.is_set():
            block = not batch.active and not waiting
            try:
                item = self._inbox.get(timeout=IDLE_WAIT_S) if block else self._inbox.get_nowait()
                while item is not None:
                    waiting.append(item)
                    item = self._inbox.get_nowait()
            except queue.Empty:
                pass
            while waiting and len(batch.active) < self.max_batch:
                self._join(batch, waiting.pop(0), streams)
            for key, stream in list(streams.items()):
                if stream.cancelled:  # its row leaves the batch at this step
                    batch.cancel(stream.generation)
                    streams.pop(key)._end("cancelled")
            try:
                ended = batch.step()
            except Exception:  # a bug: end these requests, keep serving the next ones
                traceback.print_exc(file=sys.stderr)
                for stream in streams.values():
                    stream._end("error")
                streams.clear()
                self._batch = batch = GenerationBatch(self.sampler)
                continue
            for generation in ended:
                streams.pop(id(generation))._end(generation.finish_reason)
            now = time.monotonic()
            for stream in streams.values():
                stream._flush(now)
        for stream in [*streams.values(), *waiting]:
            stream._end("cancelled")

    def _join(self, batch: GenerationBatch, stream: Stream, streams: dict[int, Stream]
              ) -> None:
        if stream.cancelled:
            stream._end("cancelled")
            return
        write: Callable[[str], None] = stream._pending.append
        try:
            generation = batch.join(stream.seed, stream.settings, write)
        except Exception:  # the handler checked the seed; never let one request stop the engine
            stream._end("error")
            return
        stream.generation = generation
        streams[id(generation)] = stream
