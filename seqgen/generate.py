"""The public generation functions: one digit sequence, or a batch of phone numbers."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from . import validation as check
from .compose import Batch, Options, resolve_augment
from .data import resolve_source
from .digits import DigitSet
from .io import prepare_output_dir, write_pngs
from .parallel import default_threads, ordered_map

#: Phone batches are rendered in chunks of this many images, each from its own
#: seed derived from the batch seed, so any chunk can be rendered alone (by a
#: worker, a shard) and the result does not depend on how the work is split.
CHUNK_SIZE = 1000
PHONE_DIGITS = 10  # random digits after the leading 0
#: Most phone numbers one call plans: the distinct numbers are drawn up front and held in
#: memory (about 180 MB and 1.3 s per million on the project's machine).
MAX_PHONE_NUMBERS = 10_000_000


def check_phone_count(num_images, name: str = "num_images") -> int:
    """``num_images`` as an int in ``1..MAX_PHONE_NUMBERS``, or an error naming ``name`` and the limit."""
    num_images = check.positive_int(num_images, name)
    if num_images > MAX_PHONE_NUMBERS:
        raise ValueError(f"{name}: at most {MAX_PHONE_NUMBERS:,} phone numbers per call (their plan is held "
                         f"in memory), got {num_images:,}")
    return num_images


def generate_numbers_sequence(
    digits,
    image_width: int,
    spacing_range: tuple[int, int] = (2, 10),
    *,
    fit: str = "shrink",
    align: str = "center",
    source=None,
    augment=None,
    seed=None,
    output_path: str | os.PathLike | None = None,
    return_boxes: bool = False,
):
    """Compose one image of a digit sequence from handwritten MNIST digits.

    Parameters
    ----------
    digits : str or iterable of int
        The digits to write, e.g. ``"0123"`` or ``[4, 1, 1]``.
    image_width : int
        Width of the output in pixels; always honoured exactly.
    spacing_range : (int, int)
        Inclusive range of the gap between the ink of neighbouring digits, in
        pixels at native scale; each gap is drawn uniformly.  ``lo`` may be
        negative (touching, overlapping digits) down to
        :data:`seqgen.validation.MIN_SPACING`.
    fit : {"shrink", "stretch", "error"}
        What happens when the composed strip is narrower or wider than
        ``image_width``.  ``"shrink"`` (default): a strip that fits keeps its
        native pixels and the free columns become margins (see ``align``); a
        wider one is scaled down uniformly (aspect kept, centred vertically).
        ``"stretch"``: the strip is resized horizontally to the width (digits
        distorted; the old project's behaviour).  ``"error"``: raise when the
        strip does not fit.
    align : {"center", "left", "right", "random"}
        Placement of a strip narrower than the width.
    source : DigitSet, str or path-like, optional
        Where digits come from: a DigitSet, or a ``load_mnist`` source
        (training split).  Default: ``load_mnist("train")``.
    augment : None, str or Pipeline
        Augmentation: a preset name (``"light"``, ``"default"``, ``"heavy"``)
        or a :class:`seqgen.augment.Pipeline`.
    seed : int, numpy.random.Generator or None
        Source of every random choice; the same seed gives the same bytes.
    output_path : str or path-like, optional
        A folder to write the image to, as ``<digits>.png`` (``<digits>_1.png``,
        ... when that name is taken).
    return_boxes : bool
        Also return each digit's ink box.

    Returns
    -------
    image : ndarray, shape (28, image_width), float32
        1.0 white background (exactly, where there is no ink), 0.0 black ink.
    boxes : ndarray, shape (len(digits), 4), int16
        Only with ``return_boxes``: ``(x0, y0, x1, y1)`` per digit, ends exclusive.
    """
    codes = check.digit_sequence(digits)
    options = Options.check(image_width, spacing_range, fit, align)
    options.check_digits(len(codes))
    check.flag(return_boxes, "return_boxes")
    folder = prepare_output_dir(output_path) if output_path is not None else None
    rng = check.as_rng(seed)
    batch = options.render(codes[None], resolve_source(source), rng, resolve_augment(augment))
    if folder is not None:
        write_pngs(batch.images, ["".join(map(str, codes))], folder)
    return (batch.images[0], batch.boxes[0]) if return_boxes else batch.images[0]


def distinct_phone_numbers(num_images: int, rng: np.random.Generator) -> np.ndarray:
    """``num_images`` distinct 10-digit numbers (the part after the leading 0), in draw order."""
    limit = 10**PHONE_DIGITS
    if num_images > limit:
        raise ValueError(f"num_images: at most {limit} distinct phone numbers exist, got {num_images}")
    values = np.empty(0, np.int64)
    while len(values) < num_images:
        values = np.concatenate([values, rng.integers(0, limit, size=num_images - len(values))])
        _, first = np.unique(values, return_index=True)
        values = values[np.sort(first)]
    return values


@dataclass
class PhoneJob:
    """A batch of phone-number images, planned up front and rendered chunk by chunk.

    The numbers and every chunk's seed are fixed at planning time, so chunks
    can be rendered in any order, by any worker, with identical results.
    """

    labels: list[str]
    codes: np.ndarray  # (n, 11) int8
    entropy: int
    options: Options
    source: DigitSet
    augment: object = None
    chunk_size: int = CHUNK_SIZE

    @classmethod
    def plan(cls, num_images: int, options: Options, *, source=None, augment=None, seed=None,
             chunk_size: int = CHUNK_SIZE) -> PhoneJob:
        """Draw the distinct numbers and the chunk seeds; resolve the digit source."""
        num_images = check_phone_count(num_images)
        chunk_size = check.positive_int(chunk_size, "chunk_size")
        options.check_digits(PHONE_DIGITS + 1, "phone numbers")
        entropy = int(check.as_rng(seed).integers(2**63))
        values = distinct_phone_numbers(num_images, np.random.default_rng([entropy, 0]))
        powers = 10 ** np.arange(PHONE_DIGITS - 1, -1, -1, dtype=np.int64)
        codes = np.zeros((num_images, PHONE_DIGITS + 1), np.int8)
        codes[:, 1:] = values[:, None] // powers % 10
        labels = [f"0{v:0{PHONE_DIGITS}d}" for v in values.tolist()]
        return cls(labels, codes, entropy, options, resolve_source(source),
                   resolve_augment(augment), chunk_size)

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def n_chunks(self) -> int:
        return -(-len(self) // self.chunk_size)

    def chunk_range(self, chunk: int) -> range:
        start = chunk * self.chunk_size
        return range(start, min(start + self.chunk_size, len(self)))

    def render(self, chunk: int, out: np.ndarray | None = None, threads: int = 1) -> Batch:
        """Render chunk number ``chunk`` (its images are ``chunk_range(chunk)``), into ``out`` if given."""
        rows = self.chunk_range(chunk)
        rng = np.random.default_rng([self.entropy, 1, chunk])
        return self.options.render(self.codes[rows.start : rows.stop], self.source, rng, self.augment, out,
                                   threads)



def iter_phone_numbers(num_images: int, image_width: int, spacing_range=(2, 10), *, fit="shrink",
                       align="center", source=None, augment=None, seed=None
                       ) -> Iterator[tuple[np.ndarray, list[str], np.ndarray]]:
    """Like :func:`generate_phone_numbers`, one chunk of ``(images, labels, boxes)`` at a time.

    Memory stays at one chunk however many images are made; concatenating the
    chunks gives exactly what :func:`generate_phone_numbers` returns.
    """
    options = Options.check(image_width, spacing_range, fit, align)
    job = PhoneJob.plan(num_images, options, source=source, augment=augment, seed=seed)
    for chunk in range(job.n_chunks):
        rows = job.chunk_range(chunk)
        batch = job.render(chunk)
        yield batch.images, job.labels[rows.start : rows.stop], batch.boxes


def generate_phone_numbers(
    num_images: int,
    image_width: int,
    spacing_range: tuple[int, int] = (2, 10),
    *,
    fit: str = "shrink",
    align: str = "center",
    source=None,
    augment=None,
    seed=None,
    output_path: str | os.PathLike | None = None,
    return_boxes: bool = False,
    progress: bool = False,
    threads: int | None = None,
):
    """Make ``num_images`` distinct phone numbers ("0" and 10 random digits) as images.

    Parameters
    ----------
    num_images : int
        How many images (and distinct numbers).
    image_width, spacing_range, fit, align, source, augment, seed
        As for :func:`generate_numbers_sequence`.
    output_path : str or path-like, optional
        A folder to write a PNG export to (see :func:`seqgen.export.export`):
        ``<number>.png`` files, a ``labels.csv`` (``file,label``) manifest and
        ``manifest.json``.  The same call again keeps the files it finds
        (resuming an interrupted one); a folder holding a different export is
        refused, and no file is ever overwritten.
    return_boxes : bool
        Also return the digit boxes, shape ``(num_images, 11, 4)``.
    progress : bool
        Show a progress bar (after one second) on long runs.
    threads : int, optional
        Threads rendering (and writing) chunks of :data:`CHUNK_SIZE` images at
        once, or parts of the only chunk; default: one per CPU core, and
        never more run at once (they come from one shared pool).  The output
        does not depend on it.

    Returns
    -------
    images : ndarray, shape (num_images, 28, image_width), float32
    labels : list of str
        ``images[i]`` shows ``labels[i]``; the order is fixed by the seed.
    boxes : ndarray, shape (num_images, 11, 4), int16
        Only with ``return_boxes``.
    """
    options = Options.check(image_width, spacing_range, fit, align)
    options.check_digits(PHONE_DIGITS + 1, "phone numbers")
    check_phone_count(num_images)
    check.flag(return_boxes, "return_boxes")
    check.flag(progress, "progress")
    check.fits_in_memory(num_images, options.image_width, "num_images, image_width",
                         "write them with seqgen.export.export (shard by shard) or iterate with iter_phone_numbers")
    n_threads = default_threads() if threads is None else check.positive_int(threads, "threads")
    folder = prepare_output_dir(output_path) if output_path is not None else None
    job = PhoneJob.plan(num_images, options, source=source, augment=augment, seed=seed)
    if folder is not None:  # a folder holding a different export is refused before any rendering
        from .export import check_destination, write_export
        from .shards import ExportPlan

        plan = ExportPlan(len(job), options, length=job, source=job.source, augment=augment, seed=seed,
                          shard_size=job.chunk_size)
        check_destination(plan, folder)
    images = np.empty((len(job), 28, job.options.image_width), np.float32)
    boxes = np.empty((len(job), job.codes.shape[1], 4), np.int16)

    chunk_threads = min(n_threads, job.n_chunks)  # threads over chunks, else within the one chunk

    def render_chunk(chunk: int) -> None:
        rows = job.chunk_range(chunk)
        batch = job.render(chunk, out=images[rows.start : rows.stop], threads=n_threads if chunk_threads == 1 else 1)
        boxes[rows.start : rows.stop] = batch.boxes

    from threadpoolctl import threadpool_limits
    from tqdm.auto import tqdm

    # chunks on several threads (numpy and scipy release the GIL), one BLAS thread each
    with threadpool_limits(1) if chunk_threads > 1 else contextlib.nullcontext():
        done = ordered_map(render_chunk, range(job.n_chunks), chunk_threads)
        for _ in tqdm(done, total=job.n_chunks, disable=not progress, delay=1.0, unit="chunk"):
            pass
    if folder is not None:  # the PNG export of the same plan, cut from the images drawn above: resumable
        plan.rendered = Batch(images, boxes)
        write_export(plan, folder, format="png", progress=progress)
    return (images, job.labels, boxes) if return_boxes else (images, job.labels)
