"""The examples in the listwise modules' docstrings run as tests."""

import doctest
import importlib

import pytest


@pytest.mark.parametrize("module", ["windows", "parse", "prompt", "first_token", "data"])
def test_docstring_examples(module):
    result = doctest.testmod(importlib.import_module(f"dear_ir.listwise.{module}"))
    assert result.attempted > 0
    assert result.failed == 0
