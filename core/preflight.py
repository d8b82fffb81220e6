"""`spendwise load DIR --check`: what a folder holds and every problem with it, before anything is written.

Per file: rows, date range, channels (and which are new to the warehouse), campaigns, problems with a fix.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from core.raw_contract import CHANNELS_FILE, RAW_TABLES, RawFolder, channel_name, scan_raw_dir
from core.settings import RAW_SCHEMA

if TYPE_CHECKING:
    import pandas as pd

    from core.warehouse import WarehouseClient

# The day each table's rows belong to.
_DAY_COLUMN = {"ad_performance_daily": "date", "touchpoints": "occurred_at", "conversions": "occurred_at",
               "calendar_events": "date"}

# What to do about a rule whose message does not say it already (matched on the rule's words).
FIXES: tuple[tuple[str, str], ...] = (
    ("are empty (required column)", "fill them in, or leave those rows out of the export"),
    ("are not numbers", "write plain numbers with a dot for decimals, without currency signs or thousands "
                        "separators (1234.5)"),
    ("are not finite numbers", "replace inf/nan by the real value, or leave the cell empty where the column "
                               "is optional"),
    ("(not plausible for one row)", "check the export's unit (cents or micros instead of currency?) and correct "
                                    "those rows"),
    ("are not whole numbers", "export counts as whole numbers"),
    ("are not dates (YYYY-MM-DD)", "write days as YYYY-MM-DD"),
    ("are not timestamps", "write timestamps in ISO 8601, e.g. 2026-03-01T14:05:00Z (UTC when no offset)"),
    ("contain a NUL character", "export the file again as UTF-8 text (NUL characters come from binary or "
                                "UTF-16 exports)"),
    ("missing column(s)", "rename the export's columns to the required names (extra columns are ignored)"),
    ("has no rows", "export the data again: the file holds no data rows"),
    ("do not have the header's", "quote fields that contain the separator, or repair those lines"),
    ("cannot be read:", "check that the file is UTF-8 CSV or Parquet and complete (not truncated)"),
    (".csv or ", "add the file: ad_performance_daily (or ad_reporting__campaign_report), touchpoints and "
              "conversions are all required"),
)


def fix_for(problem: str) -> str | None:
    """The fix for a problem whose own words do not give one (None: it does, or the rule is unknown)."""
    return next((fix for words, fix in FIXES if words in problem), None)


@dataclass(frozen=True)
class KnownChannels:
    """Channel names (and aliases) in the warehouse's raw tables, or why they could not be read."""

    names: frozenset[str] | None
    note: str = ""


@dataclass
class FileSummary:
    file: str
    tables: list[str]
    rows: int | None = None  # None: the file was not read as valid
    first_day: str | None = None
    last_day: str | None = None
    channels: list[str] = field(default_factory=list)
    new_channels: list[str] | None = None  # None: not compared
    campaigns: int | None = None
    problems: list[str] = field(default_factory=list)
    mapped: dict[str, str] = field(default_factory=dict)  # name in the file -> channel (channels.csv's aliases)


@dataclass
class Preflight:
    folder: Path
    files: list[FileSummary]
    folder_problems: list[str]
    known: KnownChannels
    # Not problems (nothing is refused for them), but what the warning check channel_names_consistent
    # would say after the refresh: a channel only in the ad export or only in the touchpoints.
    notes: list[str] = field(default_factory=list)

    @property
    def problems(self) -> list[str]:
        return self.folder_problems + [p for f in self.files for p in f.problems]

    @property
    def ok(self) -> bool:
        return not self.problems


def check_folder(folder: str | Path, known: KnownChannels) -> Preflight:
    """Validate `folder` as `spendwise load` does (the same `scan_raw_dir`) and summarise each file."""
    return summarise(Path(folder), scan_raw_dir(folder, channels=True), known)


def summarise(folder: Path, scanned: RawFolder, known: KnownChannels) -> Preflight:
    aliases = _aliases(scanned.frames.get("channel_aliases"))
    by_file: dict[Path, FileSummary] = {}
    for table, path in scanned.sources.items():
        by_file.setdefault(path, FileSummary(path.name, [])).tables.append(table)
    for path, summary in by_file.items():
        _describe(summary, scanned.frames, known, aliases)
    folder_problems = []
    for problem in scanned.problems:
        owner = next((s for p, s in by_file.items() if problem.startswith(f"{p.name}:")), None)
        (owner.problems if owner else folder_problems).append(problem)
    return Preflight(folder, list(by_file.values()), folder_problems, known, _channel_notes(scanned.frames, aliases))


def _channel_notes(frames: dict, aliases: dict[str, str]) -> list[str]:
    """Channels (after channels.csv's aliases) found in only one of the ad export and the touchpoints."""
    mapped = {}
    for table in ("ad_performance_daily", "touchpoints"):
        df = frames.get(table)
        if df is None:
            return []
        names = {channel_name(c) for c in df["channel"].dropna().unique()}
        mapped[table] = {aliases.get(n, n) for n in names}
    ads, touches = mapped["ad_performance_daily"], mapped["touchpoints"]
    notes = [
        f"touchpoint channel {c!r} is not in the ad export ({', '.join(sorted(ads))}): if it is one of them, "
        f"add {c} to that channel's aliases in channels.csv"
        for c in sorted(touches - ads)
    ]
    notes += [
        f"ad export channel {c!r} is not in the touchpoints: if the touchpoints name it differently, add that "
        f"name to the aliases of {c} in channels.csv"
        for c in sorted(ads - touches)
    ]
    return notes


def _aliases(frame: pd.DataFrame | None) -> dict[str, str]:
    if frame is None or frame.empty:
        return {}
    return dict(zip(frame["alias"], frame["channel"]))


def _describe(summary: FileSummary, frames: dict, known: KnownChannels, aliases: dict[str, str]) -> None:
    import pandas as pd

    table = summary.tables[0]
    if table == "channel_metadata":
        meta = frames.get("channel_metadata")
        if meta is not None:
            summary.rows = len(meta)
            summary.channels = sorted(meta["channel"])
            summary.new_channels = _new(summary.channels, known, aliases)
        return
    df = frames.get(table)
    if df is None:
        return
    summary.rows = len(df)
    days = df[_DAY_COLUMN[table]].dropna()
    if table == "calendar_events":  # events may last several days
        days = pd.concat([days, df["end_date"].dropna()])
    if not days.empty:
        summary.first_day, summary.last_day = f"{days.min():%Y-%m-%d}", f"{days.max():%Y-%m-%d}"
    if "channel" in df.columns:
        channels = df["channel"].dropna().map(channel_name)
        summary.channels = sorted(set(channels))
        summary.new_channels = _new(summary.channels, known, aliases)
        summary.mapped = {c: aliases[c] for c in summary.channels if c in aliases}
        if "campaign_id" in df.columns:
            with_id = df["campaign_id"].notna()
            summary.campaigns = len(set(zip(channels[with_id], df.loc[with_id, "campaign_id"])))


def _new(channels: list[str], known: KnownChannels, aliases: dict[str, str]) -> list[str] | None:
    """Names neither in the warehouse nor an alias (this folder's channels.csv) of a channel that is."""
    if known.names is None:
        return None
    return [c for c in channels if c not in known.names and aliases.get(c) not in known.names]


def known_channels(warehouse: WarehouseClient) -> KnownChannels:
    """Channel names and aliases of the warehouse's raw tables, read-only: a DuckDB file is never
    created and a locked one not waited for; whatever fails becomes the note of an empty answer."""
    from core.warehouse import WarehouseMissing

    sources = {
        "ad_performance_daily": ["channel"], "touchpoints": ["channel"],
        "channel_metadata": ["channel"], "channel_aliases": ["alias", "channel"],
    }
    try:
        with warehouse.connect(read_only=True, wait=False, application_name="spendwise-load-check") as con:
            tables = {r[0] for r in warehouse.fetch(
                con, "SELECT table_name FROM information_schema.tables WHERE table_schema = "
                f"{warehouse.placeholder}", (RAW_SCHEMA,),
            )}
            selects = [
                f"SELECT DISTINCT {warehouse.ident(c)} AS name FROM {warehouse.ident(RAW_SCHEMA)}.{warehouse.ident(t)}"
                for t, cols in sources.items() if t in tables for c in cols
            ]
            rows = warehouse.fetch(con, " UNION ".join(selects)) if selects else []
    except WarehouseMissing:
        return KnownChannels(None, f"no warehouse at {warehouse.url.redacted()} yet: nothing to compare with")
    except Exception as exc:  # unreachable, locked by a writer, unreadable
        detail = " ".join(str(exc).split())
        return KnownChannels(None, f"could not read the warehouse {warehouse.url.redacted()} to compare ({detail})")
    names = frozenset(channel_name(r[0]) for r in rows if r[0] is not None)
    note = "" if any(t in tables for t in RAW_TABLES) else "the warehouse has no raw tables yet"
    return KnownChannels(names, note)


def format_preflight(check: Preflight) -> str:
    lines = [f"spendwise load --check {check.folder}: nothing was written"]
    if check.known.names is None:
        lines.append(f"channels not compared with the warehouse: {check.known.note}")
    elif check.known.note:
        lines.append(f"channels compared with the warehouse: {check.known.note}")
    for f in check.files:
        lines.append("")
        lines.append(f"{f.file} -> {', '.join(f'raw.{t}' for t in f.tables)}")
        if f.rows is None:
            lines.append("  not summarised: the file does not pass the contract (problems below)")
        else:
            lines.append(f"  rows: {f.rows:,}")
            if f.first_day:
                lines.append(f"  days: {f.first_day} to {f.last_day}")
            if f.channels or f.tables[0] in ("ad_performance_daily", "touchpoints", "channel_metadata"):
                shown = [f"{c} (= {f.mapped[c]})" if c in f.mapped else c for c in f.channels]
                lines.append(f"  channels ({len(f.channels)}): {', '.join(shown) or 'none'}")
                if f.new_channels is None:
                    lines.append("  new channels: not compared (see above)")
                else:
                    lines.append(f"  new channels (not in the warehouse): {', '.join(f.new_channels) or 'none'}")
            if f.campaigns is not None:
                none = " (no campaign_id in the file)" if f.campaigns == 0 else ""
                lines.append(f"  campaigns (channel, campaign_id): {f.campaigns:,}{none}")
        lines.extend(_problem_lines(f.problems))
    if check.folder_problems:
        lines.append("")
        lines.append(f"{check.folder}")
        lines.extend(_problem_lines(check.folder_problems))
    if check.notes:
        lines.append("")
        lines.append(f"Channel names (warnings, nothing is refused for them) ({len(check.notes)}):")
        lines.extend(f"  - {note}" for note in check.notes)
    lines.append("")
    count = len(check.problems)
    lines.append(
        "Result: clean; `spendwise load` would replace the raw tables with these files" if check.ok
        else f"Result: {count} problem(s); `spendwise load` would refuse this folder and write nothing"
    )
    return "\n".join(lines)


def _problem_lines(problems: list[str]) -> list[str]:
    if not problems:
        return []
    lines = [f"  problems ({len(problems)}):"]
    for problem in problems:
        lines.append(f"    - {problem}")
        if fix := fix_for(problem):
            lines.append(f"      fix: {fix}")
    return lines
