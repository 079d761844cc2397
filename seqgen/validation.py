"""Argument checks shared by the public functions, the DataGenerator and the CLI.

Every check raises ``ValueError`` or ``TypeError`` with a message that names the
argument and what is allowed.
"""

from __future__ import annotations

import itertools
import numbers
import os
import re
from collections.abc import Iterable

import numpy as np

#: The most negative ink-to-ink gap allowed: neighbouring digits may overlap by
#: up to this many columns (touching and overlapping handwriting).
MIN_SPACING = -8

#: The widest a sequence may be composed before it is fitted to the image width,
#: in pixels: resampling costs memory that grows with it (quadratically, for the
#: cached filter banks), so longer digit strings or wider gaps are refused up front.
MAX_STRIP_WIDTH = 4096
#: The widest image: 28 x 8192 float32 is 0.9 MB per image.
MAX_IMAGE_WIDTH = 8192
GLYPH_WIDTH = 28

FITS = ("shrink", "stretch", "error")
ALIGNS = ("center", "left", "right", "random")


def as_rng(seed) -> np.random.Generator:
    """A ``numpy.random.Generator`` from an int, a Generator, a SeedSequence or None."""
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None or isinstance(seed, np.random.SeedSequence):
        return np.random.default_rng(seed)
    if isinstance(seed, numbers.Integral) and not isinstance(seed, bool):
        if seed < 0:
            raise ValueError(f"seed: expected a non-negative int, got {seed}")
        return np.random.default_rng(int(seed))
    raise TypeError(f"seed: expected an int, a numpy.random.Generator or None, got {type(seed).__name__}")


def flag(value, name: str) -> bool:
    """``value`` if it is a bool: a truth test would read the string ``"False"`` as true."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name}: expected True or False, got {value!r}")
    return bool(value)


def positive_int(value, name: str) -> int:
    """``value`` as an int >= 1."""
    return _int_from(value, name, 1, "a positive int")


def nonnegative_int(value, name: str) -> int:
    """``value`` as an int >= 0."""
    return _int_from(value, name, 0, "an int >= 0")


def _int_from(value, name: str, least: int, expected: str) -> int:
    """``value`` as an int >= ``least``: ``TypeError`` for any other type (bool too), ``ValueError`` below."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}: expected {expected}, got {value!r}")
    if value < least:
        raise ValueError(f"{name}: expected {expected}, got {value}")
    return int(value)


def spacing(spacing_range) -> tuple[int, int]:
    """``(lo, hi)`` integers with ``MIN_SPACING <= lo <= hi``."""
    try:
        lo, hi = spacing_range
    except (TypeError, ValueError):
        raise TypeError(f"spacing_range: expected a pair (lo, hi) of ints, got {spacing_range!r}") from None
    for v in (lo, hi):
        if isinstance(v, bool) or not isinstance(v, numbers.Integral):
            raise TypeError(f"spacing_range: expected a pair (lo, hi) of ints, got {spacing_range!r}")
    if lo > hi:
        raise ValueError(f"spacing_range: lo must not exceed hi, got ({lo}, {hi})")
    if lo < MIN_SPACING:
        raise ValueError(f"spacing_range: lo must be >= {MIN_SPACING} (overlap limit), got {lo}")
    return int(lo), int(hi)


def image_width(value) -> int:
    """``value`` as an int in ``1..MAX_IMAGE_WIDTH``."""
    width = positive_int(value, "image_width")
    if width > MAX_IMAGE_WIDTH:
        raise ValueError(f"image_width: at most {MAX_IMAGE_WIDTH} pixels, got {width}")
    return width


def strip_width(n_digits: int, spacing_range: tuple[int, int], name: str = "digits") -> int:
    """The widest ``n_digits`` digits can be composed with ``spacing_range``; refused over ``MAX_STRIP_WIDTH``."""
    hi = max(spacing_range[1], 0)
    widest = n_digits * GLYPH_WIDTH + (n_digits - 1) * hi
    if widest > MAX_STRIP_WIDTH:
        raise ValueError(f"{name}, spacing_range: {n_digits} digits with gaps up to {hi} px can be {widest} px "
                         f"wide before fitting; at most {MAX_STRIP_WIDTH} px: ask for fewer digits or smaller gaps")
    return widest


def choice(value, name: str, allowed: tuple[str, ...]) -> str:
    """``value`` if it is one of ``allowed``."""
    if value not in allowed:
        raise ValueError(f"{name}: expected one of {', '.join(map(repr, allowed))}, got {value!r}")
    return value


def digit_sequence(digits, name: str = "digits") -> np.ndarray:
    """A digit string or an iterable of ints 0..9 as a non-empty ``int8`` array."""
    if isinstance(digits, (bytes, bytearray)):  # iterated, b"12" would be the ints 49 and 50
        raise TypeError(f"{name}: expected a digit string or an iterable of ints 0-9, got {type(digits).__name__} "
                        f"{bytes(digits)[:20]!r}; decode it to a str first")
    if isinstance(digits, str):
        bad = next((ch for ch in digits if not "0" <= ch <= "9"), None)
        if bad is not None:
            raise ValueError(f"{name}: expected only the characters 0-9, got {bad!r} in {digits!r}")
        values = [ord(ch) - 48 for ch in digits]
    elif isinstance(digits, np.ndarray) and digits.ndim != 1:
        raise ValueError(f"{name}: expected a 1-d array of ints 0-9, got shape {digits.shape}")
    elif isinstance(digits, Iterable):
        # no more than the widest strip holds: an endless iterator is refused, not read into memory
        most = MAX_STRIP_WIDTH // GLYPH_WIDTH
        values = list(itertools.islice(digits, most + 1))
        if len(values) > most:
            raise ValueError(f"{name}: more than {most} digits, which no image can hold "
                             f"(at most {MAX_STRIP_WIDTH} px before fitting, {GLYPH_WIDTH} px per digit)")
        for v in values:
            if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Integral) or not 0 <= v <= 9:
                raise ValueError(f"{name}: expected ints 0-9, got {v!r}")
    else:
        raise TypeError(f"{name}: expected a digit string or an iterable of ints 0-9, got {type(digits).__name__}")
    if not values:
        raise ValueError(f"{name}: expected at least one digit")
    return np.asarray(values, dtype=np.int8)


def not_one_string(labels, name: str = "labels") -> None:
    """Refuse a bare ``str`` (or ``bytes``) where a sequence of digit strings is expected: iterating it
    would make one label of each character."""
    if isinstance(labels, (str, bytes)):
        raise TypeError(f"{name}: expected a sequence of digit strings, got one {type(labels).__name__} "
                        f"{labels!r}; wrap it in a list")


_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")


def not_a_url(path, name: str, what: str = "a local file path", advice: str = "") -> None:
    """Refuse a URL (``s3://...``) where only a local path is written to: a ``Path`` made of it would
    quietly become a local folder named after its scheme (``s3:``)."""
    text = os.fspath(path)
    if isinstance(text, str) and _URL.match(text):
        raise ValueError(f"{name}: expected {what}, got the URL {text!r}{advice}")


def physical_memory() -> int | None:
    """This machine's memory in bytes, or None where the OS does not say."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # not on a POSIX system
        return None


def image_bytes(images: int, image_width: int) -> int:
    """Bytes of ``images`` float32 images of ``image_width``: most of what rendering them needs
    (1,000 of them peak at about 1.15 times this)."""
    return images * GLYPH_WIDTH * image_width * 4


def memory_text(nbytes: float) -> str:
    """An amount of memory for a message: MiB below one GiB, so that small amounts do not read as 0.0."""
    return f"{nbytes / 2**20:,.1f} MiB" if nbytes < 2**30 else f"{nbytes / 2**30:,.2f} GiB"


def within_memory(need: int, names: str, what: str, advice: str, limit: tuple[int, str] | None = None) -> None:
    """Refuse work that needs ``need`` bytes, more than this machine's memory or ``limit`` (bytes, and
    whose they are): ``"{names}: {what} {need} in memory, more than {room}; {advice}"``."""
    total = physical_memory() if limit is None else limit[0]
    if total is not None and need > total:
        room = f"this machine's {memory_text(total)}" if limit is None else f"the {memory_text(total)} {limit[1]}"
        raise ValueError(f"{names}: {what} {memory_text(need)} in memory, more than {room}; {advice}")


def fits_in_memory(images: int, image_width: int, names: str, advice: str, at_once: int = 1,
                   unit: str = "batches", limit: tuple[int, str] | None = None) -> None:
    """Refuse work whose float32 images (``at_once`` ``unit`` of ``images`` each) would not fit in
    this machine's memory, or in ``limit`` (bytes, and whose they are): an error naming ``names``, with ``advice``."""
    what = f"{images:,} images of width {image_width}" + (f", {at_once} {unit} at once," if at_once > 1 else "")
    within_memory(at_once * image_bytes(images, image_width), names, f"{what} need", advice, limit)
