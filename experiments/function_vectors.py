"""`python -m experiments.function_vectors --config configs/function_vectors.yaml [key=value ...]`: an alias of
`interp run function_vectors`. The study lives in :mod:`interp.studies.function_vectors`."""

from interp.cli import alias

if __name__ == "__main__":
    alias("function_vectors")
