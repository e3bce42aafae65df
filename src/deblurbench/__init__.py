"""DeblurBench: a benchmark platform for image deblurring."""
__version__ = "0.1.0"
