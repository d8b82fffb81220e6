"""Pure plotting (seaborn/matplotlib -> PNG bytes) and the chart/data HTTP app. No dagster here."""
