"""`python -m experiments.ioi_circuit --config configs/ioi_circuit.yaml [key=value ...]`: an alias of
`interp run ioi_circuit`. The study lives in :mod:`interp.studies.ioi_circuit`."""

from interp.cli import alias

if __name__ == "__main__":
    alias("ioi_circuit")
