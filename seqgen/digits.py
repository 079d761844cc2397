"""DigitSet: a set of 28x28 digit glyphs with labels, the unit every generator draws from."""

from __future__ import annotations

import functools
import hashlib
import numbers
import warnings

import numpy as np

SPLITS = ("train", "test")


class DigitSet:
    """A set of 28x28 digit glyphs with labels, the unit every generator draws from.

    Parameters
    ----------
    images : array_like, shape (N, 28, 28)
        MNIST convention: ink high, background 0.  ``uint8`` (or any integer
        type with values in 0..255) is kept as is; floats must lie in [0, 1]
        and are scaled to 0..255.
    labels : array_like, shape (N,)
        Integers 0..9.
    name : str, optional
        Where the digits come from (``"mnist"``, ``"sample"``, ...).
    split : str, optional
        ``"train"``, ``"test"`` or None for users' own sets.

    Notes
    -----
    Arrays are stored read-only, so a set can be shared between generators
    and threads without copies.
    """

    def __init__(self, images, labels, name: str = "custom", split: str | None = None):
        images = np.asarray(images)
        labels = np.asarray(labels)
        if images.ndim != 3 or images.shape[1:] != (28, 28):
            raise ValueError(f"images: expected shape (N, 28, 28), got {images.shape}")
        if labels.shape != (images.shape[0],):
            raise ValueError(
                f"labels: expected shape ({images.shape[0]},) to match images, got {labels.shape}"
            )
        if images.shape[0] == 0:
            raise ValueError("images: a DigitSet needs at least one digit")
        images = _to_uint8(images)
        if not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(f"labels: expected integers 0..9, got dtype {labels.dtype}")
        if labels.min() < 0 or labels.max() > 9:
            raise ValueError(f"labels: expected integers 0..9, got values from {labels.min()} to {labels.max()}")
        _warn_if_inverted(images)
        if split is not None and split not in SPLITS:
            raise ValueError(f"split: expected one of {SPLITS} or None, got {split!r}")
        self.images = read_only(images)
        self.labels = read_only(labels.astype(np.uint8, copy=False))
        self.name = str(name)
        self.split = split

    def __len__(self) -> int:
        return len(self.labels)

    def __repr__(self) -> str:
        return f"DigitSet(name={self.name!r}, split={self.split!r}, n={len(self)})"

    def identity(self) -> dict:
        """Name, count and SHA-1 of the images and labels: what a saved export or training records of its digits."""
        data = np.ascontiguousarray(self.images).tobytes() + self.labels.tobytes()
        return {"name": self.name, "count": len(self), "sha1": hashlib.sha1(data).hexdigest()}

    @functools.cached_property
    def class_order(self) -> np.ndarray:
        """All indices sorted by class (stable): class ``c`` occupies ``class_starts[c]`` onwards."""
        return read_only(np.argsort(self.labels, kind="stable"))

    @functools.cached_property
    def class_starts(self) -> np.ndarray:
        """Where each class 0..9 begins in :attr:`class_order`, shape (10,)."""
        return read_only(np.cumsum(self.class_counts) - self.class_counts)

    @functools.cached_property
    def class_indices(self) -> tuple[np.ndarray, ...]:
        """Indices of each class 0..9 (an empty array for a class the set lacks)."""
        ends = self.class_starts + self.class_counts
        return tuple(self.class_order[start:end] for start, end in zip(self.class_starts, ends))

    @functools.cached_property
    def class_counts(self) -> np.ndarray:
        """Number of digits of each class 0..9, shape (10,)."""
        return np.bincount(self.labels, minlength=10)

    @functools.cached_property
    def ink_extents(self) -> np.ndarray:
        """First and one-past-last ink column of each glyph, shape (N, 2).

        A column holds ink when any of its pixels is above 0.  A blank glyph gets
        the empty extent (14, 14).
        """
        return read_only(ink_bounds(self.images.max(axis=1)))

    @functools.cached_property
    def ink_rows(self) -> np.ndarray:
        """First and one-past-last ink row of each glyph, shape (N, 2) (as :attr:`ink_extents`)."""
        return read_only(ink_bounds(self.images.max(axis=2)))

    @property
    def ink_widths(self) -> np.ndarray:
        """Width of each glyph's ink in columns, shape (N,)."""
        extents = self.ink_extents
        return extents[:, 1] - extents[:, 0]

    def subset(self, index=None, *, per_class: int | None = None) -> "DigitSet":
        """A new DigitSet with some of the digits (same name and split).

        Parameters
        ----------
        index : array_like of int or bool, or slice, optional
            Which digits to keep.
        per_class : int, optional
            Keep the first ``per_class`` digits of each class (after ``index``).
        """
        from .validation import positive_int

        images, labels = self.images, self.labels
        if index is not None:
            if not isinstance(index, slice):
                if isinstance(index, (numbers.Integral, str, bytes)):
                    raise TypeError(f"index: expected an array of ints or bools, or a slice, got {index!r}; "
                                    "wrap one position in a list")
                index = np.asarray(index)
                if index.size == 0:
                    index = index.astype(np.intp)  # [] is a float array, which numpy does not index with
                if index.ndim != 1:
                    raise ValueError(f"index: expected a 1-d array of ints or bools, got shape {index.shape}")
            try:
                labels = labels[index]
            except IndexError as error:
                raise IndexError(f"index: {error} (this DigitSet has {len(self.labels)} digits)") from None
            if not len(labels):
                raise ValueError("index: selects no digits; a DigitSet needs at least one")
            images = images[index]
        if per_class is not None:
            per_class = positive_int(per_class, "per_class")
            keep = np.concatenate([np.flatnonzero(labels == c)[:per_class] for c in range(10)])
            keep.sort()
            images, labels = images[keep], labels[keep]
        return DigitSet(images, labels, name=self.name, split=self.split)


def ink_bounds(profiles: np.ndarray) -> np.ndarray:
    """First and one-past-last nonzero entry of each row of ``(n, 28)`` profiles, as ``(n, 2)`` intp.

    An all-zero row gets the empty range (14, 14).
    """
    ink = profiles > 0
    size = ink.shape[1]
    anyink = ink.any(axis=1)
    first = np.where(anyink, ink.argmax(axis=1), size // 2)
    last = np.where(anyink, size - ink[:, ::-1].argmax(axis=1), size // 2)
    return np.stack([first, last], axis=1).astype(np.intp)


def _to_uint8(images: np.ndarray) -> np.ndarray:
    if images.dtype == np.uint8:
        return images
    if np.issubdtype(images.dtype, np.integer):
        if images.min() < 0 or images.max() > 255:
            raise ValueError("images: integer pixels must lie in 0..255")
        return images.astype(np.uint8)
    if np.issubdtype(images.dtype, np.floating):
        lo, hi = float(images.min()), float(images.max())
        if not 0 <= lo <= hi <= 1:  # NaN fails every comparison
            found = "NaN" if np.isnan(lo) or np.isnan(hi) else f"values from {lo:g} to {hi:g}"
            raise ValueError(f"images: float pixels must lie in [0, 1] (ink high), got {found}")
        return np.rint(images * 255).astype(np.uint8)
    raise TypeError(f"images: expected an integer or float array, got dtype {images.dtype}")


def _warn_if_inverted(images: np.ndarray) -> None:
    """Warn when the digits' outer pixels are mostly bright: dark ink on light paper, which every
    sequence would show as a dark box."""
    edges = (images[:, 0], images[:, -1], images[:, 1:-1, 0], images[:, 1:-1, -1])  # views: no copy
    mean = sum(int(e.sum(dtype=np.int64)) for e in edges) / sum(e.size for e in edges)
    if mean > 127:
        warnings.warn(f"images: the digits' edges are bright (mean {mean:.0f} of 255): a DigitSet "
                      "expects ink high on a dark background, as MNIST has it; pass 255 - images "
                      "(or 1 - images) for dark ink on light paper", UserWarning, stacklevel=3)


def read_only(array: np.ndarray) -> np.ndarray:
    """``array``, marked read-only (for arrays that are cached and shared)."""
    array.flags.writeable = False
    return array
