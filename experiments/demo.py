"""`python -m experiments.demo --config configs/demo.yaml [key=value ...]`: an alias of
`interp run demo`. The study lives in :mod:`interp.studies.demo`."""

from interp.cli import alias

if __name__ == "__main__":
    alias("demo")
