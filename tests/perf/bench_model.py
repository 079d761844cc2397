"""Speed and accuracy of the sequence model (a script, not a test): ``python tests/perf/bench_model.py``.

Figures (issue 13), each printed as ``name: value unit``:

- inference: phone numbers at width 200, batched, on every core;
- training: the model fed by ``DataGenerator`` batches of 64 phone numbers at
  width 200 through a ``DataLoader`` with one worker process, and where the time
  of a step goes (drawing the batch, forward, loss, backward, optimiser);
- accuracy of a checkpoint (default: the shipped one) and of the baseline on
  500 phone numbers of held-out test digits per target condition, and the
  single-digit accuracy of both on the 1,000 test digits.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from seqgen import DataGenerator, generate_phone_numbers, load_mnist
from seqgen.dataset import BLANK, encode_labels
from seqgen.model import SequenceRecognizer, shipped_model_path

TARGETS = (("width 300, spacing (2, 10)", 300, (2, 10), None),
           ("width 200, spacing (-2, 0)", 200, (-2, 0), None),
           ("width 300, spacing (2, 10), augment default", 300, (2, 10), "default"))


def inference(model: SequenceRecognizer, test, repeats: int) -> None:
    images, _ = generate_phone_numbers(2048, 200, (2, 10), source=test, seed=0)
    model.predict(images[:256])  # warm-up
    best = min(_timed(lambda: model.predict(images)) for _ in range(repeats))
    print(f"inference, width 200, {torch.get_num_threads()} threads: {len(images) / best:,.0f} sequences/s")


def training(train, repeats: int, steps: int = 40) -> None:
    gen = DataGenerator(batch_size=64, image_width=200, spacing_range=(2, 10), source=train, seed=0,
                        batches_per_epoch=steps * (repeats + 1))
    loader = torch.utils.data.DataLoader(gen, batch_size=None, num_workers=1, prefetch_factor=4)
    model = SequenceRecognizer(seed=0).model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.CTCLoss(blank=BLANK, zero_infinity=True)
    parts = {"wait for batch": 0.0, "forward + loss": 0.0, "backward": 0.0, "optimiser": 0.0}
    rates = []
    batches = iter(loader)
    for repeat in range(repeats + 1):
        start = time.perf_counter()
        for _ in range(steps):
            t0 = time.perf_counter()
            x, y = next(batches)
            targets, lengths = (torch.from_numpy(a) for a in encode_labels(y))
            t1 = time.perf_counter()
            log_probs = model(x)
            loss = loss_fn(log_probs.transpose(0, 1), targets,
                           torch.full((len(x),), log_probs.shape[1], dtype=torch.long), lengths)
            t2 = time.perf_counter()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            t3 = time.perf_counter()
            optimizer.step()
            t4 = time.perf_counter()
            if repeat:  # the first round warms up the worker and the kernels
                for key, dt in zip(parts, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
                    parts[key] += dt
        if repeat:
            rates.append(steps * 64 / (time.perf_counter() - start))
    print(f"training, DataGenerator -> DataLoader(1 worker), batch 64, width 200: "
          f"{max(rates):,.0f} samples/s (best of {repeats})")
    total = sum(parts.values())
    print("training, share of step time: " + ", ".join(f"{k} {v / total:.0%}" for k, v in parts.items()))
    gen_only = DataGenerator(batch_size=64, image_width=200, spacing_range=(2, 10), source=train, seed=1, threads=1)
    best = min(_timed(lambda: gen_only[0]) for _ in range(20))
    print(f"training data alone (DataGenerator, 1 thread): {64 / best:,.0f} samples/s")


def accuracy(model: SequenceRecognizer, train, test, n: int, seed: int) -> None:
    from seqgen.recognizer import BaselineRecognizer

    baseline = BaselineRecognizer().fit(train, seed=0)
    for name, width, spacing, augment in TARGETS:
        images, labels = generate_phone_numbers(n, width, spacing, source=test, augment=augment, seed=seed)
        ours, theirs = model.evaluate(images, labels), baseline.evaluate(images, labels)
        print(f"accuracy, {name}, n={n}: sequence model char {ours['char_accuracy']:.4f} "
              f"seq {ours['sequence_accuracy']:.3f}; baseline char {theirs['char_accuracy']:.4f} "
              f"seq {theirs['sequence_accuracy']:.3f}")
    singles = 1.0 - test.images.astype(np.float32) / 255.0
    truth = [str(d) for d in test.labels]
    print(f"single held-out digits (28x28), n={len(test)}: sequence model "
          f"{np.mean([p == t for p, t in zip(model.predict(singles), truth)]):.4f}; baseline "
          f"{np.mean([p == t for p, t in zip(baseline.predict(singles), truth)]):.4f}")


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(shipped_model_path()), help="checkpoint to measure")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("-n", type=int, default=500, help="phone numbers per accuracy condition")
    parser.add_argument("--seed", type=int, default=1, help="seed of the test sequences")
    parser.add_argument("--skip", nargs="*", default=(), choices=("inference", "training", "accuracy"))
    args = parser.parse_args()
    train, test = load_mnist("train", source="sample"), load_mnist("test", source="sample")
    model = SequenceRecognizer.load(args.model)
    if "inference" not in args.skip:
        inference(model, test, args.repeats)
    if "training" not in args.skip:
        training(train, args.repeats)
    if "accuracy" not in args.skip:
        accuracy(model, train, test, args.n, args.seed)


if __name__ == "__main__":
    main()
