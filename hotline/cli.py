"""`hotline`: one command with subcommands (serve, up, asterisk …, db …, demo, prompts …)."""

from __future__ import annotations

import asyncio
import logging
import socket
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import click
import structlog
from rich.console import Console
from rich.table import Table

from hotline.config import Settings, load_settings

T = TypeVar("T")
console = Console(stderr=True)


def configure_logging(settings: Settings) -> None:
    level = getattr(logging, settings.log_level.upper(), logging.INFO)
    logging.basicConfig(level=level, format="%(message)s", stream=sys.stderr)
    renderer: Any = (structlog.processors.JSONRenderer() if settings.log_json
                     else structlog.dev.ConsoleRenderer(colors=False))
    structlog.configure(
        processors=[structlog.contextvars.merge_contextvars, structlog.processors.add_log_level,
                    structlog.processors.TimeStamper(fmt="iso"), renderer],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
    )
    # panoramisk logs every reconnect attempt at ERROR; ours reports them once.
    logging.getLogger("panoramisk").setLevel(logging.CRITICAL)


def _run(coro_factory: Callable[[], Awaitable[T]]) -> T:
    async def runner() -> T:
        return await coro_factory()
    return asyncio.run(runner())


@click.group()
@click.pass_context
def main(ctx: click.Context) -> None:
    """hotline12355: the 12355 youth hotline backend on Asterisk."""
    settings = load_settings()
    configure_logging(settings)
    ctx.obj = settings


pass_settings = click.make_pass_decorator(Settings)


# -- database ------------------------------------------------------------------------------

@main.group()
def db() -> None:
    """Database migrations."""


@db.command("upgrade")
@pass_settings
def db_upgrade(settings: Settings) -> None:
    """Apply migrations up to the latest schema."""
    from hotline.db.migrate import upgrade

    upgrade(settings.database_url)
    console.print("[green]database is at the latest schema")


@db.command("current")
@pass_settings
def db_current(settings: Settings) -> None:
    """Print the schema revision of the database."""
    from hotline.db.migrate import current_revision

    click.echo(current_revision(settings.database_url) or "(empty)")


# -- demo ----------------------------------------------------------------------------------

async def _seed(settings: Settings) -> list[Any]:
    from hotline.clock import Clock
    from hotline.db.engine import create_engine_for, session_factory
    from hotline.demo import seed_demo

    engine = create_engine_for(settings.database_url)
    try:
        async with session_factory(engine)() as session:
            return await seed_demo(session, site_code=settings.demo.site_code,
                                   now=Clock.from_settings(settings.clock).now())
    finally:
        await engine.dispose()


def _sip_host(settings: Settings) -> str:
    if settings.asterisk.sip_bind not in ("0.0.0.0", "::"):
        return settings.asterisk.sip_bind
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(("192.0.2.1", 9))  # no packet is sent: this only picks a route
            return str(probe.getsockname()[0])
    except OSError:
        return "127.0.0.1"


def print_credentials(settings: Settings, counsellors: list[Any]) -> None:
    table = Table(title="Counsellor softphones (SIP over UDP)")
    for column in ("name", "tier", "username", "password", "server"):
        table.add_column(column)
    server = f"{_sip_host(settings)}:{settings.asterisk.sip_port}"
    for counsellor in counsellors:
        table.add_row(counsellor.name, counsellor.tier, counsellor.username, counsellor.secret,
                      server)
    Console().print(table)
    Console().print(f"Admin API: http://{settings.web.host}:{settings.web.port}/api/ "
                    f"with header 'Authorization: Bearer {settings.web.api_token}'")


@main.command()
@pass_settings
def demo(settings: Settings) -> None:
    """Seed a demo site (three queues, three counsellors on shift now) and print SIP logins."""
    from hotline.db.migrate import upgrade

    upgrade(settings.database_url)
    print_credentials(settings, _run(lambda: _seed(settings)))


# -- asterisk ------------------------------------------------------------------------------

def _sandbox(settings: Settings) -> Any:
    from hotline.asterisk.sandbox import AsteriskSandbox

    return AsteriskSandbox(settings=settings.asterisk, ami=settings.ami, var_dir=settings.var_dir,
                           console=console, full_log=settings.asterisk.full_log)


async def rendered_files(settings: Settings) -> tuple[dict[str, str], list[str]]:
    from hotline.asterisk.plan import load_plan
    from hotline.asterisk.render import render
    from hotline.clock import Clock
    from hotline.db.engine import create_engine_for, session_factory

    engine = create_engine_for(settings.database_url)
    try:
        async with session_factory(engine)() as session:
            plan = await load_plan(session, now=Clock.from_settings(settings.clock).now(),
                                   default_site=settings.demo.site_code,
                                   wait_timeout=settings.queues.wait_timeout_seconds,
                                   crisis_wait_timeout=settings.queues.crisis_wait_timeout_seconds)
    finally:
        await engine.dispose()
    return render(plan, settings), plan.warnings


def install_rendered(settings: Settings) -> None:
    from hotline.db.migrate import upgrade

    upgrade(settings.database_url)
    files, warnings = _run(lambda: rendered_files(settings))
    for warning in warnings:
        console.print(f"[yellow]warning: {warning}")
    sandbox = _sandbox(settings)
    sandbox.install_config(files)
    if sandbox.status().running:
        sandbox.reload()


@main.group()
def asterisk() -> None:
    """The sandboxed Asterisk 22 (a Debian sid chroot), or config for your own Asterisk."""


@asterisk.command("build")
@click.option("--force", is_flag=True, help="Rebuild the chroot from scratch.")
@pass_settings
def asterisk_build(settings: Settings, force: bool) -> None:
    """Build (or reuse) the Asterisk chroot and its Mandarin prompts."""
    from hotline.asterisk.prompts import build_prompts

    sandbox = _sandbox(settings)
    sandbox.build(force=force)
    build_prompts(sounds_dir=sandbox.sounds_dir, language=settings.asterisk.sounds_language,
                  console=console)


@asterisk.command("render")
@click.option("--output", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Write include-able files here instead of into the sandbox.")
@pass_settings
def asterisk_render(settings: Settings, output: Path | None) -> None:
    """Render the Asterisk configuration from the database and config."""
    if output is None:
        install_rendered(settings)
        console.print("[green]configuration installed into the sandbox")
        return
    files, warnings = _run(lambda: rendered_files(settings))
    output.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        target = output / f"hotline_{name}"
        target.write_text(content)
        target.chmod(0o600)
    for warning in warnings:
        console.print(f"[yellow]warning: {warning}")
    console.print(f"[green]wrote {len(files)} files to {output}; add to your Asterisk:")
    for name in files:
        console.print(f'  {name}: #include "{(output / f"hotline_{name}").resolve()}"')


def start_sandbox(settings: Settings) -> None:
    from hotline.asterisk.prompts import build_prompts

    sandbox = _sandbox(settings)
    sandbox.build()
    build_prompts(sounds_dir=sandbox.sounds_dir, language=settings.asterisk.sounds_language,
                  console=console)
    install_rendered(settings)
    sandbox.up()
    status = sandbox.status()
    console.print(f"[green]Asterisk {status.version} is up; carrier running: "
                  f"{status.carrier_running}")


@asterisk.command("up")
@pass_settings
def asterisk_up(settings: Settings) -> None:
    """Build if needed, render, and start Asterisk and the simulated carrier."""
    start_sandbox(settings)


@asterisk.command("down")
@pass_settings
def asterisk_down(settings: Settings) -> None:
    """Stop Asterisk and the simulated carrier."""
    _sandbox(settings).down()


@asterisk.command("restart")
@pass_settings
def asterisk_restart(settings: Settings) -> None:
    """Restart Asterisk (the backend reconnects and reconciles)."""
    _sandbox(settings).restart_asterisk()


@asterisk.command("status")
@pass_settings
def asterisk_status(settings: Settings) -> None:
    """Show whether the sandbox is built and running."""
    status = _sandbox(settings).status()
    for key, value in vars(status).items():
        click.echo(f"{key}: {value}")
    if not status.running:
        sys.exit(3)


@asterisk.command("cli")
@click.argument("command", nargs=-1, required=True)
@pass_settings
def asterisk_cli(settings: Settings, command: tuple[str, ...]) -> None:
    """Run an Asterisk CLI command in the sandbox (e.g. `queue show`)."""
    click.echo(_sandbox(settings).cli(" ".join(command)))


# -- prompts -------------------------------------------------------------------------------

@main.group()
def prompts() -> None:
    """Mandarin prompts."""


@prompts.command("build")
@click.option("--force", is_flag=True)
@pass_settings
def prompts_build(settings: Settings, force: bool) -> None:
    """Generate the Mandarin prompts with espeak-ng into the sandbox's sounds."""
    from hotline.asterisk.prompts import build_prompts

    build_prompts(sounds_dir=_sandbox(settings).sounds_dir,
                  language=settings.asterisk.sounds_language, force=force, console=console)


# -- serving -------------------------------------------------------------------------------

def serve_forever(settings: Settings) -> None:
    from aiohttp import web

    from hotline.app import create_app

    web.run_app(create_app(settings), host=settings.web.host, port=settings.web.port,
                print=lambda text: console.print(text), access_log=None)


@main.command()
@pass_settings
def serve(settings: Settings) -> None:
    """Run the FastAGI server, the AMI listener and the admin web in one process."""
    from hotline.db.migrate import upgrade

    upgrade(settings.database_url)
    serve_forever(settings)


@main.command()
@click.option("--keep-asterisk", is_flag=True, help="Leave Asterisk running on exit.")
@pass_settings
def up(settings: Settings, keep_asterisk: bool) -> None:
    """Everything, on embedded defaults: demo data, the sandboxed Asterisk, the backend."""
    from hotline.redis_service import ensure_redis

    ensure_redis(settings.redis.url, settings.var_dir, console=console)
    counsellors = _run(lambda: _seed_after_upgrade(settings))
    start_sandbox(settings)
    print_credentials(settings, counsellors)
    console.print("Call the hotline: a SIP call to 12355 from the carrier address "
                  f"{settings.asterisk.carrier_address}; see README for sipp and softphones.")
    try:
        serve_forever(settings)
    finally:
        if not keep_asterisk:
            _sandbox(settings).down()


async def _seed_after_upgrade(settings: Settings) -> list[Any]:
    from hotline.db.migrate import upgrade

    await asyncio.to_thread(upgrade, settings.database_url)
    return await _seed(settings)


if __name__ == "__main__":
    main()
