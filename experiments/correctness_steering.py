"""`python -m experiments.correctness_steering --config configs/correctness_steering.yaml [key=value ...]`: an alias of
`interp run correctness_steering`. The study lives in :mod:`interp.studies.correctness_steering`."""

from interp.cli import alias

if __name__ == "__main__":
    alias("correctness_steering")
