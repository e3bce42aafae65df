"""DeblurBench: a benchmark platform for image deblurring.

The Python API (``deblurbench.api``): :func:`run_method`, :func:`score_folder`, :func:`board`;
imported on first use, so ``import deblurbench`` stays light.
"""

__version__ = "0.1.0"
__all__ = ["board", "run_method", "score_folder"]


def __getattr__(name: str):
    if name in __all__:
        from deblurbench import api

        return getattr(api, name)
    raise AttributeError(f"module 'deblurbench' has no attribute {name!r}")
