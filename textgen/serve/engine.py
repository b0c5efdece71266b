"""One generator model served to many clients at once: a thread that runs its GenerationBatch.

Requests that arrive while others are generating join the shared batch at the next step
(continuous batching); one NumPy step advances every active sequence. The thread owns the
batch; requests reach it through a queue, and text goes back to each request's asyncio event
loop at most every FLUSH_INTERVAL_S per stream, all of a step's pieces in one wake-up of
the loop, so many streams cost little beyond the step.
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
FLUSH_INTERVAL_S = 0.05
MAX_BATCH = 256  # sequences in one step; more requests wait for a place
# Sequences that may wait for a place in a full batch; a request that would make more is
# refused at once (503), as a wait behind them would last minutes: shed load, don't queue it.
MAX_WAITING = MAX_BATCH


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

    def _flush(self, outbox: Outbox, now: float | None = None) -> None:
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
        outbox.put(self, ("text", self.index, text))

    def _end(self, outbox: Outbox, reason: str) -> None:
        self._flush(outbox)
        outbox.put(self, ("end", self.index, reason))


class Outbox:
    """Events for the requests' event loops, delivered together: one wake-up of a loop per
    step however many streams it serves."""

    def __init__(self) -> None:
        self._items: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Queue, tuple]]] = {}

    def put(self, stream: Stream, item: tuple) -> None:
        self._items.setdefault(stream.loop, []).append((stream.events, item))

    def deliver(self) -> None:
        for loop, items in self._items.items():
            with contextlib.suppress(RuntimeError):  # the loop is gone: nobody listens
                loop.call_soon_threadsafe(_put_all, items)
        self._items = {}


def _put_all(items: list[tuple[asyncio.Queue, tuple]]) -> None:
    for events, item in items:
        events.put_nowait(item)


class GeneratorEngine:
    """Serves one loaded generator: `submit` a sequence from any thread, read its events from
    the caller's event loop, `cancel` it when the client goes away."""

    def __init__(self, sampler: Sampler, max_batch: int = MAX_BATCH,
                 max_waiting: int = MAX_WAITING):
        self.sampler = sampler
        self.max_batch, self.max_waiting = max_batch, max_waiting
        self._open = 0  # sequences submitted and not yet ended
        self._stopped = False  # the thread has ended every sequence and takes no more
        self._open_lock = threading.Lock()
        self._inbox: queue.SimpleQueue = queue.SimpleQueue()
        self._stopping = threading.Event()
        self._batch = GenerationBatch(sampler)  # owned by the thread once it runs
        self._thread = threading.Thread(target=self._run, name="textgen-generator", daemon=True)
        self._thread.start()

    def submit(self, seed: str, settings: SamplingSettings, events: asyncio.Queue | None = None,
               index: int = 0) -> Stream:
        """Queue a sequence (seed already checked with sampler.prepare_seed) from the event
        loop that will read its events; it joins the batch at the next step."""
        stream = Stream(seed, settings, asyncio.get_running_loop(), events or asyncio.Queue(),
                        index)
        with self._open_lock:
            stopped = self._stopped
            if not stopped:
                self._open += 1
                self._inbox.put(stream)
        if stopped:  # the server is shutting down: the stream ends at once
            stream.events.put_nowait(("end", index, "cancelled"))
        return stream

    def room(self) -> int:
        """How many more sequences may start now: the batch's free places and the waiting
        room's (a request larger than this is refused)."""
        with self._open_lock:
            return self.max_batch + self.max_waiting - self._open

    def cancel(self, stream: Stream) -> None:
        """Free the sequence's place at the next step (safe from any thread)."""
        stream.cancelled = True

    def stop(self) -> None:
        """End every sequence (reason "cancelled") and the thread."""
        self._stopping.set()
        self._inbox.put(None)
        self._thread.join(timeout=5)

    @property
    def unfinished(self) -> int:
        """The sequences submitted and not yet ended: in the batch, waiting, or just sent."""
        with self._open_lock:
            return self._open

    def _run(self) -> None:
        batch = self._batch
        streams: dict[int, Stream] = {}
        waiting: list[Stream] = []
        outbox = Outbox()
        while not self._stopping.is_set():
            outbox.deliver()
            block = not batch.size and not waiting
            try:
                item = self._inbox.get(timeout=IDLE_WAIT_S) if block else self._inbox.get_nowait()
                while item is not None:
                    waiting.append(item)
                    item = self._inbox.get_nowait()
            except queue.Empty:
                pass
            if any(stream.cancelled for stream in waiting):  # a client that gave up waiting
                for stream in [s for s in waiting if s.cancelled]:
                    self._end(stream, outbox, "cancelled")
                waiting = [stream for stream in waiting if not stream.cancelled]
            while waiting and batch.size < self.max_batch:
                self._join(batch, waiting.pop(0), streams, outbox)
            for key, stream in list(streams.items()):
                if stream.cancelled:  # its row leaves the batch at this step
                    batch.cancel(stream.generation)
                    self._end(streams.pop(key), outbox, "cancelled")
            try:
                ended = batch.step()
            except Exception:  # a bug: end these requests, keep serving the next ones
                traceback.print_exc(file=sys.stderr)
                for stream in streams.values():
                    self._end(stream, outbox, "error")
                streams.clear()
                self._batch = batch = GenerationBatch(self.sampler)
                continue
            for generation in ended:
                self._end(streams.pop(id(generation)), outbox, generation.finish_reason)
            now = time.monotonic()
            for stream in streams.values():
                stream._flush(outbox, now)
        with self._open_lock:  # from here on, submit ends a stream itself
            self._stopped = True
        while not self._inbox.empty():  # what was submitted before the stop
            item = self._inbox.get_nowait()
            if item is not None:
                waiting.append(item)
        for stream in [*streams.values(), *waiting]:
            self._end(stream, outbox, "cancelled")
        outbox.deliver()

    def _end(self, stream: Stream, outbox: Outbox, reason: str) -> None:
        with self._open_lock:
            self._open -= 1
        stream._end(outbox, reason)

    def _join(self, batch: GenerationBatch, stream: Stream, streams: dict[int, Stream],
              outbox: Outbox) -> None:
        if stream.cancelled:
            self._end(stream, outbox, "cancelled")
            return
        write: Callable[[str], None] = stream._pending.append
        try:
            generation = batch.join(stream.seed, stream.settings, write)
        except Exception:  # the handler checked the seed: a bug; it must not stop the engine
            traceback.print_exc(file=sys.stderr)
            self._end(stream, outbox, "error")
            return
        stream.generation = generation
        streams[id(generation)] = stream
