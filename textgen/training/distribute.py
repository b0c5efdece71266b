"""Training on several devices or machines with TensorFlow's own distribution strategies.

    default       one device (TensorFlow's default strategy)
    mirrored      tf.distribute.MirroredStrategy over the local GPUs, or over N logical CPU
                  devices with --devices N (or the devices named by --devices GPU:0,GPU:1)
    multi-worker  tf.distribute.MultiWorkerMirroredStrategy, configured by TF_CONFIG
    auto          mirrored when more than one GPU is visible, default otherwise

`--batch-size` stays per replica; the global batch is batch size x replicas. The strategy is a
training option (TrainOptions.strategy, .devices); it must exist before TensorFlow runs its
first operation, so the training lifecycle calls `request()` before anything there imports
TensorFlow, and the strategy is made while TensorFlow is imported. It is process state: a
process that has started TensorFlow cannot change to multi-worker or split its CPU.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from textgen import tf_setup
from textgen.errors import FieldError, TextgenError, choice


class Strategy(StrEnum):
    """auto, default, mirrored (local GPUs, or --devices N CPU devices) or multi-worker
    (configured by TF_CONFIG)."""

    auto = "auto"
    default = "default"
    mirrored = "mirrored"
    multi_worker = "multi-worker"


@dataclass
class Distribution:
    """The strategy in use and this process's place in it."""

    name: str
    strategy: Any  # tf.distribute.Strategy
    replicas: int = 1
    is_chief: bool = True
    worker_index: int = 0
    workers: int = 1


_requested: tuple[Strategy, str | None] = (Strategy.default, None)
_from_run = False  # whether the devices are a resumed run's own, not given now
_current: Distribution | None = None


def parse_devices(devices: str | None, on_this_machine: bool = True,
                  ) -> tuple[int | None, list[str] | None]:
    """`--devices 2` (split the CPU into 2 logical devices) or `--devices GPU:0,GPU:1`;
    `on_this_machine`: a count must fit this machine's cores (not so for a run's record)."""
    if devices is None:
        return None, None
    if not isinstance(devices, str):
        raise FieldError("devices", f"must be a count (2) or device names (GPU:0,GPU:1), got "
                                    f"{devices!r}")
    if COUNT.fullmatch(devices.strip()):
        count = int(devices)
        most = max_cpu_devices() if on_this_machine else count
        if not 1 <= count <= most:
            raise FieldError("devices", f"must be from 1 to {most} logical CPU devices (one "
                                        f"per core, two at least), got {devices.strip()}")
        return count, None
    names = [d.strip() for d in devices.split(",") if d.strip()]
    if not names:
        raise FieldError("devices", "is empty; give a count (2) or names (GPU:0,GPU:1)")
    bad = next((name for name in names if not DEVICE_NAME.fullmatch(name)), None)
    if bad is not None:
        raise FieldError("devices", f"{bad!r} is not a device name; give a count of CPU "
                                    "devices (2) or names such as GPU:0,GPU:1")
    return None, names


def max_cpu_devices() -> int:
    """A count splits the CPU into logical devices, one replica each: more replicas than the
    cores this process may use only make each step slower (64 on 2 cores took minutes a step).
    Two are always allowed: a split in two tries mirrored training on any machine."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(MIN_CPU_SPLIT, cores)


MIN_CPU_SPLIT = 2
COUNT = re.compile(r"[0-9]+")  # a count in ASCII digits (str.isdigit takes "²", int() not)


# TensorFlow's device names: GPU:0, or in full /job:localhost/replica:0/task:0/device:GPU:0
DEVICE_NAME = re.compile(r"(/job:\w+/replica:\d+/task:\d+/device:)?(CPU|GPU|TPU):\d+",
                         re.IGNORECASE)


def _short_name(name: str) -> str:
    """GPU:0 for GPU:0 or /job:localhost/replica:0/task:0/device:GPU:0."""
    return name.rsplit("device:", 1)[-1].upper()


def run_elsewhere(problem: str) -> TextgenError:
    """A resumed run's own devices (never typed now) that this machine cannot give it: the
    problem, and how to resume it here."""
    return TextgenError(f"{problem}; resume it with {{default}} (one device) or {{mirrored}} "
                        "{devices}", {"default": ("strategy", Strategy.default.value),
                                      "mirrored": ("strategy", Strategy.mirrored.value),
                                      "devices": ("devices", "N")})


def check_devices_exist(names: list[str], present: list[str], from_run: bool = False) -> None:
    """A one-line error for named devices this machine does not have: MirroredStrategy
    would wait for them for ever, deaf to Ctrl-C. `from_run`: a resumed run's own devices,
    never typed now."""
    have = [_short_name(name) for name in present]
    missing = [name for name in names if _short_name(name) not in have]
    if missing and from_run:
        raise run_elsewhere(f"the run was trained on {', '.join(names)}; this machine has no "
                            f"{', '.join(missing)} (it has {', '.join(have)})")
    if missing:
        raise FieldError("devices", f"names {', '.join(missing)}, which this machine does not "
                                    f"have (it has {', '.join(have)}); name devices it has, or "
                                    "give a count of CPU devices (2)")


def read_tf_config() -> dict:
    """TF_CONFIG, checked: a cluster with workers and this process's task."""
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        raise TextgenError("{strategy} needs the TF_CONFIG environment variable (see the "
                           "README's 'Training on several devices or machines')",
                           {"strategy": ("strategy", str(Strategy.multi_worker))})
    try:
        config = json.loads(raw)
        workers = config["cluster"]["worker"]
        task = config["task"]
        valid = (task["type"] in ("worker", "chief") and isinstance(task["index"], int)
                 and isinstance(workers, list) and workers)
    except (ValueError, KeyError, TypeError):
        valid = False
    if not valid:
        raise TextgenError("TF_CONFIG is not valid: it needs {\"cluster\": {\"worker\": "
                           "[\"host:port\", ...]}, \"task\": {\"type\": \"worker\", "
                           "\"index\": N}}")
    return config


def request(strategy: Strategy | str = Strategy.default, devices: str | None = None,
            from_run: bool = False) -> None:
    """Choose the strategy before TensorFlow starts (it is created during the import);
    `from_run`: the devices are a resumed run's own (its errors say so)."""
    global _requested, _current, _from_run
    strategy = choice(Strategy, strategy, "strategy")
    if from_run and devices is not None and COUNT.fullmatch(devices.strip()) and (
            int(devices) > max_cpu_devices()):
        raise run_elsewhere(f"the run was trained on {devices.strip()} CPU devices; this "
                            f"machine splits its CPU into at most {max_cpu_devices()}")
    cpu_count, _ = parse_devices(devices)
    if devices is not None and strategy != Strategy.mirrored:  # the others take no devices
        raise FieldError("devices", f"{devices} applies to {{fix}}; add it, or leave out "
                                    "the devices", fix=("strategy", Strategy.mirrored.value))
    if strategy == Strategy.multi_worker:
        read_tf_config()
    if too_late_for(strategy, devices):
        raise TextgenError("{strategy} {devices} must be chosen before TensorFlow starts; run "
                           "it in a new process", {"strategy": ("strategy", str(strategy)),
                                                   "devices": ("devices", devices)})
    _requested, _from_run = (strategy, devices), from_run
    _current = None
    tf_setup.set_startup(cpu_devices=cpu_count,
                         startup=_create if strategy == Strategy.multi_worker else None)


def too_late_for(strategy: Strategy, devices: str | None) -> bool:
    """Whether this strategy can no longer be had in this process: a multi-worker one, or a
    split of the CPU, must come before TensorFlow starts."""
    cpu_count, _ = parse_devices(devices, on_this_machine=False)  # request() checks the fit
    changed = (strategy, devices) != _requested
    return tf_setup.imported() and changed and (strategy == Strategy.multi_worker
                                                or cpu_count is not None)


def requested_devices() -> str | None:
    """The --devices of a mirrored strategy as requested (None: all GPUs, else the CPU)."""
    return _requested[1]


def is_multi_worker() -> bool:
    """Whether --strategy multi-worker was requested (known before TensorFlow starts)."""
    return _requested[0] == Strategy.multi_worker


def waiting_note() -> str | None:
    """What a multi-worker process is about to wait for, said before TensorFlow starts (its
    strategy waits, silently, until every worker of TF_CONFIG has started), else None."""
    if not is_multi_worker() or tf_setup.imported():
        return None
    config = read_tf_config()
    task, cluster = config["task"], config["cluster"]
    addresses = [(kind, index, address) for kind in ("chief", "worker")
                 for index, address in enumerate(cluster.get(kind, []))]
    others = [address for kind, index, address in addresses
              if (kind, index) != (task["type"], task["index"])]
    if not others:
        return None
    return (f"{task['type']} {task['index']} of the {len(addresses)} in TF_CONFIG's cluster: "
            f"waiting until the others ({', '.join(others)}) have started; start them, or "
            "Ctrl-C to stop")


@contextlib.contextmanager
def _signals_end_the_wait() -> Iterator[None]:
    """Ctrl-C and SIGTERM end the process, as signals do, while TensorFlow waits for the
    cluster: it waits in C++, where Python's own handlers never run."""
    if threading.current_thread() is not threading.main_thread():  # handlers are the main's
        yield
        return
    previous = {s: signal.signal(s, signal.SIG_DFL) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _create(tf) -> None:
    """Make the strategy (MultiWorkerMirroredStrategy must come before any TF operation)."""
    global _current
    _current = _build(tf)


def _build(tf) -> Distribution:
    name, devices = _requested
    _, device_names = parse_devices(devices)
    if name == "auto":
        name = "mirrored" if len(tf.config.list_physical_devices("GPU")) > 1 else "default"
    if name == "default":
        return Distribution("default", tf.distribute.get_strategy())
    if name == "mirrored":
        if device_names is None:
            gpus = tf.config.list_logical_devices("GPU")
            cpus = tf.config.list_logical_devices("CPU")
            device_names = [d.name for d in (gpus if gpus else cpus)]
        check_devices_exist(device_names, [d.name for d in tf.config.list_logical_devices()],
                            _from_run and devices is not None)
        strategy = tf.distribute.MirroredStrategy(devices=device_names)
        return Distribution("mirrored", strategy, strategy.num_replicas_in_sync)
    config = read_tf_config()
    with _signals_end_the_wait():
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
    task = config["task"]
    has_chief = "chief" in config["cluster"]
    chief = task["type"] == "chief" or (not has_chief and task["index"] == 0)
    workers = len(config["cluster"]["worker"]) + (1 if has_chief else 0)
    return Distribution("multi-worker", strategy, strategy.num_replicas_in_sync, chief,
                        task["index"], workers)


def role() -> Distribution:
    """This process's place in the training: where one process trains, known without
    TensorFlow (the strategy, None here, comes from current(), so checks that need no model
    answer at once); a multi-worker job's comes with its strategy, which starts first."""
    if is_multi_worker() or _current is not None:
        return current()
    return Distribution(str(_requested[0]), None)


def current() -> Distribution:
    """The distribution in force (importing TensorFlow if needed)."""
    global _current
    tf = tf_setup.import_tensorflow()
    if _current is None:
        _current = _build(tf)
    return _current


def shard_by_data(dataset):
    """Each worker reads its own part of every stream (the sources are not files)."""
    import tensorflow as tf

    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


# The private Keras functions multi-worker training replaces or calls (below), with the
# parameters the replacements rely on. Checked before patching, and by
# tests/test_distribute.py, whose failure names the function that changed.
PATCHED_KERAS = {
    "keras.src.backend.tensorflow.trainer.reduce_per_replica":
        ("values", "strategy", "reduction"),
    "keras.Model._maybe_symbolic_build": ("self", "iterator", "data_batch"),
    "keras.Model._symbolic_build": ("self", "iterator", "data_batch"),
}
# The newest versions the patch is tested on; pyproject.toml caps the dependencies there.
TESTED_WITH = "tensorflow 2.21, keras 3.15"


def keras_parameters(dotted: str) -> tuple[str, ...] | None:
    """The parameter names of a Keras function named by its dotted path; None if it is gone."""
    import importlib
    import inspect

    module_name, _, attribute_path = dotted.partition(".")
    target: Any = importlib.import_module(module_name)
    for part in attribute_path.split("."):
        if not hasattr(target, part) and inspect.ismodule(target):
            with contextlib.suppress(ImportError):
                importlib.import_module(f"{target.__name__}.{part}")
        target = getattr(target, part, None)
        if target is None:
            return None
    return tuple(inspect.signature(target).parameters)


def changed_keras_functions() -> list[str]:
    """The patched Keras functions that are missing or take other parameters than expected."""
    return [name for name, expected in PATCHED_KERAS.items()
            if keras_parameters(name) != expected]


def prepare_model(model, distribution: Distribution) -> None:
    """Work around Keras 3.x's first fit() and evaluate() on several replicas.

    Before training, Keras builds the model's metrics from one batch, averaging it across
    replicas with `strategy.reduce`, which fails for integer batches (character ids) under
    MultiWorkerMirroredStrategy, and under MirroredStrategy for a batch split unevenly (a
    validation of 13 windows: 7 and 6). The shapes are all it needs, so this replica's own
    part of the batch is used instead. Applied wherever there are several replicas.
    """
    if distribution.replicas < 2:
        return
    changed = changed_keras_functions()
    if changed:
        import keras

        raise TextgenError(f"training on {distribution.replicas} replicas ({distribution.name}) "
                           f"patches private Keras code that keras {keras.version()} changed "
                           f"({', '.join(changed)}); install the versions it is tested with "
                           f"({TESTED_WITH})")
    import types

    import tensorflow as tf

    def local_symbolic_build(self, iterator=None, data_batch=None):
        if iterator is not None:
            for _, _, it in iterator:
                data_batch = tf.nest.map_structure(
                    lambda v: self.distribute_strategy.experimental_local_results(v)[0]
                    if isinstance(v, tf.distribute.DistributedValues) else v, next(it))
                break
        with self.distribute_strategy.scope():
            self._symbolic_build(data_batch=data_batch)

    model._maybe_symbolic_build = types.MethodType(local_symbolic_build, model)
    if distribution.workers > 1:
        _patch_scalar_log_reduction()


def _patch_scalar_log_reduction() -> None:
    """Keras 3.x averages each step's logs across workers with `axis=0`, which fails for the
    scalar loss under MultiWorkerMirroredStrategy (tensorflow/tensorflow#72388). Scalars are
    averaged with `axis=None` instead; everything else is left to Keras."""
    from keras.src.backend.tensorflow import trainer

    original = trainer.reduce_per_replica
    if getattr(original, "_textgen_patched", False):
        return
    import tensorflow as tf

    def reduce_per_replica(values, strategy, reduction):
        if reduction in ("auto", "mean"):
            def mean(v):
                if isinstance(v, tf.distribute.DistributedValues) or (
                        hasattr(v, "shape") and v.shape.rank == 0):
                    return strategy.reduce("MEAN", v, axis=None)
                return v
            return tf.nest.map_structure(mean, values)
        return original(values, strategy, reduction)

    reduce_per_replica._textgen_patched = True
    trainer.reduce_per_replica = reduce_per_replica
