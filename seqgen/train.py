"""Training the sequence model on seqgen's own batches: DataGenerator -> DataLoader -> CTC loss.

Every batch comes from a :class:`seqgen.DataGenerator` over the digits given (the
train split), one of several *recipes* (width, spacing, length, augmentation) in
turn, through a ``torch.utils.data.DataLoader`` with worker processes.  Batch
``i`` of a run is a pure function of ``(seed, i)``, and the weights start from
``seed``, so a run of a fixed number of steps is reproducible.
"""

from __future__ import annotations

import csv
import hashlib
import inspect
import io
import math
import signal
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from .augment import Affine, Elastic, Pipeline, Size, StrokeWidth
from .digits import DigitSet
from .io import reason, reworded
from .dataset import BLANK, DataGenerator, encode_labels
from .model import SequenceRecognizer, best_paths, load_weights
from .parallel import check_local_processes
from .recognizer import score

#: Glyph-level jitter only (no paper or noise effects): unseen writers' digits vary in
#: slant, size, stroke and shape, while the image stays clean.
GLYPH_JITTER = Pipeline([
    Affine(rotation=8, shear=0.2, scale=0.08, translate=1, baseline=1.5, p=0.5),
    Size(p=0.3),
    Elastic(p=0.25),
    StrokeWidth(p=0.2),
])

#: The conditions the shipped model is trained on, drawn in turn: touching to wide
#: spacings, widths from 160 to 350, phone numbers and random lengths, clean,
#: jittered and augmented images.
RECIPES = (
    {"image_width": 300, "spacing_range": (2, 10), "length": "phone", "augment": GLYPH_JITTER},
    {"image_width": 200, "spacing_range": (-2, 0), "length": "phone", "augment": GLYPH_JITTER},
    {"image_width": 300, "spacing_range": (2, 10), "length": "phone", "augment": "default"},
    {"image_width": 250, "spacing_range": (-4, 6), "length": (1, 12), "augment": "light"},
    {"image_width": 200, "spacing_range": (0, 6), "length": "phone", "augment": "default"},
    {"image_width": 350, "spacing_range": (5, 20), "length": (4, 11), "augment": GLYPH_JITTER},
    {"image_width": 160, "spacing_range": (-3, 4), "length": (1, 8), "augment": "light"},
    {"image_width": 300, "spacing_range": (-2, 2), "length": "phone", "augment": None},
)
#: Narrowest training width: 12 digits, a blank between repeats, need 23 of its W // 4 columns.
MIN_WIDTH = 96
LOG_COLUMNS = ("step", "samples", "seconds", "lr", "loss", "char_accuracy")


class RecipeBatches(torch.utils.data.Dataset):
    """Batch ``i`` is batch ``i // k`` of the DataGenerator of recipe ``i % k``, CTC-encoded.

    A map-style dataset of whole batches, for ``DataLoader(..., batch_size=None)``.
    Items are ``(images, targets, lengths, labels)``.
    """

    def __init__(self, digits: DigitSet, steps: int, batch_size: int, recipes=RECIPES, seed: int = 0,
                 start: int = 0):
        seeds = np.random.SeedSequence(seed).generate_state(len(recipes), dtype=np.uint64)
        self.generators = [DataGenerator(batch_size=batch_size, seed=int(s % 2**63), split=digits.split or "train",
                                         source=digits, batches_per_epoch=max(1, math.ceil(steps / len(recipes))),
                                         threads=1, **recipe)
                           for recipe, s in zip(recipes, seeds)]
        self.steps, self.start = steps, start  # item i is batch start + i: a resumed run skips the batches done

    def __len__(self) -> int:
        return self.steps - self.start

    def __getitem__(self, index: int):
        k, index = len(self.generators), self.start + index
        images, labels = self.generators[index % k][index // k]
        targets, lengths = encode_labels(labels)
        return torch.from_numpy(images), torch.from_numpy(targets), torch.from_numpy(lengths), list(labels)


def data_fingerprint(digits: DigitSet, steps: int, batch_size: int, recipes=RECIPES, seed: int = 0) -> str:
    """SHA-256 of a training run's first batch of each recipe (images and labels).

    The batches are pure functions of these settings and of seqgen's output, so the
    fingerprint, recorded in a trained model (``training["data_sha256"]``), tells whether
    today's seqgen still draws the data that model was trained on: only then does the
    same training give the same weights.
    """
    data = RecipeBatches(digits, steps, batch_size, recipes, seed)
    digest = hashlib.sha256()
    for i in range(min(steps, len(data.generators))):
        images, _, _, labels = data[i]
        digest.update(images.numpy().tobytes())
        digest.update("\n".join(labels).encode())
    return digest.hexdigest()


def keep_freed_memory() -> None:
    """Ask glibc to keep freed blocks for reuse instead of returning them to the system.

    A training step allocates activations of tens of MB; above glibc's mmap
    threshold (at most 32 MB) each is a fresh mapping whose pages fault in on every
    step, which cost a quarter of the step time at width 300.  No-op off glibc.
    """
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 1 << 30)  # M_MMAP_THRESHOLD: serve blocks up to 1 GiB from the heap
        libc.mallopt(-1, 1 << 30)  # M_TRIM_THRESHOLD: keep up to 1 GiB of freed heap
    except (OSError, AttributeError):
        pass


def _schedule(step: int, steps: int, lr: float, warmup: int) -> float:
    """Linear warm-up, then cosine decay to 2% of ``lr`` at the last step."""
    if step < warmup:
        return lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return lr * (0.02 + 0.98 * 0.5 * (1.0 + math.cos(math.pi * progress)))


def _estimate_steps(recognizer: SequenceRecognizer, digits: DigitSet, minutes: float, batch_size: int,
                    recipes=RECIPES, seed: int = 0, probe_steps: int = 16) -> int:
    """Steps that fit in ``minutes``, from the time of a few training steps on a throw-away copy."""
    probe = SequenceRecognizer(**recognizer.model.config)
    data = RecipeBatches(digits, probe_steps, batch_size, recipes, seed)
    optimizer = torch.optim.AdamW(probe.model.parameters(), lr=1e-3)
    loss_fn = torch.nn.CTCLoss(blank=BLANK, zero_infinity=True)
    start = None
    for i in range(probe_steps):
        if i == 2:
            start = time.perf_counter()
        images, targets, lengths, _ = data[i]
        _step(probe.model, optimizer, loss_fn, images, targets, lengths)
    per_step = (time.perf_counter() - start) / (probe_steps - 2)
    return max(1, int(minutes * 60 / per_step))


def _step(model, optimizer, loss_fn, images, targets, lengths) -> tuple[float, torch.Tensor]:
    log_probs = model(images)
    input_lengths = torch.full((len(images),), log_probs.shape[1], dtype=torch.long)
    loss = loss_fn(log_probs.transpose(0, 1), targets, input_lengths, lengths)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
    optimizer.step()
    return float(loss.detach()), log_probs.detach()


#: Seconds between saves of a training's state (with ``state_path``); a save takes milliseconds.
SAVE_EVERY = 30.0
STATE_FORMAT = 1


#: Peak memory of a training step per pixel of its batch (activations kept for the backward pass,
#: gradients), with the default model: 3.8 GB for 1,024 sequences 300 pixels wide.
TRAIN_BYTES_PER_PIXEL = 450


#: What a recipe may set: the DataGenerator settings that ``train`` does not set itself.
RECIPE_KEYS = ("image_width", "spacing_range", "length", "augment", "fit", "align")


def check_recipes(recipes) -> tuple[dict, ...]:
    """Refuse ``recipes`` that are not a non-empty sequence of dicts of valid :data:`RECIPE_KEYS` settings,
    at least :data:`MIN_WIDTH` pixels wide; errors name the recipe (``recipes[2]: ...``)."""
    if not isinstance(recipes, (list, tuple)):
        raise TypeError(f"recipes: expected a list of dicts of DataGenerator settings, got {type(recipes).__name__}")
    if not recipes:
        raise ValueError("recipes: expected at least one recipe")
    for i, recipe in enumerate(recipes):
        if not isinstance(recipe, dict):
            raise TypeError(f"recipes[{i}]: expected a dict of DataGenerator settings, got {type(recipe).__name__}")
        unknown = sorted(set(recipe) - set(RECIPE_KEYS))
        if unknown:
            raise ValueError(f"recipes[{i}]: unknown or reserved setting(s) {', '.join(map(repr, unknown))}; a recipe "
                             f"sets some of {', '.join(RECIPE_KEYS)} (train sets the batch size, seeds and digits)")
        try:  # the same checks as the batches' own generators, before any work starts
            width = DataGenerator(batch_size=1, **recipe).options.image_width
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"recipes[{i}]: {exc}") from None
        if width < MIN_WIDTH:
            raise ValueError(f"recipes[{i}]: image_width must be at least {MIN_WIDTH} for CTC, got {width}")
    return tuple(recipes)


def check_batch_memory(batch_size: int, recipes=RECIPES) -> None:
    """Refuse a ``batch_size`` whose training step on the widest of ``recipes`` would not fit in this
    machine's memory."""
    from .validation import within_memory

    default = inspect.signature(DataGenerator).parameters["image_width"].default
    width = max(recipe.get("image_width", default) for recipe in recipes)
    within_memory(batch_size * 28 * width * TRAIN_BYTES_PER_PIXEL, "batch_size",
                  f"a step on {batch_size:,} sequences {width} pixels wide needs about", "use a smaller batch_size")


def train(recognizer: SequenceRecognizer, digits: DigitSet, *, steps: int | None = None,
          minutes: float | None = None, batch_size: int = 64, lr: float = 3e-3, recipes=RECIPES,
          seed: int = 0, workers: int = 1, threads: int | None = None, log_path=None,
          log_every: int = 50, progress: bool = True, state_path=None, save_every: float = SAVE_EVERY) -> list[dict]:
    """Train ``recognizer`` in place on batches composed from ``digits``.

    Parameters
    ----------
    recognizer : SequenceRecognizer
        The model to train (its weights are updated).
    digits : DigitSet
        Digits to compose training sequences from; a test split is refused.
    steps : int, optional
        Number of batches; a fixed count makes the run reproducible.
    minutes : float, optional
        Instead of ``steps``: a time budget, turned into a step count from the
        speed of a short probe (the count is logged, so the run can be repeated
        with ``steps``).
    batch_size, lr : int, float
        Sequences per batch; peak learning rate of AdamW (warm-up, cosine decay).
    recipes : sequence of dict
        DataGenerator settings drawn in turn (see :data:`RECIPES`).
    seed : int
        Seeds the batches; the weights are seeded when the recognizer is made.
    workers : int
        DataLoader worker processes drawing batches (0: in this process).
    threads : int, optional
        Torch threads for the model (default: one per core).  The weights depend on it in their
        last bits, which grow over a run: the same weights need the same count.
    log_path : path, optional
        CSV learning curve (:data:`LOG_COLUMNS`), one row every ``log_every`` steps; a file there is replaced.
    progress : bool
        Show a tqdm bar with the loss and a running character accuracy.
    state_path : path, optional
        Where the training keeps its state (weights, optimiser, learning curve so far), saved as it
        starts, every ``save_every`` seconds and when SIGINT or SIGTERM stops it after the current step
        (raising ``KeyboardInterrupt``, unless that was the last step).  A call with a state there resumes
        from it, to the same weights as a run that was never stopped; a state of other settings is refused
        (:class:`TrainingStateError`, a ValueError).  The file is left when training
        completes (a call then returns at once); the caller removes it once the model is saved.

    Returns
    -------
    list of dict
        The learning-curve rows.
    """
    from .io import prepare_file_path
    from .validation import flag, nonnegative_int, positive_int

    if not isinstance(recognizer, SequenceRecognizer):
        raise TypeError(f"recognizer: expected a SequenceRecognizer, got {type(recognizer).__name__}")
    if not isinstance(digits, DigitSet):
        raise TypeError(f"digits: expected a DigitSet, got {type(digits).__name__}")
    if digits.split == "test":
        raise ValueError("digits: a model is never trained on test digits; pass a train split")
    if (steps is None) == (minutes is None):
        raise ValueError("steps, minutes: give exactly one of them")
    if minutes is not None and not (isinstance(minutes, (int, float)) and 0 < minutes < math.inf):
        raise ValueError(f"minutes: expected a positive number, got {minutes!r}")
    batch_size = positive_int(batch_size, "batch_size")
    log_every = positive_int(log_every, "log_every")
    flag(progress, "progress")
    if not (isinstance(lr, (int, float)) and 0 < lr < math.inf):
        raise ValueError(f"lr: expected a positive number, got {lr!r}")
    workers = check_local_processes(nonnegative_int(workers, "workers"))
    seed = nonnegative_int(seed, "seed")
    recipes = check_recipes(recipes)
    check_batch_memory(batch_size, recipes)
    for name, path in (("log_path", log_path), ("state_path", state_path)):
        if path is not None:
            prepare_file_path(path, name)
    if log_path is not None and state_path is not None and Path(log_path).resolve() == Path(state_path).resolve():
        raise ValueError(f"log_path, state_path: expected two different files, got {str(log_path)!r} for both")
    if not (isinstance(save_every, (int, float)) and 0 <= save_every < math.inf):
        raise ValueError(f"save_every: expected seconds >= 0, got {save_every!r}")
    previous_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(check_local_processes(positive_int(threads, "threads"), "threads", "torch threads"))
    try:
        return _train(recognizer, digits, steps, minutes, batch_size, lr, recipes, seed, workers, log_path,
                      log_every, progress, state_path, save_every)
    finally:
        torch.set_num_threads(previous_threads)


def _train(recognizer, digits, steps, minutes, batch_size, lr, recipes, seed, workers, log_path, log_every,
           progress, state_path, save_every) -> list[dict]:
    from tqdm.auto import tqdm

    from .validation import positive_int

    state = None if state_path is None else _load_state(state_path)
    if state is not None and minutes is not None:
        steps = state["settings"].get("steps")  # the budget became this many steps when the run began
    elif minutes is not None:
        steps = _estimate_steps(recognizer, digits, minutes, batch_size, recipes, seed)
    steps = positive_int(steps, "steps")
    settings = _settings(recognizer, digits, steps, batch_size, lr, recipes, seed, log_every)
    differ = [] if state is None else sorted(k for k in settings if state["settings"].get(k) != settings[k])
    if differ:  # before the model is touched
        raise TrainingStateError(state_path, f"holds a training with other settings (it differs in {', '.join(differ)})",
                                 resumable=True)

    keep_freed_memory()
    model = recognizer.model
    model.train()
    recognizer._inference = None
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    done, rows, losses, reads, truths, elapsed = 0, [], [], [], [], 0.0
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        done, rows, elapsed = state["step"], state["rows"], state["seconds"]
        losses, reads, truths = state["window"]
    data = RecipeBatches(digits, steps, batch_size, recipes, seed, start=done)
    loader = torch.utils.data.DataLoader(data, batch_size=None, shuffle=False, num_workers=workers,
                                         prefetch_factor=4 if workers else None,
                                         worker_init_fn=_ignore_stop_signals if workers else None)
    loss_fn = torch.nn.CTCLoss(blank=BLANK, zero_infinity=True)
    warmup = min(200, max(1, steps // 10))
    start = time.perf_counter() - elapsed

    threads = torch.get_num_threads()
    if state is not None and state.get("threads", threads) != threads:
        warnings.warn(f"state_path: {state_path} began with {state['threads']} torch threads and resumes with "
                      f"{threads}: its weights will differ from an unstopped run's (threads={state['threads']} "
                      "keeps them the same)", RuntimeWarning, stacklevel=3)

    kept = None if state is None else done  # the step of the state that state_path holds

    def save() -> None:
        nonlocal kept
        try:
            _save_state(state_path, {"settings": settings, "step": done, "threads": threads,
                                     "model": model.state_dict(), "optimizer": optimizer.state_dict(), "rows": rows,
                                     "window": [[float(x) for x in losses], [str(x) for x in reads],
                                                [str(x) for x in truths]],
                                     "seconds": time.perf_counter() - start})
        except OSError as exc:  # a full disk, say: the message says what is kept and what to do
            raise reworded(exc, f"state_path: cannot save the training's state in {state_path} ({reason(exc)}); "
                           + ("nothing was saved there: run the same training again to start it" if kept is None else
                              f"it keeps the state after step {kept:,}: run the same training again to resume it")
                           + " once the file can be written") from exc
        kept = done

    if state is None and state_path is not None:
        save()  # before the learning curve is begun: a run killed before its first timed save resumes from step 0
    log = None
    if log_path is not None:
        log_path = Path(log_path)  # its folder was made by train's checks
        log = open(log_path, "w", newline="")
        writer = csv.DictWriter(log, fieldnames=LOG_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)  # those of the run being resumed
    saved = time.monotonic()
    try:
        with tqdm(total=steps, initial=done, unit="batch", disable=not progress, mininterval=1.0) as bar, \
                _StopRequests(enabled=state_path is not None) as stop:
            batches = iter(loader)
            for step in range(done, steps):
                try:
                    images, targets, lengths, labels = next(batches)
                except Exception:
                    if not stop.requested:
                        raise
                    break  # the workers too were told to stop (Ctrl-C reaches the whole process group)
                for group in optimizer.param_groups:
                    group["lr"] = _schedule(step, steps, lr, warmup)
                loss, log_probs = _step(model, optimizer, loss_fn, images, targets, lengths)
                losses.append(loss)
                reads += best_paths(log_probs)[0]
                truths += labels
                if (step + 1) % log_every == 0 or step + 1 == steps:
                    row = {"step": step + 1, "samples": (step + 1) * batch_size,
                           "seconds": round(time.perf_counter() - start, 2),
                           "lr": round(optimizer.param_groups[0]["lr"], 6),
                           "loss": round(float(np.mean(losses)), 4),
                           "char_accuracy": round(float(score(reads, truths)["char_accuracy"]), 4)}
                    rows.append(row)
                    if log is not None:
                        writer.writerow(row)
                        log.flush()
                    bar.set_postfix(loss=row["loss"], acc=row["char_accuracy"])
                    losses, reads, truths = [], [], []
                bar.update(1)
                done = step + 1
                if stop.requested:
                    break
                if state_path is not None and (time.monotonic() - saved >= save_every or done == steps):
                    save()
                    saved = time.monotonic()
            if stop.requested:
                save()
                if done < steps:  # a stop during the last step lets the training finish
                    raise KeyboardInterrupt(f"training stopped after step {done:,} of {steps:,}; its state is saved "
                                            f"in {state_path}: run the same training again to resume it")
    finally:
        if log is not None:
            log.close()
    model.eval()
    recognizer.trained_on = f"{digits.name}/{digits.split}"
    recognizer.training = {"steps": steps, "batch_size": batch_size, "lr": lr, "seed": seed, "threads": threads,
                           "samples": steps * batch_size, "seconds": round(time.perf_counter() - start, 1),
                           "data_sha256": data_fingerprint(digits, steps, batch_size, recipes, seed)}
    return rows


def _settings(recognizer, digits, steps, batch_size, lr, recipes, seed, log_every) -> dict:
    """Everything that decides a training's weights: a state is resumed only under the same settings."""
    return {"model": dict(recognizer.model.config), "steps": int(steps), "batch_size": int(batch_size),
            "lr": float(lr), "seed": int(seed), "recipes": repr(list(recipes)), "log_every": int(log_every),
            "digits": {**digits.identity(), "split": digits.split}}


def _save_state(path, state: dict) -> None:
    from .io import replace_own_file

    buffer = io.BytesIO()
    torch.save({"format": STATE_FORMAT, **state}, buffer)
    replace_own_file(path, buffer.getvalue())  # a kill while saving leaves the previous state whole


def _load_state(path) -> dict | None:
    """The state saved at ``path``, or None when there is none."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        state = load_weights(path)
    except ValueError as exc:
        raise TrainingStateError(path, f"is not a seqgen training state ({exc})") from None
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise TrainingStateError(path, f"is not a seqgen training state of format {STATE_FORMAT}")
    return state


class TrainingStateError(ValueError):
    """A ``state_path`` that this training cannot resume: ``problem`` says why, and ``resumable`` whether it
    holds another training that its own settings would resume (for callers that reword the advice)."""

    def __init__(self, path, problem: str, resumable: bool = False):
        self.path, self.problem, self.resumable = path, problem, resumable
        advice = "resume it with the same settings, or remove it" if resumable else "remove it"
        super().__init__(f"state_path: {path} {problem}; {advice} to start again")


class _StopRequests:
    """While enabled (in the main thread), SIGINT and SIGTERM ask the training to stop after its current
    step instead of interrupting it; a second signal interrupts at once."""

    def __init__(self, enabled: bool):
        self.enabled = enabled and threading.current_thread() is threading.main_thread()
        self.requested, self.before = False, {}

    def _ask(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self):
        if self.enabled:
            self.before = {sig: signal.signal(sig, self._ask) for sig in (signal.SIGINT, signal.SIGTERM)}
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self.before.items():
            signal.signal(sig, handler)


def _ignore_stop_signals(worker_id: int) -> None:
    """In a DataLoader worker: Ctrl-C and SIGTERM are the main process's to handle (it stops the workers)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)

