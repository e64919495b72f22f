from __future__ import annotations

import stat
from pathlib import Path

import pytest

from workbench import jvm
from workbench.errors import MissingDependency


def _fake_java(folder: Path, version_line: str) -> Path:
    # A stand-in `java` that reports a chosen version, as an old JDK would.
    folder.mkdir(parents=True, exist_ok=True)
    java = folder / "java"
    java.write_text(f"#!/bin/sh\necho '{version_line}' >&2\n")
    java.chmod(java.stat().st_mode | stat.S_IEXEC)
    return java


def test_the_installed_java_is_at_least_17() -> None:
    assert jvm.java_version(jvm.check_java()) >= 17


@pytest.mark.parametrize(
    ("line", "release"),
    [
        ('openjdk version "17.0.15" 2025-04-15', 17),
        ('openjdk version "25" 2025-09-16', 25),
        ('java version "1.8.0_402"', 8),
        ('openjdk version "11.0.2" 2019-01-15', 11),
    ],
)
def test_java_release_is_read_from_the_version_banner(
    tmp_path: Path, line: str, release: int
) -> None:
    assert jvm.java_version(str(_fake_java(tmp_path, line))) == release


def test_an_old_java_is_refused_with_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_java(tmp_path / "jdk11" / "bin", 'openjdk version "11.0.2" 2019-01-15')
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "jdk11"))

    with pytest.raises(MissingDependency, match=r"is Java 11; workbench needs Java 17 or newer"):
        jvm.check_java()


def test_missing_java_and_maven_name_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))

    with pytest.raises(MissingDependency, match=r"`java` was not found.*JDK 17"):
        jvm.check_java()
    with pytest.raises(MissingDependency, match=r"`mvn` was not found.*Install Apache Maven"):
        jvm.maven()
