"""dear_ir: DeAR two-stage reranking (DeAR-P pointwise, DeAR-L listwise) for TREC runs."""

__version__ = "0.1.0"
