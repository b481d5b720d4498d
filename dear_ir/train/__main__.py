"""Command line of student training: ``python -m dear_ir.train {pointwise,listwise} ...``.

Each subcommand's module is imported only when it is chosen, so that the
pointwise trainer never imports the listwise one's dependencies, and the other
way round. Each module provides ``main(argv) -> int``.
"""

from __future__ import annotations

import importlib
import sys

SUBCOMMANDS = {
    "pointwise": ("dear_ir.train.pointwise", "train a DeAR-P student (sequence classifier) from teacher-logit dumps"),
    "listwise": ("dear_ir.train.listwise", "fine-tune a DeAR-L student (chat LLM) on ranking rationales"),
}

USAGE = "usage: python -m dear_ir.train {pointwise,listwise} [options]\n\n" + "\n".join(
    f"  {name:10} {summary}" for name, (_, summary) in SUBCOMMANDS.items()
) + "\n\nRun a subcommand with --help for its options.\n"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        sys.stdout.write(USAGE)
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in SUBCOMMANDS:
        sys.stderr.write(f"unknown subcommand {name!r}\n\n{USAGE}")
        return 2
    module = importlib.import_module(SUBCOMMANDS[name][0])
    return module.main(rest)


if __name__ == "__main__":
    sys.exit(main())
