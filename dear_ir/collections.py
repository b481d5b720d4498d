"""The registry of test collections (`collections.yaml`) and where each one's data comes from.

    python -m dear_ir.collections                 one line per collection: what runs offline
    python -m dear_ir.collections dl20 --check    each offline file, present or missing, and how to get it

A collection names its Pyserini resources (prebuilt index, topics and qrels names) and the
offline files that replace them under the data folder (``DEAR_IR_DATA``, by default
``../shared/data``). `resolve` decides, per collection, where the topics, the qrels, the
first-stage run and the passage texts come from:

- ``offline``: only files in the data folder. A missing one is reported with the file it
  should be and where a user with internet gets it.
- ``online``: Pyserini's prebuilt indexes and its topics and qrels by name, downloaded on
  first use. A collection without Pyserini resources (NovelEval) still reads its files.
- ``auto`` (the default): offline when the data folder exists, online otherwise. The choice
  looks at the folder alone, without probing the network, so an offline machine with the data
  folder does not start a download.
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

logger = logging.getLogger(__name__)

REGISTRY_FILE = Path(__file__).with_name("collections.yaml")
DATA_ENV = "DEAR_IR_DATA"
DEFAULT_DATA_DIR = "../shared/data"
SOURCES = ("auto", "offline", "online")

# Offline roles in the order a pipeline needs them.
ROLES = ("topics", "qrels", "run", "candidates", "corpus")


class RegistryError(ValueError):
    """An invalid entry in collections.yaml, or an unknown collection name."""


class MissingDataError(RuntimeError):
    """Data a pipeline step needs is neither in the data folder nor allowed to come from Pyserini."""


def data_dir() -> Path:
    """Return the data folder: ``$DEAR_IR_DATA``, or ``../shared/data`` from the working directory."""
    return Path(os.environ.get(DATA_ENV) or DEFAULT_DATA_DIR)


@dataclass(frozen=True)
class Collection:
    """One test collection: its Pyserini names, evaluation settings and offline file names."""

    name: str
    title: str
    family: str | None
    index: str | None  # Pyserini prebuilt index, for BM25 and for passage text
    topics: str | None  # Pyserini topics name
    qrels: str | None  # Pyserini qrels name
    relevance_level: int = 1
    metrics: tuple[str, ...] = ("ndcg_cut_10",)
    first_stage: str = "bm25"  # or "okapi-candidates"
    evaluation: str = "qrels"  # or "answers" for open-domain QA
    offline: dict[str, str] = field(default_factory=dict)  # role -> path relative to the data folder
    download: dict[str, str] = field(default_factory=dict)  # role -> where a user with internet gets it

    def offline_path(self, role: str, folder: Path | None = None) -> Path | None:
        """Return the offline file of `role` under the data folder, or None when the registry names none."""
        relative = self.offline.get(role)
        return None if relative is None else (folder or data_dir()) / relative

    def describe_missing(self, role: str, folder: Path | None = None) -> str:
        """Return a line naming the offline file of `role` and where to get it."""
        hint = self.download.get(role)
        text = f"{role} file {self.offline_path(role, folder)}"
        return f"{text} (source: {hint})" if hint else text


@functools.lru_cache(maxsize=4)
def load_registry_file(path: str | os.PathLike = REGISTRY_FILE) -> dict:
    """Return the parsed registry YAML (cached; callers must not modify it)."""
    with open(path, encoding="utf-8") as handle:
        registry = yaml.safe_load(handle)
    if not isinstance(registry, dict) or "collections" not in registry:
        raise RegistryError(f"{path}: expected top-level keys 'families', 'collections' and 'tables'")
    return registry


def load_collections(path: str | os.PathLike = REGISTRY_FILE) -> dict[str, Collection]:
    """Return every collection of the registry, family settings and patterns filled in."""
    registry = load_registry_file(path)
    families = registry.get("families") or {}
    return {
        name: _build_collection(name, entry or {}, families, path)
        for name, entry in registry["collections"].items()
    }


def get_collection(name: str, path: str | os.PathLike = REGISTRY_FILE) -> Collection:
    collections = load_collections(path)
    if name not in collections:
        raise RegistryError(f"unknown collection {name!r}; known: {', '.join(collections)} (see {path})")
    return collections[name]


def _build_collection(name: str, entry: dict, families: dict, path) -> Collection:
    family_name = entry.get("family")
    if family_name is not None and family_name not in families:
        raise RegistryError(f"{path}: collection {name!r} names unknown family {family_name!r}")
    family = families.get(family_name) or {}

    # The entry overrides the family; the role maps merge key by key.
    merged = {**family, **entry}
    for key in ("offline", "download"):
        merged[key] = {**(family.get(key) or {}), **(entry.get(key) or {})}

    fields = {key: value for key, value in merged.items() if isinstance(value, (str, int, float))}
    fields["name"] = name

    def fill(value):
        if not isinstance(value, str):
            return value
        try:
            return value.format(**fields)
        except KeyError as error:
            raise RegistryError(f"{path}: collection {name!r}: pattern {value!r} uses undefined field {error}") from None

    known = set(Collection.__dataclass_fields__) | {"family", "year", "beir"}
    unknown = set(merged) - known
    if unknown:
        raise RegistryError(f"{path}: collection {name!r} has unknown keys {sorted(unknown)}")
    unknown_roles = set(merged["offline"]) - set(ROLES)
    if unknown_roles:
        raise RegistryError(f"{path}: collection {name!r}: unknown offline roles {sorted(unknown_roles)}; use {ROLES}")

    return Collection(
        name=name,
        title=fill(merged.get("title", name)),
        family=family_name,
        index=fill(merged.get("index")),
        topics=fill(merged.get("topics")),
        qrels=fill(merged.get("qrels")),
        relevance_level=int(merged.get("relevance_level", 1)),
        metrics=tuple(merged.get("metrics") or ("ndcg_cut_10",)),
        first_stage=merged.get("first_stage", "bm25"),
        evaluation=merged.get("evaluation", "qrels"),
        offline={role: fill(value) for role, value in merged["offline"].items()},
        download={role: fill(value) for role, value in merged["download"].items()},
    )


# Where each input of a pipeline comes from ---------------------------------------------------


@dataclass(frozen=True)
class FirstStage:
    """The recipe of a first-stage run.

    `kind` is ``run`` (a run file, read as it is), ``index`` (BM25 over a local index built
    from `corpus`), ``prebuilt`` (BM25 over the Pyserini prebuilt index `location`) or
    ``okapi`` (Okapi BM25 over the candidates file `location`).
    """

    kind: str
    location: str
    corpus: str | None = None


@dataclass(frozen=True)
class TextSource:
    """The source of passage texts: a corpus or candidates file (``corpus``) or a Lucene index (``index``)."""

    kind: str
    location: str

    def rerank_arguments(self) -> list[str]:
        return [f"--{self.kind}", self.location]


@dataclass
class Resources:
    """The resolved inputs of one collection's pipeline; `problems` maps a role to why it is unavailable."""

    collection: Collection
    mode: str
    topics: str | None = None
    qrels: str | None = None
    first_stage: FirstStage | None = None
    text: TextSource | None = None
    folder: Path | None = None
    # need (topics, qrels, first_stage, text) -> the offline roles whose files would provide it
    problems: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def require(self, *needs: str, also: tuple[str, ...] = ("topics", "qrels", "first_stage", "text")) -> None:
        """Raise MissingDataError naming every missing file that the given needs would take.

        When one of `needs` is missing, the message also names what `also` lacks, so that a
        user fetches every file of the collection in one go.
        """
        if not any(need in self.problems for need in needs):
            return
        lines = []
        for need in dict.fromkeys([*needs, *also]):
            if need not in self.problems:
                continue
            roles = self.problems[need]
            label = need.replace("_", " ")
            if not roles:
                lines.append(f"{self.collection.name}: {label} has no offline file; it needs Pyserini (online)")
                continue
            options = [self.collection.describe_missing(role, self.folder) for role in roles]
            lines.append(f"{self.collection.name}: {label} needs " + ("one of:\n  " if len(options) > 1 else "") + "\n  ".join(options))
        if lines:
            raise MissingDataError("\n".join(lines + [self.online_hint()]))

    def reason(self, *needs: str) -> str | None:
        """Return a one-line reason why the given needs are unavailable, or None when none is missing."""
        parts = []
        for need in needs:
            if need not in self.problems:
                continue
            files = " or ".join(self.collection.offline[role] for role in self.problems[need])
            label = need.replace("_", " ")
            parts.append(f"{label} missing offline (needs {files})" if files else f"{label} needs Pyserini")
        if parts and all(not self.problems[need] for need in needs if need in self.problems):
            parts.append(f"with internet: make {self.collection.name} SOURCE=online")
        return "; ".join(parts) or None

    def online_hint(self) -> str:
        collection = self.collection
        if self.mode == "online" or collection.index is None:
            return f"Put the files above into the data folder ({data_dir()}), or set {DATA_ENV} to a folder that has them."
        return (
            f"With internet, `make {collection.name} SOURCE=online` uses Pyserini's prebuilt index "
            f"{collection.index} and its topics and qrels by name instead; offline, put the files above "
            f"into the data folder ({data_dir()})."
        )


def resolve(
    collection: Collection,
    source: str = "auto",
    folder: Path | None = None,
    indexes: str | os.PathLike = "indexes",
) -> Resources:
    """Decide where each input of `collection`'s pipeline comes from, and record what is missing.

    `source` is ``auto``, ``offline`` or ``online`` (see the module docstring). `indexes`
    is the folder of locally built Lucene indexes.
    """
    if source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}, not {source!r}")
    folder = folder or data_dir()
    mode = source
    if source == "auto":
        mode = "offline" if folder.is_dir() else "online"
    resources = Resources(collection, mode, folder=folder)

    def present(role: str) -> Path | None:
        path = collection.offline_path(role, folder)
        return path if path is not None and path.is_file() else None

    def missing(need: str, *roles: str) -> None:
        resources.problems[need] = tuple(dict.fromkeys(role for role in roles if role in collection.offline))

    online = mode == "online"

    # Topics and qrels: a Pyserini name online, else the offline file.
    for role in ("topics", "qrels"):
        name = getattr(collection, role)
        if role == "qrels" and collection.evaluation == "answers":
            continue  # QA collections are judged by the answer strings that their topics contain
        if online and name:
            setattr(resources, role, name)
        elif present(role):
            setattr(resources, role, str(present(role)))
        else:
            missing(role, role)

    # First-stage run.
    if collection.first_stage == "okapi-candidates":
        if present("candidates"):
            resources.first_stage = FirstStage("okapi", str(present("candidates")))
        else:
            missing("first_stage", "candidates")
    elif online and collection.index:
        resources.first_stage = FirstStage("prebuilt", collection.index)
    elif present("run"):
        resources.first_stage = FirstStage("run", str(present("run")))
    elif present("corpus"):
        corpus = present("corpus")
        resources.first_stage = FirstStage("index", str(Path(indexes) / corpus.parent.name), corpus=str(corpus))
    else:
        missing("first_stage", "run", "corpus")

    # Passage texts for the rerankers.
    if online and collection.index and collection.first_stage != "okapi-candidates":
        resources.text = TextSource("index", collection.index)
    elif present("candidates"):
        resources.text = TextSource("corpus", str(present("candidates")))
    elif resources.first_stage is not None and resources.first_stage.kind == "index":
        resources.text = TextSource("index", resources.first_stage.location)
    elif present("corpus"):
        resources.text = TextSource("corpus", str(present("corpus")))
    else:
        missing("text", "candidates", "corpus")
    return resources


# Command line ---------------------------------------------------------------------------------


def check_lines(collection: Collection, source: str = "auto", folder: Path | None = None) -> tuple[list[str], bool]:
    """Return the report lines of ``--check`` and whether the whole pipeline can run."""
    folder = folder or data_dir()
    resources = resolve(collection, source, folder)
    lines = [f"{collection.name} ({collection.title}): data folder {folder}, {resources.mode} mode"]
    for role in ROLES:
        path = collection.offline_path(role, folder)
        if path is None:
            continue
        state = "present" if path.is_file() else "missing"
        lines.append(f"  {role:<11} {state:<8} {path}")
        if state == "missing" and role in collection.download:
            lines.append(f"  {'':<11} {'':<8} source: {collection.download[role]}")

    first = resources.first_stage
    lines.append(f"  topics:      {resources.topics or 'MISSING'}")
    if collection.evaluation == "qrels":
        lines.append(f"  qrels:       {resources.qrels or 'MISSING'}")
    lines.append(f"  first stage: {f'{first.kind} {first.location}' if first else 'MISSING'}")
    lines.append(f"  text:        {f'{resources.text.kind} {resources.text.location}' if resources.text else 'MISSING'}")
    if resources.problems:
        lines.append("  " + resources.online_hint())
    return lines, not resources.problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m dear_ir.collections",
        description="List the registered test collections and check which offline files are present.",
    )
    parser.add_argument("names", nargs="*", metavar="COLLECTION", help="collections to show (default: all)")
    parser.add_argument("--check", action="store_true",
                        help="list each offline file, present or missing, and where to get it; exit 1 when the pipeline cannot run")
    parser.add_argument("--source", choices=SOURCES, default="auto",
                        help="auto: offline when the data folder exists; offline: data folder only; online: Pyserini by name")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    collections = load_collections()
    try:
        names = args.names or list(collections)
        selected = [get_collection(name) for name in names]
    except RegistryError as error:
        logger.error("%s", error)
        return 2

    complete = True
    for collection in selected:
        if args.check:
            lines, runnable = check_lines(collection, args.source)
            print("\n".join(lines))
        else:
            resources = resolve(collection, args.source)
            runnable = not resources.problems
            status = "ready" if runnable else resources.reason(*resources.problems)
            print(f"{collection.name:<10} {collection.title:<28} {resources.mode:<8} {status}")
        complete = complete and runnable
    return 0 if complete or not args.check else 1


if __name__ == "__main__":
    sys.exit(main())
