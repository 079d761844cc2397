"""The notebooks are committed executed, and every figure they or the reports name exists."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
FIGURES = ROOT / "reports" / "figures"


def code_cells(path: Path) -> list[dict]:
    return [c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]


def test_the_five_numbered_notebooks_exist():
    assert [p.stem for p in NOTEBOOKS] == ["01_data", "02_generation", "03_augmentation", "04_baseline_recognizer",
                                           "05_sequence_model"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_committed_executed_with_checked_cells(path):
    cells = code_cells(path)
    assert all(c["execution_count"] is not None for c in cells if "".join(c["source"]).strip())
    assert any("# NBVAL_CHECK_OUTPUT" in "".join(c["source"]) for c in cells)
    for cell in cells:
        assert not any(o.get("output_type") == "error" for o in cell.get("outputs", []))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_figure_a_notebook_saves_exists(path):
    names = re.findall(r'plots\.save\(fig, "([\w-]+)"\)', "".join("".join(c["source"]) for c in code_cells(path)))
    assert names and all(name.startswith(path.stem[:2] + "_") for name in names)
    missing = [n for n in names if not (FIGURES / f"{n}.png").is_file()]
    assert not missing


@pytest.mark.parametrize("doc", ["README.md", "reports/README.md"])
def test_every_figure_a_report_embeds_exists(doc):
    text = (ROOT / doc).read_text()
    linked = re.findall(r"figures/([\w-]+\.png)", text)
    assert linked and all((FIGURES / name).is_file() for name in linked)
