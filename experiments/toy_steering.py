"""`python -m experiments.toy_steering --config configs/toy_steering.yaml [key=value ...]`: an alias of
`interp run toy_steering`. The study lives in :mod:`interp.studies.toy_steering`."""

from interp.cli import alias

if __name__ == "__main__":
    alias("toy_steering")
