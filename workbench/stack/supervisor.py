"""Talking to supervisord, which keeps the local services running.

workbench writes supervisord's configuration from the declared services, starts one
supervisord per workbench home, and controls it over XML-RPC on a private unix socket.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shlex
import subprocess
import sys
import tempfile
import time
import xmlrpc.client
from pathlib import Path
from typing import Any

import psutil
from supervisor.xmlrpc import SupervisorTransport

from workbench.errors import ServiceError
from workbench.settings import Settings
from workbench.stack.services import Service, services

log = logging.getLogger(__name__)

_SOCKET_LIMIT = 100  # unix socket paths are capped near 108 bytes


def config_path(settings: Settings) -> Path:
    return settings.run_dir / "supervisord.conf"


def pid_path(settings: Settings) -> Path:
    return settings.run_dir / "supervisord.pid"


def socket_path(settings: Settings) -> Path:
    path = settings.run_dir / "supervisor.sock"
    if len(str(path)) < _SOCKET_LIMIT:
        return path
    digest = hashlib.sha256(str(settings.home).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"workbench-{digest}.sock"


def _quote(value: str) -> str:
    # supervisord expands %(name)s in every value.
    return value.replace("%", "%%")


def _environment(values: dict[str, str]) -> str:
    for name, value in values.items():
        if '"' in value or "\n" in value:
            raise ServiceError(f"environment value of {name} cannot contain quotes or newlines")
    return ",".join(f'{name}="{_quote(value)}"' for name, value in sorted(values.items()))


def _program(service: Service, settings: Settings) -> str:
    env = settings.environment()
    env.update(
        MLFLOW_DISABLE_TELEMETRY=os.environ.get(
            "MLFLOW_DISABLE_TELEMETRY", "false" if settings.telemetry else "true"
        ),
        BENTOML_DO_NOT_TRACK=os.environ.get(
            "BENTOML_DO_NOT_TRACK", "false" if settings.telemetry else "true"
        ),
    )
    env.update(service.environment(settings))
    command = " ".join(shlex.quote(part) for part in service.command(settings))
    log_file = service.log_path(settings)
    return "\n".join(
        [
            f"[program:{service.name}]",
            f"command={_quote(command)}",
            f"directory={_quote(str(settings.home))}",
            f"environment={_environment(env)}",
            # workbench waits for health itself and reports failures; a crash stays
            # visible as "down" until `wb up` starts the service again, unless the
            # service asks to be restarted.
            "autostart=false",
            *(
                # Restarted when it exits, unless it keeps failing within 10 s of starting.
                ["autorestart=unexpected", "exitcodes=0", "startsecs=10", "startretries=2"]
                if service.restart
                else ["autorestart=false", "startsecs=0", "startretries=0"]
            ),
            "stopasgroup=true",
            "killasgroup=true",
            f"stopwaitsecs={service.stop_timeout}",
            "redirect_stderr=true",
            f"stdout_logfile={_quote(str(log_file))}",
            "stdout_logfile_maxbytes=50MB",
            "stdout_logfile_backups=3",
            "",
        ]
    )


def render_config(settings: Settings, services: list[Service]) -> str:
    """supervisord's configuration for the given services."""
    sock = socket_path(settings)
    head = f"""\
[unix_http_server]
file={_quote(str(sock))}
chmod=0700

[supervisord]
logfile={_quote(str(settings.logs_dir / "supervisord.log"))}
logfile_maxbytes=10MB
logfile_backups=2
pidfile={_quote(str(pid_path(settings)))}
directory={_quote(str(settings.home))}
identifier=workbench
minfds=10000
nodaemon=false

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl=unix://{_quote(str(sock))}

"""
    return head + "\n".join(_program(service, settings) for service in services)


def client(settings: Settings) -> Any:
    """An XML-RPC proxy to this home's supervisord (it may not be running)."""
    transport = SupervisorTransport(None, None, serverurl=f"unix://{socket_path(settings)}")
    return xmlrpc.client.ServerProxy("http://localhost", transport=transport)


def running(settings: Settings) -> bool:
    """True when this home's supervisord answers."""
    if not socket_path(settings).exists():
        return False
    try:
        return client(settings).supervisor.getState()["statename"] == "RUNNING"
    except (OSError, xmlrpc.client.Error):
        return False


def _clean_stale(settings: Settings) -> None:
    pid_file = pid_path(settings)
    if pid_file.exists():
        pid = read_pid(pid_file)
        if pid is not None and _is_supervisord(pid):
            raise ServiceError(
                f"supervisord (pid {pid}) holds {pid_file} but does not answer on "
                f"{socket_path(settings)}; stop it with `kill {pid}` and run `wb up` again"
            )
        log.warning("removing stale pid file %s (pid %s is not running)", pid_file, pid)
        pid_file.unlink()
    socket_path(settings).unlink(missing_ok=True)


def read_pid(path: Path) -> int | None:
    """The pid in a pid file, or None when it is missing or unreadable."""
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _is_supervisord(pid: int) -> bool:
    try:
        return any("supervisord" in part for part in psutil.Process(pid).cmdline())
    except psutil.Error:
        return False


def ensure_running(settings: Settings) -> Any:
    """Write the configuration, start supervisord if needed, and return a client."""
    settings.run_dir.mkdir(parents=True, exist_ok=True)
    settings.logs_dir.mkdir(parents=True, exist_ok=True)
    config = config_path(settings)
    config.write_text(render_config(settings, list(services(settings).values())))
    config.chmod(0o600)

    if running(settings):
        _reload(settings)
        return client(settings)

    _clean_stale(settings)
    command = [sys.executable, "-m", "supervisor.supervisord", "-c", str(config)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
    if result.returncode != 0:
        raise ServiceError(f"supervisord did not start: {result.stderr or result.stdout}")
    deadline = time.monotonic() + 15
    while not running(settings):
        if time.monotonic() > deadline:
            raise ServiceError(
                f"supervisord did not answer on {socket_path(settings)} within 15 s; "
                f"see {settings.logs_dir / 'supervisord.log'}"
            )
        time.sleep(0.1)
    log.info("started supervisord for %s", settings.home)
    return client(settings)


def _reload(settings: Settings) -> None:
    # Pick up changed settings for services that are not running; running ones keep theirs.
    proxy = client(settings)
    added, changed, removed = proxy.supervisor.reloadConfig()[0]
    for name in removed:
        proxy.supervisor.stopProcessGroup(name)
        proxy.supervisor.removeProcessGroup(name)
    for name in changed:
        if proxy.supervisor.getProcessInfo(name)["statename"] in ("RUNNING", "STARTING"):
            log.warning(
                "%s is running with older settings; `wb down %s && wb up %s` applies them",
                name,
                name,
                name,
            )
            continue
        proxy.supervisor.removeProcessGroup(name)
        proxy.supervisor.addProcessGroup(name)
    for name in added:
        proxy.supervisor.addProcessGroup(name)


def shutdown(settings: Settings) -> None:
    """Stop supervisord itself (after its services) and wait until it has gone."""
    if not running(settings):
        _clean_stale(settings)
        return
    pid = read_pid(pid_path(settings))
    client(settings).supervisor.shutdown()
    if pid is not None:
        with contextlib.suppress(psutil.NoSuchProcess):
            psutil.Process(pid).wait(timeout=120)
