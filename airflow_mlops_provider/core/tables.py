"""Reading tabular files (CSV, Parquet) with errors that name the file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

FORMATS = ("csv", "parquet")


def infer_format(path: str | Path, file_format: str | None = None) -> str:
    if file_format:
        if file_format not in FORMATS:
            raise ValueError(f"file_format must be one of {FORMATS}, got {file_format!r}")
        return file_format
    suffix = Path(str(path)).suffix.lower().lstrip(".")
    fmt = {"csv": "csv", "parquet": "parquet", "pq": "parquet"}.get(suffix)
    if fmt is None:
        raise ValueError(f"cannot infer the format of {str(path)!r} from its suffix; "
                         f"pass file_format as one of {FORMATS}")
    return fmt


def read_table(path: str | Path, file_format: str | None = None) -> Any:
    """Read a local CSV/Parquet file into pandas; FileNotFoundError / ValueError name the file."""
    import pandas as pd

    fmt = infer_format(path, file_format)
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"data file {str(path)!r} does not exist")
    try:
        return pd.read_parquet(path) if fmt == "parquet" else pd.read_csv(path)
    except Exception as err:
        raise ValueError(f"cannot read {str(path)!r} as {fmt}: {err}") from err
