"""Importing TensorFlow quietly, once, and only when a command needs it."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import warnings
from collections.abc import Callable, Iterator
from types import ModuleType

# The CLI imports TensorFlow quietly unless -v; a program that imports textgen keeps
# TensorFlow's own logging, its stderr and its warnings filters as it set them.
_quiet = False
_cpu_devices: int | None = None
_startup: Callable[[ModuleType], None] | None = None


def set_quiet(quiet: bool) -> None:
    """With quiet on, TensorFlow's start-up messages and warnings are hidden (the CLI's way)."""
    global _quiet
    _quiet = quiet


def set_startup(cpu_devices: int | None = None,
                startup: Callable[[ModuleType], None] | None = None) -> None:
    """Settings applied while TensorFlow is imported, before its first operation: split the
    CPU into `cpu_devices` logical devices, then call `startup(tf)` (e.g. to make a
    MultiWorkerMirroredStrategy, which must exist before any operation runs)."""
    global _cpu_devices, _startup
    _cpu_devices, _startup = cpu_devices, startup


def imported() -> bool:
    return "tensorflow" in sys.modules


def _configure(tf: ModuleType) -> None:
    if _cpu_devices:
        cpus = tf.config.list_physical_devices("CPU")
        tf.config.set_logical_device_configuration(
            cpus[0], [tf.config.LogicalDeviceConfiguration()] * _cpu_devices)
    if _startup is not None:
        _startup(tf)
    tf.config.list_logical_devices()


@contextlib.contextmanager
def _stderr_silenced() -> Iterator[None]:
    """Send the process's file descriptor 2 to /dev/null (C++ logging ignores Python's stderr)."""
    try:
        if sys.stderr is not None:  # None: closed (`2>&-`), and so is descriptor 2
            sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


@contextlib.contextmanager
def random_states_kept() -> Iterator[None]:
    """Python's and NumPy's global random states as they were afterwards: importing
    TensorFlow draws from Python's, training seeds both (Keras's set_random_seed), and a
    program that uses textgen keeps its own random numbers."""
    import random

    import numpy as np

    python_state, numpy_state = random.getstate(), np.random.get_state()
    try:
        yield
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)


# Keras' floatx is the process's (its dtype policy is each thread's): held at float32 while
# any textgen call runs, counted, so overlapping calls give the program's own back at the end.
_floatx_lock = threading.Lock()
_floatx_holders = 0
_programs_floatx = "float32"


@contextlib.contextmanager
def keras_defaults() -> Iterator[None]:
    """Keras' dtype policy and float type at their defaults (float32) within, as they were
    afterwards: textgen sets each layer's precision itself, and a program's own
    `set_global_policy("mixed_float16")` or `set_floatx("float64")` must not reach the layers,
    losses and metrics that take the global one (the same seed gave another run). floatx is
    process-wide: a model the program builds in another thread meanwhile gets float32."""
    global _floatx_holders, _programs_floatx
    keras = sys.modules.get("keras")
    if keras is None:  # not imported yet: nothing has changed its defaults
        yield
        return
    policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float32")
    with _floatx_lock:
        if _floatx_holders == 0:
            _programs_floatx = keras.config.floatx()
            keras.config.set_floatx("float32")
        _floatx_holders += 1
    try:
        yield
    finally:
        with _floatx_lock:
            _floatx_holders -= 1
            if _floatx_holders == 0:
                keras.config.set_floatx(_programs_floatx)
        keras.config.set_dtype_policy(policy)


def import_tensorflow() -> ModuleType:
    """Import TensorFlow and Keras; quietly where set_quiet asked for it (the CLI without -v).

    TF 2.21 prints oneDNN and CUDA notices through absl before TF_CPP_MIN_LOG_LEVEL is read,
    so a quiet import and its first device query run with stderr silenced at the fd level.
    """
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    if not _quiet:
        with random_states_kept():
            import tensorflow as tf

            _configure(tf)
        return tf
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with _stderr_silenced(), random_states_kept():
        import tensorflow as tf

        _configure(tf)
    tf.get_logger().setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module=r"(keras|tensorflow)\b")
    with contextlib.suppress(ImportError):
        from absl import logging as absl_logging

        absl_logging.set_verbosity(absl_logging.ERROR)
    return tf


class OwnRetracingUnsaid(logging.Filter):
    """Drops TensorFlow's "N out of the last N calls to <function ...> triggered tf.function
    retracing" warning in the thread running a textgen call: textgen builds its functions
    afresh per call (a model per file), so in a loop of calls the warning speaks of
    textgen's functions, not the caller's code (other threads' warnings pass)."""

    def __init__(self) -> None:
        super().__init__()
        self.thread = threading.get_ident()

    def filter(self, record: logging.LogRecord) -> bool:
        return record.thread != self.thread or (
            "triggered tf.function retracing" not in record.getMessage())


@contextlib.contextmanager
def own_retracing_unsaid() -> Iterator[None]:
    """While a textgen call runs (the Python API's entry points): OwnRetracingUnsaid on
    TensorFlow's logger; the caller's own code is warned as before, outside the call and in
    its other threads."""
    logger, unsaid = logging.getLogger("tensorflow"), OwnRetracingUnsaid()
    logger.addFilter(unsaid)
    try:
        yield
    finally:
        logger.removeFilter(unsaid)


def tf_version() -> str:
    return import_tensorflow().__version__


def cpu_supports_bfloat16(cpuinfo: str | None = None) -> bool:
    """True when the CPU has native bfloat16 dot products: the avx512_bf16 or amx_bf16 flag
    in /proc/cpuinfo (the flag, not the model name)."""
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo", encoding="utf-8") as f:
                cpuinfo = f.read()
        except OSError:
            return False
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags" and {"avx512_bf16", "amx_bf16"} & set(value.split()):
            return True
    return False
