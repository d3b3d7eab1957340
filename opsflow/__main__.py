from opsflow.cli import run

run()
