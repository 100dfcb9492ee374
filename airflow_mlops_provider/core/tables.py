"""Reading and writing tabular files (CSV, optionally compressed, and Parquet); errors name the file."""

from __future__ import annotations

import os
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

from airflow_mlops_provider.core.optional import require
from airflow_mlops_provider.exceptions import DataFileError

if TYPE_CHECKING:
    import pandas as pd

FILE_FORMATS = ("csv", "parquet")
_FORMAT_SUFFIXES = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
_COMPRESSION_SUFFIXES = {".gz": "gzip", ".bz2": "bz2", ".zip": "zip", ".xz": "xz", ".zst": "zstd"}


def infer_format(path: str | os.PathLike[str], file_format: str | None = None) -> tuple[str, str | None]:
    """``(format, compression)`` for ``path``: from ``file_format`` when given, else its suffix."""
    suffixes = [s.lower() for s in PurePosixPath(str(path)).suffixes]
    compression = _COMPRESSION_SUFFIXES.get(suffixes[-1]) if suffixes else None
    if file_format:
        fmt = str(file_format).lower().lstrip(".")
        if fmt not in FILE_FORMATS:
            raise DataFileError(f"file_format {file_format!r} for {str(path)!r} is not supported; use one "
                                f"of {list(FILE_FORMATS)}", path=str(path), file_format=str(file_format))
        return fmt, compression if fmt == "csv" else None
    base = suffixes[-2] if compression and len(suffixes) > 1 else (suffixes[-1] if suffixes else "")
    fmt = _FORMAT_SUFFIXES.get(base)
    if fmt is None or (compression and fmt != "csv"):
        raise DataFileError(f"Cannot infer the file format of {str(path)!r} from its suffix; name it "
                            f"*.csv, *.csv.gz or *.parquet, or pass file_format (one of {list(FILE_FORMATS)})",
                            path=str(path))
    return fmt, compression


def read_frame(source: Any, file_format: str, *, name: str, compression: str | None = None) -> pd.DataFrame:
    """Read a CSV or Parquet file (path or binary file object); errors name the file."""
    pd = require("pandas")
    try:
        if file_format == "csv":
            # pandas renames a repeated header ("amount" -> "amount.1"): read the raw header first.
            header = pd.read_csv(source, compression=compression, header=None, nrows=1, dtype=str)
            # Blank header cells become "Unnamed: <i>" in pandas: only named columns can repeat.
            check_unique_columns([str(c) for c in header.iloc[0].tolist() if isinstance(c, str) and c.strip()]
                                 if len(header) else [], name)
            if hasattr(source, "seek"):
                source.seek(0)
            return pd.read_csv(source, compression=compression)
        require("pyarrow")
        import pyarrow.parquet as pq

        if not (isinstance(source, (str, os.PathLike)) and os.path.isdir(source)):  # a dataset folder: per file
            check_unique_columns(pq.read_schema(source).names, name)
        if hasattr(source, "seek"):
            source.seek(0)
        return pd.read_parquet(source)
    except DataFileError:
        raise
    except FileNotFoundError as err:
        raise FileNotFoundError(f"Data file {name!r} does not exist") from err
    except Exception as err:  # parsers raise many unrelated types for a bad file
        raise DataFileError(f"Cannot read {name!r} as {file_format}: {type(err).__name__}: "
                            f"{str(err).strip()[:300]}", path=name, file_format=file_format) from err


def check_unique_columns(names: list[str], name: str) -> None:
    """Refuse a file whose header repeats a column name: which one is the data?"""
    seen: set[str] = set()
    repeated = [c for c in names if c in seen or seen.add(c)]
    if repeated:
        raise DataFileError(f"{name!r} has duplicate column names {sorted(set(repeated))}; every column "
                            "must be named once", path=name, columns=sorted(set(repeated)))


def frame_to_bytes(df: pd.DataFrame, file_format: str, *, compression: str | None = None) -> bytes:
    """Serialize ``df`` (without its index) as CSV or Parquet bytes."""
    import io

    buffer = io.BytesIO()
    if file_format == "csv":
        df.to_csv(buffer, index=False, compression={"method": compression} if compression else None)
    elif file_format == "parquet":
        require("pyarrow")
        df.to_parquet(buffer, index=False)
    else:
        raise ValueError(f"Unknown file format {file_format!r}")
    return buffer.getvalue()



def read_table(path: str | os.PathLike[str], file_format: str | None = None) -> pd.DataFrame:
    """Read a local CSV/Parquet file, format from ``file_format`` or the suffix."""
    fmt, compression = infer_format(path, file_format)
    return read_frame(str(path), fmt, name=str(path), compression=compression)
