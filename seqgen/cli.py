"""The ``seqgen`` command line (also ``python -m seqgen``).

Bad input prints one line on stderr and exits with status 2; unavailable data
(a failed download, full MNIST asked for offline) and a machine that fails mid-way
(a full disk, an I/O error; an export that stops) exit with status 1.  None of
them prints a traceback.
"""

from __future__ import annotations

import argparse
import re
import signal
import sys
import threading
import warnings
from pathlib import Path


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line and exit status 2."""

    def error(self, message: str):  # noqa: D102 - argparse hook
        self.exit(2, f"{self.prog}: error: {message}\n")


def _cmd_download(args: argparse.Namespace) -> int:
    from .data import MnistUnavailableError, cache_dir, download_mnist

    try:
        paths = download_mnist(args.data_dir, progress=not args.quiet, retries=args.retries)
    except MnistUnavailableError as exc:
        message = as_flags(str(exc))
        if args.data_dir is None:  # the environment chose the folder; this command can also take --data-dir
            message = message.replace("choose another folder with SEQGEN_DATA_DIR",
                                      "choose another folder with --data-dir or SEQGEN_DATA_DIR")
        print(f"seqgen download: {message}", file=sys.stderr)
        return 1
    print(f"full MNIST verified: {len(paths)} files in {cache_dir(args.data_dir)}")
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    from .data import cache_dir, is_cached, load_mnist, mirror_urls, offline
    from .sources import corrupt_files

    folder = cache_dir(args.data_dir)
    cached = is_cached(folder)
    corrupt = [] if cached else corrupt_files(folder)  # only a cache that failed is checked again, to say why
    if corrupt:
        print(f"seqgen info: warning: corrupt cached file(s) {', '.join(corrupt)} in {folder}: "
              "`seqgen download` fetches them again", file=sys.stderr)
    if cached:
        source, how = "mnist", "full MNIST, cached and verified"
    elif offline():
        source, how = "sample", "SEQGEN_OFFLINE is set and full MNIST is not cached"
    else:
        source, how = "sample", "full MNIST not cached yet; `auto` downloads it on first use, " \
                                "falling back to this sample when offline"
    print(f"auto source : {source} ({how})")
    print(f"cache folder: {folder}")
    print(f"mirrors     : {', '.join(mirror_urls())}")
    for split in ("train", "test"):
        digits = load_mnist(split, source=source if source == "sample" else "auto",
                            data_dir=folder, progress=False)
        counts = " ".join(f"{d}:{n}" for d, n in enumerate(digits.class_counts))
        print(f"{split:5s} {digits.name:6s} {len(digits):6d} digits  ({counts})")
    return 0


def _shard(text: str) -> tuple[int, int]:
    """Parse ``K/M`` (1 <= K <= M)."""
    try:
        k, m = (int(part) for part in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected K/M such as 2/8, got {text!r}") from None
    if not 1 <= k <= m:
        raise argparse.ArgumentTypeError(f"expected K/M with 1 <= K <= M, got {text!r}")
    return k, m


def _generation_options(p: argparse.ArgumentParser, urls: bool = True) -> None:
    from .augment import PRESETS
    from .validation import ALIGNS, FITS

    p.add_argument("--image-width", type=int, required=True, help="output width in pixels")
    p.add_argument("--spacing", type=int, nargs=2, default=(2, 10), metavar=("LO", "HI"),
                   help="ink-to-ink gap range in pixels, inclusive (default 2 10)")
    p.add_argument("--fit", choices=FITS, default="shrink", help="fitting policy (default shrink)")
    p.add_argument("--align", choices=ALIGNS, default="center", help="placement of a narrow strip")
    p.add_argument("--augment", choices=("none", *PRESETS), default="none",
                   help="augmentation preset (default none)")
    p.add_argument("--seed", type=int, default=None, help="seed for reproducible output")
    p.add_argument("--source", default="auto",
                   help="digits: auto, mnist, sample or a folder of MNIST files (default auto)")
    p.add_argument("--output-dir", default="outputs",
                   help="output folder (default outputs)" + ("; webdataset and parquet also take fsspec URLs"
                                                              if urls else ""))


def _common(args: argparse.Namespace, n_digits: int):
    """Validated options, the output folder and the augment preset (cheap checks before the folder is made)."""
    from .compose import Options
    from .io import prepare_output_dir
    from .validation import as_rng

    options = Options.check(args.image_width, tuple(args.spacing), args.fit, args.align)
    options.check_digits(n_digits)
    as_rng(args.seed)
    folder = prepare_output_dir(args.output_dir)
    augment = None if args.augment == "none" else args.augment
    return options, folder, augment


def _cmd_sequence(args: argparse.Namespace) -> int:
    from .generate import generate_numbers_sequence
    from .io import write_pngs
    from .validation import digit_sequence

    options, folder, augment = _common(args, n_digits=len(digit_sequence(args.digits)))
    image = generate_numbers_sequence(args.digits, options.image_width, options.spacing_range, fit=options.fit,
                                      align=options.align, source=args.source, augment=augment, seed=args.seed)
    (path,) = write_pngs(image[None], [args.digits], folder)  # the same file as output_path= would write
    print(f"wrote {path}")
    return 0


def _export_options(p: argparse.ArgumentParser) -> None:
    from .export import FORMATS

    p.add_argument("--format", choices=tuple(FORMATS), default="png",
                   help="png files and labels.csv (default), one LMDB, WebDataset tar shards or Parquet files")
    p.add_argument("--shard-size", type=int, default=1000, help="images per shard (default 1000)")
    p.add_argument("--workers", type=int, default=1,
                   help="local worker processes, a Dask LocalCluster (default 1: threads in this process)")
    p.add_argument("--scheduler", metavar="ADDRESS", help="run the shards on this Dask scheduler (tcp://host:8786)")
    p.add_argument("--png-level", type=int, default=None, choices=(0, 1),
                   help="the PNG bytes of every format: 1 compressed (zlib's run-length strategy; the default, "
                        "except for parquet); 0 stored uncompressed, faster to write, ~2.5x larger (parquet's "
                        "default: its pages are compressed with zstd instead)")
    p.add_argument("--shard", type=_shard, default=None, metavar="K/M",
                   help="write only the K-th of M disjoint parts of the export")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _cmd_export(args: argparse.Namespace) -> int:
    """``seqgen phone`` and ``seqgen sequences``: shards written (or resumed), then one line saying where."""
    from .compose import Options
    from .export import export
    from .generate import check_phone_count
    from .parallel import available_cores, check_local_processes
    from .validation import as_rng, positive_int

    if args.command == "phone":
        check_phone_count(args.num_images, "--num-images")
        length = "phone"
    else:
        positive_int(args.num_images, "--num-images")
        if len(args.length) > 2 or not all(1 <= n <= 1000 for n in args.length) or args.length != sorted(args.length):
            raise ValueError(f"--length: expected N or LO HI with 1 <= LO <= HI <= 1000, got {' '.join(map(str, args.length))}")
        length = args.length[0] if len(args.length) == 1 else tuple(args.length)
    positive_int(args.workers, "--workers")
    positive_int(args.shard_size, "--shard-size")
    if args.scheduler is None:
        check_local_processes(args.workers, "--workers")
    if args.workers > available_cores() and args.scheduler is None:
        print(f"seqgen {args.command}: warning: --workers {args.workers} is more than this machine's "
              f"{available_cores()} cores; they will share them", file=sys.stderr)
    Options.check(args.image_width, tuple(args.spacing), args.fit, args.align)
    as_rng(args.seed)
    if not args.output_dir.strip():
        raise ValueError("--output-dir: expected a folder name, got an empty string")
    result = export(args.output_dir, args.num_images, args.image_width, tuple(args.spacing), format=args.format,
                    length=length, fit=args.fit, align=args.align, source=args.source,
                    augment=None if args.augment == "none" else args.augment, seed=args.seed,
                    shard_size=args.shard_size, png_level=args.png_level, workers=args.workers,
                    scheduler=args.scheduler, part=args.shard, progress=not args.quiet)
    kept = result["images"] - result["written"]
    files = Path(result["manifest"]).name
    if args.format == "png":
        files += ", " + files.replace("manifest", "labels").replace(".json", ".csv")
    part = "" if args.shard is None else f" (part {args.shard[0]}/{args.shard[1]})"
    shards = "1 shard" if result["shards"] == 1 else f"{result['shards']} shards"
    where = f"{shards} in {result['output']}{part} ({files})"
    if kept:
        print(f"wrote {result['written']} images and kept {kept} from an earlier run: {result['images']} images in {where}")
    else:
        print(f"wrote {result['written']} images in {where}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``seqgen`` command."""
    from . import __version__, cli_models

    parser = _Parser(prog="seqgen", description="Synthetic images of handwritten digit sequences, composed from "
                     "real MNIST digits, with exact labels (also python -m seqgen).")
    parser.add_argument("--version", action="version", version=f"seqgen {__version__}")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)

    p = sub.add_parser("download", help="fetch and verify full MNIST into the cache")
    p.add_argument("--data-dir", help="cache folder (default: $SEQGEN_DATA_DIR or the OS cache)")
    p.add_argument("--retries", type=int, default=2, help="extra attempts per mirror (default 2)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=_cmd_download)

    p = sub.add_parser("sequence", help="write one image of a digit sequence")
    p.add_argument("--digits", required=True, help="the digits to write, e.g. 78677")
    _generation_options(p, urls=False)
    p.set_defaults(run=_cmd_sequence)

    p = sub.add_parser("phone", help="write images of distinct random phone numbers")
    p.add_argument("--num-images", type=int, required=True, help="how many images")
    _generation_options(p)
    _export_options(p)
    p.set_defaults(run=_cmd_export)

    p = sub.add_parser("sequences", help="write images of random digit strings (as DataGenerator draws them)")
    p.add_argument("--num-images", type=int, required=True, help="how many images")
    p.add_argument("--length", type=int, nargs="+", required=True, metavar="N",
                   help="digits per image: N, or LO HI for lengths drawn in that range")
    _generation_options(p)
    _export_options(p)
    p.set_defaults(run=_cmd_export)

    p = sub.add_parser("recognize", help="read the digits in sequence images (PNG, 28 pixels high)")
    p.add_argument("files", nargs="+", help="PNG files, or folders of them")
    p.add_argument("--model", help="a sequence model file (seqgen train), a saved baseline (.pkl), or "
                                   "'baseline' for the cached baseline recognizer (default: the shipped model)")
    p.add_argument("--quiet", action="store_true", help="no training message")
    p.set_defaults(run=cli_models.cmd_recognize)

    p = sub.add_parser("train", help="train the CTC sequence model on generated sequences of train digits",
                       description="Train the CTC sequence model. Its state is kept in OUT.partial while it runs "
                                   "(saved as it starts, every 30 s, and when Ctrl-C or SIGTERM stops it after "
                                   "the current step); the same command run again resumes it.")
    p.add_argument("--out", required=True, help="model file to write (its learning curve goes beside it, .csv)")
    p.add_argument("--minutes", type=float, help="time budget, turned into a step count by a short probe")
    p.add_argument("--steps", type=int, help="number of batches (reproducible; instead of --minutes)")
    p.add_argument("--batch-size", type=int, default=64, help="sequences per batch (default 64)")
    p.add_argument("--lr", type=float, default=3e-3, help="peak learning rate (default 0.003)")
    p.add_argument("--seed", type=int, default=0, help="seed of the weights and the batches (default 0)")
    p.add_argument("--workers", type=int, default=1, help="DataLoader worker processes (default 1)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads for the model (default: one per core); the same weights need the same count")
    p.add_argument("--source", default="auto",
                   help="train digits: auto, mnist, sample or a folder of MNIST files (default auto)")
    p.add_argument("--log", help="learning-curve CSV (default: --out with .csv)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file and its learning curve, and "
                                                                 "start again instead of resuming")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=cli_models.cmd_train)

    p = sub.add_parser("info", help="where digits come from and how many there are")
    p.add_argument("--data-dir", help="cache folder (default: $SEQGEN_DATA_DIR or the OS cache)")
    p.set_defaults(run=_cmd_info)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:  # bare `seqgen`: say what it can do
        parser.print_usage(sys.stderr)
        return 2
    warnings.formatwarning = lambda message, *_args, **_kw: f"seqgen: warning: {as_flags(str(message))}\n"
    from .export import ExportError
    from .io import MACHINE_ERRNOS
    from .sources import MnistUnavailableError

    on_main = threading.current_thread() is threading.main_thread()
    before = signal.signal(signal.SIGTERM, _interrupt) if on_main else None  # a terminated export records its shards
    try:
        return args.run(args)
    except (ValueError, TypeError, OSError) as exc:
        print(f"seqgen {args.command}: error: {as_flags(str(exc))}", file=sys.stderr)
        return 1 if isinstance(exc, OSError) and exc.errno in MACHINE_ERRNOS else 2
    except MnistUnavailableError as exc:
        print(f"seqgen {args.command}: error: {in_flag_words(' '.join(str(exc).split()))}", file=sys.stderr)
        return 1
    except ExportError as exc:
        print(f"seqgen {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except MemoryError:
        print(f"seqgen {args.command}: error: not enough memory for this request; ask for less", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:  # Ctrl-C or SIGTERM
        print(f"seqgen {args.command}: interrupted{': ' + str(exc) if str(exc) else ''}", file=sys.stderr)
        return 130
    finally:
        if on_main:
            signal.signal(signal.SIGTERM, before)


#: The API's argument names as the command line's flags, for error messages.
FLAGS = {"image_width": "--image-width", "spacing_range": "--spacing", "num_images": "--num-images",
         "digits": "--digits", "output": "--output-dir", "output_path": "--output-dir", "seed": "--seed",
         "source": "--source", "shard_size": "--shard-size", "workers": "--workers", "length": "--length",
         "scheduler": "--scheduler", "phone numbers": "--spacing", "data_dir": "--data-dir",
         "retries": "--retries", "batch_size": "--batch-size", "log_path": "--log", "threads": "--threads", "state_path": "--out",
         "format": "--format", "fit": "--fit", "align": "--align", "augment": "--augment", "png_level": "--png-level",
         "steps": "--steps", "lr": "--lr"}


#: The API's spellings inside such messages, as the command line's.
PHRASES = {"fit='shrink' or 'stretch'": "--fit shrink or stretch", "image_width=": "--image-width ",
           "a smaller spacing_range": "a smaller --spacing", "a smaller batch_size": "a smaller --batch-size",
           "(threads=": "(--threads ", "with data_dir=": "with --data-dir", "source='mnist'": "--source mnist",
           "source='sample'": "--source sample", "pass a seed to resume": "pass --seed to resume"}


def as_flags(message: str) -> str:
    """An API error message (``"image_width: ..."``) naming the flags instead (``"--image-width: ..."``)."""
    head, sep, rest = message.partition(": ")
    names = head.split(", ")
    if not sep or not all(name in FLAGS or name.startswith("--") for name in names):
        return message
    return ", ".join(dict.fromkeys(FLAGS.get(name, name) for name in names)) + sep + in_flag_words(rest)


#: The settings an export's or a training's record compares, as the flags that set them: there
#: ``digits`` is the digit set, which ``--source`` chooses.
SETTINGS = {**FLAGS, "digits": "--source"}


def in_flag_words(text: str) -> str:
    """``text`` with the API's spellings of :data:`PHRASES`, and the settings it says differ, as the command
    line's."""
    for api, flag in PHRASES.items():
        text = text.replace(api, flag)
    return re.sub(r"(differs in )([a-z_]+(?:, [a-z_]+)*)",
                  lambda m: m[1] + ", ".join(SETTINGS.get(name, name) for name in m[2].split(", ")), text)


def _interrupt(signum, frame):
    raise KeyboardInterrupt


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
