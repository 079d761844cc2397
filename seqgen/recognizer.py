"""A classical baseline recognizer for sequence images, and an honest held-out evaluation.

Reading an image takes three steps:

1. segmentation (scikit-image): threshold the ink, label connected components,
   drop specks, merge pieces that share columns (a broken 5), and split blobs
   that are too wide for one digit at the lowest points of their column profile;
2. normalisation as MNIST was built: each segment's ink is fitted into a 20x20
   box (aspect kept) and centred by its centre of mass in 28x28;
3. classification (scikit-learn): HOG features and pixels, PCA, an RBF SVM,
   trained on single digits and augmented copies of them.
"""

from __future__ import annotations

import numbers
import os
import pickle
import warnings
from pathlib import Path

import numpy as np

from . import validation as check
from .digits import DigitSet

_FORMAT = 1  # version of the saved-model file layout
_MIN_AREA = 6  # components smaller than this many pixels are specks


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance between two strings (insertions, deletions, substitutions)."""
    from rapidfuzz.distance import Levenshtein

    return Levenshtein.distance(a, b)


def score(predicted, labels) -> dict:
    """Accuracy of predicted digit strings against the true ``labels``.

    Returns
    -------
    dict
        ``char_accuracy``: 1 - (sum of edit distances) / (sum of label lengths),
        so missing and extra digits count (it is negative when the reads hold more
        errors than the labels hold digits, as an untrained model's do); ``sequence_accuracy``: share of exact
        matches; ``n``: number of labels.
    """
    check.not_one_string(predicted, "predicted")
    check.not_one_string(labels, "labels")
    predicted, labels = list(predicted), [str(label) for label in labels]
    for i, read in enumerate(predicted):
        if not isinstance(read, str):
            raise TypeError(f"predicted: expected digit strings, got {read!r} ({type(read).__name__}) at position {i}")
    if len(predicted) != len(labels):
        raise ValueError(f"labels: expected {len(predicted)} labels, got {len(labels)}")
    if not labels:  # no accuracy of nothing: 1.0 for characters and 0.0 for sequences would both mislead
        raise ValueError("labels: expected at least one label to score, got none")
    errors = sum(edit_distance(p, t) for p, t in zip(predicted, labels))
    return {
        "char_accuracy": 1.0 - errors / max(1, sum(len(t) for t in labels)),
        "sequence_accuracy": float(np.mean([p == t for p, t in zip(predicted, labels)])),
        "n": len(labels),
    }


def check_images(images) -> list[np.ndarray]:
    """Validate sequence images: ``(N, 28, W)`` float in [0, 1] (or a list of ``(28, W)``).

    A trailing channel axis of one, as ``DataGenerator(channels_last=True)`` gives, is dropped:
    ``(N, 28, W, 1)`` and ``(28, W, 1)`` items are read as ``(N, 28, W)`` and ``(28, W)``.
    """
    if isinstance(images, np.ndarray):
        if images.ndim not in (3, 4) or images.shape[1] != 28 or images.shape[3:] not in ((), (1,)):
            raise ValueError(f"images: expected shape (N, 28, W) or (N, 28, W, 1), got {images.shape}")
        items = list(images if images.ndim == 3 else images[..., 0])
    elif isinstance(images, (list, tuple)):
        items = [np.asarray(im) for im in images]
        for im in items:
            if im.ndim not in (2, 3) or im.shape[0] != 28 or im.shape[2:] not in ((), (1,)):
                raise ValueError(f"images: expected (28, W) or (28, W, 1) arrays, got one of shape {im.shape}")
        items = [im[..., 0] if im.ndim == 3 else im for im in items]
    else:
        raise TypeError(f"images: expected an (N, 28, W) array, got {type(images).__name__}")
    for im in items:
        if not np.issubdtype(im.dtype, np.floating):
            raise TypeError(f"images: expected float images in [0, 1] (1 = white), got dtype {im.dtype}")
        lo, hi = (float(im.min()), float(im.max())) if im.size else (0.0, 1.0)
        if not 0 <= lo <= hi <= 1:  # NaN fails every comparison
            found = "NaN" if np.isnan(lo) or np.isnan(hi) else f"values from {lo:g} to {hi:g}"
            raise ValueError(f"images: expected values in [0, 1] (1 = white paper, 0 = black ink), got {found}")
    return items


# --------------------------------------------------------------------------- segmentation


def segment(image: np.ndarray) -> list[np.ndarray]:
    """Cut one ``(28, W)`` image into per-digit ink crops (uint8, ink high), left to right."""
    from skimage.filters import threshold_otsu
    from skimage.measure import label, regionprops

    ink = np.rint((1.0 - image) * 255).astype(np.uint8)
    if ink.max() < 64:
        return []
    level = max(threshold_otsu(ink), 48)
    labels = label(ink > level, connectivity=2)
    parts = [r for r in regionprops(labels) if r.area >= _MIN_AREA]
    if not parts:
        return []
    boxes = sorted([[r.bbox[1], r.bbox[3], [r.label]] for r in parts])
    merged = [boxes[0]]
    for x0, x1, ids in boxes[1:]:
        last = merged[-1]
        overlap = min(x1, last[1]) - max(x0, last[0])
        if overlap > 0.5 * min(x1 - x0, last[1] - last[0]):  # pieces of one digit stacked in columns
            last[0], last[1], last[2] = min(x0, last[0]), max(x1, last[1]), last[2] + ids
        else:
            merged.append([x0, x1, ids])
    heights = [np.ptp(np.flatnonzero(np.isin(labels[:, x0:x1], ids).any(axis=1))) + 1 for x0, x1, ids in merged]
    digit_width = 0.75 * float(np.median(heights))  # a typical digit is about 3/4 as wide as tall
    crops = []
    for x0, x1, ids in merged:
        mask = np.isin(labels[:, x0:x1], ids)
        glyph = np.where(mask, ink[:, x0:x1], 0)
        for start, stop in _split_points(glyph, digit_width):
            piece = glyph[:, start:stop]
            if np.count_nonzero(piece > level) >= _MIN_AREA:
                crops.append(piece)
    return crops


def _split_points(glyph: np.ndarray, digit_width: float) -> list[tuple[int, int]]:
    """Column ranges of the digits in one blob: cut where the ink profile is lowest near each expected cut."""
    width = glyph.shape[1]
    count = int(round(width / max(digit_width, 1.0)))
    if count <= 1 or width < 1.5 * digit_width:
        return [(0, width)]
    profile = glyph.astype(np.float64).sum(axis=0)
    cuts, previous = [], 0
    for k in range(1, count):
        expected = int(round(k * width / count))
        lo, hi = max(previous + 3, expected - 4), min(width - 3, expected + 5)
        cut = lo + int(np.argmin(profile[lo:hi])) if hi > lo else expected
        cuts.append(cut)
        previous = cut
    edges = [0, *cuts, width]
    return list(zip(edges[:-1], edges[1:]))


def normalise(crop: np.ndarray) -> np.ndarray:
    """MNIST-style ``(28, 28)`` float32 in [0, 1]: ink fitted into 20x20, centred by mass (sub-pixel)."""
    from scipy.ndimage import center_of_mass, shift
    from skimage.transform import resize

    rows, cols = np.flatnonzero(crop.any(axis=1)), np.flatnonzero(crop.any(axis=0))
    canvas = np.zeros((28, 28), np.float32)
    if not len(rows):
        return canvas
    crop = crop[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1].astype(np.float32) / 255.0
    h, w = crop.shape
    factor = 20.0 / max(h, w)
    size = (max(1, int(round(h * factor))), max(1, int(round(w * factor))))
    small = resize(crop, size, order=1, anti_aliasing=factor < 1, preserve_range=True)
    top, left = (28 - size[0]) // 2, (28 - size[1]) // 2
    canvas[top : top + size[0], left : left + size[1]] = small
    cy, cx = center_of_mass(canvas)
    return np.clip(shift(canvas, (13.5 - cy, 13.5 - cx), order=1, mode="constant"), 0, 1).astype(np.float32)


def digit_features(digits: np.ndarray) -> np.ndarray:
    """HOG and down-sampled pixels of ``(n, 28, 28)`` normalised digits."""
    from skimage.feature import hog

    hogs = np.stack([hog(d, orientations=9, pixels_per_cell=(7, 7), cells_per_block=(2, 2),
                         feature_vector=True) for d in digits])
    pixels = digits.reshape(len(digits), 14, 2, 14, 2).mean(axis=(2, 4)).reshape(len(digits), -1)
    return np.hstack([hogs, pixels]).astype(np.float32)


# --------------------------------------------------------------------------- model


class BaselineRecognizer:
    """Segment, normalise, classify: reads digit-sequence images of any width.

    Parameters
    ----------
    copies : int
        Augmented copies of each training digit (small affine changes and
        stroke width), so the classifier sees shrunk and slanted digits too.
    C : float
        SVM regularisation.
    """

    def __init__(self, copies: int = 2, C: float = 10.0):
        self.copies = copies
        self.C = C
        self.model = None
        self.trained_on: str | None = None

    def fit(self, digits: DigitSet, seed=0) -> BaselineRecognizer:
        """Train on single digits (and augmented copies); returns ``self``."""
        from sklearn.decomposition import PCA
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler
        from sklearn.svm import SVC

        from .validation import as_rng

        if not isinstance(digits, DigitSet):
            raise TypeError(f"digits: expected a DigitSet, got {type(digits).__name__}")
        rng = as_rng(seed)
        jitter = _jitter()
        glyphs = [digits.images] + [jitter.augment_glyphs(digits.images, rng) for _ in range(self.copies)]
        images = np.concatenate(glyphs)
        labels = np.tile(digits.labels, self.copies + 1)
        x = digit_features(np.stack([normalise(g) for g in images]))
        self.model = make_pipeline(StandardScaler(), PCA(n_components=60, random_state=0),
                                   SVC(C=self.C, gamma="scale"))
        self.model.fit(x, labels)
        self.trained_on = f"{digits.name}/{digits.split}"
        return self

    def _require_model(self):
        if self.model is None:
            raise RuntimeError("BaselineRecognizer: call fit() or load() before predict()")

    def predict(self, images) -> list[str]:
        """Read each ``(28, W)`` image (float, 1 = white) as a digit string ("" when blank)."""
        self._require_model()
        crops = [segment(im) for im in check_images(images)]
        flat = [normalise(c) for cs in crops for c in cs]
        if not flat:
            return ["" for _ in crops]
        predicted = self.model.predict(digit_features(np.stack(flat)))
        out, k = [], 0
        for cs in crops:
            out.append("".join(str(int(d)) for d in predicted[k : k + len(cs)]))
            k += len(cs)
        return out

    def classify(self, digits: np.ndarray) -> np.ndarray:
        """Classify single ``(n, 28, 28)`` uint8 digits (ink high, as in a DigitSet), MNIST-normalised first."""
        self._require_model()
        return self.model.predict(digit_features(np.stack([normalise(d) for d in digits])))

    def evaluate(self, images, labels) -> dict:
        """Read ``images`` and :func:`score` the result against ``labels``."""
        return score(self.predict(images), labels)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the model to ``path`` atomically (pickle: load only files you trust)."""
        self._require_model()
        from .io import save_file

        return save_file(path, pickle.dumps({"format": _FORMAT, "copies": self.copies, "C": self.C,
                                             "trained_on": self.trained_on, "model": self.model}))

    @classmethod
    def load(cls, path: str | os.PathLike) -> BaselineRecognizer:
        """Read a model written by :meth:`save`; anything else raises ``ValueError``."""
        if not Path(path).is_file():
            raise ValueError(f"path: {path} is not a file")
        with open(path, "rb") as f:
            try:
                state = pickle.load(f)
            except Exception:  # a truncated or foreign file fails in many ways inside pickle
                state = None
        if not isinstance(state, dict) or state.get("format") != _FORMAT:
            raise ValueError(f"path: {path} is not a seqgen recognizer file (format {_FORMAT})")
        model = cls(copies=state["copies"], C=state["C"])
        model.model, model.trained_on = state["model"], state["trained_on"]
        return model


def _jitter():
    """The glyph augmentation of the baseline's training copies."""
    from .augment import Affine, Pipeline, StrokeWidth

    return Pipeline([Affine(rotation=8, shear=0.2, scale=0.1, translate=0, baseline=0, p=0.8), StrokeWidth(p=0.3)])


def _jitter_fingerprint(digits: DigitSet) -> str:
    """A short hash of what the jitter makes of a few digits: it changes when the augmentation code
    changes what it draws, so a cached recognizer trained on older copies is not reused."""
    import hashlib

    sample = _jitter().augment_glyphs(digits.images[:64], np.random.default_rng(0))
    return hashlib.sha256(sample.tobytes()).hexdigest()[:12]


def default_recognizer(progress=print) -> BaselineRecognizer:
    """The recognizer trained on ``load_mnist("train")``, cached beside the data after the first use
    (one cache entry per digit set and per version of the training jitter)."""
    from .data import cache_dir, load_mnist

    digits = load_mnist("train")
    path = cache_dir() / f"recognizer-v{_FORMAT}-{digits.name}-{_jitter_fingerprint(digits)}.pkl"
    if path.is_file():
        try:
            return BaselineRecognizer.load(path)
        except ValueError:  # a damaged cache entry is rebuilt, never fatal
            progress(f"the cached baseline recognizer {path} is damaged; training it again")
    progress(f"training the baseline recognizer on {len(digits)} {digits.name} digits (once) ...")
    model = BaselineRecognizer().fit(digits, seed=0)
    try:
        model.save(path)
    except (OSError, ValueError) as exc:  # a full or read-only cache folder: the reads need no cache
        from .io import reason

        warnings.warn(f"the baseline recognizer could not be cached in {path} ({reason(exc)}); it is trained again "
                      "at its next use", RuntimeWarning, stacklevel=2)
    return model


def read_png(path: str | os.PathLike) -> np.ndarray:
    """A PNG (grey or colour, 8 or 16 bits; transparent pixels are white paper) as a ``(28, W)``
    float32 grey image in [0, 1].

    Other files Pillow reads work too; a float image (mode ``F``, such as a TIFF of
    seqgen's own float32 images) is taken as it is when its pixels are within [0, 1],
    else on Pillow's 0-255 scale.

    Raises
    ------
    ValueError
        Naming the file, for one that is not an image, is damaged, is not 28 pixels
        high or has too many pixels.
    OSError
        From the file system (a missing or unreadable file).
    """
    from PIL import Image

    try:
        with Image.open(path) as png:
            if png.mode == "I" or png.mode.startswith("I;16"):  # 16-bit grey (Pillow opens it as one or the
                # other, by version): convert("L") would clip every value above 255 to white
                grey = np.asarray(png)
                image = grey.astype(np.float32) / 65535.0
                if isinstance(png.info.get("transparency"), int):  # tRNS: this one grey value is see-through
                    image[grey == png.info["transparency"]] = 1.0  # paper, as with the 8-bit modes below
            elif png.mode == "F":  # floats, as Pillow saves seqgen's own images (TIFF): 0-1, or 0-255 as Pillow reads them
                image = np.asarray(png, dtype=np.float32)
                if not np.isfinite(image).all():
                    raise ValueError(f"{path}: a float image with NaN or infinite pixels")
                image = np.clip(image if image.max(initial=0) <= 1.0 else image / 255.0, 0.0, 1.0)
            elif png.has_transparency_data:  # seen as a viewer shows it, on white paper (convert("L") drops alpha)
                rgba = png.convert("RGBA")
                paper = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
                image = np.asarray(Image.alpha_composite(paper, rgba).convert("L"), dtype=np.float32) / 255.0
            else:
                image = np.asarray(png.convert("L"), dtype=np.float32) / 255.0
    except Image.DecompressionBombError:
        raise ValueError(f"{path}: too many pixels for a sequence image (over Pillow's limit)") from None
    except Image.UnidentifiedImageError:
        raise ValueError(f"{path}: not an image file that Pillow can read") from None
    except OSError as exc:
        if exc.errno is not None:  # the file system's (missing, unreadable, a folder): the caller words it
            raise
        raise ValueError(f"{path}: a damaged image file ({exc})") from None  # Pillow's own do not name the file
    if image.shape[0] != 28:
        raise ValueError(f"{path}: expected an image 28 pixels high, got {image.shape[0]}")
    return image


# --------------------------------------------------------------------------- evaluation grid


GRID_SPACINGS = ((-2, 0), (0, 4), (2, 10), (5, 20))
GRID_AUGMENTS = (None, "default")


def native_width(spacing_range: tuple[int, int], digits: int = 11) -> int:
    """A width at which a sequence of ``digits`` digits always fits at native scale."""
    hi = check.spacing(spacing_range)[1]
    digits = check.positive_int(digits, "digits")
    return digits * 28 + (digits - 1) * max(hi, 0)


def _grid_axes(spacings, widths, augments) -> tuple[list, list, list]:
    """The grid's axes as lists, each value checked as :func:`seqgen.generate_phone_numbers` checks its
    argument; errors name the axis and the value's place (``spacings[1]: ...``)."""
    from .augment import resolve
    from .generate import PHONE_DIGITS

    axes = {"spacings": spacings, "widths": widths, "augments": augments}
    kinds = {"spacings": "(lo, hi) pairs", "widths": "widths (ints or 'native')", "augments": "presets or None"}
    for name, values in axes.items():
        if isinstance(values, (str, bytes)) or not isinstance(values, (list, tuple)) or not values:
            raise TypeError(f"{name}: expected a non-empty list of {kinds[name]}, got {values!r}")
    if all(isinstance(v, numbers.Integral) for v in spacings):
        raise TypeError(f"spacings: expected a list of (lo, hi) pairs, got one pair {tuple(spacings)!r}; "
                        "wrap it in a list")

    def check_spacing(value):
        check.strip_width(PHONE_DIGITS + 1, check.spacing(value), "phone numbers")

    def check_width(value):
        if value != "native" and (isinstance(value, bool) or not isinstance(value, numbers.Integral)):
            raise TypeError(f"expected a positive int or 'native', got {value!r}")
        return value if value == "native" else check.image_width(value)

    def check_augment(value):
        return value is None or resolve(value)

    for name, check_value in (("spacings", check_spacing), ("widths", check_width), ("augments", check_augment)):
        for i, value in enumerate(axes[name]):
            try:
                check_value(value)
            except (TypeError, ValueError) as exc:
                reason = str(exc).split(": ", 1)[-1]  # without the inner name (spacing_range, image_width)
                raise type(exc)(f"{name}[{i}]: {reason}") from None
    return list(spacings), list(widths), list(augments)


def evaluate_grid(recognizer, test_digits: DigitSet, n: int = 200, *,
                  spacings=GRID_SPACINGS, widths=("native", 200), augments=GRID_AUGMENTS, seed=0) -> list[dict]:
    """Accuracy on phone numbers composed from held-out digits, over a grid of conditions.

    Parameters
    ----------
    recognizer : BaselineRecognizer or SequenceRecognizer
        A fitted model (trained on the train split only); anything with ``evaluate(images, labels)``.
    test_digits : DigitSet
        The digits to compose from; must be a test split.
    n : int
        Phone numbers per cell.
    spacings, widths, augments
        The grid; a width of ``"native"`` means wide enough that nothing is shrunk.

    Returns
    -------
    list of dict
        One row per cell: spacing, width, augment, char_accuracy, sequence_accuracy, n.
    """
    from .generate import generate_phone_numbers

    if not callable(getattr(recognizer, "evaluate", None)):
        raise TypeError(f"recognizer: expected a fitted recognizer with evaluate(images, labels), "
                        f"got {type(recognizer).__name__}")
    if not isinstance(test_digits, DigitSet):
        raise TypeError(f"test_digits: expected a DigitSet (load_mnist('test')), got {type(test_digits).__name__}")
    if test_digits.split != "test":
        raise ValueError(f"test_digits: expected a test split, got split={test_digits.split!r}")
    check.positive_int(n, "n")
    check.as_rng(seed)
    spacings, widths, augments = _grid_axes(spacings, widths, augments)
    rows = []
    for spacing in spacings:
        for width in widths:
            w = native_width(spacing) if width == "native" else width
            for augment in augments:
                images, labels = generate_phone_numbers(n, w, spacing, source=test_digits, augment=augment, seed=seed)
                scores = recognizer.evaluate(images, labels)
                rows.append({"spacing": tuple(spacing), "width": width, "augment": augment or "none", **scores})
    return rows
