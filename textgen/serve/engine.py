"""One generator model served to many clients at once: a thread that runs its GenerationBatch.

Requests that arrive while others are generating join the shared batch at the next step
(continuous batching); one NumPy step advances every active sequence. The thread owns the
batch; requests reach it through a queue, and text goes back to each request's asyncio event
loop once per step (not once per character), so many streams cost little beyond the step.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from textgen.generate.sampling import Generation, GenerationBatch, Sampler, SamplingSettings

IDLE_WAIT_S = 0.5  # how often an idle engine looks up from its queue to see if it should stop


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

    def _flush(self) -> None:
        if self._pending:
            text = "".join(self._pending)
            self._pending.clear()  # the generation's callback appends to this very list
            self.loop.call_soon_threadsafe(self.events.put_nowait, ("text", self.index, text))

    def _end(self, reason: str) -> None:
        self._flush()
        self.loop.call_soon_threadsafe(self.events.put_nowait, ("end", self.index, reason))


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
            for generation in batch.step():
                streams.pop(id(generation))._end(generation.finish_reason)
            for stream in streams.values():
                stream._flush()
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
