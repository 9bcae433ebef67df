"""`python -m experiments.dola --config configs/dola.yaml [key=value ...]`: an alias of
`interp run dola`. The study lives in :mod:`interp.studies.dola`."""

from interp.cli import alias

if __name__ == "__main__":
    alias("dola")
