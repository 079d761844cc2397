"""The ``seqgen`` command line (also ``python -m seqgen``).

Bad input prints one line on stderr and exits with status 2; an unavailable
download exits with status 1.  Neither prints a traceback.
"""

from __future__ import annotations

import argparse
import sys


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line and exit status 2."""

    def error(self, message: str):  # noqa: D102 - argparse hook
        self.exit(2, f"{self.prog}: error: {message}\n")


def _cmd_download(args: argparse.Namespace) -> int:
    from .data import MnistUnavailableError, cache_dir, download_mnist

    try:
        paths = download_mnist(args.data_dir, progress=not args.quiet, retries=args.retries)
    except MnistUnavailableError as exc:
        print(f"seqgen download: {exc}. Check the network or set SEQGEN_MNIST_URLS.",
              file=sys.stderr)
        return 1
    print(f"full MNIST verified: {len(paths)} files in {cache_dir(args.data_dir)}")
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    from .data import cache_dir, is_cached, load_mnist, mirror_urls, offline

    folder = cache_dir(args.data_dir)
    if is_cached(folder):
        source, how = "mnist", "full MNIST, cached"
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


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``seqgen`` command."""
    parser = _Parser(prog="seqgen", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("download", help="fetch and verify full MNIST into the cache")
    p.add_argument("--data-dir", help="cache folder (default: $SEQGEN_DATA_DIR or the OS cache)")
    p.add_argument("--retries", type=int, default=2, help="extra attempts per mirror (default 2)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=_cmd_download)

    p = sub.add_parser("info", help="where digits come from and how many there are")
    p.add_argument("--data-dir", help="cache folder (default: $SEQGEN_DATA_DIR or the OS cache)")
    p.set_defaults(run=_cmd_info)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (ValueError, TypeError, FileExistsError, FileNotFoundError, NotADirectoryError,
            PermissionError) as exc:
        print(f"seqgen {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"seqgen {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
