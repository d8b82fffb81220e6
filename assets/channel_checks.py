"""The protection a fixed channel list gave, as a warning: channels come from the data, so a channel
renamed mid-series, or named differently in the ad export and the touchpoints, is reported with its fix.
"""

from __future__ import annotations

import pandas as pd
from dagster import AssetCheckResult, AssetCheckSeverity, AssetKey, MetadataValue, asset_check

from assets.resources import Warehouse

# One channel stopping and another starting no more than this later (without overlap) looks like one
# channel renamed. A month, because spend runs in flights: in the demo's two years, a channel renamed
# mid-series left a 12-day gap between its last day under the old name and its first under the new.
RENAME_GAP_DAYS = 31
_FIX = "add {old} to {new}'s aliases in channels.csv"


def channel_name_findings(channels: pd.DataFrame, gap_days: int = RENAME_GAP_DAYS) -> list[str]:
    """What looks like one channel under two names, in words with the fix, from `dim_channel` rows
    (channel, first_date, last_date, campaigns, touchpoints)."""
    findings: list[str] = []
    ads = channels[channels["campaigns"] > 0]
    for row in channels[(channels["campaigns"] == 0) & (channels["touchpoints"] > 0)].itertuples():
        findings.append(
            f"touchpoint channel {row.channel!r} ({row.touchpoints:,} touchpoints) never appears in the ad export "
            f"(channels there: {', '.join(sorted(ads['channel']))}): if it is one of them, "
            + _FIX.format(old=row.channel, new="that channel")
        )
    for row in channels[(channels["campaigns"] > 0) & (channels["touchpoints"] == 0)].itertuples():
        findings.append(
            f"ad export channel {row.channel!r} never appears in the touchpoints: if the touchpoints name it "
            "differently, " + _FIX.format(old="that name", new=row.channel)
        )
    if not ads.empty:
        first, last = pd.to_datetime(ads["first_date"]), pd.to_datetime(ads["last_date"])
        data_first, data_last = first.min(), last.max()
        for old, stop in zip(ads["channel"], last):
            if stop >= data_last:
                continue
            for new, start in zip(ads["channel"], first):
                if new != old and start > data_first and 1 <= (start - stop).days <= gap_days:
                    findings.append(
                        f"{old!r} stops on {stop:%Y-%m-%d} and {new!r} starts on {start:%Y-%m-%d}: "
                        f"if they are one channel, " + _FIX.format(old=old, new=new)
                    )
    return findings


@asset_check(
    asset=AssetKey(["analytics", "dim_channel"]), name="channel_names_consistent", blocking=False,
    description="warning: a channel renamed mid-series (one stops, and another starts within a month, "
    "without overlap), or "
    "a channel only in the ad export or only in the touchpoints; says how to map it with channels.csv's aliases.",
)
def channel_names_consistent(warehouse: Warehouse) -> AssetCheckResult:
    channels = warehouse.read_table("analytics", "dim_channel")
    findings = channel_name_findings(channels)
    return AssetCheckResult(
        passed=not findings, severity=AssetCheckSeverity.WARN,
        description="; ".join(findings) if findings else f"{len(channels)} channels, each named one way",
        metadata={"findings": MetadataValue.json(findings), "channels": MetadataValue.json(sorted(channels["channel"]))},
    )


CHANNEL_CHECKS = [channel_names_consistent]
