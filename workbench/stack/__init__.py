"""The local stack: start, stop and inspect workbench's services on this machine.

``wb up``, ``wb down``, ``wb status`` and ``wb logs`` are thin wrappers over
:func:`up`, :func:`down`, :func:`status` and :func:`logs`; the test suite starts its
services through the same functions.
"""

from __future__ import annotations

import logging
import os
import time
import xmlrpc.client
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psutil

from workbench.errors import ServiceError
from workbench.settings import Settings
from workbench.settings import settings as read_settings
from workbench.stack import supervisor
from workbench.stack.services import (
    DEFAULT_GROUPS,
    LOOPBACK,
    SERVICES,
    Address,
    Service,
    port_free,
    services,
)

__all__ = ["SERVICES", "ServiceStatus", "down", "logs", "status", "up"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServiceStatus:
    """What ``wb status`` knows of one service."""

    name: str
    state: str  # up, down, starting, remote, unmanaged
    healthy: bool
    pid: int | None
    address: str
    log: str
    detail: str = ""

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def _select(
    names: Iterable[str] | None, settings: Settings, groups: Iterable[str] | None = None
) -> list[Service]:
    """The services named (a name may also be a group), or those of ``groups``."""
    known = services(settings)
    if not names:
        wanted = set(groups) if groups is not None else {s.group for s in known.values()}
        return [service for service in known.values() if service.group in wanted]
    by_group: dict[str, list[str]] = {}
    for service in known.values():
        by_group.setdefault(service.group, []).append(service.name)
    chosen: list[str] = []
    unknown = []
    for name in names:
        members = [name] if name in known else by_group.get(name)
        if not members:
            unknown.append(name)
        chosen.extend(member for member in members or [] if member not in chosen)
    if unknown:
        raise ServiceError(
            f"unknown service {', '.join(map(repr, unknown))}; the services are "
            f"{', '.join(known)} and the groups {', '.join(sorted(by_group))}"
        )
    return [known[name] for name in chosen]


def up(names: Iterable[str] | None = None, settings: Settings | None = None) -> list[ServiceStatus]:
    """Start the named services or groups and wait until each is healthy.

    With no names, starts the default groups (Kafka, MLflow and the deployed models).

    A service that already runs is not started again. Raises :class:`ServiceError`
    naming the services that failed, with the last lines of their logs.
    """
    settings = settings or read_settings()
    chosen = [s for s in _select(names, settings, DEFAULT_GROUPS) if not _is_remote(s, settings)]
    proxy = supervisor.ensure_running(settings)

    started = []
    for service in chosen:
        if _state(proxy, service) in ("RUNNING", "STARTING"):
            log.info("%s is already running", service.name)
            continue
        _reap_leftovers(service, settings)
        _check_ports_free(service, settings)
        if service.prepare is not None:
            service.prepare(settings)
        _start(proxy, service, settings)
        started.append(service)

    _wait_healthy(proxy, chosen, settings)
    for service in chosen:
        if service.after_start is not None:
            service.after_start(settings)
    return status(settings, [s.name for s in chosen])


def _is_remote(service: Service, settings: Settings) -> bool:
    reason = service.remote(settings)
    if reason is not None:
        log.info("not starting %s locally: %s", service.name, reason)
    return reason is not None


def _state(proxy: Any, service: Service) -> str:
    try:
        return str(proxy.supervisor.getProcessInfo(service.name)["statename"])
    except xmlrpc.client.Fault as fault:
        # Not in supervisord's configuration (it was written while the service was
        # remote, say): supervisord runs no such process.
        if "BAD_NAME" in fault.faultString:
            return "UNKNOWN"
        raise


def _start(proxy: Any, service: Service, settings: Settings) -> None:
    service.log_path(settings).parent.mkdir(parents=True, exist_ok=True)
    try:
        proxy.supervisor.startProcess(service.name, True)
    except xmlrpc.client.Fault as fault:
        raise ServiceError(
            f"{service.name} did not start: {fault.faultString}\n{_log_tail(service, settings)}"
        ) from None
    pid = proxy.supervisor.getProcessInfo(service.name)["pid"]
    _pid_file(service, settings).write_text(f"{pid}\n")
    log.info("started %s (pid %s), logging to %s", service.name, pid, service.log_path(settings))


def _reap_leftovers(service: Service, settings: Settings) -> None:
    # supervisord starts each service as a process group; when the leader was killed,
    # its children (uvicorn workers, say) may still hold the ports.
    pid_file = _pid_file(service, settings)
    pid = supervisor.read_pid(pid_file)
    if pid is None:
        return
    leftovers = [p for p in psutil.process_iter() if _group_of(p) == pid]
    if leftovers:
        log.warning("stopping %d leftover process(es) of %s", len(leftovers), service.name)
        for process in leftovers:
            process.terminate()
        _, alive = psutil.wait_procs(leftovers, timeout=service.stop_timeout)
        for process in alive:
            process.kill()
    pid_file.unlink(missing_ok=True)


def _group_of(process: psutil.Process) -> int | None:
    try:
        return os.getpgid(process.pid)
    except OSError:
        return None


def _pid_file(service: Service, settings: Settings) -> Path:
    return settings.run_dir / f"{service.name}.pid"


def _check_ports_free(service: Service, settings: Settings) -> None:
    for address in service.addresses(settings):
        if _port_free(address):
            continue
        holder = _holder(address.port)
        raise ServiceError(
            f"cannot start {service.name}: {address} is already in use"
            f"{f' by {holder}' if holder else ''}. Stop that process, or choose another port "
            f"with {address.setting}."
        )


def _port_free(address: Address) -> bool:
    return port_free(address.host, address.port)


def _holder(port: int) -> str | None:
    try:
        connections = psutil.net_connections(kind="inet")
    except psutil.Error:
        return None
    for connection in connections:
        if connection.status == psutil.CONN_LISTEN and connection.laddr.port == port:
            if connection.pid is None:
                return None
            try:
                command = " ".join(psutil.Process(connection.pid).cmdline())
            except psutil.Error:
                command = "?"
            return f"pid {connection.pid} ({command[:120]})"
    return None


def _wait_healthy(proxy: Any, chosen: list[Service], settings: Settings) -> None:
    waiting = {service.name: service for service in chosen}
    by_name = dict(waiting)
    failures: dict[str, str] = {}
    deadline = time.monotonic() + settings.start_timeout
    while waiting:
        for name, service in list(waiting.items()):
            if service.healthy(settings):
                log.info("%s is healthy", name)
                del waiting[name]
            elif _state(proxy, service) not in ("RUNNING", "STARTING"):
                failures[name] = f"{name} exited before it became healthy"
                del waiting[name]
        if time.monotonic() > deadline:
            for name in waiting:
                failures[name] = (
                    f"{name} did not become healthy within {settings.start_timeout:g} s "
                    "(WORKBENCH_START_TIMEOUT)"
                )
            break
        if waiting:
            time.sleep(0.5)
    if failures:
        report = "\n\n".join(
            f"{problem}\n{_log_tail(by_name[name], settings)}" for name, problem in failures.items()
        )
        raise ServiceError(report)


def _log_tail(service: Service, settings: Settings, lines: int = 20) -> str:
    path = service.log_path(settings)
    tail = "\n".join(tail_lines(path, lines))
    return f"last lines of {path}:\n{tail}" if tail else f"{path} is empty"


def tail_lines(path: Path, lines: int) -> list[str]:
    """The last ``lines`` lines of a text file (empty when it does not exist)."""
    if not path.exists():
        return []
    with path.open("rb") as handle:
        handle.seek(0, 2)
        size = handle.tell()
        handle.seek(max(0, size - 64 * 1024))
        text = handle.read().decode(errors="replace")
    return text.splitlines()[-lines:]


def down(names: Iterable[str] | None = None, settings: Settings | None = None) -> list[str]:
    """Stop the named services (default: all, then supervisord itself).

    Also stops a service left running by a supervisord that died. Returns the names
    of the services it stopped.
    """
    settings = settings or read_settings()
    chosen = _select(names, settings)
    stopped: list[str] = []
    try:
        if supervisor.running(settings):
            proxy = supervisor.client(settings)
            for service in chosen:
                if _state(proxy, service) in ("RUNNING", "STARTING"):
                    proxy.supervisor.stopProcess(service.name, True)
                    log.info("stopped %s", service.name)
                    stopped.append(service.name)
                _pid_file(service, settings).unlink(missing_ok=True)
        for service in chosen:
            if _stop_orphan(service, settings):
                stopped.append(service.name)
        for service in chosen:
            if service.name in stopped:
                _wait_ports_released(service, settings)
    finally:
        # Whatever failed above, stopping everything still stops supervisord, and with
        # it every process it runs.
        if names is None:
            supervisor.shutdown(settings)
    return stopped


def _wait_ports_released(service: Service, settings: Settings) -> None:
    # A child of the service (the stream job's JVM) may outlive its leader by a moment.
    deadline = time.monotonic() + service.stop_timeout
    addresses = [a for a in service.addresses(settings) if a.host in LOOPBACK]
    while time.monotonic() < deadline and not all(_port_free(a) for a in addresses):
        time.sleep(0.2)


def _orphan(service: Service, settings: Settings) -> psutil.Process | None:
    pid_file = _pid_file(service, settings)
    if not pid_file.exists():
        return None
    pid = supervisor.read_pid(pid_file)
    if pid is not None:
        try:
            process = psutil.Process(pid)
            home = str(settings.home)
            if home in " ".join(process.cmdline()) or process.cwd() == home:
                return process
        except psutil.Error:
            pass
    log.info("removing stale pid file %s", pid_file)
    pid_file.unlink(missing_ok=True)
    return None


def _stop_orphan(service: Service, settings: Settings) -> bool:
    process = _orphan(service, settings)
    if process is None:
        return False
    log.warning(
        "stopping %s (pid %d), left running by a supervisor that died", service.name, process.pid
    )
    group = [process, *process.children(recursive=True)]
    for member in group:
        member.terminate()
    _, alive = psutil.wait_procs(group, timeout=service.stop_timeout)
    for member in alive:
        member.kill()
    _pid_file(service, settings).unlink(missing_ok=True)
    return True


def status(
    settings: Settings | None = None, names: Iterable[str] | None = None
) -> list[ServiceStatus]:
    """The state of each service: supervised state, pid, address, health and log path."""
    settings = settings or read_settings()
    proxy = supervisor.client(settings) if supervisor.running(settings) else None
    return [_status(service, settings, proxy) for service in _select(names, settings)]


def _status(service: Service, settings: Settings, proxy: Any) -> ServiceStatus:
    address = ", ".join(str(a) for a in service.addresses(settings))
    healthy = service.healthy(settings)
    common = {"name": service.name, "address": address, "log": str(service.log_path(settings))}

    remote = service.remote(settings)
    if remote is not None:
        return ServiceStatus(state="remote", healthy=healthy, pid=None, detail=remote, **common)
    if proxy is None:
        orphan = _orphan(service, settings)
        if orphan is not None:
            detail = f"pid {orphan.pid} runs without its supervisor; `wb down` stops it"
            return ServiceStatus(
                state="unmanaged", healthy=healthy, pid=orphan.pid, detail=detail, **common
            )
        return ServiceStatus(
            state="down", healthy=healthy, pid=None, detail="not started", **common
        )

    info = proxy.supervisor.getProcessInfo(service.name)
    if info["statename"] in ("RUNNING", "STARTING"):
        state = "up" if healthy else "starting"
        return ServiceStatus(state=state, healthy=healthy, pid=info["pid"], **common)
    detail = info["statename"].lower()
    if info["statename"] == "EXITED":
        detail = f"exited ({info['description']})"
    return ServiceStatus(state="down", healthy=healthy, pid=None, detail=detail, **common)


def logs(
    name: str, *, lines: int = 50, follow: bool = False, settings: Settings | None = None
) -> Iterator[str]:
    """The last ``lines`` lines of a service's log; with ``follow``, then every new line."""
    settings = settings or read_settings()
    service = _select([name], settings)[0]
    path = service.log_path(settings)
    yield from tail_lines(path, lines)
    if not follow:
        return
    while not path.exists():
        time.sleep(0.5)
    with path.open("r", errors="replace") as handle:
        handle.seek(0, 2)
        while True:
            line = handle.readline()
            if line:
                yield line.rstrip("\n")
            else:
                time.sleep(0.2)
