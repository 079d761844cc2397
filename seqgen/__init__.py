"""seqgen: synthetic images of handwritten digit sequences composed from real MNIST digits.

The data flows one way, through modules named after their stage::

    sources, idx -> data (load_mnist) -> digits (DigitSet) -> layout (sample glyphs)
      -> augment (glyphs) -> layout (Layout, Placement) -> raster (draw) -> augment (images)
    compose.render_batch runs those stages for one batch; generate (public functions, PNG
    exports) and dataset (DataGenerator) call it; train feeds DataGenerator batches to model.

Importing the package is cheap: submodules (and numpy, pooch, scikit-image, ...)
load on first use of a name, and no data is read or downloaded until asked for.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {  # relative: the package works under another name too (a benchmark's older copy)
    "load_mnist": ".data",
    "download_mnist": ".data",
    "DigitSet": ".digits",
    "generate_numbers_sequence": ".generate",
    "generate_phone_numbers": ".generate",
    "DataGenerator": ".dataset",
    "Pipeline": ".augment",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'seqgen' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
