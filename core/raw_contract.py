"""The raw data contract: the three input tables, their columns and types, and the folder loader.

`read_raw_dir` checks every file (size, form, values); `replace_raw_tables` swaps all raw tables in at once.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from core.settings import RAW_SCHEMA

if TYPE_CHECKING:  # pandas is imported lazily: Definitions load without it
    import pandas as pd

    from core.warehouse import FrameChunks


@dataclass(frozen=True)
class Column:
    name: str
    kind: str  # date | timestamp | integer | number | text | id
    required: bool = True  # nulls are rejected at load time
    # The column may be absent from a file: it is then loaded as all-null, so the raw table keeps one
    # shape. An optional column is never required (a column that may be missing may also be empty).
    optional: bool = False

    def __post_init__(self) -> None:
        if self.optional and self.required:
            raise ValueError(f"raw column {self.name}: an optional column cannot be required")


@dataclass(frozen=True)
class RawTable:
    name: str
    description: str
    columns: tuple[Column, ...]
    # At most one row per value of these columns (the dbt source tests declare the same keys).
    unique_key: tuple[str, ...] = ()

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def mandatory_column_names(self) -> list[str]:
        """The columns every file must have (the others may be absent and are then all null)."""
        return [c.name for c in self.columns if not c.optional]


RAW_TABLES: dict[str, RawTable] = {
    t.name: t
    for t in (
        RawTable(
            "ad_performance_daily",
            "Platform-reported delivery and results, one row per campaign and day.",
            (
                Column("date", "date"),
                Column("channel", "text"),
                Column("campaign_id", "id"),
                Column("campaign_name", "text", required=False, optional=True),
                Column("impressions", "integer"),
                Column("reach", "integer", required=False, optional=True),
                Column("clicks", "integer"),
                Column("spend", "number"),
                Column("conversions", "number", required=False, optional=True),
                Column("revenue", "number", required=False, optional=True),
            ),
            # A campaign is (channel, campaign_id): ad platforms number campaigns independently.
            unique_key=("date", "channel", "campaign_id"),
        ),
        RawTable(
            "touchpoints",
            "Tracked marketing touches of identified users (UTC timestamps).",
            (
                Column("touchpoint_id", "id"),
                Column("user_id", "id"),
                Column("occurred_at", "timestamp"),
                Column("channel", "text"),
                Column("campaign_id", "id", required=False, optional=True),
                Column("interaction", "text", required=False, optional=True),
            ),
        ),
        RawTable(
            "conversions",
            "The business's own sales, organic ones included (UTC timestamps).",
            (
                Column("conversion_id", "id"),
                Column("user_id", "id"),
                Column("occurred_at", "timestamp"),
                Column("revenue", "number"),
            ),
        ),
    )
}

# No spend, revenue or count of one raw row is beyond this (in absolute value): a larger one is a unit
# or export error, and float64 holds every whole number up to it exactly. The dbt test
# `finite_and_plausible` on the marts uses the same limit (a test compares them).
PLAUSIBLE_LIMIT = 1e12
# Cells read as missing in CSV files. 'nan'/'inf' are not among them: in a number column they are
# rejected as non-finite values instead of silently becoming empty.
MISSING_MARKERS = ("", "NA", "N/A", "n/a", "#N/A", "NULL", "null", "None", "<NA>")
_NAN_SPELLINGS = ("nan", "+nan", "-nan")
# Floats hold every whole number below 2**53 exactly; an id stored as a larger float has lost digits.
_EXACT_FLOAT_IDS = 2**53

MAX_ROWS_ENV = "SPENDWISE_MAX_ROWS_PER_FILE"
MAX_BYTES_ENV = "SPENDWISE_MAX_FILE_BYTES"
DEFAULT_MAX_ROWS_PER_FILE = 50_000_000
DEFAULT_MAX_FILE_BYTES = 8_000_000_000


@dataclass
class RawDataError(ValueError):
    """Every problem found in a folder of raw files, each naming the file, column and bad row count."""

    problems: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return "raw data rejected, nothing was loaded:\n" + "\n".join(f"  - {p}" for p in self.problems)


@dataclass(frozen=True)
class FileLimits:
    """Files beyond these are refused before they are read: a small compressed file can expand enormously."""

    max_rows: int = DEFAULT_MAX_ROWS_PER_FILE
    max_bytes: int = DEFAULT_MAX_FILE_BYTES  # uncompressed: CSV text, or Parquet pages before compression

    @classmethod
    def from_env(cls) -> FileLimits:
        values = {}
        for attr, env, default in (
            ("max_rows", MAX_ROWS_ENV, DEFAULT_MAX_ROWS_PER_FILE),
            ("max_bytes", MAX_BYTES_ENV, DEFAULT_MAX_FILE_BYTES),
        ):
            text = os.environ.get(env, "").strip().replace("_", "")
            try:
                values[attr] = int(text) if text else default
            except ValueError:
                raise RawDataError([f"{env}={os.environ[env]!r} is not a whole number"]) from None
            if values[attr] < 1:
                raise RawDataError([f"{env}={os.environ[env]!r} must be at least 1"])
        return cls(**values)


# ------------------------------------------------------------------------------------------- messages


@dataclass(frozen=True)
class _BadRows:
    """Rows of one column that break one rule; the examples' positions are resolved per file type."""

    column: str
    count: int
    what: str
    examples: tuple[tuple[int, object], ...]  # (0-based data row, value as read)


Locator = Callable[[Iterable[int]], dict[int, str]]


def _row_labels(rows: Iterable[int]) -> dict[int, str]:
    return {i: f"row {i + 1}" for i in rows}


def _plain(value: object) -> str:
    """A value as the user wrote it: 'inf' for text from a CSV, 12.5 (not np.float64(12.5)) for numbers."""
    if isinstance(value, str):
        return repr(value)
    if hasattr(value, "item"):  # numpy scalars
        value = value.item()
    if isinstance(value, (bool, int, float)):
        return repr(value)
    return str(value)


def _bad_rows(column: str, mask: pd.Series, values: pd.Series, what: str) -> _BadRows:
    first = mask.to_numpy().nonzero()[0][:3]
    return _BadRows(column, int(mask.sum()), what, tuple((int(i), values.iloc[i]) for i in first))


def _format(source: str, problems: list[str | _BadRows], locate: Locator) -> list[str]:
    wanted = {i for p in problems if isinstance(p, _BadRows) for i, _ in p.examples}
    labels = locate(wanted) if wanted else {}
    out = []
    for p in problems:
        if isinstance(p, str):
            out.append(p)
            continue
        examples = ", ".join(f"{labels.get(i, f'row {i + 1}')}: {_plain(v)}" for i, v in p.examples)
        out.append(f"{source}: column {p.column!r}: {p.count} row(s) {p.what} ({examples})")
    return out


# ------------------------------------------------------------------------------------------- columns


def _blank(series: pd.Series) -> pd.Series:
    """Missing cells: nulls, and text that is empty or only whitespace."""
    import pandas as pd

    missing = series.isna()
    if series.dtype == object:
        blank = series.map(lambda v: isinstance(v, str) and not v.strip(), na_action="ignore")
        missing |= blank.fillna(False).astype(bool)
    elif pd.api.types.is_string_dtype(series.dtype):
        missing |= series.str.strip().eq("").fillna(False).astype(bool)
    return missing


def _ids(series: pd.Series, col: Column, problems: list) -> pd.Series:
    """Ids as text, exactly as written (only surrounding whitespace dropped): '0123' stays '0123'.

    Integer columns (Parquet, DataFrames) are written in full digits; floats only when they are exact
    whole numbers, since a float id beyond 2**53 has already lost digits.
    """
    import pandas as pd
    import pyarrow as pa

    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype):
        out = series.astype("str")
    elif pd.api.types.is_integer_dtype(dtype):
        out = _arrow_text(pa.array(series).cast(pa.string()), series.index)
    elif pd.api.types.is_float_dtype(dtype):
        present = series.notna()
        inexact = present & ((series != series.round()) | (series.abs() >= _EXACT_FLOAT_IDS))
        if inexact.any():
            problems.append(_bad_rows(
                col.name, inexact, series,
                "are floating-point numbers that cannot be exact ids (not whole, or beyond 2**53 where digits "
                "are lost): store ids as text or integers",
            ))
        whole = series.where(present & ~inexact).astype("Int64")
        out = _arrow_text(pa.array(whole).cast(pa.string()), series.index)
    elif pd.api.types.is_string_dtype(dtype) and dtype != object:
        out = series.str.strip()
    else:  # object: mixed Python values from a DataFrame
        out = series.map(_id_text, na_action="ignore").astype("str")
    return out.where(out.notna() & (out != ""))


def _arrow_text(array, index) -> pd.Series:
    """An Arrow string array as pandas' `str` column, without a round trip through Python objects."""
    import numpy as np
    import pandas as pd

    return pd.Series(array, dtype=pd.StringDtype("pyarrow", na_value=np.nan), index=index)


def _id_text(value: object) -> str:
    if hasattr(value, "item") and not isinstance(value, str):
        value = value.item()
    if isinstance(value, float) and value.is_integer() and abs(value) < _EXACT_FLOAT_IDS:
        return str(int(value))
    return str(value).strip()


def _numbers(series: pd.Series, col: Column, missing: pd.Series, problems: list) -> pd.Series:
    """Finite numbers within ±PLAUSIBLE_LIMIT; whole ones for counts (exact in float64 below the limit)."""
    import numpy as np
    import pandas as pd

    if pd.api.types.is_numeric_dtype(series.dtype) and not pd.api.types.is_bool_dtype(series.dtype):
        values = series.astype("float64")
        spelled_nan = pd.Series(False, index=series.index)
    else:
        text = series.astype("str").str.strip()
        values = pd.to_numeric(text, errors="coerce").astype("float64")
        spelled_nan = text.str.lower().isin(_NAN_SPELLINGS).fillna(False).astype(bool)
    not_number = values.isna() & ~missing & ~spelled_nan
    not_finite = pd.Series(np.isinf(values.to_numpy()), index=series.index) | spelled_nan
    implausible = values.abs().gt(PLAUSIBLE_LIMIT) & ~not_finite
    for mask, what in (
        (not_number, "are not numbers"),
        (not_finite, "are not finite numbers"),
        (implausible, f"are beyond ±{PLAUSIBLE_LIMIT:,.0f} (not plausible for one row)"),
    ):
        if mask.any():
            problems.append(_bad_rows(col.name, mask, series, what))
    if col.kind == "integer":
        fractional = values.notna() & ~not_finite & ~implausible & (values != values.round())
        if fractional.any():
            problems.append(_bad_rows(col.name, fractional, series, "are not whole numbers"))
        if not values.isna().any() and not (not_finite | implausible | fractional).any():
            return values.astype("int64")
    return values


def _typed_column(series: pd.Series, col: Column, problems: list) -> pd.Series:
    import pandas as pd

    missing = _blank(series)
    if col.kind in ("integer", "number"):
        out = _numbers(series, col, missing, problems)
    elif col.kind == "id":
        out = _ids(series, col, problems)
    elif col.kind in ("date", "timestamp"):
        parsed = pd.to_datetime(series.where(~missing), errors="coerce", utc=True, format="mixed").dt.tz_localize(None)
        out = parsed.dt.normalize() if col.kind == "date" else parsed
        what = (
            "are not dates (YYYY-MM-DD)" if col.kind == "date"
            else "are not timestamps (ISO 8601, UTC assumed without offset)"
        )
        bad = out.isna() & ~missing
        if bad.any():
            problems.append(_bad_rows(col.name, bad, series, what))
    else:
        out = series.astype("str").where(~missing)
    if col.kind in ("id", "text"):
        nul = out.str.contains("\x00", regex=False).fillna(False).astype(bool)
        if nul.any():  # PostgreSQL's text cannot hold it, and no id or name needs it
            problems.append(_bad_rows(col.name, nul, series, "contain a NUL character"))
    if col.required and missing.any():
        problems.append(_bad_rows(col.name, missing, series, "are empty (required column)"))
    return out


def _absent_column(col: Column, rows: int) -> pd.Series:
    """An optional column the file does not have: all null, typed as a present column with gaps would be."""
    import numpy as np
    import pandas as pd

    if col.kind in ("integer", "number"):
        return pd.Series(np.full(rows, np.nan), dtype="float64")
    if col.kind in ("date", "timestamp"):
        return pd.Series(pd.NaT, index=range(rows), dtype="datetime64[ns]")
    return pd.Series(np.nan, index=range(rows), dtype=pd.StringDtype("pyarrow", na_value=np.nan))


def validate_raw_frame(
    table: str, df: pd.DataFrame, source: str | None = None, locate: Locator | None = None
) -> pd.DataFrame:
    """Check one raw table against the contract and return it typed, with only the contract columns.

    Raises `RawDataError` naming the file (`source`), column, number of bad rows, the rule and the
    first bad values with their position (`locate` turns data rows into file lines; default `row N`).
    """
    import pandas as pd

    contract = RAW_TABLES[table]
    source = source or table
    missing_cols = [c for c in contract.mandatory_column_names if c not in df.columns]
    if missing_cols:
        optional = [c.name for c in contract.columns if c.optional]
        raise RawDataError([
            f"{source}: missing column(s) {missing_cols}; required are {contract.mandatory_column_names}"
            + (f" (these may be absent: {optional})" if optional else "") + f", found {list(df.columns)}"
        ])
    if df.empty:
        raise RawDataError([f"{source}: has no rows"])
    problems: list[str | _BadRows] = []
    typed = pd.DataFrame({
        c.name: _typed_column(df[c.name].reset_index(drop=True), c, problems) if c.name in df.columns
        else _absent_column(c, len(df))
        for c in contract.columns
    })
    if problems:
        raise RawDataError(_format(source, problems, locate or _row_labels))
    return typed


def repeated_keys(table: str, typed: pd.DataFrame, source: str | None = None,
                  locate: Locator | None = None) -> list[str]:
    """Rows that share the table's unique key (the dbt source test's rule, checked before loading)."""
    key = list(RAW_TABLES[table].unique_key)
    if not key or typed.empty:
        return []
    repeated = typed.duplicated(key, keep=False).to_numpy()
    if not repeated.any():
        return []
    first = repeated.nonzero()[0][:3].tolist()
    labels = (locate or _row_labels)(first)
    where = ", ".join(labels.get(i, f"row {i + 1}") for i in first)
    groups = len(typed[repeated].drop_duplicates(key))
    return [
        f"{source or table}: {groups} ({', '.join(key)}) combination(s) appear on more than one row ({where}); "
        f"each campaign (channel, campaign_id) may have one row per day: aggregate the export by date, channel "
        f"and campaign (sum spend, impressions, clicks, conversions, revenue)"
    ]


# ------------------------------------------------------------------------------------------- files

_SUFFIXES = (".parquet", ".csv", ".csv.gz")


def _open_csv_text(path: Path):
    opener = gzip.open if path.name.endswith(".gz") else open
    return opener(path, "rt", encoding="utf-8-sig", newline="")


def _csv_records(path: Path) -> Iterator[tuple[int, list[str]]]:
    """(first line, fields) of every record, lines numbered as a text editor does (header = line 1)."""
    previous_limit = csv.field_size_limit(2**31 - 1)
    try:
        with _open_csv_text(path) as fh:
            reader = csv.reader(fh)
            end = 0
            for record in reader:
                start, end = end + 1, reader.line_num
                yield start, record
    finally:
        csv.field_size_limit(previous_limit)


def _is_blank(record: list[str]) -> bool:
    return not record or (len(record) == 1 and not record[0].strip())


def _csv_line_labels(path: Path, width: int) -> Locator:
    """Data rows -> `line N`. Counts records as the reader keeps them: blank lines and records without
    the header's `width` fields are not rows, a quoted field may span lines. Runs only for a rejected
    file, and reads no further than the last row it must place.
    """

    def locate(rows: Iterable[int]) -> dict[int, str]:
        wanted = sorted(set(rows))
        labels: dict[int, str] = {}
        row = -2  # the header is not a data row
        try:
            with contextlib.closing(_csv_records(path)) as records:
                for start, record in records:
                    if _is_blank(record) or (row >= -1 and len(record) != width):
                        continue
                    row += 1
                    if row == wanted[len(labels)]:
                        labels[row] = f"line {start}"
                        if len(labels) == len(wanted):
                            break
        except (csv.Error, OSError, UnicodeDecodeError):
            pass  # rows not placed fall back to `row N`
        return labels

    return locate


def _csv_header(path: Path) -> list[str]:
    with contextlib.closing(_csv_records(path)) as records:
        return next((record for _, record in records if not _is_blank(record)), [])


def _malformed_lines(path: Path, width: int, count: int) -> str:
    lines = []
    try:
        with contextlib.closing(_csv_records(path)) as records:
            header_seen = False
            for start, record in records:
                if _is_blank(record):
                    continue
                if header_seen and len(record) != width:
                    lines.append(f"line {start}: {len(record)} field(s)")
                    if len(lines) == 3:
                        break
                header_seen = True
    except (csv.Error, OSError, UnicodeDecodeError):
        pass
    return f"{path.name}: {count} line(s) do not have the header's {width} fields ({', '.join(lines)})"


def _too_large(path: Path, limits: FileLimits) -> str | None:
    """Why `path` must not be read into memory, judged from Parquet metadata or by streaming the CSV."""
    how = (
        f"Split the file, or raise the limit with {MAX_ROWS_ENV}=N / {MAX_BYTES_ENV}=N "
        f"(now {limits.max_rows:,} rows, {limits.max_bytes:,} bytes)"
    )
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        meta = pq.ParquetFile(path).metadata  # the footer only: no row is read
        expanded = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
        if meta.num_rows > limits.max_rows:
            return (f"{path.name}: refused before reading: {meta.num_rows:,} rows (Parquet metadata) "
                    f"exceed the limit of {limits.max_rows:,} rows per file. {how}")
        if expanded > limits.max_bytes:
            return (f"{path.name}: refused before reading: {expanded:,} bytes uncompressed (Parquet metadata) "
                    f"exceed the limit of {limits.max_bytes:,} bytes per file. {how}")
        return None
    if not path.name.endswith(".gz"):
        size = path.stat().st_size
        if size > limits.max_bytes:
            return (f"{path.name}: refused before reading: {size:,} bytes exceed the limit of "
                    f"{limits.max_bytes:,} bytes per file. {how}")
        if size <= limits.max_rows:
            return None  # every row takes at least one byte: cannot have too many rows
    lines = size = 0
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            lines += chunk.count(b"\n")
            size += len(chunk)
            if lines - 1 > limits.max_rows:
                return (f"{path.name}: refused before reading: more than {limits.max_rows:,} rows "
                        f"(counted {lines:,} lines so far) exceed the limit per file. {how}")
            if size > limits.max_bytes:
                return (f"{path.name}: refused before reading: more than {limits.max_bytes:,} bytes of CSV text "
                        f"exceed the limit per file. {how}")
    return None


def _read_file(path: Path, table: str) -> tuple[pd.DataFrame, Locator, list[str]]:
    """The contract's columns of one file, untyped, how to place its rows, and problems of form.

    CSV cells are read as text (Arrow's CSV reader, multi-threaded), so that ids and numbers stay as
    written and are judged by the contract, not by type inference.
    """
    contract = RAW_TABLES[table]
    return read_columns(path, contract.mandatory_column_names, contract.column_names)


def read_columns(
    path: Path, mandatory: list[str], columns: list[str]
) -> tuple[pd.DataFrame, Locator, list[str]]:
    """`columns` of one CSV or Parquet file as `_read_file` reads a table's (the absent ones left out);
    without every `mandatory` column, nothing is read and the frame has only the file's column names."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.csv as pacsv

    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        names = pq.read_schema(path).names
        if any(c not in names for c in mandatory):
            return pd.DataFrame(columns=names), _row_labels, []  # nothing read: validation names the missing columns
        # Absent optional columns are not read; validation adds them as all-null columns.
        return pd.read_parquet(path, columns=[c for c in columns if c in names]), _row_labels, []
    names = _csv_header(path)
    if any(c not in names for c in mandatory):
        return pd.DataFrame(columns=names), _row_labels, []
    wanted = [c for c in columns if c in names]
    malformed: list[str] = []

    def on_invalid_row(row) -> str:
        if row.text.strip():
            malformed.append(row.text)
        return "skip"  # whitespace-only lines are skipped, as blank ones are

    table_ = pacsv.read_csv(
        path,
        parse_options=pacsv.ParseOptions(newlines_in_values=True, invalid_row_handler=on_invalid_row),
        convert_options=pacsv.ConvertOptions(
            include_columns=wanted, column_types={c: pa.string() for c in wanted},
            null_values=list(MISSING_MARKERS), strings_can_be_null=True,
        ),
    )
    problems = [_malformed_lines(path, len(names), len(malformed))] if malformed else []
    return table_.to_pandas(), _csv_line_labels(path, len(names)), problems


def _find_files(folder: Path, table: str) -> list[Path]:
    return [folder / f"{table}{suffix}" for suffix in _SUFFIXES if (folder / f"{table}{suffix}").exists()]


@dataclass
class RawFolder:
    """What `scan_raw_dir` found: the valid tables, the file each came from, and every problem."""

    frames: dict[str, pd.DataFrame] = field(default_factory=dict)
    sources: dict[str, Path] = field(default_factory=dict)  # table -> the file it was read from
    problems: list[str] = field(default_factory=list)


def read_raw_dir(folder: str | Path, *, channels: bool = False) -> dict[str, pd.DataFrame]:
    """Read and validate `<table>.csv|.csv.gz|.parquet` for every raw table in `folder`; with
    `channels`, also the optional files: `channels.csv` (as `channel_metadata` and `channel_aliases`)
    and `events.csv` (as `calendar_events`, see `core.calendar_file`), each empty without its file. The ad export may instead be `ad_reporting__campaign_report.csv|.csv.gz|.parquet`
    (see `core.ad_reporting`).

    Every file is checked (size, columns, values) before the error lists all problems at once.
    """
    scanned = scan_raw_dir(folder, channels=channels)
    if scanned.problems:
        raise RawDataError(scanned.problems)
    return scanned.frames


def scan_raw_dir(folder: str | Path, *, channels: bool = False) -> RawFolder:
    """`read_raw_dir` without raising: the tables that passed, and every problem (`spendwise load --check`)."""
    from core import ad_reporting  # it builds on this module's readers

    folder = Path(folder)
    if not folder.is_dir():
        return RawFolder(problems=[f"{folder}: is not a folder"])
    try:
        limits = FileLimits.from_env()
    except RawDataError as exc:
        return RawFolder(problems=exc.problems)
    found = RawFolder()
    frames, problems = found.frames, found.problems
    for table in RAW_TABLES:
        paths = _find_files(folder, table)
        if table == ad_reporting.RAW_TABLE:
            paths += ad_reporting.find_campaign_reports(folder)
        if not paths:
            other = f" (or {ad_reporting.REPORT}.csv / .parquet)" if table == ad_reporting.RAW_TABLE else ""
            problems.append(f"{folder}: no {table}.csv or {table}.parquet{other}")
            continue
        if len(paths) > 1:
            names = " and ".join(p.name for p in paths)
            problems.append(f"{folder}: {names} are both there for table {table}: keep exactly one of them")
            continue
        path = paths[0]
        found.sources[table] = path
        try:
            if reason := _too_large(path, limits):
                problems.append(reason)
                continue
            if ad_reporting.is_campaign_report(path):
                frames[table] = ad_reporting.read_campaign_report(path)
                continue
            df, locate, form_problems = _read_file(path, table)
            problems.extend(form_problems)
            frames[table] = validate_raw_frame(table, df, source=path.name, locate=locate)
            problems.extend(repeated_keys(table, frames[table], source=path.name, locate=locate))
        except RawDataError as exc:
            problems.extend(exc.problems)
        except Exception as exc:  # unreadable file: report it with the others
            problems.append(f"{path.name}: cannot be read: {exc}")
    channels_csv = folder / CHANNELS_FILE
    if channels and channels_csv.exists():
        found.sources.update(dict.fromkeys(CHANNEL_TABLES, channels_csv))
        try:
            frames.update(read_channels_csv(channels_csv))
        except RawDataError as exc:
            problems.extend(exc.problems)
    elif channels:
        frames.update(channel_tables())
    if channels:  # the other optional file: the promotions and events calendar
        from core.calendar_file import CALENDAR_FILE, CALENDAR_TABLE, calendar_table, read_calendar_csv

        events_csv = folder / CALENDAR_FILE
        if events_csv.exists():
            found.sources[CALENDAR_TABLE] = events_csv
            try:
                frames.update(read_calendar_csv(events_csv))
            except RawDataError as exc:
                problems.extend(exc.problems)
        else:
            frames[CALENDAR_TABLE] = calendar_table()
    return found


# ------------------------------------------------------------------------------------------- channels

# Optional metadata the user supplies with the data: `channels.csv` in the load folder. Channels are
# those present in the ad export and the touchpoints; this file only names their group, whether they
# are paid, and the other names (aliases) under which the same channel appears in either file.
CHANNELS_FILE = "channels.csv"
CHANNEL_COLUMNS = ("channel", "channel_group", "is_paid", "description", "aliases")
CHANNEL_TABLES: dict[str, str] = {
    "channel_metadata": "Channel group, paid or not and description per channel (channels.csv; empty without it).",
    "channel_aliases": "Other names of a channel in the ad export or the touchpoints (channels.csv; empty without it).",
}
_TRUE = ("true", "t", "yes", "y", "1")
_FALSE = ("false", "f", "no", "n", "0")


def channel_name(value: object) -> str:
    """A channel as the pipeline compares it: trimmed and lower-cased (the staging models do the same)."""
    return str(value).strip().lower()


def channel_tables(records: Iterable[Mapping[str, object]] = ()) -> dict[str, pd.DataFrame]:
    """`channel_metadata` and `channel_aliases` from channels.csv-like records (none: both empty).

    Records are dicts with `channel` and optionally `channel_group`, `is_paid` (bool or None),
    `description` and `aliases` (a list of names). Raises `RawDataError` on a channel listed twice or
    an alias that would map to two channels.
    """
    return _channel_frames([(None, dict(r)) for r in records], CHANNELS_FILE)


def _channel_frames(rows: list[tuple[int | None, dict]], source: str) -> dict[str, pd.DataFrame]:
    import pandas as pd

    problems: list[str] = []
    where = lambda line: f"line {line}" if line is not None else "a record"  # noqa: E731
    owner: dict[str, tuple[str, int | None]] = {}  # every name (channel or alias) -> its channel, line
    metadata, aliases = [], []
    for line, row in rows:
        channel = channel_name(row.get("channel") or "")
        if not channel:
            problems.append(f"{source}: {where(line)}: 'channel' is empty")
            continue
        if channel in owner and owner[channel][0] == channel:
            problems.append(f"{source}: {where(line)}: channel {channel!r} is listed twice "
                            f"(first on {where(owner[channel][1])}): keep one line per channel")
            continue
        names = [channel_name(a) for a in (row.get("aliases") or []) if channel_name(a)]
        for name in dict.fromkeys([channel, *names]):
            if name in owner and owner[name][0] != channel:
                other, other_line = owner[name]
                problems.append(
                    f"{source}: {where(line)}: {name!r} would map to channel {channel!r} and to channel "
                    f"{other!r} ({where(other_line)}): a name can belong to one channel only"
                )
                continue
            owner[name] = (channel, line)
            if name != channel:
                aliases.append((name, channel))
        metadata.append((channel, row.get("channel_group"), row.get("is_paid"), row.get("description")))
    if problems:
        raise RawDataError(problems)
    text = pd.StringDtype("pyarrow", na_value=float("nan"))
    meta = pd.DataFrame(metadata, columns=["channel", "channel_group", "is_paid", "description"])
    return {
        "channel_metadata": pd.DataFrame({
            "channel": meta["channel"].astype(text),
            "channel_group": meta["channel_group"].astype(text),
            "is_paid": meta["is_paid"].astype("boolean"),
            "description": meta["description"].astype(text),
        }),
        "channel_aliases": pd.DataFrame(aliases, columns=["alias", "channel"]).astype(text),
    }


def small_csv_rows(path: Path, columns: tuple[str, ...], key: str) -> list[tuple[int, dict[str, str | None] | str]]:
    """The rows of a small metadata CSV (channels.csv, events.csv) as `(line, {column: text or None})`,
    or `(line, problem)` for a row whose field count differs from the header's. Raises RawDataError
    when the file cannot be read, is empty, or its header has unknown, repeated or no `key` column;
    every problem names the file and line."""
    try:
        records = [(line, r) for line, r in _csv_records(path) if not _is_blank(r)]
    except (csv.Error, OSError, UnicodeDecodeError) as exc:
        raise RawDataError([f"{path.name}: cannot be read: {exc}"]) from None
    if not records:
        raise RawDataError([f"{path.name}: is empty; expected a header with {list(columns)}"])
    header_line, header = records[0][0], [h.strip().lower() for h in records[0][1]]
    problems = []
    unknown = [h for h in header if h not in columns]
    if unknown:
        problems.append(f"{path.name}: line {header_line}: unknown column(s) {unknown}; "
                        f"the columns are {list(columns)} (all but {key!r} may be left out)")
    if key not in header:
        problems.append(f"{path.name}: line {header_line}: no {key!r} column; found {header}")
    repeated = sorted({h for h in header if header.count(h) > 1})
    if repeated:
        problems.append(f"{path.name}: line {header_line}: column(s) {repeated} appear twice")
    if problems:
        raise RawDataError(problems)
    return [
        (line, {h: (v.strip() or None) for h, v in zip(header, record)} if len(record) == len(header)
         else f"{path.name}: line {line}: {len(record)} field(s), the header has {len(header)}")
        for line, record in records[1:]
    ]


def read_channels_csv(path: str | Path) -> dict[str, pd.DataFrame]:
    """Validate channels.csv (columns channel, channel_group, is_paid, description, aliases; aliases
    separated by `|`) and return `channel_metadata` and `channel_aliases`; problems name their line."""
    path = Path(path)
    problems: list[str] = []
    rows: list[tuple[int | None, dict]] = []
    for line, row in small_csv_rows(path, CHANNEL_COLUMNS, "channel"):
        if isinstance(row, str):
            problems.append(row)
            continue
        paid = row.get("is_paid")
        if paid is not None:
            if paid.lower() in _TRUE:
                row["is_paid"] = True
            elif paid.lower() in _FALSE:
                row["is_paid"] = False
            else:
                problems.append(f"{path.name}: line {line}: is_paid {paid!r} is not true/false")
                continue
        row["aliases"] = (row.get("aliases") or "").split("|")
        rows.append((line, row))
    try:
        frames = _channel_frames(rows, path.name)
    except RawDataError as exc:
        problems.extend(exc.problems)
    if problems:
        raise RawDataError(problems)
    return frames


def _validated_chunks(name: str, chunks: FrameChunks) -> FrameChunks:
    """Each chunk checked against the contract as it is loaded (errors name the chunk's first row)."""
    from core.warehouse import FrameChunks

    def validated():
        first = 1
        for chunk in chunks:
            yield validate_raw_frame(name, chunk, source=f"{name} (the chunk from row {first:,})")
            first += len(chunk)
        if first == 1:
            raise RawDataError([f"{name}: has no rows"])

    return FrameChunks(validated())


def replace_raw_tables(
    warehouse,
    frames: Mapping[str, pd.DataFrame | FrameChunks],
    extra: Mapping[str, pd.DataFrame] | None = None,
    drop_ground_truth: bool = False,
):
    """Validate and swap in all raw tables (plus `extra` ones, e.g. ground truth) in one transaction.
    A raw table may come as `core.warehouse.FrameChunks` (the demo's touchpoints at large scales): each
    chunk is validated as it is loaded, and a bad chunk rolls the whole transaction back.

    The channel tables (`channel_metadata`, `channel_aliases`) and `calendar_events` come from
    `frames` when given there (see `read_channels_csv`, `channel_tables`, `core.calendar_file`) and
    are written empty otherwise.

    `drop_ground_truth` removes demo `ground_truth_*` tables in the same transaction, so a user's
    own data is never reported against the demo's truth.
    """
    from core.warehouse import FrameChunks

    missing = [name for name in RAW_TABLES if name not in frames]
    if missing:
        raise RawDataError([f"raw tables {missing} are missing: all of {list(RAW_TABLES)} are replaced together"])
    typed = {
        name: _validated_chunks(name, df) if isinstance(df, FrameChunks) else validate_raw_frame(name, df)
        for name, df in frames.items() if name in RAW_TABLES
    }
    # Always written (empty without channels.csv / events.csv), so the dbt sources exist.
    from core.calendar_file import CALENDAR_TABLE, calendar_table

    optional = {name: frames[name] for name in (*CHANNEL_TABLES, CALENDAR_TABLE) if name in frames}
    typed.update({**channel_tables(), CALENDAR_TABLE: calendar_table(), **optional})
    typed.update(dict(extra or {}))
    drop = []
    if drop_ground_truth:
        existing = warehouse.row_counts(RAW_SCHEMA)
        drop = [name for name in existing if name.startswith("ground_truth_")]
    # Raw tables were refused above when empty; the channel tables may be (no channels.csv).
    published = warehouse.publish_tables(typed, schema=RAW_SCHEMA, stamp=False, drop=drop, allow_empty=True)
    # After the swap: a refresh that read the log before it commits sees the marker next time.
    client = getattr(warehouse, "client", warehouse)  # the Dagster resource or its WarehouseClient
    with client.write_transaction(CHANGES_SCHEMA) as con:
        log_raw_replaced(client, con)
    return published


# ------------------------------------------------------------------------------ log of raw changes
# The incremental dbt models (int_journeys, touchpoint_credit; dbt_project/macros/incremental_journeys.sql)
# recompute only the users whose raw rows changed. Loaders log them here, in their own transaction:
# kind 'rows': a user and a day (touchpoints or conversions) that gained, lost or changed rows;
# kind 'replace': raw data replaced wholesale, so the next dbt run rebuilds everything.

CHANGES_SCHEMA = "ops"
CHANGES_TABLE = "raw_changes"
# Raw tables whose rows make journeys; a change to any other raw table does not touch them.
JOURNEY_TABLES = ("touchpoints", "conversions")


def ensure_changes_table(warehouse, con) -> str:
    """Create ops.raw_changes when missing; returns its quoted name."""
    name = f'"{CHANGES_SCHEMA}"."{CHANGES_TABLE}"'
    warehouse.execute(con, f'CREATE SCHEMA IF NOT EXISTS "{CHANGES_SCHEMA}"')
    warehouse.execute(con, f"CREATE TABLE IF NOT EXISTS {name} (changed_at TIMESTAMP NOT NULL, "
                           "kind VARCHAR NOT NULL, user_id VARCHAR, day DATE)")
    return name


def _now_sql() -> str:
    from datetime import datetime, timezone

    now = datetime.now(timezone.utc).replace(tzinfo=None)
    return f"CAST('{now.strftime('%Y-%m-%d %H:%M:%S.%f')}' AS TIMESTAMP)"


def log_raw_replaced(warehouse, con) -> None:
    """Record, inside the caller's transaction, that raw data was replaced wholesale."""
    name = ensure_changes_table(warehouse, con)
    warehouse.execute(con, f"INSERT INTO {name} (changed_at, kind) VALUES ({_now_sql()}, 'replace')")


def log_raw_rows_changed(warehouse, con, relations: Iterable[str]) -> None:
    """Record, inside the caller's transaction, the distinct (user_id, day of occurred_at) of the
    rows of each relation (SQL names or subqueries with user_id and occurred_at): call it with the
    rows about to be replaced and with the rows coming in."""
    name = ensure_changes_table(warehouse, con)
    now = _now_sql()
    for relation in relations:
        warehouse.execute(con, f"INSERT INTO {name} (changed_at, kind, user_id, day) "
                               f"SELECT DISTINCT {now}, 'rows', CAST(user_id AS VARCHAR), CAST(occurred_at AS DATE) "
                               f"FROM {relation} changed_rows")
