"""Checks of the CSV files that the harness writes, shared by its tests."""

import csv
import math
from pathlib import Path


def read_csv(path: Path, columns: tuple[str, ...]) -> list[dict[str, str]]:
    """
    The rows of a CSV file, after checking its header.

    :param path: The file
    :param columns: The header it must have
    """
    with path.open(newline="") as file:
        reader = csv.DictReader(file)
        assert tuple(reader.fieldnames or ()) == columns
        return list(reader)


def assert_numbers(rows: list[dict[str, str]], columns: tuple[str, ...], optional: tuple[str, ...] = ()) -> None:
    """
    Every cell of ``columns`` is a finite number; those of ``optional`` may also be empty.

    :param rows: The rows, as :func:`read_csv` returns them
    :param columns: The columns to check
    :param optional: Those of ``columns`` that may be empty
    """
    for row in rows:
        for column in columns:
            if column in optional and row[column] == "":
                continue
            assert math.isfinite(float(row[column])), (column, row)
