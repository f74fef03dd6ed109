"""Parameter sweeps: many runs of one scenario over a grid (or a sample) of values and seeds.

:mod:`.params` reads and checks ``--set`` against the scenario schema, :mod:`.figures`
runs one point and flattens its report figures into a row, :mod:`.engine` spreads
the runs over Dask distributed, :mod:`.stats` and :mod:`.plots` summarise them.
"""
