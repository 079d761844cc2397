"""The ``seqgen`` commands that read with a recognizer or train one: ``recognize`` and ``train``.

:mod:`seqgen.cli` builds the parser and reports errors; these only do the work.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

#: Pixels of the images ``seqgen recognize`` holds at once: it reads, prints and forgets the files
#: in batches of about this much (64 MB of float32), so that a folder of any size runs in bounded memory.
READ_PIXELS = 2**24


def _load_reader(spec: str | None, say):
    """The recognizer ``--model`` names: ``baseline``, a saved baseline (``.pkl``), a sequence model file,
    or (default) the shipped sequence model."""
    from .recognizer import BaselineRecognizer, default_recognizer

    if spec == "baseline":
        return default_recognizer(say)
    if spec is None:
        from .model import shipped_model_path

        path = shipped_model_path()
        if not path.is_file():
            raise ValueError(f"--model: the shipped model {path} is missing; give --model PATH or --model baseline")
    else:
        path = Path(spec)
        if not path.is_file():  # said before PyTorch loads, which takes seconds
            raise ValueError(f"--model: {path} is not a file")
    try:
        if path.suffix == ".pkl":  # a pickle: only files the user made with BaselineRecognizer.save
            return BaselineRecognizer.load(path)
        from .model import SequenceRecognizer

        return SequenceRecognizer.load(path)
    except ValueError as exc:
        raise ValueError(f"--model: {str(exc).split(': ', 1)[-1]}") from None


def _png_files(names: list[str]) -> list[str]:
    """The files named, with each folder replaced by the PNGs inside it (sorted; .png in any case; not
    hidden files such as the ``._x.png`` metadata that macOS leaves on other file systems)."""
    files = []
    for name in names:
        if Path(name).is_dir():
            inside = sorted(str(p) for p in Path(name).iterdir()
                            if p.suffix.lower() == ".png" and not p.name.startswith(".") and p.is_file())
            if not inside:
                raise ValueError(f"files: the folder {name} holds no .png file")
            files += inside
        else:
            files.append(name)
    return files


def _doubt(image) -> str | None:
    """Why a read of ``image`` would mislead: blank, or light ink on dark paper."""
    if image.min() > 0.75:
        return "no ink found (a blank image reads as nothing)"
    if float(image.mean()) < 0.5:
        return "mostly dark: seqgen reads dark ink on light paper (an inverted image?)"
    return None


def cmd_recognize(args: argparse.Namespace) -> int:
    """``seqgen recognize``: print read, confidence and file for each readable PNG; exit 1 if any was not."""
    from .recognizer import read_png

    say = (lambda message: None) if args.quiet else (lambda message: print(message, file=sys.stderr))
    paths = _png_files(args.files)
    model = _load_reader(args.model, say)
    files, images, pixels, failed, read = [], [], 0, 0, 0
    for path in paths:
        if pixels >= READ_PIXELS:
            read += _read_and_print(model, files, images)
            files, images, pixels = [], [], 0
        try:
            image = read_png(path)
        except (ValueError, OSError) as exc:  # report it, read the others, fail at the end
            reason = f"{path}: {exc.strerror}" if getattr(exc, "strerror", None) else exc  # not "[Errno 2] ..."
            print(f"seqgen recognize: error: {reason}", file=sys.stderr)
            failed += 1
            continue
        if not getattr(model, "min_width", 0) <= image.shape[1] <= getattr(model, "max_width", image.shape[1]):
            print(f"seqgen recognize: error: {path}: {image.shape[1]:,} pixels wide; this model reads "
                  f"{model.min_width:,} to {model.max_width:,}", file=sys.stderr)
            failed += 1
            continue
        doubt = _doubt(image)
        if doubt:
            print(f"seqgen recognize: warning: {path}: {doubt}", file=sys.stderr)
        files.append(path)
        images.append(image)
        pixels += image.size
    read += _read_and_print(model, files, images)
    if not read:
        return 2
    if failed:
        print(f"seqgen recognize: {failed} of {failed + read} files could not be read", file=sys.stderr)
        return 1
    return 0


def _read_and_print(model, files: list[str], images: list) -> int:
    """Read ``images`` with ``model`` and print one line per file (read, confidence, file); their count."""
    if not images:
        return 0
    if hasattr(model, "predict_with_confidence"):
        reads, confidence = model.predict_with_confidence(images)
        shown = [f"{c:.3f}" for c in confidence]
    else:
        reads, shown = model.predict(images), ["-"] * len(images)
    for path, digits, c in zip(files, reads, shown):
        print(f"{digits or '-'}\t{c}\t{path}")
    sys.stdout.flush()  # a batch at a time, also through a pipe
    return len(images)


def cmd_train(args: argparse.Namespace) -> int:
    """``seqgen train``: train the sequence model on generated sequences of train digits and save it."""
    from .data import load_mnist
    from .io import prepare_output_dir, reason, reworded
    from .parallel import check_local_processes
    from .validation import nonnegative_int, not_a_url, positive_int

    if (args.steps is None) == (args.minutes is None):
        raise ValueError("--steps, --minutes: give exactly one of them")
    if args.minutes is not None and not 0 < args.minutes <= 24 * 60:
        raise ValueError(f"--minutes: expected a number of minutes in (0, 1440], got {args.minutes:g}")
    if args.steps is not None:
        positive_int(args.steps, "--steps")
    positive_int(args.batch_size, "--batch-size")
    if not 0 < args.lr < 1:
        raise ValueError(f"--lr: expected a learning rate in (0, 1), got {args.lr:g}")
    check_local_processes(nonnegative_int(args.workers, "--workers"), "--workers")
    if args.threads is not None:
        positive_int(args.threads, "--threads")
    not_a_url(args.out, "--out")
    if args.log:
        not_a_url(args.log, "--log")
    out = Path(args.out)
    if not args.out or out.is_dir():
        raise ValueError(f"--out: expected a file path for the model, got {args.out!r}")
    if out.exists() and not args.overwrite:
        raise ValueError(f"--out: {out} exists; pass --overwrite to replace it")
    state = out.with_name(out.name + ".partial")  # an interrupted run of this command, resumed by it
    resuming = state.exists() and not args.overwrite
    log, log_flag = (Path(args.log), "--log") if args.log else (out.with_suffix(".csv"), "--out")
    if args.log:
        for path, what in ((out, "the model's file (--out)"), (state, "where the training keeps its state")):
            if log.resolve() == path.resolve():
                raise ValueError(f"--log: {log} is {what}; give the learning curve another file")
    elif log.resolve() == out.resolve():
        raise ValueError(f"--out: the learning curve goes to the model's name with .csv, here {out} itself; "
                         "give the model another suffix or pass --log")
    if log.is_dir():  # not "exists; pass --overwrite", which could not replace a folder
        raise ValueError(f"{log_flag}: {log} is a folder, expected a file for the learning curve")
    if log.exists() and not args.overwrite and not resuming:  # the learning curve is not written over another file
        raise ValueError(f"{log_flag}: {log} (the learning curve) exists; pass --overwrite to replace it")
    # PyTorch loads here, once the flags are checked: it takes seconds
    from .model import SequenceRecognizer
    from .train import TrainingStateError, check_batch_memory, train

    check_batch_memory(args.batch_size)
    for path, flag in ((out, "--out"), (log, log_flag)):  # before, not after, training
        prepare_output_dir(path.parent, flag)
    if args.overwrite:
        state.unlink(missing_ok=True)
    digits = load_mnist("train", source=args.source, progress=not args.quiet)
    recognizer = SequenceRecognizer(seed=args.seed)
    if resuming and not args.quiet:
        print(f"resuming the training saved in {state}", file=sys.stderr)
    try:
        rows = train(recognizer, digits, steps=args.steps, minutes=args.minutes, batch_size=args.batch_size,
                     lr=args.lr, seed=args.seed, workers=args.workers, threads=args.threads, log_path=log,
                     progress=not args.quiet, state_path=state)
    except TrainingStateError as exc:
        advice = "run the command that started it, or pass --overwrite" if exc.resumable else "pass --overwrite"
        raise ValueError(f"--out: {exc.path} {exc.problem}; {advice} to start again") from None
    except KeyboardInterrupt as exc:
        raise KeyboardInterrupt(str(exc).replace("run the same training again", "run the same command again")) \
            from None
    except OSError as exc:
        raise reworded(exc, str(exc).replace("run the same training again", "run the same command again")) from None
    try:
        recognizer.save(out)
    except OSError as exc:  # the trained state is whole: the same command saves the model without training
        raise reworded(exc, f"--out: cannot write {out} ({reason(exc)}); the trained model is kept in {state}: "
                            "run the same command again to save it once the file can be written") from None
    state.unlink()  # the model is saved: the state is no longer needed
    last = rows[-1]
    print(f"trained {last['step']} steps ({last['samples']} sequences, {last['seconds']:.0f} s) on "
          f"{len(digits)} {digits.name} train digits; running char accuracy {last['char_accuracy']:.3f}; "
          f"wrote {out} and {log}")
    return 0
