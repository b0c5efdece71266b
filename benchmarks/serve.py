"""Serving throughput: a real `textgen serve` on 127.0.0.1 with a 2x256 LSTM, driven by
concurrent streaming clients; and `sample --num-samples 32` against 32 separate samples, in
one process and as commands (each a new process, as a user without the option runs them).

Prints single-stream chars/s; for 1, 8 and 32 concurrent streaming clients the aggregate
chars/s and the p50/p95 time to the first generated character; the same 32 requests served
one at a time (the ratio continuous batching buys); the errors seen over a soak at 32
clients (must be 0); a flood of more samples than the batch and its waiting room hold, and
how fast a short request then gets its answer (a 503 at once). The model is trained for a
few steps only: speed does not depend on how well it writes.

    python -m benchmarks.serve                     # about 3 minutes
    python -m benchmarks.serve --soak 60 --length 500
"""

from __future__ import annotations

import argparse
import http.client
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from benchmarks.common import child_env, machine_header, summary

SEED = "To be"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stream_request(port: int, length: int, rng_seed: int) -> tuple[float, int, float]:
    """One streaming /v1/generate: (seconds to the first generated character, characters
    generated, total seconds)."""
    started = time.monotonic()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    body = json.dumps({"seed": SEED, "length": length, "rng_seed": rng_seed, "stream": True})
    connection.request("POST", "/v1/generate", body, {"Content-Type": "application/json"})
    response = connection.getresponse()
    if response.status != 200:
        raise RuntimeError(f"status {response.status}: {response.read()[:200]!r}")
    first, text = None, ""
    for raw in response:
        line = raw.decode("utf-8").rstrip("\n")
        if line.startswith("data: ") and '"text"' in line:
            text += json.loads(line[6:])["text"]
            if first is None and len(text) > len(SEED):
                first = time.monotonic() - started
    connection.close()
    generated = len(text) - len(SEED)
    if generated != length:
        raise RuntimeError(f"expected {length} characters, got {generated}")
    return first or 0.0, generated, time.monotonic() - started


def concurrent(port: int, clients: int, length: int, seed_base: int = 0) -> dict:
    results: list[tuple[float, int, float]] = []
    errors: list[str] = []

    def run(i: int) -> None:
        try:
            results.append(stream_request(port, length, seed_base + i))
        except Exception as exc:  # noqa: BLE001 - counted and reported
            errors.append(repr(exc))

    started = time.monotonic()
    threads = [threading.Thread(target=run, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.monotonic() - started
    firsts = sorted(r[0] for r in results) or [float("nan")]
    return {"clients": clients, "chars_per_s": sum(r[1] for r in results) / seconds,
            "p50_first_ms": 1000 * statistics.median(firsts),
            "p95_first_ms": 1000 * firsts[min(len(firsts) - 1, int(0.95 * len(firsts)))],
            "errors": len(errors), "seconds": seconds}


def soak(port: int, clients: int, seconds: float, length: int) -> tuple[int, int]:
    """(requests done, errors) with `clients` clients asking again and again."""
    done, errors = [0], [0]
    deadline = time.monotonic() + seconds

    def loop(i: int) -> None:
        n = 0
        while time.monotonic() < deadline:
            try:
                stream_request(port, length, 1000 * i + n)
                done[0] += 1
            except Exception:  # noqa: BLE001 - counted
                errors[0] += 1
            n += 1

    threads = [threading.Thread(target=loop, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return done[0], errors[0]


def flood(port: int, requests: int = 40, n: int = 16, length: int = 5000
          ) -> tuple[int, int, int, float]:
    """`requests` completions of `n` x `length` characters sent at once (more samples than
    the batch and its waiting room hold), then one of 5 characters 2 s later: (admitted,
    refused with 503, the short request's status, its seconds). The flood's clients leave
    after the short request; the server cancels their samples."""
    statuses: list[int | None] = [None] * requests

    def post(body: dict, out: list, i: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
        try:
            connection.request("POST", "/v1/completions", json.dumps(body),
                               {"Content-Type": "application/json"})
            response = connection.getresponse()
            response.read()
            out[i] = response.status
        except OSError:
            out[i] = None
        finally:
            connection.close()

    for i in range(requests):
        threading.Thread(target=post, args=({"prompt": SEED, "n": n, "max_tokens": length},
                                            statuses, i), daemon=True).start()
    time.sleep(2)
    short: list[int | None] = [None]
    started = time.monotonic()
    post({"prompt": SEED, "max_tokens": 5}, short, 0)
    seconds = time.monotonic() - started
    refused = statuses.count(503)
    return requests - refused, refused, short[0] or 0, seconds


def batched_sampling(run: Path, length: int) -> tuple[float, float]:
    """Seconds for 32 samples generated together (`sample --num-samples 32`'s path) and for
    32 generated one after the other, in this process."""
    from textgen.generate.sampling import SamplingSettings, load_sampler

    sampler = load_sampler(run)
    settings = [SamplingSettings(length=length, rng_seed=i) for i in range(32)]
    started = time.monotonic()
    sampler.sample_many([SEED] * 32, settings)
    together = time.monotonic() - started
    started = time.monotonic()
    for s in settings:
        sampler.sample(SEED, s)
    return together, time.monotonic() - started


def sampling_commands(ckpt: Path, length: int) -> tuple[float, float]:
    """Seconds for `textgen sample --num-samples 32` and for 32 `textgen sample` commands (what
    a user runs without the option), each a new process."""
    base = [sys.executable, "-m", "textgen", "sample", "--model", "served", "--checkpoint-dir",
            str(ckpt), "--seed", SEED, "--length", str(length)]

    def timed(*extra: str) -> float:
        started = time.monotonic()
        subprocess.run([*base, *extra], check=True, capture_output=True, env=child_env())
        return time.monotonic() - started

    together = timed("--num-samples", "32", "--rng-seed", "0")
    return together, sum(timed("--rng-seed", str(i)) for i in range(32))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=summary(__doc__))
    parser.add_argument("--length", type=int, default=300, help="characters per request")
    parser.add_argument("--soak", type=float, default=60, help="seconds at 32 clients")
    parser.add_argument("--units", type=int, default=256)
    args = parser.parse_args(argv)
    print(machine_header("textgen serve"))
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = Path(tmp)
        trained = subprocess.run(
            [sys.executable, "-m", "textgen", "train", "--units", str(args.units), "--layers",
             "2", "--epochs", "1", "--steps-per-epoch", "3", "--checkpoint-dir", str(ckpt),
             "--run-name", "served"], capture_output=True, text=True, env=child_env())
        if trained.returncode != 0:
            raise SystemExit(f"training failed:\n{trained.stderr[-2000:]}")
        port = free_port()
        server = subprocess.Popen(
            [sys.executable, "-m", "textgen", "serve", "served", "--checkpoint-dir", str(ckpt),
             "--port", str(port), "--max-n", "32"], stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, env=child_env())
        try:
            for _ in range(300):
                try:
                    http.client.HTTPConnection("127.0.0.1", port, timeout=1).request(
                        "GET", "/healthz")
                    break
                except OSError:
                    time.sleep(0.2)
            stream_request(port, 50, 0)  # warm-up
            _, chars, seconds = stream_request(port, 2000, 1)
            single = chars / seconds
            print(f"2x{args.units} LSTM, requests of {args.length} characters after a "
                  f"{len(SEED)}-character seed\n")
            print(f"single stream: {single:,.0f} chars/s")
            rows = [concurrent(port, clients, args.length) for clients in (1, 8, 32)]
            started = time.monotonic()
            for i in range(32):
                stream_request(port, args.length, i)
            one_at_a_time = 32 * args.length / (time.monotonic() - started)
            print(f"\n{'clients':>8}{'aggregate chars/s':>19}{'p50 first ms':>14}"
                  f"{'p95 first ms':>14}{'errors':>8}")
            for r in rows:
                print(f"{r['clients']:>8}{r['chars_per_s']:>19,.0f}{r['p50_first_ms']:>14.0f}"
                      f"{r['p95_first_ms']:>14.0f}{r['errors']:>8}")
            print(f"\n32 requests one at a time: {one_at_a_time:,.0f} chars/s; 32 concurrent / "
                  f"one at a time: {rows[2]['chars_per_s'] / one_at_a_time:.1f}x; 32 concurrent"
                  f" / one stream: {rows[2]['chars_per_s'] / single:.1f}x (goal >= 10x)")
            print(f"p95 time to first character at 8 clients: {rows[1]['p95_first_ms']:.0f} ms "
                  "(goal < 100 ms)")
            done, errors = soak(port, 32, args.soak, args.length)
            print(f"soak: {args.soak:g} s at 32 clients: {done} requests, {errors} errors")
            admitted, refused, status, seconds = flood(port)
            print(f"flood: 40 requests of 16 x 5,000 characters at once: {admitted} admitted, "
                  f"{refused} refused (503); a 5-character request 2 s later: {status} in "
                  f"{seconds:.2f} s")
        finally:
            server.terminate()
            server.wait(timeout=30)
        together, apart = batched_sampling(ckpt / "served", args.length)
        print(f"\nsample --num-samples 32 (together): {together:.2f} s; 32 separate samples: "
              f"{apart:.2f} s; {apart / together:.1f}x (goal >= 10x), in one process")
        together, apart = sampling_commands(ckpt, args.length)
        print(f"`textgen sample --num-samples 32`: {together:.2f} s; 32 `textgen sample` "
              f"commands: {apart:.2f} s; {apart / together:.1f}x")


if __name__ == "__main__":
    main()
