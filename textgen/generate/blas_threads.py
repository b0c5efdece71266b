"""How many BLAS threads NumPy's sampling steps run on.

OpenBLAS splits each product of a step over its threads (NumPy's default: one per core). On
an idle CPU that pays at 8 to 32 rows of a 2x512 model (steps 1.7-2x faster); when other
programs hold the cores it costs 2.1-2.9x, as a thread that finishes its share spins waiting
for a partner that is not running (docs/performance.md, `python -m benchmarks.blas_threads`).
A laptop is idle one minute and busy the next, so a batch's steps (the server's, one row
included, and `--num-samples`) are timed with each count now and then, and the faster one
runs in between. A sequence sampled alone (`textgen sample`) keeps one thread: timed the same
way it gained 14% idle and lost 1.8x beside a busy program (its trials' stalls weigh on a
0.2 ms step). A limit the program set itself (threadpool_limits) is kept.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")

BLOCK_STEPS = 8  # a trial's steps with one count before switching to the other
TRIAL_BLOCKS = 4  # blocks per trial, alternating counts (row changes in a server hit both)
TRIAL_STEPS = BLOCK_STEPS * TRIAL_BLOCKS
# Steps from one trial to the next: doubled while trials agree (the machine's load is
# steady, so trials cost less), back to the shortest when the winner changes.
SHORTEST_CYCLE_STEPS = 512
LONGEST_CYCLE_STEPS = 8192


class BlasThreads:
    """NumPy's BLAS thread count while sampling steps run: `with blas_threads:` around a
    batch's steps and `blas_threads.timed(step, ...)` for each; `with blas_threads.one():`
    around one sequence's. The counts found when the first user came are put back when the
    last leaves. The count is the process's own (BLAS has one), so users in several threads
    share it (a batch stepping meanwhile sets its own over one()'s); the text does not depend
    on it (OpenBLAS sums each product in the same order on any count)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._users = 0
        self._libraries: list[Any] | None = None  # found on first use (threadpoolctl's scan)
        self._found: list[int] = []  # each library's count as the first user found it
        self._current = 0  # the count last set
        self._counts: tuple[int, ...] = (1,)
        self._seconds: dict[int, float] = {}
        self._since_trial = 0  # steps since the last trial began
        self._cycle = SHORTEST_CYCLE_STEPS
        self.chosen = 1  # until a trial says otherwise: the safe count on a busy machine

    def _set(self, count: int) -> None:
        if count != self._current:
            for library in self._libraries or ():
                library.set_num_threads(count)
            self._current = count

    def __enter__(self) -> BlasThreads:
        with self._lock:
            if self._libraries is None:
                from threadpoolctl import ThreadpoolController

                self._libraries = ThreadpoolController().select(user_api="blas").lib_controllers
            if self._users == 0:
                # the program's counts now: a limit it set (threadpool_limits) is kept, and
                # only counts up to it are tried
                self._found = [library.num_threads for library in self._libraries]
                self._current = most = max(self._found, default=1)
                counts = (most, 1) if most > 1 else (1,)
                if counts != self._counts:
                    self._counts, self._seconds = counts, dict.fromkeys(counts, 0.0)
                    self.chosen = min(self.chosen, most)
                self._set(self.chosen)
            self._users += 1
        return self

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._users -= 1
            if self._users == 0:  # NumPy as the program had it
                for library, count in zip(self._libraries or (), self._found, strict=True):
                    library.set_num_threads(count)
                self._current = 0

    @contextlib.contextmanager
    def one(self) -> Iterator[None]:
        """One sequence's steps, on one thread."""
        with self:
            self._set(1)
            yield

    def timed(self, step: Callable[..., T], *args: Any) -> T:
        """`step(*args)` on the chosen count, or, in a trial, on the count being timed."""
        if len(self._counts) == 1:
            return step(*args)
        position = self._since_trial
        self._since_trial = (position + 1) % self._cycle
        if position >= TRIAL_STEPS:
            self._set(self.chosen)  # a sequence alone in another thread may have set one
            return step(*args)
        count = self._counts[(position // BLOCK_STEPS) % len(self._counts)]
        self._set(count)
        started = time.perf_counter()
        result = step(*args)
        self._seconds[count] += time.perf_counter() - started
        if position == TRIAL_STEPS - 1:  # the trial's end: the faster count runs from here
            winner = min(self._counts, key=self._seconds.__getitem__)
            self._cycle = (min(2 * self._cycle, LONGEST_CYCLE_STEPS) if winner == self.chosen
                           else SHORTEST_CYCLE_STEPS)
            self.chosen = winner
            self._seconds = dict.fromkeys(self._counts, 0.0)
            self._set(winner)
        return result


blas_threads = BlasThreads()
