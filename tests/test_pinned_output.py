"""Pinned output: SHA-256 of images, boxes and labels for every kind of batch, and of a PNG export.

These hashes change only when the output is meant to change; such a change updates them in its
own commit, says why, and bumps ``seqgen.shards.OUTPUT_VERSION`` (exports record it, so that an
export is never resumed with other bytes).  Refactoring (moving code between modules) must keep every one.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from seqgen import DataGenerator, generate_numbers_sequence, generate_phone_numbers

CASES = {
    "native": dict(image_width=400, spacing_range=(2, 10)),
    "scaled": dict(image_width=150, spacing_range=(2, 10)),
    "stretched": dict(image_width=250, spacing_range=(0, 4), fit="stretch"),
    "overlapping": dict(image_width=300, spacing_range=(-8, -2)),
    "random_align": dict(image_width=420, spacing_range=(5, 12), align="random"),
    "augmented_default": dict(image_width=200, spacing_range=(2, 10), augment="default"),
    "augmented_heavy": dict(image_width=300, spacing_range=(-2, 6), augment="heavy"),
}
PINNED = {
    "augmented_default": "73aea511fbfb96b1",
    "augmented_heavy": "74eeeaef3300e028",
    "native": "ff18c0f2af225d85",
    "overlapping": "70b0cc06e407c0a5",
    "random_align": "382890ec0ae08a28",
    "scaled": "1cf183964e238767",
    "stretched": "bc6be20ec5ecab72",
    "sequence": "4f8f5a46cf7426b9",
    "generator_(1, 12)": "5beba4ab79ed1e88",
    "generator_5": "caa2bdebe6e3e16c",
    "png_export": "873c95c60c01294c",
}


def digest(*arrays) -> str:
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(str((a.dtype.str, a.shape)).encode())
        h.update(a.tobytes())
    return h.hexdigest()[:16]


@pytest.mark.parametrize("case", sorted(CASES))
def test_phone_numbers_are_pinned(case, train_digits):
    images, labels, boxes = generate_phone_numbers(60, source=train_digits, seed=11, return_boxes=True, **CASES[case])
    assert digest(images, boxes, np.array(labels)) == PINNED[case]


def test_one_sequence_is_pinned(train_digits):
    image, boxes = generate_numbers_sequence("0123456789", 180, (-1, 7), source=train_digits, seed=4,
                                             augment="light", return_boxes=True)
    assert digest(image, boxes) == PINNED["sequence"]


@pytest.mark.parametrize("length", [(1, 12), 5])
def test_data_generator_batches_are_pinned(length, train_digits):
    gen = DataGenerator(batch_size=40, image_width=160, spacing_range=(-3, 8), length=length, augment="light",
                        source=train_digits, seed=9)
    images, labels = gen[7]
    assert digest(images, np.array(labels)) == PINNED[f"generator_{length}"]


def test_png_export_is_pinned(train_digits, tmp_path):
    generate_phone_numbers(30, 200, (2, 10), source=train_digits, seed=5, augment="default", output_path=tmp_path)
    h = hashlib.sha256()
    for path in sorted(tmp_path.iterdir()):
        if path.name == "manifest.json":  # new beside the pinned files: it is tested in test_export.py
            continue
        h.update(path.name.encode() + b"\0" + path.read_bytes())
    assert h.hexdigest()[:16] == PINNED["png_export"]


# Kernels that modern x86-64 CPUs choose among at run time: OpenCV's AVX2 or AVX-512 code, and
# OpenBLAS's kernels for other CPU families. Augmented bytes must not depend on which one runs.
# (CPUs without AVX2 and FMA do give other bytes: see reports/README.md, "Reproducibility across machines".)
# OpenCV 5 spells its features with hyphens (AVX512-SKX), OpenCV 4 with underscores; each ignores the other's.
OTHER_KERNELS = {"OPENCV_CPU_DISABLE": ",".join(f"AVX512{sep}{cpu}" for cpu in ("SKX", "COMMON", "ICL", "CLX")
                                               for sep in "-_"),
                 "OPENBLAS_CORETYPE": "Zen"}
_DIGESTS = """
import sys
import cv2
sys.path.insert(0, {tests!r})
from seqgen import generate_phone_numbers, load_mnist
from test_pinned_output import digest
from threadpoolctl import threadpool_info
print(*[i["architecture"] for i in threadpool_info() if i["internal_api"] == "openblas"][:1] or ["no-OpenBLAS"],
      *[f for f in cv2.getCPUFeaturesLine().split() if "AVX512" in f])
digits = load_mnist("train", source="sample")
for preset in ("light", "default", "heavy"):
    images, labels, boxes = generate_phone_numbers(2000, 200, (2, 10), source=digits, seed=3, augment=preset,
                                                   return_boxes=True)
    print(digest(images, boxes))
"""


def test_augmented_bytes_do_not_depend_on_the_cpus_vector_kernels():
    """The same seed gives the same augmented bytes with other OpenCV and OpenBLAS kernels (a
    subprocess told to use them), on a workload large enough to show a one-pixel difference."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    script = _DIGESTS.format(tests=str(Path(__file__).parent))
    runs = [subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                           env={**os.environ, **env}).stdout.splitlines() for env in ({}, OTHER_KERNELS)]
    # the second run really used other kernels: OpenCV's AVX-512 features (if this CPU has any) are
    # marked "?", not used, and OpenBLAS ran its Zen (Haswell) kernel, unless that is this CPU's own
    (blas, *_), (other_blas, *other_avx512) = runs[0][0].split(), runs[1][0].split()
    assert all(feature.endswith("?") for feature in other_avx512), runs[1][0]
    assert other_blas != blas or blas in ("Haswell", "Zen", "no-OpenBLAS"), (blas, other_blas)
    assert len(runs[0]) == 4
    assert runs[0][1:] == runs[1][1:]
