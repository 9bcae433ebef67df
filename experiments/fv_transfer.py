"""`python -m experiments.fv_transfer --config configs/fv_transfer.yaml [key=value ...]`: an alias of
`interp run fv_transfer`. The study lives in :mod:`interp.studies.fv_transfer`."""

from interp.cli import alias

if __name__ == "__main__":
    alias("fv_transfer")
