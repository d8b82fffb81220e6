"""Pure modelling for Spendwise: synthetic data, attribution, media mix, forecasting, budget.

Nothing in this package imports dagster; functions take DataFrames and plain config.
"""
