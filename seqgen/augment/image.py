"""Image-level augmenters: each composed image is varied after it is drawn."""

from __future__ import annotations

import numbers

import numpy as np

from . import functional as F
from .base import ImageAugmenter, magnitude


class GaussianNoise(ImageAugmenter):
    """Additive Gaussian noise; ``sigma`` is the maximum standard deviation (drawn per image).

    The noise of each image is a window of one bank of normal draws per call, at a random
    offset: the pixels of an image are independent, and a batch costs one bank of draws
    instead of one draw per pixel.
    """

    bank_size = 1 << 16
    per_image = ("scale", "offsets")

    def __init__(self, sigma=0.06, p=0.5, strength=1.0):
        super().__init__(p, strength)
        self.sigma = magnitude(sigma, "sigma", 1)

    def params(self, shape, rng):
        index = self.select(shape[0], rng)
        scale = (rng.uniform(0.3, 1.0, len(index)) * self.sigma * self.strength).astype(np.float32)
        size = shape[1] * shape[2]
        return {"index": index, "scale": scale,
                "bank": rng.standard_normal(self.bank_size + size, dtype=np.float32),
                "offsets": rng.integers(0, self.bank_size + 1, len(index))}

    def transform(self, images, params):
        index = params["index"]
        noise = F.noise_from_bank(params["bank"], params["offsets"], images.shape[1:])
        return self.apply_to(images, index, F.add_noise, noise, params["scale"])


class SaltPepper(ImageAugmenter):
    """Salt-and-pepper noise: a share ``amount`` of the pixels turns white or black (half each)."""

    per_image = ("counts", "positions", "white")  # the last two hold one entry per changed pixel

    def __init__(self, amount=0.02, p=0.3, strength=1.0):
        super().__init__(p, strength)
        self.amount = magnitude(amount, "amount", 1)

    def params(self, shape, rng):
        index = self.select(shape[0], rng)
        size = shape[1] * shape[2]
        counts = rng.binomial(size, min(1.0, self.amount * self.strength), len(index))
        return {"index": index, "counts": counts, "positions": rng.integers(0, size, counts.sum()),
                "white": rng.random(counts.sum()) < 0.5}

    def part(self, params, start, stop):
        lo, hi = np.searchsorted(params["index"], [start, stop])
        first, last = params["counts"][:lo].sum(), params["counts"][:hi].sum()  # its pixels, in image order
        return {"index": params["index"][lo:hi] - start, "counts": params["counts"][lo:hi],
                "positions": params["positions"][first:last], "white": params["white"][first:last]}

    def transform(self, images, params):
        index = params["index"]
        return self.apply_to(images, index, F.salt_pepper, params["counts"], params["positions"], params["white"])


class GaussianBlur(ImageAugmenter):
    """Gaussian blur (OpenCV, within 2e-6 of ``scipy.ndimage.gaussian_filter``) with a sigma drawn per image up
    to ``sigma`` (quantised to 0.1 px)."""

    per_image = ("sigma",)

    def __init__(self, sigma=1.0, p=0.3, strength=1.0):
        super().__init__(p, strength)
        self.sigma = magnitude(sigma, "sigma", 10)

    def params(self, shape, rng):
        index = self.select(shape[0], rng)
        return {"index": index, "sigma": np.round(rng.uniform(0.3, 1.0, len(index)) * self.sigma * self.strength, 1)}

    def transform(self, images, params):
        index, sigmas = params["index"], params["sigma"]
        for s in np.unique(sigmas):  # one filter call per distinct sigma
            group = index[sigmas == s]
            if s > 0:
                images[group] = F.gaussian_blur(images[group], s)
        return images


class Contrast(ImageAugmenter):
    """Ink darkness, contrast and brightness changes (pen pressure, exposure).

    Parameters
    ----------
    ink : float
        Maximum share by which the ink gets lighter (0.4: ink at 60% to 100%).
    contrast : float
        Maximum relative change of contrast about mid-grey.
    brightness : float
        Maximum shift of brightness.
    """

    per_image = ("darkness", "contrast", "brightness")

    def __init__(self, ink=0.4, contrast=0.3, brightness=0.1, p=0.5, strength=1.0):
        super().__init__(p, strength)
        self.ink, self.contrast = magnitude(ink, "ink", 1), magnitude(contrast, "contrast", 1)
        self.brightness = magnitude(brightness, "brightness", 1)

    def params(self, shape, rng):
        index = self.select(shape[0], rng)
        n, s = len(index), self.strength
        darkness = 1 - rng.uniform(0, 1, n) * self.ink * s
        contrast = 1 + rng.uniform(-1, 1, n) * self.contrast * s
        return {"index": index, "darkness": darkness, "contrast": contrast,
                "brightness": rng.uniform(-1, 1, n) * self.brightness * s}

    def transform(self, images, params):
        index = params["index"]
        return self.apply_to(images, index, F.contrast, params["darkness"], params["contrast"], params["brightness"])


class Background(ImageAugmenter):
    """Paper texture (smooth, low-frequency noise) or a lighting gradient darkening the page.

    Parameters
    ----------
    amplitude : float
        Maximum darkening of the background.
    gradient : float
        Share of the changed images that get a gradient instead of texture.
    """

    per_image = ("rows", "columns", "flip", "ramp", "amplitude")

    def __init__(self, amplitude=0.2, gradient=0.5, p=0.3, strength=1.0):
        super().__init__(p, strength)
        self.amplitude, self.gradient = magnitude(amplitude, "amplitude", 1), magnitude(gradient, "gradient", 1)

    def params(self, shape, rng):
        index = self.select(shape[0], rng)
        n, w = len(index), shape[2]
        return {"index": index,
                "rows": rng.random((n, 4), dtype=np.float32),
                "columns": rng.random((n, max(2, w // 12)), dtype=np.float32),
                "flip": rng.random(n) < 0.5,
                "ramp": rng.random(n) < self.gradient,
                "amplitude": (rng.uniform(0.3, 1.0, n) * self.amplitude * self.strength).astype(np.float32)}

    def transform(self, images, params):
        index = params["index"]
        texture = F.paper_texture(params["rows"], params["columns"], params["flip"], params["ramp"], images.shape[1:])
        return self.apply_to(images, index, F.darken, texture, params["amplitude"])


class ScanDegradation(ImageAugmenter):
    """A light scanner look: row banding, faint vertical streaks and coarse grey levels.

    Parameters
    ----------
    banding : float
        Maximum per-row brightness jitter.
    streaks : int
        Maximum number of faint vertical streaks.
    levels : int
        Grey levels kept at strength 1 (fewer = coarser quantisation), 2 to 256.
    """

    per_image = ("banding", "streak_columns", "streak_depth")

    def __init__(self, banding=0.04, streaks=3, levels=16, p=0.3, strength=1.0):
        super().__init__(p, strength)
        self.banding = magnitude(banding, "banding", 1)
        for value, name, low, high in ((streaks, "streaks", 0, 1000), (levels, "levels", 2, 256)):
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not low <= value <= high:
                raise ValueError(f"{name}: expected an int in [{low}, {high}], got {value!r}")
        self.streaks, self.levels = int(streaks), int(levels)

    def params(self, shape, rng):
        index = self.select(shape[0], rng)
        (n, h, w), s = (len(index),) + shape[1:], self.strength
        params = {"index": index, "banding": (1 - rng.uniform(0, self.banding * s, (n, h, 1))).astype(np.float32)}
        n_streaks = int(round(self.streaks * s))
        if n_streaks:
            params["streak_columns"] = rng.integers(0, w, (n, n_streaks))
            params["streak_depth"] = rng.uniform(0.05, 0.15, (n, n_streaks)).astype(np.float32)
        return params

    def transform(self, images, params):
        index = params["index"]
        streaks = None
        if "streak_columns" in params:
            streaks = F.streak_profile(params["streak_columns"], params["streak_depth"], images.shape[2])
        levels = max(2, int(round(256 - (256 - self.levels) * min(self.strength, 1.0))))
        return self.apply_to(images, index, F.scan, params["banding"], streaks, levels)


class FormField(ImageAugmenter):
    """A printed form under the handwriting: a ruled baseline, a dotted line, or comb boxes
    (a baseline with a tick between neighbouring digits and at both ends).

    The line is grey, printed below the ink (the darker of ink and line wins); it sits
    one to three pixels under the lowest digit.  Needs the digit boxes (the pipeline
    passes them); without them, only baselines are drawn, at a random row near the bottom.

    Parameters
    ----------
    kinds : tuple of str
        Which forms may be drawn, each equally likely: "baseline", "dotted", "comb".
    darkness : float
        Maximum darkness of the printed line (0 white, 1 black); drawn from half of it up.
    """

    KINDS = ("baseline", "dotted", "comb")
    uses_boxes = True
    per_image = ("kind", "gap", "value", "boxes")

    def __init__(self, kinds=KINDS, darkness=0.6, p=0.3, strength=1.0):
        super().__init__(p, strength)
        kinds = tuple(kinds)
        if not kinds or any(k not in self.KINDS for k in kinds):
            raise ValueError(f"kinds: expected some of {', '.join(map(repr, self.KINDS))}, got {kinds!r}")
        self.kinds, self.darkness = kinds, magnitude(darkness, "darkness", 1)

    def params(self, shape, rng, boxes=None):
        index = self.select(shape[0], rng)
        n = len(index)
        return {"index": index, "kind": np.array(self.kinds)[rng.integers(0, len(self.kinds), n)],
                "gap": rng.integers(1, 4, n),
                "value": (1 - rng.uniform(0.5, 1.0, n) * self.darkness * min(self.strength, 1.0)).astype(np.float32),
                "boxes": None if boxes is None else boxes[index]}

    def transform(self, images, params):
        index = params["index"]
        n, h, w = len(index), images.shape[1], images.shape[2]
        boxes = params["boxes"]
        kind = params["kind"] if boxes is not None else np.full(n, "baseline")
        if boxes is None:
            row = np.full(n, h - 4) + params["gap"] - 2
        else:
            row = np.where(boxes[:, :, 3] >= 0, boxes[:, :, 3], 0).max(axis=1) + params["gap"] - 1
        row = np.clip(row, 0, h - 1)
        columns = np.ones((n, w), bool)
        columns[kind == "dotted"] &= (np.arange(w) % 3 == 0)
        rows = np.arange(h)[None, :] == row[:, None]
        line = rows[:, :, None] & columns[:, None, :]
        comb = np.flatnonzero(kind == "comb")
        if len(comb):
            ticks = F.comb_ticks(boxes[comb], w)  # (c, W): columns of the ticks
            tall = (np.arange(h)[None, :] >= (row[comb] - 7)[:, None]) & (np.arange(h)[None, :] <= row[comb, None])
            line[comb] |= tall[:, :, None] & ticks[:, None, :]
        return self.apply_to(images, index, F.print_under, line, params["value"])


class JpegArtefacts(ImageAugmenter):
    """JPEG compression artefacts (OpenCV's encoder): each image is encoded at a quality drawn
    from ``quality`` and decoded again.  Pixels that earlier steps pushed outside [0, 1] are
    encoded as black or white, as an 8-bit file holds them.

    Parameters
    ----------
    quality : (int, int)
        Range of JPEG quality, 1-100 (lower: blockier, more ringing); strength 0 means 100.
    """

    # None: the whole batch at once, not block by block. Images of one quality are encoded as one
    # stacked image, and a block of 2 MB holds only one to three of each: about a call per image.
    per_image = None

    def __init__(self, quality=(20, 70), p=0.3, strength=1.0):
        super().__init__(p, strength)
        try:
            lo, hi = (int(q) for q in quality)
        except (TypeError, ValueError):
            raise ValueError(f"quality: expected a pair (lo, hi) of ints in 1..100, got {quality!r}") from None
        if not 1 <= lo <= hi <= 100:
            raise ValueError(f"quality: expected 1 <= lo <= hi <= 100, got {quality!r}")
        self.quality = (lo, hi)

    def params(self, shape, rng):
        index = self.select(shape[0], rng)
        quality = rng.integers(self.quality[0], self.quality[1] + 1, len(index))
        quality = 100 - np.minimum(self.strength, 1.0) * (100 - quality)
        return {"index": index, "quality": (np.round(quality / 5) * 5).clip(5, 100).astype(int)}  # steps of 5

    def transform(self, images, params):
        index, quality = params["index"], params["quality"]
        for q in np.unique(quality):  # one encoder call per quality
            group = index[quality == q]
            images[group] = F.jpeg(images[group], int(q))
        return images
