"""Shards: an export planned up front as runs of consecutive images, each with its own digits,
labels, file names and seed, so that any shard renders alone, anywhere, to the same bytes.

Planning draws digits, not pixels: it is cheap.  :mod:`seqgen.export` runs the plan.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import validation as check
from .compose import Batch, Options, resolve_augment
from .data import resolve_source
from .generate import CHUNK_SIZE, PHONE_DIGITS, PhoneJob, check_phone_count

#: Most images one random-length export plans (its shard records are held in memory).
MAX_IMAGES = 100_000_000
#: The version of the bytes seqgen draws and encodes: bumped with every change that re-pins the
#: hashes of tests/test_pinned_output.py or changes a format's bytes, so that an export made by an
#: older seqgen is never resumed with different bytes (its manifest's fingerprint differs).
OUTPUT_VERSION = 4


@dataclass
class Shard:
    """Images ``start .. start + len(labels)`` of an export: their digits, labels, file stems and seed."""

    index: int
    start: int
    codes: np.ndarray
    labels: list[str]
    stems: list[str]
    seed_key: list[int]
    rng_state: dict = field(repr=False)  # after the digits were drawn

    def render(self, digits, options: Options, augment) -> Batch:
        bits = np.random.PCG64(np.random.SeedSequence(self.seed_key))  # the seed sequence: for rng.spawn
        bits.state = self.rng_state
        return options.render(self.codes, digits, np.random.Generator(bits), augment)


class ExportPlan:
    """What an export holds: its shards, planned up front from the seed (cheap: digits, not pixels)."""

    def __init__(self, num_images, options: Options, *, length="phone", source=None, augment=None, seed=None,
                 shard_size: int = CHUNK_SIZE, progress: bool = True):
        from .dataset import DataGenerator

        self.options, self.length = options, length
        self.shard_size = check.positive_int(shard_size, "shard_size")
        self._job = self._gen = None
        if isinstance(length, PhoneJob):  # a plan made already (generate_phone_numbers)
            self._job, self.length = length, "phone"
            self.num_images, self.entropy = len(length), length.entropy
        elif length == "phone":
            self.num_images = check_phone_count(num_images)
            options.check_digits(PHONE_DIGITS + 1, "phone numbers")
        else:
            self.num_images = check.positive_int(num_images, "num_images")
            if self.num_images > MAX_IMAGES:
                raise ValueError(f"num_images: at most {MAX_IMAGES:,} images per export, got {self.num_images:,}")
            self.entropy = seed if isinstance(seed, int) and not isinstance(seed, bool) else \
                int(check.as_rng(seed).integers(2**63))
        check.fits_in_memory(self.largest_shard, options.image_width,  # a shard is rendered whole
                             "shard_size, image_width", "use smaller shards")
        if self.length != "phone":  # checks length; only draws the digit codes of each shard, never the glyphs
            self._gen = DataGenerator(batch_size=self.shard_size, image_width=options.image_width,
                                      spacing_range=options.spacing_range, length=length, seed=self.entropy)
        self.augment = resolve_augment(augment)
        # arguments checked: now the digits (maybe a download, with a progress bar when ``progress``) and the plan
        self.digits = resolve_source(source, progress=progress)
        self._augment_name = augment if isinstance(augment, str) or augment is None else repr(augment)
        if self.length == "phone" and self._job is None:
            self._job = PhoneJob.plan(num_images, options, source=self.digits, augment=self.augment, seed=seed,
                                      chunk_size=self.shard_size)
            self.entropy = self._job.entropy
        self.seed = seed if isinstance(seed, int) else None
        #: The whole plan's images and boxes, when the caller already rendered them in memory
        #: (generate_phone_numbers): shards are then cut from them instead of drawn again.
        self.rendered: Batch | None = None

    def render(self, shard: Shard) -> Batch:
        """Shard ``shard``'s images and boxes: cut from :attr:`rendered`, or drawn now."""
        if self.rendered is not None:
            rows = slice(shard.start, shard.start + len(shard.labels))
            return Batch(self.rendered.images[rows], self.rendered.boxes[rows])
        return shard.render(self.digits, self.options, self.augment)

    @property
    def largest_shard(self) -> int:
        """Images in the largest shard."""
        return min(self.shard_size, self.num_images)

    @property
    def n_shards(self) -> int:
        return -(-self.num_images // self.shard_size)

    def shard(self, index: int) -> Shard:
        start = index * self.shard_size
        stop = min(start + self.shard_size, self.num_images)
        if self.length == "phone":
            key = [self.entropy, 1, index]  # PhoneJob's chunk seed
            labels = self._job.labels[start:stop]
            state = np.random.default_rng(key).bit_generator.state
            return Shard(index, start, self._job.codes[start:stop], labels, labels, key, state)
        key = [self.entropy, 0, index]  # DataGenerator's batch (epoch 0, index)
        rng = np.random.default_rng(key)
        codes = self._gen.draw_codes(rng)[: stop - start]
        labels = self._gen.labels_of(codes).tolist()
        stems = [f"{i:09d}" for i in range(start, stop)]  # labels repeat, so files are numbered
        return Shard(index, start, codes, labels, stems, key, rng.bit_generator.state)

    def fingerprint(self, fmt: str, png_level: int) -> dict:
        """Everything that decides the bytes: two exports with equal fingerprints are the same export."""
        return {"output_version": OUTPUT_VERSION, "format": fmt,
                "length": list(self.length) if isinstance(self.length, tuple) else self.length,
                "num_images": self.num_images, "image_width": self.options.image_width,
                "spacing_range": list(self.options.spacing_range), "fit": self.options.fit,
                "align": self.options.align, "augment": self._augment_name, "seed": self.seed,
                "entropy": self.entropy, "shard_size": self.shard_size, "png_level": png_level,
                "digits": self.digits.identity()}
