"""`python -m experiments.caa_behaviors --config configs/caa_behaviors.yaml [key=value ...]`: an alias of
`interp run caa_behaviors`. The study lives in :mod:`interp.studies.caa_behaviors`."""

from interp.cli import alias

if __name__ == "__main__":
    alias("caa_behaviors")
