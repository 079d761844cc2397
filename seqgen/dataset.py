"""DataGenerator: random-access, reproducible batches of digit sequences for training loops."""

from __future__ import annotations

import numbers
from collections.abc import Iterator, Sequence

import numpy as np

from . import validation as check
from .compose import Options, resolve_augment
from .data import check_source, resolve_source
from .digits import SPLITS, DigitSet
from .generate import PHONE_DIGITS
from .parallel import default_threads

#: Class index of the CTC blank, also used to pad encoded labels; digits are 0..9.
BLANK = 10
#: Number of classes a CTC model over digits needs (10 digits and the blank).
NUM_CLASSES = 11


def encode_labels(labels: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Digit strings -> ``(targets, lengths)`` for a CTC loss.

    Parameters
    ----------
    labels : sequence of str
        Digit strings such as ``y`` from a batch; ``""`` (a blank image, which
        :meth:`~seqgen.model.SequenceRecognizer.predict` reads as ``""``) has length 0.

    Returns
    -------
    targets : ndarray, shape (B, L_max), int64
        Digit values, padded with :data:`BLANK` (10) after each label's end.
    lengths : ndarray, shape (B,), int64
        Each label's length.
    """
    check.not_one_string(labels, "labels")
    codes = [check.digit_sequence(label, "labels") if label else () for label in map(str, labels)]
    lengths = np.array([len(c) for c in codes], dtype=np.int64)
    targets = np.full((len(codes), int(lengths.max(initial=0))), BLANK, dtype=np.int64)
    for row, c in zip(targets, codes):
        row[: len(c)] = c
    return targets, lengths


def decode_labels(targets: np.ndarray, lengths: np.ndarray | None = None) -> list[str]:
    """Inverse of :func:`encode_labels`: ``(B, L)`` digit values (blank-padded) -> digit strings.

    Without ``lengths`` a label ends at its first :data:`BLANK`; with them, a
    :data:`BLANK` inside a label's length is an error.
    """
    targets = np.asarray(targets)
    if targets.ndim != 2:
        raise ValueError(f"targets: expected a 2-D array (B, L), got shape {targets.shape}")
    wrong = (targets < 0) | (targets > BLANK) if targets.dtype.kind in "iu" else np.ones(targets.shape, bool)
    if wrong.any():
        raise ValueError(f"targets: expected ints 0-9 and the blank {BLANK}, got {targets[wrong][0].item()!r} "
                         f"({targets.dtype})")
    if lengths is None:  # the digits before the first blank
        lengths = np.cumprod(targets != BLANK, axis=1).sum(axis=1)
    else:
        lengths = np.asarray(lengths)
        if lengths.shape != targets.shape[:1] or (lengths.size and lengths.dtype.kind not in "iu"):
            raise ValueError(f"lengths: expected {len(targets)} ints, one per row of targets, got "
                             f"{lengths.dtype} shape {lengths.shape}")
        outside = (lengths < 0) | (lengths > targets.shape[1])
        if outside.any():
            raise ValueError(f"lengths: expected 0 to {targets.shape[1]} (the width of targets), "
                             f"got {lengths[outside][0].item()}")
        blank_inside = (targets == BLANK) & (np.arange(targets.shape[1]) < lengths[:, None])
        if blank_inside.any():
            row = int(blank_inside.any(axis=1).argmax())
            raise ValueError(f"targets: row {row} has the blank {BLANK} within its length {lengths[row]}")
    return ["".join(map(str, row[:n].tolist())) for row, n in zip(targets, lengths)]


class EpochSampler:
    """Yields ``(gen.epoch, i)`` for every batch ``i`` of ``gen``, the epoch read when iteration starts."""

    def __init__(self, gen: "DataGenerator"):
        self.gen = gen

    def __len__(self) -> int:
        return len(self.gen)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch = self.gen.epoch
        return ((epoch, i) for i in range(len(self.gen)))


def _length_spec(length) -> tuple[int, int] | str:
    if length == "phone":
        return "phone"
    if isinstance(length, numbers.Integral) and not isinstance(length, bool):
        n = check.positive_int(length, "length")
        return n, n
    if isinstance(length, (tuple, list)) and len(length) == 2:
        lo, hi = (check.positive_int(v, "length") for v in length)
        if lo > hi:
            raise ValueError(f"length: min must not exceed max, got ({lo}, {hi})")
        return lo, hi
    raise ValueError(f"length: expected 'phone', an int or a (min, max) pair, got {length!r}")


class DataGenerator:
    """Seeded batches of sequence images: a map-style dataset and a Keras-style generator.

    ``gen[i]`` is a pure function of ``(seed, epoch, i)``: the same bytes in any
    call order, in any thread or process, so it works unchanged with several
    workers (for example ``torch.utils.data.DataLoader(gen, batch_size=None,
    num_workers=4)``).

    Parameters
    ----------
    batch_size : int
        Sequences per batch.
    image_width : int
        Width of every image.
    spacing_range : (int, int)
        Ink-to-ink gap range, as in :func:`seqgen.generate_numbers_sequence`.
    length : "phone", int or (int, int)
        ``"phone"``: "0" and 10 random digits; an int: random digit strings of
        that length; ``(min, max)``: lengths drawn uniformly, inclusive.  All
        fill ``image_width`` through the fit policy.
    augment : None, str or Pipeline
        Augmentation preset or pipeline.
    seed : int or None
        Base seed; None draws one at construction (then fixed for this object).
    split : {"train", "test"}
        Which digits to draw from; test batches never contain a train digit.
    source : DigitSet, str or None
        Digits to draw from; a str or None is passed to ``load_mnist(split, ...)``
        on first use.  A DigitSet whose ``split`` differs from ``split`` is refused.
    batches_per_epoch : int
        ``len(gen)``.
    channels_last : bool
        Return ``x`` as ``(B, 28, W, 1)`` instead of ``(B, 28, W)``.
    fit, align : str
        Fitting policy, as in :func:`seqgen.generate_numbers_sequence`.
    threads : int or None
        Threads drawing each batch, in parts of at least 64 images (so only
        batches of 128 or more are split).  None: one per core, but 1 inside
        a PyTorch ``DataLoader`` worker; set 1 when other processes share the
        cores.  The batches do not depend on it.
    """

    def __init__(self, batch_size: int = 32, image_width: int = 200, spacing_range=(2, 10),
                 length="phone", augment=None, seed: int | None = 0, split: str = "train", source=None,
                 batches_per_epoch: int = 1000, channels_last: bool = False, fit: str = "shrink",
                 align: str = "center", threads: int | None = None):
        self.batch_size = check.positive_int(batch_size, "batch_size")
        self.options = Options.check(image_width, spacing_range, fit, align)
        check.fits_in_memory(self.batch_size, self.options.image_width, "batch_size, image_width",
                             "ask for smaller batches")
        self.length = _length_spec(length)
        self.options.check_digits(PHONE_DIGITS + 1 if self.length == "phone" else self.length[1], "length")
        self.augment = resolve_augment(augment)
        if seed is None:
            seed = int(np.random.SeedSequence().entropy % 2**63)
        if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
            raise TypeError(f"seed: expected an int or None (batch i is drawn from (seed, epoch, i), so a "
                            f"Generator's state cannot stand in for it), got {type(seed).__name__}")
        check.as_rng(seed)  # validates the range
        self.seed = int(seed)
        self.split = check.choice(split, "split", SPLITS)
        if isinstance(source, DigitSet) and source.split not in (None, split):
            raise ValueError(f"source: a {source.split!r} DigitSet cannot feed split={split!r}")
        self._source = check_source(source)
        self.batches_per_epoch = check.positive_int(batches_per_epoch, "batches_per_epoch")
        self.channels_last = check.flag(channels_last, "channels_last")
        self.threads = None if threads is None else check.positive_int(threads, "threads")
        self.epoch = 0

    @property
    def source(self) -> DigitSet:
        """The digits batches are drawn from (loaded on first use)."""
        if not isinstance(self._source, DigitSet):
            self._source = resolve_source(self._source, self.split)
        return self._source

    def __len__(self) -> int:
        return self.batches_per_epoch

    def __getitem__(self, index) -> tuple[np.ndarray, np.ndarray]:
        """Batch ``index`` of the current epoch, or ``(epoch, index)`` of that epoch: ``x`` float32
        images, ``y`` label strings."""
        epoch = self.epoch
        if isinstance(index, tuple) and len(index) == 2:
            epoch, index = index
            if isinstance(epoch, bool) or not isinstance(epoch, numbers.Integral) or epoch < 0:
                kind = ValueError if isinstance(epoch, numbers.Integral) and not isinstance(epoch, bool) else TypeError
                raise kind(f"index: expected (epoch, index) with an int epoch >= 0, got epoch {epoch!r}")
        if isinstance(index, bool) or not isinstance(index, numbers.Integral):
            raise TypeError(f"index: expected an int or (epoch, index), got {type(index).__name__}")
        if not -len(self) <= index < len(self):
            raise IndexError(f"index: expected -{len(self)} <= index < {len(self)}, got {index}")
        if index < 0:
            index += len(self)
        rng = np.random.default_rng([self.seed, int(epoch), int(index)])
        codes = self.draw_codes(rng)
        threads = default_threads() if self.threads is None else self.threads
        batch = self.options.render(codes, self.source, rng, self.augment, threads=threads)
        x = batch.images[..., None] if self.channels_last else batch.images
        return x, self.labels_of(codes)

    def sampler(self) -> "EpochSampler":
        """Indices for a ``torch.utils.data.DataLoader`` that carry the current epoch to its workers.

        Worker processes hold copies of the generator, so ``on_epoch_end()`` in the
        main process never reaches persistent workers (``persistent_workers=True``):
        they would repeat the first epoch.  ``DataLoader(gen, batch_size=None,
        sampler=gen.sampler(), ...)`` asks for ``(epoch, i)`` instead, read from the
        generator each time an epoch starts.
        """
        return EpochSampler(self)

    def draw_codes(self, rng: np.random.Generator) -> np.ndarray:
        """One batch of digit codes from ``rng`` (int8, -1 pads a shorter sequence): the first draw of a batch."""
        if self.length == "phone":
            codes = np.zeros((self.batch_size, PHONE_DIGITS + 1), np.int8)
            codes[:, 1:] = rng.integers(0, 10, (self.batch_size, PHONE_DIGITS))
            return codes
        lo, hi = self.length
        codes = rng.integers(0, 10, (self.batch_size, hi)).astype(np.int8)
        if lo < hi:
            lengths = rng.integers(lo, hi + 1, self.batch_size)
            codes[np.arange(hi)[None, :] >= lengths[:, None]] = -1
        return codes

    @staticmethod
    def labels_of(codes: np.ndarray) -> np.ndarray:
        """The label strings of a batch of codes (padding dropped)."""
        chars = np.where(codes >= 0, codes + ord("0"), 0).astype(np.uint8)
        return np.frombuffer(chars.tobytes(), dtype=f"S{codes.shape[1]}").astype(str)

    def on_epoch_end(self) -> None:
        """Move to the next epoch (fresh samples); the Keras convention."""
        self.epoch += 1

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose batches ``gen[i]`` returns."""
        self.epoch = check.nonnegative_int(epoch, "epoch")

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """One epoch of batches (the current one)."""
        return (self[i] for i in range(len(self)))

    def __call__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Batches forever, epoch after epoch (for ``fit_generator``-style code)."""
        while True:
            yield from iter(self)
            self.on_epoch_end()

    encode_labels = staticmethod(encode_labels)
    decode_labels = staticmethod(decode_labels)

    def __repr__(self) -> str:
        return (f"DataGenerator(batch_size={self.batch_size}, image_width={self.options.image_width}, "
                f"length={self.length!r}, split={self.split!r}, seed={self.seed}, epoch={self.epoch})")
