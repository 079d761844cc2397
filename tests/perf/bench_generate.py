"""Speed and memory figures for seqgen (a script, not a test): ``python tests/perf/bench_generate.py``.

Workload (issue #3): 2,000 phone numbers at width 200, spacing (2, 10), from
the offline sample.  Each figure is the best of several runs and is printed on
its own line as ``name: value unit``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import subprocess
import sys
import tempfile
import time

N_IMAGES, WIDTH, SPACING = 2000, 200, (2, 10)
_PAYLOAD_BYTES = 2280  # a compressed phone-number PNG, on average


def best_rate(fn, n: int, repeats: int) -> float:
    fn()  # warm-up: data loaded, caches filled
    best = min(_timed(fn) for _ in range(repeats))
    return n / best


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def in_memory(source, repeats: int) -> None:
    from seqgen import generate_phone_numbers
    from seqgen.parallel import available_cores

    cores = available_cores()
    for label, kwargs in [("shrink (default)", {}), ("stretch", {"fit": "stretch"}),
                          ("native, width 300", {"image_width": 300})]:
        args = {"image_width": WIDTH, **kwargs}
        for threads in (1, cores):
            rate = best_rate(lambda: generate_phone_numbers(N_IMAGES, spacing_range=SPACING, source=source, seed=0,
                                                            threads=threads, **args), N_IMAGES, repeats)
            print(f"in memory, {label}, {threads} thread(s): {rate:,.0f} images/s")


def augmented(source, repeats: int) -> None:
    from seqgen import generate_phone_numbers
    from seqgen.parallel import available_cores

    for preset in ("light", "default", "heavy"):
        for threads in (1, available_cores()):
            rate = best_rate(lambda: generate_phone_numbers(N_IMAGES, WIDTH, SPACING, source=source, seed=0,
                                                            augment=preset, threads=threads), N_IMAGES, repeats)
            print(f"in memory, augment={preset!r}, {threads} thread(s): {rate:,.0f} images/s")


def data_generator(source, repeats: int) -> None:
    """``gen[i]`` as a training loop calls it: each batch is used, then dropped."""
    from seqgen import DataGenerator
    from seqgen.parallel import available_cores

    def epoch(gen, n_batches):
        for i in range(n_batches):
            x, y = gen[i]

    for batch_size in (32, 256):
        for threads in (1, available_cores()):
            gen = DataGenerator(batch_size=batch_size, image_width=WIDTH, spacing_range=SPACING, source=source,
                                batches_per_epoch=N_IMAGES // batch_size + 1, threads=threads)
            n_batches = N_IMAGES // batch_size
            rate = best_rate(lambda: epoch(gen, n_batches), n_batches * batch_size, repeats)
            print(f"DataGenerator gen[i], batch {batch_size}, {threads} thread(s): {rate:,.0f} samples/s")


def png_export(repeats: int) -> None:
    """``seqgen phone`` into a RAM disk (the code's speed) and onto the temp folder's disk, how the
    workers scale on a larger export, and how fast each folder takes plain new files, however encoded."""
    n = 2 * N_IMAGES
    roots = {"disk": tempfile.gettempdir()}
    if os.path.isdir("/dev/shm"):
        roots = {"RAM disk": "/dev/shm", **roots}
    runs = [(where, root, workers, level) for where, root in roots.items() for workers in (1, 2) for level in (1, 0)]
    for where, root, workers, level in runs:
        _export(root, n, workers, level)  # warm-up
        rate = n / min(_export(root, n, workers, level) for _ in range(repeats))
        print(f"PNG export to {where}, {workers} worker(s), --png-level {level}: {rate:,.0f} images/s")
    # every export starts fresh workers (fork, a first chunk into fresh memory, exit: about 0.1 s in all),
    # which weighs on a small export: the workers' scaling, on a larger one
    (where, root), big = next(iter(roots.items())), 5 * n  # the RAM disk, where there is one
    rates = [big / min(_export(root, big, workers, 1) for _ in range(max(1, repeats // 2))) for workers in (1, 2)]
    print(f"PNG export of {big:,} images to {where}, --png-level 1, 2 workers / 1 worker: "
          f"{rates[1]:,.0f} / {rates[0]:,.0f} images/s = {rates[1] / rates[0]:.2f}x")
    for where, root in roots.items():
        rate = n / min(_create_files(root, n) for _ in range(repeats))
        print(f"file creation on {where}, plain open and write of {_PAYLOAD_BYTES:,}-byte files "
              f"(the most any PNG writer can reach there): {rate:,.0f} files/s")


def _export(root: str, n: int, workers: int, level: int) -> float:
    """Seconds ``seqgen phone`` takes to write ``n`` images into a fresh folder under ``root``."""
    from seqgen.cli import main

    with tempfile.TemporaryDirectory(dir=root) as folder, contextlib.redirect_stdout(io.StringIO()):
        start = time.perf_counter()
        main(["phone", "--num-images", str(n), "--image-width", str(WIDTH), "--seed", "0", "--source", "sample",
              "--workers", str(workers), "--png-level", str(level), "--quiet", "--output-dir", folder])
        return time.perf_counter() - start  # without deleting the folder


def _create_files(root: str, n: int) -> float:
    """Seconds to create ``n`` new files of :data:`_PAYLOAD_BYTES` bytes in a fresh folder under ``root``."""
    payload = os.urandom(_PAYLOAD_BYTES)
    with tempfile.TemporaryDirectory(dir=root) as folder:
        start = time.perf_counter()
        for i in range(n):
            with open(os.path.join(folder, f"{i}.png"), "xb") as f:
                f.write(payload)
        return time.perf_counter() - start


_PEAK_SCRIPT = """
import re, resource, sys
from seqgen import load_mnist
from seqgen.generate import iter_phone_numbers
source = load_mnist("train", source="sample")
count = sum(len(labels) for _, labels, _ in iter_phone_numbers(int(sys.argv[1]), 200, source=source, seed=0))
try:  # this process's own high-water mark (ru_maxrss would include the benchmark's, inherited through exec)
    kb = int(re.search(r"VmHWM:\\s+(\\d+)", open("/proc/self/status").read()).group(1))
except OSError:
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(count, kb)
"""


def peak_memory(n: int) -> None:
    out = subprocess.run([sys.executable, "-c", _PEAK_SCRIPT, str(n)], capture_output=True, text=True,
                         check=True, env=dict(os.environ, SEQGEN_OFFLINE="1")).stdout.split()
    print(f"peak memory, {int(out[0]):,} images in chunks: {int(out[1]) / 1024:,.0f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--peak-images", type=int, default=100_000)
    args = parser.parse_args()
    os.environ.setdefault("SEQGEN_OFFLINE", "1")
    from seqgen import load_mnist

    source = load_mnist("train", source="sample")
    in_memory(source, args.repeats)
    augmented(source, max(1, args.repeats // 2))
    data_generator(source, args.repeats)
    png_export(max(1, args.repeats // 2))
    peak_memory(args.peak_images)


if __name__ == "__main__":
    main()
