"""The landing folder: complete drops of raw files are validated, merged into the raw tables and filed.

Dagster-free: the sensor (orchestration/sensors.py) calls `process_drop` for each `complete_drops` entry.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from core import ad_reporting, audit
from core.raw_contract import (
    CHANNEL_TABLES,
    CHANNELS_FILE,
    JOURNEY_TABLES,
    MISSING_MARKERS,
    RAW_TABLES,
    FileLimits,
    RawDataError,
    channel_tables,
    log_raw_replaced,
    log_raw_rows_changed,
    read_channels_csv,
    read_raw_dir,
    validate_raw_frame,
)
from core.calendar_file import CALENDAR_FILE, CALENDAR_TABLE, read_calendar_csv
from core.refresh_lock import RefreshInProgress, RefreshLock, describe_holder
from core.settings import RAW_SCHEMA, WarehouseUrl
from core.warehouse import WarehouseBusy, WarehouseClient, WarehouseLockTimeout

if TYPE_CHECKING:
    import pandas as pd

LANDING_DIR_ENV = "SPENDWISE_LANDING_DIR"
# The producer writes this file last: a drop folder without it is still being written.
READY_MARKER = "_READY"
PROCESSED_DIR = "processed"
REJECTED_DIR = "rejected"
REASON_FILE = "REASON.txt"
# A row of a raw table is the same row when these agree: a later drop replaces it (upsert).
MERGE_KEYS: dict[str, tuple[str, ...]] = {
    "ad_performance_daily": ("date", "channel", "campaign_id"),
    "touchpoints": ("touchpoint_id",),
    "conversions": ("conversion_id",),
}
_SUFFIXES = (".parquet", ".csv", ".csv.gz")
_STAGING = "__spendwise_landing"


def landing_dir_from_env() -> Path | None:
    value = os.environ.get(LANDING_DIR_ENV, "").strip()
    return Path(value) if value else None


def complete_drops(landing: str | Path) -> list[Path]:
    """Sub-folders of `landing` holding the ready marker, oldest first (processed/ and rejected/ excluded)."""
    landing = Path(landing)
    if not landing.is_dir():
        return []
    drops = [
        p for p in landing.iterdir()
        if p.is_dir() and p.name not in (PROCESSED_DIR, REJECTED_DIR) and not p.name.startswith(".")
        and (p / READY_MARKER).is_file()
    ]
    return sorted(drops, key=lambda p: ((p / READY_MARKER).stat().st_mtime, p.name))


# ------------------------------------------------------------------------------------------- reading


def _read_one_file(path: Path, table: str, limits: FileLimits) -> pd.DataFrame:
    """One raw file as text cells (CSV) or as stored (Parquet), sized first, then checked by the contract."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    if path.suffix == ".parquet":
        rows = pq.ParquetFile(path).metadata.num_rows
        if rows > limits.max_rows:
            raise RawDataError([f"{path.name}: refused before reading: {rows:,} rows exceed {limits.max_rows:,}"])
        df = pd.read_parquet(path)
    else:
        if not path.name.endswith(".gz") and path.stat().st_size > limits.max_bytes:
            raise RawDataError([f"{path.name}: refused before reading: larger than {limits.max_bytes:,} bytes"])
        # Every cell as text (types given for absent columns are ignored): the contract judges the values.
        read = pacsv.read_csv(
            path,
            convert_options=pacsv.ConvertOptions(
                column_types={c: pa.string() for c in RAW_TABLES[table].column_names},
                null_values=list(MISSING_MARKERS), strings_can_be_null=True,
            ),
        )
        if read.num_rows > limits.max_rows:
            raise RawDataError([f"{path.name}: {read.num_rows:,} rows exceed {limits.max_rows:,}"])
        df = read.to_pandas()
    # The contract locates bad rows as `row N`; CSV lines are N + 1 (header is line 1).
    return validate_raw_frame(table, df, source=path.name)


def read_drop(drop: str | Path) -> dict[str, pd.DataFrame]:
    """The raw tables a drop holds (any of the three), typed by the contract; RawDataError lists every problem.

    A `channels.csv` in the drop (alone or with raw files) becomes `channel_metadata` and
    `channel_aliases`, an `events.csv` `calendar_events`: the merge replaces those whole.

    A drop with all three files goes through `read_raw_dir` itself; a partial drop has each present
    file checked by the same `validate_raw_frame`. Two files for one table, or none at all, reject it.
    The ad rows may come as the ad_reporting campaign report instead (`core.ad_reporting`).
    """
    drop = Path(drop)
    found = {t: [drop / f"{t}{s}" for s in _SUFFIXES if (drop / f"{t}{s}").is_file()] for t in RAW_TABLES}
    found[ad_reporting.RAW_TABLE] += ad_reporting.find_campaign_reports(drop)
    present = {t: paths for t, paths in found.items() if paths}
    channels_csv, events_csv = drop / CHANNELS_FILE, drop / CALENDAR_FILE
    if not present and (channels_csv.is_file() or events_csv.is_file()):  # only channels.csv / events.csv
        return _whole_files(channels_csv, events_csv)
    if not present:
        raise RawDataError([
            f"{drop.name}: holds none of the raw files ({', '.join(f'{t}.csv' for t in RAW_TABLES)}, "
            "or .csv.gz / .parquet)"
        ])
    if len(present) == len(RAW_TABLES):
        frames = read_raw_dir(drop)
    else:
        limits = FileLimits.from_env()
        frames, problems = {}, []
        for table, paths in present.items():
            if len(paths) > 1:
                problems.append(f"{' and '.join(p.name for p in paths)} are both there for table {table}: "
                                "keep exactly one of them")
                continue
            try:
                if ad_reporting.is_campaign_report(paths[0]):
                    frames[table] = ad_reporting.read_campaign_report(paths[0], limits)
                else:
                    frames[table] = _read_one_file(paths[0], table, limits)
            except RawDataError as exc:
                problems.extend(exc.problems)
            except Exception as exc:  # unreadable file: reported with the others
                problems.append(f"{paths[0].name}: cannot be read: {exc}")
        if problems:
            raise RawDataError(problems)
    problems = []
    try:
        frames.update(_whole_files(channels_csv, events_csv))
    except RawDataError as exc:
        problems.extend(exc.problems)
    for table, df in frames.items():
        if table not in MERGE_KEYS:
            continue
        keys = list(MERGE_KEYS[table])
        duplicated = df.duplicated(keys, keep=False)
        if duplicated.any():
            problems.append(
                f"{table}: {int(duplicated.sum()):,} rows share their ({', '.join(keys)}) with another row of "
                "the drop; each key may appear once per drop (aggregate or deduplicate the export)"
            )
    if problems:
        raise RawDataError(problems)
    return frames


def _whole_files(channels_csv: Path, events_csv: Path) -> dict[str, pd.DataFrame]:
    """The tables of a drop's channels.csv and events.csv (those present), which replace theirs whole."""
    frames, problems = {}, []
    for path, read in ((channels_csv, read_channels_csv), (events_csv, read_calendar_csv)):
        if path.is_file():
            try:
                frames.update(read(path))
            except RawDataError as exc:
                problems.extend(exc.problems)
    if problems:
        raise RawDataError(problems)
    return frames


# ------------------------------------------------------------------------------------------- merging


def merge_raw_tables(warehouse: WarehouseClient, frames: Mapping[str, pd.DataFrame], *,
                     source: str | None = None, actor: str = "landing") -> dict[str, int]:
    """Upsert each frame into its raw table by MERGE_KEYS, all tables in one transaction.

    Each frame lands in a staging table; rows of the raw table with a key in it are deleted and the
    staged rows inserted (portable SQL for DuckDB and PostgreSQL). A raw table that does not exist
    yet is created from the drop. The channel tables (`channel_metadata`, `channel_aliases`, from a
    drop's channels.csv) are not merged but replaced whole, as channels.csv is the whole list; a
    warehouse fed only by drops gets them empty, so the dbt sources exist. Returns the rows merged
    per table. The merge is recorded in the audit log (core.audit) in the same transaction: `source`
    (the drop's folder name), `actor` and the rows per table.
    """
    def q(name: str) -> str:
        return '"' + name.replace('"', '""') + '"'

    token = uuid.uuid4().hex[:8]
    with warehouse.write_transaction(RAW_SCHEMA) as con:
        for table, empty in channel_tables().items():
            given = frames.get(table)
            if given is None and warehouse.columns(con, RAW_SCHEMA, table):
                continue  # kept as the last channels.csv left it
            warehouse.execute(con, f"DROP TABLE IF EXISTS {q(RAW_SCHEMA)}.{q(table)}")
            warehouse.load_frame(con, empty if given is None else given, RAW_SCHEMA, table)
        if any(table in frames for table in CHANNEL_TABLES):
            log_raw_replaced(warehouse, con)  # new channel aliases can rename any touch's channel
        if CALENDAR_TABLE in frames:  # events.csv: the whole calendar again
            warehouse.execute(con, f"DROP TABLE IF EXISTS {q(RAW_SCHEMA)}.{q(CALENDAR_TABLE)}")
            warehouse.load_frame(con, frames[CALENDAR_TABLE], RAW_SCHEMA, CALENDAR_TABLE)
        for table, df in frames.items():
            if table in CHANNEL_TABLES or table == CALENDAR_TABLE:
                continue
            target = f"{q(RAW_SCHEMA)}.{q(table)}"
            staging_name = f"{table}{_STAGING}_{token}"
            staging = f"{q(RAW_SCHEMA)}.{q(staging_name)}"
            warehouse.load_frame(con, df, RAW_SCHEMA, staging_name)
            if not warehouse.columns(con, RAW_SCHEMA, table):
                if table in JOURNEY_TABLES:
                    log_raw_rows_changed(warehouse, con, [staging])
                warehouse.execute(con, f"CREATE TABLE {target} AS SELECT * FROM {staging}")
            else:
                match = " AND ".join(f"s.{q(k)} = t.{q(k)}" for k in MERGE_KEYS[table])
                if table in JOURNEY_TABLES:  # the incremental journeys recompute these users' days
                    log_raw_rows_changed(warehouse, con, [
                        f"(SELECT user_id, occurred_at FROM {target} t WHERE EXISTS (SELECT 1 FROM {staging} s WHERE {match}))",
                        staging,
                    ])
                warehouse.execute(con, f"DELETE FROM {target} t WHERE EXISTS "
                                       f"(SELECT 1 FROM {staging} s WHERE {match})")
                columns = ", ".join(q(c) for c in df.columns)
                warehouse.execute(con, f"INSERT INTO {target} ({columns}) SELECT {columns} FROM {staging}")
            warehouse.execute(con, f"DROP TABLE {staging}")
        rows = {table: len(df) for table, df in frames.items()}
        audit.record_in(warehouse, con, "landing_merge", actor=actor, detail={"drop": source, "rows": rows})
    return rows


# ------------------------------------------------------------------------------------------- one drop


@dataclass
class DropOutcome:
    """What happened to one drop: merged (rows per table), rejected (reason) or left (reason)."""

    drop: str
    status: str  # merged | rejected | left
    reason: str = ""
    rows: dict[str, int] = field(default_factory=dict)
    moved_to: Path | None = None

    def describe(self) -> str:
        if self.status == "merged":
            rows = ", ".join(f"{t} {n:,}" for t, n in self.rows.items())
            return f"{self.drop}: merged ({rows} rows)"
        return f"{self.drop}: {self.status}: {self.reason}"


def _file_away(drop: Path, landing: Path, where: str) -> Path:
    target_dir = landing / where
    target_dir.mkdir(parents=True, exist_ok=True)
    target = target_dir / drop.name
    if target.exists():  # the same drop name delivered again: keep both
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
        target = target_dir / f"{drop.name}__{stamp}"
    shutil.move(str(drop), str(target))
    return target


def process_drop(drop: str | Path, landing: str | Path, url: WarehouseUrl) -> DropOutcome:
    """Validate, merge (holding the refresh lock) and file away one complete drop.

    Invalid: moved to rejected/ with REASON.txt, the warehouse untouched. The refresh lock held by
    someone else, or the warehouse unreachable: left where it is for the next attempt.
    """
    drop, landing = Path(drop), Path(landing)
    try:
        frames = read_drop(drop)
    except RawDataError as exc:
        return _reject(drop, landing, str(exc))
    lock = RefreshLock(url)
    try:
        lock.acquire(f"landing-{drop.name}")
    except RefreshInProgress as exc:
        return DropOutcome(drop.name, "left", f"the raw tables are not written while a refresh runs ({exc})")
    try:
        rows = merge_raw_tables(WarehouseClient(url), frames, source=drop.name)
    except (WarehouseBusy, WarehouseLockTimeout) as exc:  # WarehouseUnavailable is a WarehouseBusy
        return DropOutcome(drop.name, "left", f"the warehouse cannot be written now: {exc}")
    except Exception as exc:  # the rows do not fit the raw tables: the transaction was rolled back
        return _reject(drop, landing, f"merge failed, nothing was written: {exc.__class__.__name__}: {exc}")
    finally:
        lock.release()
    return DropOutcome(drop.name, "merged", rows=rows, moved_to=_file_away(drop, landing, PROCESSED_DIR))


def _reject(drop: Path, landing: Path, reason: str) -> DropOutcome:
    target = _file_away(drop, landing, REJECTED_DIR)
    (target / REASON_FILE).write_text(reason + "\n", encoding="utf-8")
    return DropOutcome(drop.name, "rejected", reason=reason, moved_to=target)


def holder_line(url: WarehouseUrl) -> str | None:
    """`already running: run ...` when some process holds the warehouse's refresh lock, else None."""
    holder = RefreshLock(url).holder()
    return describe_holder(holder) if holder is not None else None


def missing_raw_tables(warehouse: WarehouseClient) -> list[str]:
    """The raw tables the warehouse does not hold yet (a refresh needs all of them)."""
    existing = warehouse.row_counts(RAW_SCHEMA)
    return [t for t in RAW_TABLES if t not in existing]
