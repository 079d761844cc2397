"""DataGenerator: pure batches, epochs, threads and processes, splits, label encoding, shards."""

from __future__ import annotations

import concurrent.futures
import multiprocessing

import numpy as np
import pytest

from seqgen import DataGenerator
from seqgen.dataset import BLANK, NUM_CLASSES, decode_labels, encode_labels


@pytest.fixture
def gen(train_digits):
    return DataGenerator(batch_size=8, image_width=120, source=train_digits, batches_per_epoch=12, seed=3)


def batch_bytes(batch) -> bytes:
    x, y = batch
    return x.tobytes() + "|".join(y).encode()


def test_shapes_and_labels(gen):
    x, y = gen[0]
    assert x.shape == (8, 28, 120) and x.dtype == np.float32 and 0 <= x.min() and x.max() <= 1
    assert y.shape == (8,) and all(len(s) == 11 and s[0] == "0" for s in y)
    assert len(gen) == 12 and len(list(gen)) == 12


@pytest.mark.parametrize("length, sizes", [(5, {5}), ((1, 4), {1, 2, 3, 4})])
def test_lengths_and_channels_last(train_digits, length, sizes):
    gen = DataGenerator(batch_size=64, image_width=90, length=length, source=train_digits, channels_last=True)
    x, y = gen[1]
    assert x.shape == (64, 28, 90, 1)
    assert {len(s) for s in y} == sizes and all(s.isdigit() for s in y)


def test_pure_function_of_seed_epoch_index(gen, train_digits):
    forward = [batch_bytes(gen[i]) for i in range(len(gen))]
    backward = [batch_bytes(gen[i]) for i in reversed(range(len(gen)))][::-1]
    assert forward == backward
    twin = DataGenerator(batch_size=8, image_width=120, source=train_digits, batches_per_epoch=12, seed=3)
    assert batch_bytes(twin[5]) == forward[5] and batch_bytes(gen[-1]) == forward[-1]
    assert len(set(forward)) == len(forward)  # distinct batches within an epoch


def test_epochs_bring_fresh_batches(gen):
    first = batch_bytes(gen[0])
    gen.on_epoch_end()
    second = batch_bytes(gen[0])
    gen.set_epoch(0)
    assert batch_bytes(gen[0]) == first != second
    stream = gen()
    batches = [batch_bytes(next(stream)) for _ in range(2 * len(gen))]
    assert len(set(batches)) == 2 * len(gen) and gen.epoch == 1


def test_four_threads_give_the_serial_bytes(gen):
    serial = [batch_bytes(gen[i]) for i in range(len(gen))]
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        threaded = list(pool.map(lambda i: batch_bytes(gen[i]), range(len(gen))))
    assert threaded == serial


@pytest.mark.parametrize("augment", [None, "light"])
def test_threads_within_a_batch_give_the_same_bytes(train_digits, augment):
    batches = [DataGenerator(batch_size=200, image_width=150, spacing_range=(-3, 6), augment=augment,
                             source=train_digits, seed=4, threads=t)[1] for t in (1, 2, 3)]
    assert batch_bytes(batches[0]) == batch_bytes(batches[1]) == batch_bytes(batches[2])


def _fetch(args):
    gen, index = args
    return batch_bytes(gen[index])


def test_process_pool_gives_the_serial_bytes(gen):
    serial = [batch_bytes(gen[i]) for i in range(len(gen))]
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        assert pool.map(_fetch, [(gen, i) for i in range(len(gen))]) == serial


def test_test_split_never_uses_train_digits(train_digits, test_digits):
    # Mark each glyph with its split: train glyphs are drawn faint, test glyphs dark.
    faint = train_digits.images // 4
    train_marked = type(train_digits)(faint, train_digits.labels, split="train")
    test_gen = DataGenerator(batch_size=64, image_width=400, source=test_digits, split="test", seed=1)
    train_gen = DataGenerator(batch_size=64, image_width=400, source=train_marked, seed=1)
    assert test_gen[0][0].min() < 0.05 < 0.7 < train_gen[0][0].min()
    with pytest.raises(ValueError, match="source: a 'train' DigitSet cannot feed split='test'"):
        DataGenerator(source=train_digits, split="test")
    default = DataGenerator(split="test", source="sample")
    assert default.source.split == "test" and np.array_equal(default.source.images, test_digits.images)


def test_a_blank_label_encodes_as_an_empty_ctc_target():
    # "" (what the model reads in a blank image) was refused: "labels: expected at least one digit"
    import torch

    targets, lengths = encode_labels(["12", "", "3"])
    assert targets.tolist() == [[1, 2], [BLANK, BLANK], [3, BLANK]] and lengths.tolist() == [2, 0, 1]
    assert decode_labels(targets, lengths) == ["12", "", "3"] == decode_labels(targets)
    assert [a.tolist() for a in encode_labels([""])] == [[[]], [0]]
    log_probs = torch.full((6, 3, NUM_CLASSES), 0.01)
    log_probs[..., BLANK] = 0.9  # a blank image, read: every frame says blank
    log_probs = log_probs.log()
    loss = torch.nn.functional.ctc_loss(log_probs, torch.as_tensor(targets), torch.full((3,), 6),
                                        torch.as_tensor(lengths), blank=BLANK, reduction="none")
    assert torch.isfinite(loss).all() and loss[1] < loss[2] < loss[0]  # the empty target fits it best


def test_label_encoding_round_trip():
    labels = ["0123", "7", "99999", "01234567890"]
    targets, lengths = encode_labels(labels)
    assert targets.shape == (4, 11) and targets.dtype == np.int64
    assert lengths.tolist() == [4, 1, 5, 11] and targets[1, 1:].tolist() == [BLANK] * 10
    assert decode_labels(targets, lengths) == labels == decode_labels(targets)
    assert DataGenerator.decode_labels(*DataGenerator.encode_labels(["42"])) == ["42"]
    with pytest.raises(ValueError, match="labels: expected only the characters 0-9"):
        encode_labels(["12x"])
    with pytest.raises(TypeError, match="labels: expected a sequence of digit strings, got one str '123'"):
        encode_labels("123")  # would be three labels of one digit each
    assert decode_labels(np.array([[1, BLANK, 3], [BLANK] * 3, [1, 2, 3]])) == ["1", "", "123"]
    assert decode_labels(np.zeros((2, 0), np.int64)) == ["", ""]


@pytest.mark.parametrize(
    "targets, lengths, pattern",
    [
        ([[1, 12, 3]], None, "targets: expected ints 0-9 and the blank 10, got 12"),
        ([[1, -1, 3]], None, "targets: expected ints 0-9 and the blank 10, got -1"),
        ([[1.5, 2.0]], None, r"targets: expected ints 0-9 and the blank 10, got 1.5 \(float64\)"),
        ([[1, 2], [3, 4]], [2], r"lengths: expected 2 ints, one per row of targets, got int64 shape \(1,\)"),
        ([[1, 2]], [2.0], "lengths: expected 1 ints, one per row of targets, got float64"),
        ([[1, 2]], [3], r"lengths: expected 0 to 2 \(the width of targets\), got 3"),
        ([[1, 2]], [-1], "lengths: expected 0 to 2 .*, got -1"),
        ([[1, BLANK, 3]], [3], "targets: row 0 has the blank 10 within its length 3"),
    ],
)
def test_decode_labels_refuses_what_is_not_a_label(targets, lengths, pattern):
    with pytest.raises(ValueError, match=pattern):
        decode_labels(np.array(targets), None if lengths is None else np.array(lengths))


@pytest.mark.parametrize(
    "kwargs, pattern",
    [
        (dict(batch_size=0), "batch_size: expected a positive int"),
        (dict(length="zip"), "length: expected 'phone', an int or a"),
        (dict(length=(5, 2)), r"length: min must not exceed max, got \(5, 2\)"),
        (dict(split="val"), "split: expected one of 'train', 'test'"),
        (dict(batches_per_epoch=0), "batches_per_epoch: expected a positive int"),
        (dict(spacing_range=(3, 1)), "spacing_range: lo must not exceed hi"),
        (dict(threads=0), "threads: expected a positive int"),
    ],
)
def test_bad_arguments(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        DataGenerator(**kwargs)


def test_index_errors(gen):
    with pytest.raises(IndexError, match=r"index: expected -12 <= index < 12, got 12"):
        gen[12]
    with pytest.raises(IndexError, match=r"index: expected -12 <= index < 12, got -13"):  # the index given
        gen[-13]
    assert gen[-1][1].tolist() == gen[11][1].tolist()
    with pytest.raises(TypeError, match="index: expected an int"):
        gen[1.5]


def test_a_batch_larger_than_memory_is_refused_up_front():
    with pytest.raises(ValueError, match=r"batch_size, image_width: 10,000,000 images of width 8192 need "
                                         r"[\d,.]+ GiB in memory, more than this machine's .*; ask for smaller batches"):
        DataGenerator(batch_size=10_000_000, image_width=8192)


def test_memory_in_messages_keeps_small_amounts_readable():
    from seqgen.validation import memory_text, within_memory

    assert [memory_text(n) for n in (0, 44_800_000, 2**30 - 1, 2**30, 25 * 2**30 + 2**29)] == [
        "0.0 MiB", "42.7 MiB", "1,024.0 MiB", "1.00 GiB", "25.50 GiB"]
    within_memory(2**20, "shard_size", "1 MiB need", "use less", limit=(2**20, "the limit"))  # equal fits
    with pytest.raises(ValueError, match=r"^shard_size: it needs 1.5 MiB in memory, more than the 1.0 MiB limit of w; "
                                         r"use less$"):
        within_memory(3 * 2**19, "shard_size", "it needs", "use less", limit=(2**20, "limit of w"))


def test_channels_last_takes_a_bool_only():
    assert DataGenerator(batch_size=2, channels_last=np.True_, source="sample").channels_last is True
    with pytest.raises(TypeError, match="^channels_last: expected True or False, got 'no'$"):  # bool('no') is True
        DataGenerator(batch_size=2, channels_last="no")


def test_a_generator_is_refused_as_seed_with_the_reason():
    with pytest.raises(TypeError, match=r"seed: expected an int or None \(batch i is drawn from \(seed, epoch, i\)"):
        DataGenerator(seed=np.random.default_rng(0))


def test_torch_dataloader_with_two_workers(gen):
    torch = pytest.importorskip("torch")
    loader = torch.utils.data.DataLoader(gen, batch_size=None, num_workers=2)
    got = [(x.numpy().tobytes(), list(y)) for x, y in loader]
    expected = [(gen[i][0].tobytes(), list(gen[i][1])) for i in range(len(gen))]
    assert got == expected

@pytest.mark.parametrize("persistent", [False, True])
def test_epochs_reach_dataloader_workers_through_the_sampler(gen, persistent):
    torch = pytest.importorskip("torch")
    loader = torch.utils.data.DataLoader(gen, batch_size=None, sampler=gen.sampler(), num_workers=2,
                                         persistent_workers=persistent)
    epochs = []
    for epoch in range(2):
        gen.set_epoch(epoch)
        epochs.append([list(y) for _, y in loader])
    gen.set_epoch(0)
    for epoch, got in enumerate(epochs):
        assert got == [list(gen[(epoch, i)][1]) for i in range(len(gen))]
    assert epochs[0] != epochs[1]  # fresh batches in the second epoch, persistent workers or not
    pair = gen[(1, 3)][0].tobytes()
    gen.set_epoch(1)
    assert gen[3][0].tobytes() == pair
    gen.set_epoch(0)


def test_set_epoch_takes_an_int_at_least_zero(gen):
    with pytest.raises(TypeError, match="^epoch: expected an int >= 0, got '1'$"):
        gen.set_epoch("1")
    with pytest.raises(ValueError, match="^epoch: expected an int >= 0, got -1$"):
        gen.set_epoch(-1)
    gen.set_epoch(np.int64(2))
    assert gen.epoch == 2 and type(gen.epoch) is int
    gen.set_epoch(0)


def test_epoch_index_pairs_are_checked(gen):
    with pytest.raises(ValueError, match="index: expected \\(epoch, index\\) with an int epoch >= 0, got epoch -1"):
        gen[(-1, 0)]
    for epoch in (1.0, "1", True, None):  # a wrong type is a TypeError, as for set_epoch and plain indices
        with pytest.raises(TypeError, match=f"index: expected \\(epoch, index\\) with an int epoch >= 0, got epoch {epoch!r}"):
            gen[(epoch, 0)]
    with pytest.raises(IndexError, match="got 12"):
        gen[(0, 12)]
