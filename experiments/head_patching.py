"""`python -m experiments.head_patching --config configs/head_patching.yaml [key=value ...]`: an alias of
`interp run head_patching`. The study lives in :mod:`interp.studies.head_patching`."""

from interp.cli import alias

if __name__ == "__main__":
    alias("head_patching")
