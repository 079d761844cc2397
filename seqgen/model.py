"""The CTC sequence model: a small CNN over the 28-pixel height, a BiLSTM over the width.

``CRNN`` maps ``(B, 28, W)`` images to ``(B, W // 4, 11)`` per-column log-probabilities
(10 digits and the CTC blank, :data:`seqgen.dataset.BLANK`); :func:`greedy_decode`
turns them into digit strings and a confidence per read; :class:`SequenceRecognizer`
wraps both behind the surface of :class:`seqgen.recognizer.BaselineRecognizer`
(``fit``/``predict``/``evaluate``, ``save``/``load``).

Saved files are a state dict plus plain values, read with ``torch.load(...,
weights_only=True)``: loading never unpickles arbitrary objects.
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .dataset import BLANK, NUM_CLASSES
from .io import save_file
from .recognizer import check_images, score
from .validation import nonnegative_int

ARCHITECTURE = "seqgen-crnn"
FORMAT = 1  # version of the saved-file layout
#: Each output column covers this many image columns (two 2x2 poolings).
STRIDE = 4
#: Images read at once by :meth:`SequenceRecognizer.predict`...
PREDICT_BATCH = 256
#: ...and at most this many pixels (256 images 1,024 wide): the model's activations take about 30
#: bytes per byte of input, so a batch peaks near 1 GB whatever the widths; wider images are refused.
PREDICT_PIXELS = PREDICT_BATCH * 28 * 1024


class CRNN(nn.Module):
    """Convolutions over the height, a bidirectional LSTM over the width, scores per column.

    Parameters
    ----------
    channels : (int, int, int)
        Channels of the three 3x3 convolutions (the first two followed by 2x2 max pooling).
    hidden : int
        LSTM units in each direction.
    features : int
        Width of the projection from the flattened convolution column to the LSTM.
    """

    def __init__(self, channels=(16, 32, 64), hidden: int = 96, features: int = 128):
        super().__init__()
        (c1, c2, c3), hidden, features = _check_size(channels, hidden, features)
        self.config = {"channels": [c1, c2, c3], "hidden": hidden, "features": features}
        # Pooling before batch norm and ReLU keeps the element-wise work at a quarter
        # of the convolution's output size (max pooling commutes with the ReLU).
        self.cnn = nn.Sequential(
            nn.Conv2d(1, c1, 3, padding=1, bias=False), nn.MaxPool2d(2), nn.BatchNorm2d(c1), nn.ReLU(inplace=True),
            nn.Conv2d(c1, c2, 3, padding=1, bias=False), nn.MaxPool2d(2), nn.BatchNorm2d(c2), nn.ReLU(inplace=True),
            nn.Conv2d(c2, c3, 3, padding=1, bias=False), nn.BatchNorm2d(c3), nn.ReLU(inplace=True),
        )
        self.project = nn.Linear(c3 * (28 // STRIDE), features)
        self.rnn = nn.LSTM(features, hidden, bidirectional=True, batch_first=True)
        self.classify = nn.Linear(2 * hidden, NUM_CLASSES)
        self.to(memory_format=torch.channels_last)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``(B, 28, W)`` float images (1 = white paper) -> ``(B, W // 4, 11)`` log-probabilities."""
        ink = (1.0 - images).unsqueeze(1).contiguous(memory_format=torch.channels_last)
        maps = self.cnn(ink)  # (B, C, 7, W // 4)
        b, c, h, w = maps.shape
        columns = maps.permute(0, 3, 1, 2).reshape(b, w, c * h)
        sequence, _ = self.rnn(torch.relu(self.project(columns)))
        return self.classify(sequence).log_softmax(-1)


def _check_size(channels, hidden, features) -> tuple[tuple[int, int, int], int, int]:
    """``channels``, ``hidden`` and ``features`` as ints, once they are positive ints whose model (weights,
    gradients and the optimiser's two moments) fits in this machine's memory."""
    from .validation import positive_int, within_memory

    if isinstance(channels, (str, bytes)) or not isinstance(channels, (tuple, list)) or len(channels) != 3:
        raise TypeError(f"channels: expected three positive ints (one per convolution), got {channels!r}")
    c1, c2, c3 = (positive_int(c, "channels") for c in channels)
    hidden, features = positive_int(hidden, "hidden"), positive_int(features, "features")
    weights = (9 * (c1 + c1 * c2 + c2 * c3) + 2 * (c1 + c2 + c3)  # convolutions, batch norms
               + (c3 * (28 // STRIDE) + 1) * features  # projection
               + 2 * 4 * hidden * (features + hidden + 2)  # LSTM, both directions
               + (2 * hidden + 1) * NUM_CLASSES)
    within_memory(16 * weights, "channels, hidden, features", f"a model of {weights:,} weights needs",
                  "choose smaller layers")
    return (c1, c2, c3), hidden, features


def output_length(image_width: int) -> int:
    """Number of score columns the model gives for an image ``image_width`` pixels wide."""
    return int(image_width) // STRIDE


def best_paths(log_probs) -> tuple[list[str], np.ndarray]:
    """The most likely class per column, repeats merged, blanks dropped: ``(strings, path)``,
    ``path`` the ``(B, T)`` best class of every column."""
    scores = torch.as_tensor(log_probs)
    if scores.ndim != 3 or scores.shape[-1] != NUM_CLASSES:
        raise ValueError(f"log_probs: expected shape (B, T, {NUM_CLASSES}), got {tuple(scores.shape)}")
    path = scores.argmax(dim=-1).numpy()
    keep = path != BLANK
    keep[:, 1:] &= path[:, 1:] != path[:, :-1]
    return ["".join(map(str, row[mask].tolist())) for row, mask in zip(path, keep)], path


def greedy_decode(log_probs) -> tuple[list[str], np.ndarray]:
    """Best-path CTC decoding: most likely class per column, repeats merged, blanks dropped.

    Parameters
    ----------
    log_probs : array or tensor, shape (B, T, 11)
        Per-column log-probabilities (classes 0-9 are digits, 10 the blank).

    Returns
    -------
    strings : list of str
        The decoded digit strings.
    confidence : ndarray, shape (B,), float64
        Probability of each decoded string: the sum over all its alignments to
        the columns (the CTC forward score), not only the best path's, so the
        uncertain place of a digit's edge does not count as doubt about the digit.
    """
    strings, path = best_paths(log_probs)
    scores = torch.as_tensor(log_probs)
    lengths = np.array([len(s) for s in strings], np.int64)
    targets = np.full((len(strings), max(1, int(lengths.max(initial=0)))), BLANK, np.int64)  # >= 1 column
    for row, s in zip(targets, strings):
        row[: len(s)] = [int(c) for c in s]
    b, t = scores.shape[:2]
    nll = torch.nn.functional.ctc_loss(scores.transpose(0, 1), torch.from_numpy(targets),
                                       torch.full((b,), t, dtype=torch.long), torch.from_numpy(lengths),
                                       blank=BLANK, reduction="none")
    return strings, np.exp(-nll.double().numpy())


def _fused(model: CRNN) -> CRNN:
    """A copy of ``model`` for inference with each batch norm folded into its convolution."""
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    fused = CRNN(**model.config)
    fused.load_state_dict(model.state_dict())
    fused.eval()
    out, conv = [], None  # conv: where the last convolution sits in ``out``
    for layer in fused.cnn:
        # batch norm after conv (and max pooling) folds into the conv; through the pooling only
        # for positive scales, where the two commute
        if isinstance(layer, nn.BatchNorm2d) and bool((layer.weight > 0).all()):
            out[conv] = fuse_conv_bn_eval(out[conv], layer)
            continue
        if isinstance(layer, nn.Conv2d):
            conv = len(out)
        out.append(layer)
    fused.cnn = nn.Sequential(*out).to(memory_format=torch.channels_last)
    return fused


class SequenceRecognizer:
    """Reads digit-sequence images of any width up to :attr:`max_width` with a :class:`CRNN` and CTC decoding.

    Parameters
    ----------
    channels, hidden, features
        The architecture, as in :class:`CRNN`.
    seed : int
        Seeds the initial weights (through a private torch generator state).
    """

    #: The widest image read (its activations must fit in a batch of PREDICT_PIXELS).
    max_width = PREDICT_PIXELS // 28
    #: The narrowest image read (one CTC frame).
    min_width = STRIDE

    def __init__(self, channels=(16, 32, 64), hidden: int = 96, features: int = 128, seed: int = 0):
        seed = nonnegative_int(seed, "seed")
        if seed >= 2**64:  # torch's seeds are 64-bit
            raise ValueError(f"seed: expected an int below 2**64, got {seed}")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.model = CRNN(channels, hidden, features)
        self.trained_on: str | None = None
        self.training: dict = {}
        self._inference: CRNN | None = None

    @property
    def num_parameters(self) -> int:
        """Trainable parameters of the model."""
        return sum(p.numel() for p in self.model.parameters())

    def fit(self, digits, seed=0, **options) -> "SequenceRecognizer":
        """Train on sequences composed from ``digits`` (a train DigitSet); returns ``self``.

        ``options`` go to :func:`seqgen.train.train` (``steps``, ``minutes``,
        ``batch_size``, ``workers``, ``log_path``, ``progress``, ...).
        """
        from .train import train

        train(self, digits, seed=seed, **options)
        return self

    def _inference_model(self) -> CRNN:
        if self._inference is None:
            self._inference = _fused(self.model)
        return self._inference

    def _score_batches(self, items: list[np.ndarray]):
        """``(indices, log_probs)`` for batches of equal-width images, within PREDICT_BATCH and PREDICT_PIXELS."""
        model = self._inference_model()
        by_width: dict[int, list[int]] = {}
        for i, im in enumerate(items):
            by_width.setdefault(im.shape[1], []).append(i)
        for width in by_width:  # all checked before any is read
            if output_length(width) < 1:
                raise ValueError(f"images: expected images at least {self.min_width} pixels wide, got {width}")
            if width > self.max_width:
                raise ValueError(f"images: expected images at most {self.max_width:,} pixels wide (the model's "
                                 f"memory grows with the width), got {width:,}")
        with torch.inference_mode():
            for width, index in by_width.items():
                per_batch = min(PREDICT_BATCH, PREDICT_PIXELS // (28 * width))
                for start in range(0, len(index), per_batch):
                    part = index[start:start + per_batch]
                    x = torch.from_numpy(np.stack([items[i] for i in part]).astype(np.float32, copy=False))
                    yield part, model(x)

    def log_probs(self, images) -> list[np.ndarray]:
        """Per-column log-probabilities ``(W // 4, 11)`` for each image."""
        items = check_images(images)
        out: list[np.ndarray | None] = [None] * len(items)
        for index, scores in self._score_batches(items):
            for i, s in zip(index, scores.numpy()):
                out[i] = s
        return out

    def predict_with_confidence(self, images) -> tuple[list[str], np.ndarray]:
        """Read each image: digit strings and the probability of each read (its confidence)."""
        items = check_images(images)
        strings, confidence = [""] * len(items), np.zeros(len(items), np.float64)
        for index, scores in self._score_batches(items):
            reads, probability = greedy_decode(scores)
            for i, r, p in zip(index, reads, probability):
                strings[i], confidence[i] = r, p
        return strings, confidence

    def predict(self, images) -> list[str]:
        """Read each ``(28, W)`` image (float, 1 = white) as a digit string ("" when blank)."""
        return self.predict_with_confidence(images)[0]

    def evaluate(self, images, labels) -> dict:
        """Read ``images`` and :func:`seqgen.recognizer.score` the result against ``labels``."""
        return score(self.predict(images), labels)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the weights and settings to ``path`` atomically (a torch file of plain values)."""
        state = {"format": FORMAT, "architecture": ARCHITECTURE, "config": self.model.config,
                 "state_dict": self.model.state_dict(), "trained_on": self.trained_on or "",
                 "training": self.training}
        buffer = io.BytesIO()
        torch.save(state, buffer)
        return save_file(path, buffer.getvalue())

    @classmethod
    def load(cls, path: str | os.PathLike) -> "SequenceRecognizer":
        """Read a model written by :meth:`save`; anything else raises ``ValueError``."""
        path = Path(path)
        if not path.is_file():
            raise ValueError(f"model: {path} is not a file")
        try:
            state = load_weights(path)
        except ValueError as exc:
            raise ValueError(f"model: {path} is not a seqgen sequence model ({exc})") from None
        if not isinstance(state, dict) or state.get("architecture") != ARCHITECTURE:
            raise ValueError(f"model: {path} is not a seqgen sequence model (no {ARCHITECTURE!r} header)")
        if state.get("format") != FORMAT:
            raise ValueError(f"model: {path} has file format {state.get('format')!r}; this seqgen reads {FORMAT}")
        config = state.get("config") or {}
        try:
            model = cls(**config)
            model.model.load_state_dict(state["state_dict"])
        except (TypeError, KeyError, RuntimeError) as exc:
            reason = str(exc).splitlines()[0]
            raise ValueError(f"model: {path} does not match the {ARCHITECTURE} architecture ({reason})") from None
        model.model.eval()
        model.trained_on = state.get("trained_on") or None
        model.training = dict(state.get("training") or {})
        return model


def shipped_model_path() -> Path:
    """The checkpoint shipped in the repository's ``models/`` folder (trained on the offline sample)."""
    return Path(__file__).resolve().parents[1] / "models" / "crnn-sample.pt"


def load_weights(path: Path):
    """What ``torch.load`` reads from the file ``path`` as weights only (never arbitrary objects).

    Raises ``ValueError`` saying why it cannot (an empty file, or not one of weights): torch raises
    several types for a damaged or foreign file, and warns about some, none of which says so.
    """
    try:
        with warnings.catch_warnings():  # its notes on a foreign pickle: the error is what matters
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - see above
        empty = os.path.getsize(path) == 0
        raise ValueError("an empty file" if empty else "PyTorch cannot read it as a file of weights") from None
