"""Use the Redis that answers; on a fresh machine, install and start a local one."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path
from urllib.parse import urlparse

import redis
from rich.console import Console

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


def redis_answers(url: str) -> bool:
    try:
        client = redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False


def ensure_redis(url: str, var_dir: Path, *, console: Console | None = None) -> None:
    console = console or Console(stderr=True)
    if redis_answers(url):
        return
    parsed = urlparse(url)
    host, port = parsed.hostname or "127.0.0.1", parsed.port or 6379
    if host not in LOCAL_HOSTS:
        raise RuntimeError(f"Redis at {url} does not answer (and it is not local to start it)")
    if shutil.which("redis-server") is None:
        console.print("[bold]installing redis-server (Debian package)")
        subprocess.run(["apt-get", "install", "-y", "-q", "redis-server"], check=True)
    data_dir = var_dir / "redis"
    data_dir.mkdir(parents=True, exist_ok=True)
    console.print(f"[bold]starting a local Redis on {host}:{port}")
    subprocess.run(
        ["redis-server", "--daemonize", "yes", "--bind", "127.0.0.1", "--port", str(port),
         "--save", "", "--appendonly", "no", "--dir", str(data_dir),
         "--logfile", str(data_dir / "redis.log"), "--pidfile", str(data_dir / "redis.pid")],
        check=True,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if redis_answers(url):
            return
        time.sleep(0.1)
    raise RuntimeError(f"started redis-server but {url} does not answer")
