"""Talking to the outside world: EIA API v2, Open-Meteo, and the bundled offline replay.

No Dagster imports here: every function takes plain arguments and returns DataFrames.
"""
