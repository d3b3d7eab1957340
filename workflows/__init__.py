"""What runs: one module per scenario, built on the runbook skeleton in :mod:`workflows.runbook`.

Nothing here imports :mod:`opsflow`; the tooling reads this package, never the reverse.
"""
