"""The second ad-export shape: the campaign report of the Fivetran `ad_reporting` dbt package, mapped
to the `ad_performance_daily` contract so a team that syncs its ad platforms that way needs no reshaping.

A load folder (or landing drop) may hold `ad_reporting__campaign_report.csv|.csv.gz|.parquet` in place
of `ad_performance_daily.*` (both at once is refused). Columns, report -> contract:

    date_day -> date, platform -> channel (kept as written: channels.csv aliases such as `google_ads`
    map it to a channel in dbt staging), campaign_id, campaign_name, impressions, clicks, spend,
    conversions -> conversions, conversions_value -> revenue; reach is not in the report (null).

Required: date_day, platform, account_id, campaign_id, clicks, impressions, spend. Optional:
campaign_name, conversions, conversions_value (absent = null). account_name and other columns are
ignored. Values are judged by the contract's rules, and problems name the report's own columns.

One campaign may have one row per day. Rows sharing (date_day, platform, campaign_id) are refused,
not summed, naming their lines: from two account_ids they are most often one campaign synced through
two accounts (a manager account and its client account), and summing would count its spend twice;
where they really are two campaigns, the fix is a campaign_id unique per platform.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from core.raw_contract import (
    _SUFFIXES,
    Column,
    FileLimits,
    Locator,
    RawDataError,
    _format,
    _too_large,
    _typed_column,
    read_columns,
    validate_raw_frame,
)

if TYPE_CHECKING:
    import pandas as pd

REPORT = "ad_reporting__campaign_report"
RAW_TABLE = "ad_performance_daily"
ACCOUNT = "account_id"
# The report's column -> the contract's column.
COLUMNS: dict[str, str] = {
    "date_day": "date",
    "platform": "channel",
    "campaign_id": "campaign_id",
    "campaign_name": "campaign_name",
    "impressions": "impressions",
    "clicks": "clicks",
    "spend": "spend",
    "conversions": "conversions",
    "conversions_value": "revenue",
}
REQUIRED = ["date_day", "platform", ACCOUNT, "campaign_id", "clicks", "impressions", "spend"]
OPTIONAL = ["campaign_name", "conversions", "conversions_value"]
_KEY = ("date_day", "platform", "campaign_id")


def report_names() -> list[str]:
    return [f"{REPORT}{suffix}" for suffix in _SUFFIXES]


def find_campaign_reports(folder: str | Path) -> list[Path]:
    """The campaign report files in `folder` (more than one is a problem for the caller to name)."""
    return [Path(folder) / name for name in report_names() if (Path(folder) / name).is_file()]


def is_campaign_report(path: str | Path) -> bool:
    return Path(path).name in report_names()


def read_campaign_report(path: str | Path, limits: FileLimits | None = None) -> pd.DataFrame:
    """The report as a typed `ad_performance_daily` frame; RawDataError lists every problem by file and line.

    `limits`: size the file first (callers that have not done so already).
    """
    path = Path(path)
    if limits is not None and (reason := _too_large(path, limits)):
        raise RawDataError([reason])
    df, locate, problems = read_columns(path, REQUIRED, [*REQUIRED, *OPTIONAL])
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise RawDataError([
            f"{path.name}: missing column(s) {missing}; an ad_reporting campaign report needs {REQUIRED} "
            f"(these may be absent: {OPTIONAL}), found {list(df.columns)}"
        ])
    if df.empty:
        raise RawDataError([f"{path.name}: has no rows"])
    bad_accounts: list = []
    accounts = _typed_column(df[ACCOUNT].reset_index(drop=True), Column(ACCOUNT, "id"), bad_accounts)
    problems.extend(_format(path.name, bad_accounts, locate))
    typed = None
    try:
        typed = validate_raw_frame(RAW_TABLE, df.drop(columns=ACCOUNT).rename(columns=COLUMNS),
                                   source=path.name, locate=locate)
    except RawDataError as exc:
        problems.extend(_in_report_columns(p, path.name) for p in exc.problems)
    if typed is not None and not bad_accounts:
        problems.extend(repeated_campaign_days(typed, accounts, path.name, locate))
    if problems:
        raise RawDataError(problems)
    return typed


def _in_report_columns(problem: str, source: str) -> str:
    """A contract problem in the report's words: `column 'date'` is the report's `column 'date_day'`."""
    for report_column, contract_column in COLUMNS.items():
        prefix = f"{source}: column {contract_column!r}:"
        if report_column != contract_column and problem.startswith(prefix):
            return f"{source}: column {report_column!r}:" + problem[len(prefix):]
    return problem


def repeated_campaign_days(typed: pd.DataFrame, accounts: pd.Series, source: str, locate: Locator) -> list[str]:
    """Rows sharing (date_day, platform, campaign_id): across accounts, and within one account."""
    key = ["date", "channel", "campaign_id"]
    repeated = typed.duplicated(key, keep=False).to_numpy()
    if not repeated.any():
        return []
    rows = typed.loc[repeated, key].assign(account=accounts[repeated].to_numpy())
    per_key = rows.groupby(key, sort=False)["account"].transform("nunique")
    problems = []
    for across, what, fix in (
        (True, "come from more than one account_id",
         "one campaign may have one row per day: if one campaign is synced through two accounts (e.g. a manager "
         "account and its client account), keep the rows of one of them; if they are different campaigns, make "
         "campaign_id unique per platform (e.g. prefix it with the account_id)"),
        (False, "appear on more than one row of the same account_id",
         "one campaign may have one row per day: aggregate the report by date_day, platform and campaign_id "
         "(sum spend, impressions, clicks, conversions, conversions_value)"),
    ):
        group = rows[(per_key > 1) == across]
        if group.empty:
            continue
        first = group.index[:3].tolist()  # typed has a 0-based RangeIndex: the data rows
        labels = locate(first)
        where = ", ".join(
            f"{labels.get(i, f'row {i + 1}')}: {typed.at[i, 'date']:%Y-%m-%d}, {typed.at[i, 'channel']!r}, "
            f"{typed.at[i, 'campaign_id']!r}, account {rows.at[i, 'account']!r}"
            for i in first
        )
        combinations = len(group.drop_duplicates(key))
        problems.append(f"{source}: {combinations} ({', '.join(_KEY)}) combination(s) {what} ({where}); {fix}")
    return problems
