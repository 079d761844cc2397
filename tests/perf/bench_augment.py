"""Augmentation speed (a script, not a test): ``python tests/perf/bench_augment.py``.

Workload (issue 15): 2,000 phone numbers at width 200, spacing (2, 10), from the
offline sample.  Prints images/s for each preset on one thread and on the
default threads (best of ``--repeats``; one thread
means one OpenCV thread too), then where the time goes: each
augmenter of each preset applied alone, in a Pipeline, to the glyphs or
images of that workload.  ``--kernels`` instead times OpenCV's calls inside
whole one-thread runs: the floor that numpy's own work sits on.  ``--glue``
times one-thread runs with and without the glyph steps that a single compiled
pass per glyph would replace: the most such a kernel could save.
"""

from __future__ import annotations

import argparse
import atexit
import importlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
import types

import numpy as np

N, WIDTH, SPACING = 2000, 200, (2, 10)


def best(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--presets", nargs="+", default=["none", "light", "default", "heavy"])
    parser.add_argument("--no-breakdown", action="store_true")
    parser.add_argument("--against", metavar="REV", help="a git revision to compare with, in the same run")
    parser.add_argument("--rounds", type=int, default=10, help="rounds of the A/B (with --against) or of --glue")
    parser.add_argument("--kernels", action="store_true",
                        help="one thread: µs per image, and how many of them OpenCV's calls take")
    parser.add_argument("--glue", action="store_true",
                        help="one thread: µs per image with and without the glyph steps around OpenCV's warp")
    args = parser.parse_args()
    if args.kernels:
        kernel_floor(args.presets, args.repeats)
        return
    if args.glue:
        glue_floor(args.presets, args.repeats, args.rounds)
        return
    if args.against:
        try:
            older = older_seqgen(args.against)
        except subprocess.CalledProcessError as exc:
            parser.error(f"--against: git cannot give seqgen at {args.against!r}: {exc.stderr.decode().strip()}")
        compare(args.against, older, args.presets, args.rounds)
        return

    from threadpoolctl import threadpool_limits

    from seqgen import generate_phone_numbers, load_mnist
    from seqgen.augment import resolve
    from seqgen.augment.base import GlyphAugmenter
    from seqgen.parallel import available_cores

    import cv2

    digits = load_mnist("train", source="sample")
    opencv_threads = cv2.getNumThreads()
    print(f"{N} phone numbers, width {WIDTH}; cores: {available_cores()}")
    for preset in args.presets:
        augment = None if preset == "none" else preset
        for threads in (1, available_cores()):
            # one thread means OpenCV's too: its own pool would otherwise run beside ours
            cv2.setNumThreads(1 if threads == 1 else opencv_threads)
            with threadpool_limits(1):
                seconds = best(lambda: generate_phone_numbers(N, WIDTH, SPACING, source=digits, seed=0,
                                                              augment=augment, threads=threads), args.repeats)
            print(f"{preset}, {threads} thread(s): {N / seconds:,.0f} images/s", flush=True)
    if args.no_breakdown:
        return

    from seqgen.augment import Pipeline

    cv2.setNumThreads(1)
    rng = np.random.default_rng(0)
    glyphs = digits.images[rng.integers(0, len(digits), N * 11)]
    writers = np.repeat(np.arange(N), 11)  # eleven digits to a phone number
    images, _, boxes = generate_phone_numbers(N, WIDTH, SPACING, source=digits, seed=0, return_boxes=True)
    for preset in args.presets:
        if preset == "none":
            continue
        print(f"\n{preset}: ms per {N} images, each augmenter alone in a Pipeline (p as in the preset), one thread")
        with threadpool_limits(1):
            for augmenter in resolve(preset).augmenters:
                if isinstance(augmenter, GlyphAugmenter):
                    def run(a=augmenter):
                        Pipeline([a]).augment_glyphs(glyphs, np.random.default_rng(1), writers)
                else:  # block by block, as in generation; the copy of the batch is timed too
                    def run(a=augmenter):
                        Pipeline([a]).augment_images(images.copy(), np.random.default_rng(1), boxes)
                print(f"  {type(augmenter).__name__:16s} {1000 * best(run, 3):7.1f}", flush=True)


#: The OpenCV functions the augmenters call, timed by ``--kernels``.
KERNELS = ("remap", "dilate", "erode", "sepFilter2D", "imencode", "imdecode")


def kernel_floor(presets: list[str], repeats: int) -> None:
    """Per preset, one thread: µs per image, and the µs per image spent inside OpenCV's calls (best run)."""
    import cv2
    from threadpoolctl import threadpool_limits

    import seqgen.augment.functional as functional
    from seqgen import generate_phone_numbers, load_mnist

    spent: dict[str, float] = {}

    def timed(name, fn):
        def call(*args, **kwargs):
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[name] = spent.get(name, 0.0) + time.perf_counter() - start
        return call

    # the augmenters reach OpenCV through their module's ``cv2`` name: a stand-in that times some calls
    stand_in = types.SimpleNamespace(**{k: getattr(cv2, k) for k in dir(cv2) if not k.startswith("__")})
    for name in KERNELS:
        setattr(stand_in, name, timed(name, getattr(cv2, name)))
    digits = load_mnist("train", source="sample")
    cv2.setNumThreads(1)
    print(f"{N} phone numbers, width {WIDTH}; one thread, best of {repeats}; µs per image")
    functional.cv2 = stand_in
    try:
        with threadpool_limits(1):
            for preset in presets:
                augment = None if preset == "none" else preset
                generate_phone_numbers(N, WIDTH, SPACING, source=digits, seed=0, augment=augment, threads=1)
                fastest, kernels = float("inf"), {}
                for _ in range(repeats):  # the same images each time, as in the plain benchmark
                    spent.clear()
                    start = time.perf_counter()
                    generate_phone_numbers(N, WIDTH, SPACING, source=digits, seed=0, augment=augment, threads=1)
                    seconds = time.perf_counter() - start
                    if seconds < fastest:
                        fastest, kernels = seconds, dict(spent)
                inside = ", ".join(f"{k} {1e6 * v / N:.1f}" for k, v in sorted(kernels.items(), key=lambda kv: -kv[1]))
                print(f"{preset}: {1e6 * fastest / N:.1f}; OpenCV {1e6 * sum(kernels.values()) / N:.1f}"
                      + (f" ({inside})" if inside else ""), flush=True)
    finally:
        functional.cv2 = cv2


def glue_floor(presets: list[str], repeats: int, rounds: int) -> None:
    """Per preset, one thread: µs per image as it is, and with the steps between the warp and the
    drawing skipped (the stroke blend and ink of :class:`~seqgen.augment.WriterStyle`, the ink
    bounds and column table of the changed glyphs, the glyphs' return from the warp's row to glyph
    order): what a single pass per glyph could at most save.  The skipped runs draw wrong images."""
    import cv2
    from threadpoolctl import threadpool_limits

    from seqgen import generate_phone_numbers, layout, load_mnist, raster
    from seqgen.augment import functional, glyph

    # (owner, name, stand-in doing none of the step's work)
    steps = [(glyph.WriterStyle, "finish", lambda self, glyphs, params: None),
             (layout.Glyphs, "of_images", classmethod(lambda cls, images, like, changed: cls(
                 np.arange(len(images)), like.columns, like.rows))),
             (raster, "column_table", lambda glyphs: np.empty(((len(glyphs) + 1) * 28, 28), np.uint8)),
             (functional, "_glyph_order", lambda rows: rows.reshape(rows.shape[1], 28, 28))]
    kept = [vars(owner)[name] for owner, name, _ in steps]

    def skip(on: bool) -> None:
        for (owner, name, stand_in), original in zip(steps, kept):
            setattr(owner, name, stand_in if on else original)

    digits = load_mnist("train", source="sample")
    cv2.setNumThreads(1)
    print(f"{N} phone numbers, width {WIDTH}; one thread; {rounds} rounds of best of {repeats}; µs per image")
    try:
        with threadpool_limits(1):
            for preset in presets:
                if preset == "none":
                    continue
                def run(preset=preset):
                    generate_phone_numbers(N, WIDTH, SPACING, source=digits, seed=0, augment=preset, threads=1)
                times = {False: [], True: []}
                for number in range(rounds):
                    for on in (False, True) if number % 2 == 0 else (True, False):
                        skip(on)
                        times[on].append(1e6 * best(run, repeats) / N)
                whole, without = np.array(times[False]), np.array(times[True])
                print(f"{preset}: {np.min(whole):.1f}-{np.max(whole):.1f} as it is, {np.min(without):.1f}-"
                      f"{np.max(without):.1f} without those steps", flush=True)
    finally:
        skip(False)


def older_seqgen(rev: str):
    """The ``seqgen`` package of git revision ``rev``, imported under another name (its imports are relative)."""
    root = subprocess.run(["git", "rev-parse", "--show-toplevel"], capture_output=True, text=True, check=True,
                          cwd=os.path.dirname(os.path.abspath(__file__))).stdout.strip()
    folder = tempfile.mkdtemp(prefix="seqgen-ab-")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    archive = subprocess.run(["git", "archive", rev, "seqgen"], capture_output=True, check=True, cwd=root).stdout
    subprocess.run(["tar", "-x", "-C", folder], input=archive, check=True)
    name = "seqgen_" + "".join(c if c.isalnum() else "_" for c in rev)
    os.rename(os.path.join(folder, "seqgen"), os.path.join(folder, name))
    sys.path.insert(0, folder)
    # the submodules themselves: a package's lazy top-level names may import ``seqgen.*`` (this tree)
    modules = {part: importlib.import_module(f"{name}.{part}") for part in ("data", "generate")}
    for module in modules.values():
        if not module.__file__.startswith(folder):
            raise RuntimeError(f"{module.__name__} was imported from {module.__file__}, not from {rev}")
    return types.SimpleNamespace(load_mnist=modules["data"].load_mnist,
                                 generate_phone_numbers=modules["generate"].generate_phone_numbers)


def compare(rev: str, older, presets: list[str], rounds: int) -> None:
    """Same-run A/B of ``older`` (seqgen at ``rev``) against this tree: both in this process, taking turns."""
    import cv2
    from threadpoolctl import threadpool_limits

    import seqgen.data
    import seqgen.generate
    from seqgen.parallel import available_cores

    sides = {}
    this_tree = types.SimpleNamespace(load_mnist=seqgen.data.load_mnist,
                                      generate_phone_numbers=seqgen.generate.generate_phone_numbers)
    for label, package in ((rev, older), ("this tree", this_tree)):
        sides[label] = (package, package.load_mnist("train", source="sample"))
    opencv_threads = cv2.getNumThreads()
    print(f"{N} phone numbers, width {WIDTH}; {rounds} rounds, sides taking turns; images/s, median")
    for preset in presets:
        augment = None if preset == "none" else preset
        for threads in (1, available_cores()):
            cv2.setNumThreads(1 if threads == 1 else opencv_threads)
            seconds = {label: [] for label in sides}
            outputs = {}
            with threadpool_limits(1):
                for number in range(rounds + 1):  # round 0 warms both sides up and is not counted
                    order = list(sides.items()) if number % 2 else list(sides.items())[::-1]
                    for label, (package, digits) in order:
                        start = time.perf_counter()
                        outputs[label] = package.generate_phone_numbers(N, WIDTH, SPACING, source=digits, seed=0,
                                                                        augment=augment, threads=threads)[0]
                        if number:
                            seconds[label].append(time.perf_counter() - start)
            before, after = (np.array(seconds[label]) for label in sides)
            same = np.array_equal(*outputs.values())
            print(f"{preset}, {threads} thread(s): {rev} {N / np.median(before):,.0f}, this tree "
                  f"{N / np.median(after):,.0f}; paired speed-up {np.median(before / after):.3f} "
                  f"({np.min(before / after):.3f}-{np.max(before / after):.3f}); same bytes: {same}", flush=True)


if __name__ == "__main__":
    main()
