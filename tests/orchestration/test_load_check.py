"""`spendwise load DIR --check`: a per-file summary and every problem, nothing written, new channels named."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pandas as pd

from tests.core.test_ad_reporting import REPORT, campaign_report, write_folder


def spendwise(folder: Path, url: str, *options: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "orchestration.cli", "load", str(folder), *options], capture_output=True,
        text=True, timeout=300,
        env={"PATH": "/usr/bin:/bin", "HOME": str(folder.parent), "SPENDWISE_WAREHOUSE_URL": url},
    )


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_check_of_a_good_folder_prints_each_file_and_writes_nothing(tmp_path):
    folder = write_folder(tmp_path / "in", campaign_report())
    (folder / "channels.csv").write_text("channel,aliases\npaid_search,google_ads|cpc\nmeta,facebook_ads\n")
    (folder / "events.csv").write_text("date,end_date,name\n2026-10-01,2026-10-02,Sale\n2026-09-30,,Launch\n")
    warehouse = tmp_path / "w.duckdb"
    proc = spendwise(folder, f"duckdb:///{warehouse}", "--check")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert f"{REPORT}.csv -> raw.ad_performance_daily\n  rows: 4\n  days: 2026-10-01 to 2026-10-02\n" in out
    assert "  channels (2): facebook_ads (= meta), google_ads (= paid_search)\n" in out
    assert "  campaigns (channel, campaign_id): 3\n" in out  # 0042 on two platforms is two campaigns
    assert "touchpoints.csv -> raw.touchpoints\n  rows: 2\n" in out
    assert "conversions.csv -> raw.conversions\n  rows: 1\n  days: 2026-10-01 to 2026-10-01\n" in out
    assert "channels.csv -> raw.channel_metadata, raw.channel_aliases\n  rows: 2\n" in out
    assert "channels not compared with the warehouse: no warehouse at" in out
    assert "Result: clean" in out and "problems" not in out
    assert "Channel names" not in out  # every name maps to a channel of both files
    assert "events.csv -> raw.calendar_events\n  rows: 2\n  days: 2026-09-30 to 2026-10-02\n" in out
    assert not warehouse.exists()  # no warehouse was created, not even an empty one
    assert not any(p.name.startswith("w.duckdb") for p in tmp_path.iterdir())


def test_check_says_which_channel_names_do_not_meet_without_aliases_and_still_passes(tmp_path):
    folder = write_folder(tmp_path / "in", campaign_report())  # no channels.csv
    proc = spendwise(folder, f"duckdb:///{tmp_path / 'w.duckdb'}", "--check")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "Channel names (warnings, nothing is refused for them) (4):" in out
    assert ("touchpoint channel 'cpc' is not in the ad export (facebook_ads, google_ads): if it is one of them, "
            "add cpc to that channel's aliases in channels.csv") in out
    assert "ad export channel 'google_ads' is not in the touchpoints" in out
    assert "Result: clean" in out


def test_check_of_a_bad_folder_exits_2_with_the_problems_their_fixes_and_the_same_words_as_load(tmp_path):
    report = campaign_report().astype({"spend": object})
    report.loc[1, "spend"] = "12,50 EUR"
    report.loc[2, "campaign_id"] = ""
    folder = write_folder(tmp_path / "in", report)
    pd.DataFrame({"conversion_id": ["o1"], "user_id": ["u1"], "occurred_at": ["yesterday"],
                  "revenue": [5.0]}).to_csv(folder / "conversions.csv", index=False)
    url = f"duckdb:///{tmp_path / 'w.duckdb'}"
    check = spendwise(folder, url, "--check")
    assert check.returncode == 2, check.stdout + check.stderr
    spend = f"{REPORT}.csv: column 'spend': 1 row(s) are not numbers (line 3: '12,50 EUR')"
    campaign = f"{REPORT}.csv: column 'campaign_id': 1 row(s) are empty (required column) (line 4: nan)"
    when = "conversions.csv: column 'occurred_at': 1 row(s) are not timestamps"
    out = check.stdout
    assert f"{REPORT}.csv -> raw.ad_performance_daily\n  not summarised" in out
    assert f"    - {spend}\n      fix: write plain numbers" in out
    assert f"    - {campaign}\n      fix: fill them in" in out
    assert f"    - {when}" in out and "fix: write timestamps in ISO 8601" in out
    assert "touchpoints.csv -> raw.touchpoints\n  rows: 2\n" in out  # the good file is still summarised
    assert "Result: 3 problem(s); `spendwise load` would refuse this folder and write nothing" in out

    load = spendwise(folder, url)  # the same validation, the same words
    assert load.returncode == 2
    for problem in (spend, campaign, when):
        assert f"  - {problem}" in load.stderr
    assert not (tmp_path / "w.duckdb").exists()


def test_check_names_channels_new_to_an_existing_warehouse_and_leaves_it_unchanged(tmp_path):
    warehouse = tmp_path / "w.duckdb"
    url = f"duckdb:///{warehouse}"
    first = spendwise(write_folder(tmp_path / "first", campaign_report()), url)
    assert first.returncode == 0, first.stderr
    before = digest(warehouse)
    files = sorted(p.name for p in tmp_path.iterdir())

    report = campaign_report()
    report.loc[3, "platform"] = "TikTok_Ads "  # new; trimmed and lower-cased as the pipeline compares
    folder = write_folder(tmp_path / "second", report)
    touchpoints = pd.read_csv(folder / "touchpoints.csv")
    touchpoints.loc[1, "channel"] = "podcast"
    touchpoints.to_csv(folder / "touchpoints.csv", index=False)
    (folder / "channels.csv").write_text("channel,aliases\naudio,podcast\ngoogle_ads,\n")
    check = spendwise(folder, url, "--check")
    assert check.returncode == 0, check.stdout + check.stderr
    out = check.stdout
    assert "not compared" not in out
    assert ("  channels (2): google_ads, tiktok_ads\n  new channels (not in the warehouse): tiktok_ads\n") in out
    # 'cpc' was in the first load; 'podcast' is new, and so is the channel 'audio' it is an alias of
    assert "  channels (2): cpc, podcast (= audio)\n  new channels (not in the warehouse): podcast\n" in out
    assert "  channels (2): audio, google_ads\n  new channels (not in the warehouse): audio\n" in out
    assert digest(warehouse) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*files, "second"])  # no WAL, no lock file


def test_check_without_a_readable_warehouse_says_it_could_not_compare(tmp_path):
    folder = write_folder(tmp_path / "in", campaign_report())
    check = spendwise(folder, "postgresql://nobody@127.0.0.1:1/none", "--check")
    assert check.returncode == 0, check.stdout + check.stderr
    assert "channels not compared with the warehouse: could not read the warehouse" in check.stdout
    assert "  new channels: not compared (see above)\n" in check.stdout
