"""Training of DeAR students: losses, the pointwise trainer and the listwise trainer.

Run as ``python -m dear_ir.train pointwise ...`` or ``python -m dear_ir.train listwise ...``.
"""
