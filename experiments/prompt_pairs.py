"""`python -m experiments.prompt_pairs --config configs/prompt_pairs.yaml [key=value ...]`: an alias of
`interp run prompt_pairs`. The study lives in :mod:`interp.studies.prompt_pairs`."""

from interp.cli import alias

if __name__ == "__main__":
    alias("prompt_pairs")
