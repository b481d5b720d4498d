"""TREC run files: the `Run` type, reading and atomic writing.

A run maps each qid to its ranked hits. Qids and docids are strings everywhere,
so "0019", "19" and "-5" stay three different ids, as trec_eval treats them.

Reading accepts queries in any order and keeps each query's hits sorted by
score (ties keep their file order). Writing always emits `Q0`, ranks from 1 and
scores that strictly decrease by rank, because trec_eval re-sorts by score and
breaks ties by docid, which would silently reorder tied hits.
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

logger = logging.getLogger(__name__)


class RunFormatError(ValueError):
    """A run file line that cannot be parsed; the message names file and line."""


@dataclass(frozen=True)
class Hit:
    """One ranked document of a query: its docid and the score that ranked it."""

    docid: str
    score: float


class Run(dict):
    """Ranked hits per query: ``{qid: [Hit, ...]}`` in rank order.

    A plain dict subclass so that callers may build one from a literal; the
    helpers below keep ids as strings and hits in rank order.
    """

    def __init__(self, rankings: dict | None = None, name: str = "run"):
        super().__init__()
        self.name = name
        for qid, hits in (rankings or {}).items():
            self[str(qid)] = [_as_hit(hit) for hit in hits]

    def num_hits(self) -> int:
        return sum(len(hits) for hits in self.values())

    def docids(self, qid: str) -> list[str]:
        return [hit.docid for hit in self[qid]]

    def to_pytrec(self) -> dict[str, dict[str, float]]:
        """Return ``{qid: {docid: score}}`` for pytrec_eval, scores made rank-safe.

        pytrec_eval (like trec_eval) sorts by score, so the scores passed on are
        the strictly decreasing ones that `write_run` would write.
        """
        return {
            qid: dict(zip((hit.docid for hit in hits), strictly_decreasing([h.score for h in hits])))
            for qid, hits in self.items()
        }


def _as_hit(hit) -> Hit:
    if isinstance(hit, Hit):
        return hit
    docid, score = hit
    return Hit(str(docid), float(score))


def strictly_decreasing(scores: list[float]) -> list[float]:
    """Return scores in the given rank order, nudged so that each is below the last.

    trec_eval (and pytrec_eval) hold scores as 32-bit floats and break ties by
    docid, so a score that is not below its predecessor by at least one 32-bit
    step becomes the next 32-bit float below the predecessor. The order of the
    list is kept and the change is as small as that precision allows.
    Non-finite scores become finite.
    """
    fixed: list[float] = []
    for score in scores:
        if math.isnan(score) or score == math.inf:
            score = fixed[-1] if fixed else 0.0
        if score == -math.inf:
            score = -1e30
        if fixed and _float32(score) >= _float32(fixed[-1]):
            score = float(np.nextafter(_float32(fixed[-1]), np.float32(-np.inf)))
        fixed.append(score)
    return fixed


def _float32(value: float) -> "np.float32":
    return np.float32(value)


def rerank(run: Run, qid_scores: dict[str, dict[str, float]], name: str | None = None) -> Run:
    """Return a new run whose hits are sorted by the new scores.

    Hits without a new score are dropped. Ties keep the input order, because
    Python's sort is stable.
    """
    reranked = Run(name=name or run.name)
    for qid, hits in run.items():
        scores = qid_scores.get(qid, {})
        kept = [Hit(hit.docid, scores[hit.docid]) for hit in hits if hit.docid in scores]
        reranked[qid] = sorted(kept, key=lambda hit: -hit.score)
    return reranked


def read_run(path: str | os.PathLike, max_hits: int | None = None) -> Run:
    """Read a TREC run file: ``qid Q0 docid rank score tag`` per line.

    The second column may be anything (`Q0`, `0`). Hits are sorted by score,
    ties in file order. A docid that repeats within a query keeps its best
    score, with one warning per file. A malformed line raises `RunFormatError`.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"run file not found: {path}")

    scores: dict[str, dict[str, float]] = {}
    duplicates = 0
    for line_number, fields in _split_lines(path):
        if len(fields) != 6:
            raise RunFormatError(
                f"{path}:{line_number}: expected 6 columns 'qid Q0 docid rank score tag', "
                f"found {len(fields)}: {' '.join(fields)!r}"
            )
        qid, _, docid, _, score_text, _ = fields
        try:
            score = float(score_text)
        except ValueError:
            raise RunFormatError(
                f"{path}:{line_number}: score {score_text!r} is not a number"
            ) from None
        if math.isnan(score):
            raise RunFormatError(f"{path}:{line_number}: score is NaN for qid {qid} docid {docid}")

        hits = scores.setdefault(qid, {})
        if docid in hits:
            duplicates += 1
            score = max(score, hits[docid])
        hits[docid] = score

    if duplicates:
        logger.warning(
            "%s: %d repeated (qid, docid) pairs; each keeps its best score", path, duplicates
        )

    run = Run(name=path.stem)
    for qid, hits in scores.items():
        ranked = sorted(hits.items(), key=lambda item: -item[1])
        run[qid] = [Hit(docid, score) for docid, score in ranked[:max_hits]]
    return run


def _split_lines(path: Path) -> Iterator[tuple[int, list[str]]]:
    line_number = 0
    with open(path, encoding="utf-8", errors="strict") as handle:
        try:
            for line_number, line in enumerate(handle, start=1):
                fields = line.split()
                if fields:
                    yield line_number, fields
        except UnicodeDecodeError as error:
            # The decoder reads ahead in blocks, so the bad byte is on a line after the last one read.
            raise RunFormatError(
                f"{path}: not valid UTF-8 after line {line_number} ({error.reason} at byte {error.start} of a block); "
                "run ids must be UTF-8, so convert the file, e.g. with iconv"
            ) from None


def format_run(run: Run, tag: str) -> Iterable[str]:
    """Yield the run's lines with `Q0`, ranks from 1 and strictly decreasing scores."""
    for qid, hits in run.items():
        scores = strictly_decreasing([hit.score for hit in hits])
        for rank, (hit, score) in enumerate(zip(hits, scores), start=1):
            yield f"{qid} Q0 {hit.docid} {rank} {score!r} {tag}\n"


def write_run(run: Run, path: str | os.PathLike, tag: str | None = None) -> Path:
    """Write a run atomically: a temporary file beside `path`, then a rename."""
    path = Path(path)
    tag = (tag or run.name or "dear_ir").replace(" ", "_")
    for qid, hits in run.items():
        for hit in hits:
            if not qid or not hit.docid or any(c.isspace() for c in qid + hit.docid):
                raise ValueError(f"cannot write qid {qid!r} docid {hit.docid!r}: ids must be non-empty with no whitespace")
    atomic_write_lines(path, format_run(run, tag))
    return path


def atomic_write_lines(path: str | os.PathLike, lines: Iterable[str]) -> None:
    """Write text lines to a temporary file in the target folder, then rename it into place.

    A crash or an exception while the lines are produced leaves any existing
    file untouched and no partial file behind.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp creates the file readable by its owner only; give it the
        # permissions a plain open() would, under the process umask.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)
        with os.fdopen(handle, "w", encoding="utf-8") as output:
            output.writelines(lines)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def metadata_path(run_path: str | os.PathLike) -> Path:
    return Path(f"{run_path}.meta.json")


def write_metadata(run_path: str | os.PathLike, settings: dict, **extra) -> Path:
    """Write `RUN.meta.json` beside a run: the command line, settings, library versions and time.

    Settings must be JSON-serialisable; paths are written as strings.
    """
    import json
    import platform
    import sys
    import time
    from importlib import metadata

    versions = {"python": platform.python_version()}
    for package in ("dear_ir", "torch", "transformers", "peft", "pyserini", "sentence-transformers"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass

    record = {
        "run": str(run_path),
        "command": " ".join([Path(sys.executable).name, "-m", _module_name()] + sys.argv[1:]),
        "settings": settings,
        "versions": versions,
        "written_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **extra,
    }
    path = metadata_path(run_path)
    atomic_write_lines(path, [json.dumps(record, indent=2, default=str) + "\n"])
    return path


def _module_name() -> str:
    import __main__

    spec = getattr(__main__, "__spec__", None)
    return spec.name if spec is not None else str(getattr(__main__, "__file__", "python"))


class PartialRun:
    """Queries finished so far by a long stage, kept in `OUTPUT.partial.jsonl` to resume after a crash.

    The first line records the stage's settings; each further line is one
    finished query, appended and flushed as soon as it is done. The file is
    created by the first `add`, so a stage that fails before finishing a query
    leaves nothing behind. A restart with the same settings skips the finished
    qids; with other settings it raises, because mixing two configurations in
    one run would go unnoticed. A torn last line (a crash mid-write) is dropped
    with a warning.
    """

    def __init__(self, output: str | os.PathLike, settings: dict):
        import json

        self.path = Path(f"{output}.partial.jsonl")
        self.settings = json.loads(json.dumps(settings, default=str))
        self.finished: dict[str, list[Hit]] = {}
        if self.path.is_file():
            self._load()

    def _load(self) -> None:
        import json

        with open(self.path, encoding="utf-8") as handle:
            lines = handle.read().split("\n")
        try:
            header = json.loads(lines[0])
            saved = header["settings"]
        except (json.JSONDecodeError, KeyError, TypeError):
            raise ValueError(
                f"{self.path} is not a partial run written by dear_ir (its first line has no settings); "
                "delete it to start over"
            ) from None

        torn = 0
        for line_number, line in enumerate(lines[1:], start=2):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                torn += 1
                logger.warning("%s:%d: incomplete line dropped; that query will be redone", self.path, line_number)
                continue
            self.finished[str(record["qid"])] = [Hit(str(d), float(s)) for d, s in record["hits"]]

        if saved != self.settings:
            changed = sorted(key for key in set(saved) | set(self.settings) if saved.get(key) != self.settings.get(key))
            if self.finished:
                details = ", ".join(f"{key}: {saved.get(key)!r} then, {self.settings.get(key)!r} now" for key in changed)
                raise ValueError(
                    f"{self.path} contains {len(self.finished)} queries done with other settings ({details}); "
                    "rerun with the same settings to resume, or delete the file to start over"
                )
            logger.info("%s finished no query; starting over with the new settings", self.path)
            self.path.unlink()
            return
        if torn:
            self._rewrite()
        logger.info("resuming from %s: %d queries already done", self.path, len(self.finished))

    def _rewrite(self) -> None:
        """Rewrite the file without torn lines, so that appends start on a clean line."""
        import json

        atomic_write_lines(self.path, [json.dumps({"settings": self.settings}) + "\n"] + [
            json.dumps({"qid": qid, "hits": [[h.docid, h.score] for h in hits]}) + "\n"
            for qid, hits in self.finished.items()
        ])

    def __contains__(self, qid: object) -> bool:
        return qid in self.finished

    def add(self, qid: str, hits: list[Hit]) -> None:
        import json

        if not self.path.is_file():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "w", encoding="utf-8") as handle:
                handle.write(json.dumps({"settings": self.settings}) + "\n")
        self.finished[qid] = hits
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps({"qid": qid, "hits": [[h.docid, h.score] for h in hits]}) + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)
