"""DeAR-L, the listwise stage: prompt, windows, answer parsing and the reranking loop."""

from dear_ir.listwise.parse import ParsedAnswer, parse_answer
from dear_ir.listwise.prompt import build_messages, encode_training_example, render_prompt
from dear_ir.listwise.rerank import ListwiseReranker, RerankStats
from dear_ir.listwise.windows import sliding_windows

__all__ = [
    "ListwiseReranker",
    "ParsedAnswer",
    "RerankStats",
    "build_messages",
    "encode_training_example",
    "parse_answer",
    "render_prompt",
    "sliding_windows",
]
