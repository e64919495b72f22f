"""Java, Maven and the JVM artifacts workbench runs (the Kafka broker, Flink connectors)."""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import subprocess
from pathlib import Path

from workbench.errors import MissingDependency, ServiceError
from workbench.settings import Settings

log = logging.getLogger(__name__)

MIN_JAVA = 17
POM = Path(__file__).resolve().parents[1] / "images" / "pom.xml"
_JAVA_HINT = "Install a JDK 17 or newer (Debian: apt-get install openjdk-17-jdk-headless)"


def java() -> str:
    """Path of the ``java`` to run services with: ``$JAVA_HOME/bin/java``, else PATH."""
    home = os.environ.get("JAVA_HOME")
    candidate = Path(home, "bin", "java") if home else None
    if candidate is not None and candidate.exists():
        return str(candidate)
    found = shutil.which("java")
    if found is None:
        raise MissingDependency(f"`java` was not found on PATH or in JAVA_HOME. {_JAVA_HINT}.")
    return found


def java_version(executable: str) -> int:
    """The feature release of a ``java`` executable (17 for 17.0.15)."""
    result = subprocess.run(
        [executable, "-version"], capture_output=True, text=True, timeout=60, check=False
    )
    match = re.search(r'version "(\d+)(?:\.(\d+))?', result.stderr + result.stdout)
    if match is None:
        raise MissingDependency(f"could not read the version of {executable}: {result.stderr!r}")
    major = int(match.group(1))
    # Java 8 and older call themselves 1.x.
    return int(match.group(2) or 0) if major == 1 else major


def check_java() -> str:
    """Return a ``java`` of release 17 or newer, or raise naming what to install."""
    executable = java()
    release = java_version(executable)
    if release < MIN_JAVA:
        raise MissingDependency(
            f"{executable} is Java {release}; workbench needs Java {MIN_JAVA} or newer. "
            f"{_JAVA_HINT}, or point JAVA_HOME at one."
        )
    return executable


def maven() -> str:
    """Path of ``mvn``, or raise naming what to install."""
    found = shutil.which("mvn")
    if found is None:
        raise MissingDependency(
            "`mvn` was not found on PATH; it fetches the Kafka broker and Flink connector "
            "from Maven Central. Install Apache Maven (Debian: apt-get install maven)."
        )
    return found


def kafka_classpath(settings: Settings) -> str:
    """The Kafka broker's classpath inside the workbench home."""
    return str(settings.jars_dir / "kafka" / "*")


def flink_connector_jars(settings: Settings) -> list[Path]:
    """The Flink connector jars fetched by :func:`fetch_jars`."""
    return sorted((settings.jars_dir / "flink").glob("*.jar"))


def fetch_jars(settings: Settings, *, force: bool = False) -> Path:
    """Fetch the JVM artifacts listed in ``images/pom.xml`` into the workbench home, once.

    A stamp holding the pom's hash marks a complete fetch; changing the pom fetches again.
    """
    target = settings.jars_dir
    stamp = target / ".pom-sha256"
    digest = hashlib.sha256(POM.read_bytes()).hexdigest()
    if not force and stamp.exists() and stamp.read_text().strip() == digest:
        return target

    check_java()
    log.info("fetching JVM artifacts from Maven Central into %s", target)
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    command = [maven(), "-q", "-B", "-f", str(POM), "package", f"-Dworkbench.jars={target}"]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).splitlines()[-20:])
        raise ServiceError(
            f"Maven could not fetch the JVM artifacts ({' '.join(command)}):\n{tail}"
        )
    stamp.write_text(digest + "\n")
    return target
