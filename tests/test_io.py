"""Files: atomic, never overwritten, written where hard links are refused."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from seqgen import generate_numbers_sequence
from seqgen.io import write_new_file


def test_concurrent_writers_of_one_name_keep_every_file(tmp_path):
    payloads = [bytes([k]) * 5000 for k in range(8)]
    with ThreadPoolExecutor(8) as pool:
        paths = list(pool.map(lambda p: write_new_file(tmp_path, "0123", ".png", p), payloads))
    assert sorted(p.name for p in paths) == ["0123.png"] + [f"0123_{k}.png" for k in range(1, 8)]
    assert sorted(p.read_bytes() for p in paths) == payloads
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in paths)  # no temporaries left


def test_files_are_written_where_there_are_no_hard_links(train_digits, tmp_path, monkeypatch):
    def no_links(src, dst):
        raise PermissionError(1, "Operation not permitted", src)

    monkeypatch.setattr("seqgen.io.os.link", no_links)
    for _ in range(2):
        generate_numbers_sequence("42", 60, source=train_digits, seed=0, output_path=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["42.png", "42_1.png"]
    assert (tmp_path / "42.png").read_bytes() == (tmp_path / "42_1.png").read_bytes()
