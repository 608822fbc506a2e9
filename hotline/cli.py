"""`hotline`: one command with subcommands (serve, up, asterisk …, db …, demo, prompts …)."""

from __future__ import annotations

import asyncio
import logging
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
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
    from hotline.audit import Actor
    from hotline.clock import Clock
    from hotline.demo import DEMO_ADMIN_SECRET, seed_admin, seed_demo
    from hotline.secrets import generated_secret

    async with _people(settings) as people:
        async with people.sessions() as session:
            counsellors = await seed_demo(session, site_code=settings.demo.site_code,
                                          now=Clock.from_settings(settings.clock).now())
        await _rules_service(settings, people.sessions).seed_defaults(
            settings.demo.site_code, actor=Actor.system("demo"))
        await seed_admin(people, password=generated_secret(settings.var_dir, DEMO_ADMIN_SECRET))
    return counsellors


def _rules_service(settings: Settings, sessions: Any) -> Any:
    from hotline.clock import Clock
    from hotline.rules.services import RulesService

    async def published(_site: str | None) -> None:
        # A running backend picks the change up from the database on its refresh timer.
        return None

    return RulesService(sessions=sessions, clock=Clock.from_settings(settings.clock),
                        crisis_priority=settings.ivr.crisis_priority, on_change=published)


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
    table = Table(title="Counsellor softphones")
    for column in ("name", "tier", "seat", "username", "password", "server", "transport"):
        table.add_column(column)
    host = _sip_host(settings)
    udp = f"{host}:{settings.asterisk.sip_port}"
    tls = f"{host}:{settings.asterisk.tls_port}"
    strict = settings.asterisk.cloud_seat_tls_required
    for counsellor in counsellors:
        seat = getattr(counsellor, "seat", "on_site")
        if seat == "cloud":
            server, transport = tls, ("TLS + SRTP (required)" if strict
                                      else f"TLS + SRTP (or UDP {udp})")
        else:
            server, transport = udp, "UDP"
        table.add_row(counsellor.name, counsellor.tier, seat, counsellor.username,
                      counsellor.secret, server, transport)
    Console().print(table)
    if any(getattr(c, "seat", "") == "cloud" for c in counsellors):
        print_tls_trust(settings)
    print_admin_login(settings)


def print_tls_trust(settings: Settings) -> None:
    """What a cloud seat's softphone needs to trust the server over TLS."""
    from hotline.asterisk.tls import TlsError, ensure_tls_files, fingerprint, server_names

    out = Console(highlight=False, soft_wrap=True)
    try:
        files = ensure_tls_files(settings.var_dir, server_names(settings))
        print_fingerprint = fingerprint(files.server_cert)
    except (TlsError, ValueError) as error:
        out.print(f"[yellow]TLS certificate not available: {error}")
        return
    out.print(f"Cloud seats (at home): account transport TLS, server "
              f"{_sip_host(settings)}:{settings.asterisk.tls_port}, media encryption SRTP "
              f"(SDES). Import the CA certificate {files.ca_cert} into the softphone, or "
              f"accept the server certificate with SHA-256 fingerprint {print_fingerprint}.",
              markup=False)


def print_admin_login(settings: Settings) -> None:
    from hotline.demo import DEMO_ADMIN, DEMO_ADMIN_SECRET
    from hotline.secrets import generated_secret

    password = generated_secret(settings.var_dir, DEMO_ADMIN_SECRET)
    base = f"http://{settings.web.host}:{settings.web.port}/api"
    out = Console(highlight=False, soft_wrap=True)
    out.print(f"Admin API: {base}/  sign in as [bold]{DEMO_ADMIN}[/] with the password "
              f"[bold]{password}[/] (generated into var/secrets.toml; "
              f"`hotline users passwd {DEMO_ADMIN}` changes it). Get a token by signing in:")
    out.print(f"  curl -s -X POST {base}/auth/login -H 'Content-Type: application/json' "
              f"-d '{{\"username\": \"{DEMO_ADMIN}\", \"password\": \"{password}\"}}'",
              markup=False)
    out.print(f"or for a script: TOKEN=$(hotline users token {DEMO_ADMIN} --name my-script); "
              "then send the header \"Authorization: Bearer $TOKEN\".", markup=False)


@main.command()
@pass_settings
def demo(settings: Settings) -> None:
    """Seed a demo site (three queues, three counsellors on shift now) and print SIP logins."""
    from hotline.db.migrate import upgrade

    upgrade(settings.database_url)
    print_credentials(settings, _run(lambda: _seed(settings)))


# -- users ---------------------------------------------------------------------------------

@asynccontextmanager
async def _people(settings: Settings) -> AsyncIterator[Any]:
    from hotline.clock import Clock
    from hotline.db.engine import create_engine_for, session_factory
    from hotline.people.services import People

    engine = create_engine_for(settings.database_url)
    try:
        yield People(sessions=session_factory(engine), clock=Clock.from_settings(settings.clock))
    finally:
        await engine.dispose()


def _people_run(settings: Settings, action: Callable[[Any], Awaitable[T]]) -> T:
    """Run one People action on the latest schema; its errors become a CLI error (exit 1)."""
    from hotline.db.migrate import upgrade
    from hotline.people.services import PeopleError

    upgrade(settings.database_url)

    async def run() -> T:
        async with _people(settings) as people:
            return await action(people)

    try:
        return _run(run)
    except PeopleError as error:
        raise click.ClickException(error.message) from error


def _read_password(password_stdin: bool) -> tuple[str, bool]:
    """The password from the first line of stdin, or a generated one (and whether it was)."""
    from hotline.people.passwords import generate_password

    if password_stdin:
        return sys.stdin.readline().rstrip("\r\n"), False
    return generate_password(), True


CLI_ACTOR = "cli"
# The values of hotline.db.models.Role (not imported here: the CLI starts faster).
ROLES = ("admin", "supervisor", "counsellor", "duty_officer")


@main.group()
def users() -> None:
    """People who use the admin API: roles, passwords, API tokens."""


@users.command("add")
@click.argument("username")
@click.option("--role", required=True,
              type=click.Choice(ROLES))
@click.option("--display-name", default="", help="The name shown to other users.")
@click.option("--password-stdin", is_flag=True,
              help="Read the password from stdin; otherwise one is generated and printed.")
@pass_settings
def users_add(settings: Settings, username: str, role: str, display_name: str,
              password_stdin: bool) -> None:
    """Add a user. A generated password is printed alone on stdout."""
    from hotline.audit import Actor
    from hotline.db.models import Role

    password, generated = _read_password(password_stdin)
    _people_run(settings, lambda people: people.create_user(
        Actor.system(CLI_ACTOR), username=username, role=Role(role), password=password,
        display_name=display_name))
    console.print(f"[green]user {username} ({role}) added")
    if generated:
        console.print("their password:")
        click.echo(password)


@users.command("passwd")
@click.argument("username")
@click.option("--password-stdin", is_flag=True,
              help="Read the password from stdin; otherwise one is generated and printed.")
@pass_settings
def users_passwd(settings: Settings, username: str, password_stdin: bool) -> None:
    """Set a user's password. A generated password is printed alone on stdout."""
    from hotline.audit import Actor

    password, generated = _read_password(password_stdin)

    async def change(people: Any) -> None:
        user = await people.user_named(username)
        await people.update_user(Actor.system(CLI_ACTOR), user.id, password=password)

    _people_run(settings, change)
    console.print(f"[green]password of {username} changed")
    if generated:
        console.print("their password:")
        click.echo(password)


@users.command("token")
@click.argument("username")
@click.option("--name", default="cli", show_default=True, help="A label for the token.")
@click.option("--expires-in-days", type=click.IntRange(min=1), default=None,
              help="Days until it expires (default: never; revoke it when done).")
@pass_settings
def users_token(settings: Settings, username: str, name: str,
                expires_in_days: int | None) -> None:
    """Issue an API token for a user and print only the token on stdout."""
    from hotline.audit import Actor

    async def issue(people: Any) -> str:
        user = await people.user_named(username)
        issued = await people.issue_token(Actor.system(CLI_ACTOR), user.id, name=name,
                                          expires_in_days=expires_in_days)
        return str(issued.token)

    click.echo(_people_run(settings, issue))


@users.command("list")
@pass_settings
def users_list(settings: Settings) -> None:
    """List the users."""
    people = _people_run(settings, lambda people: people.list_users())
    table = Table(title="Users")
    for column in ("id", "username", "display name", "role", "active", "last sign-in"):
        table.add_column(column)
    for user in people:
        last = user.last_login_at.isoformat(timespec="seconds") if user.last_login_at else "-"
        table.add_row(str(user.id), user.username, user.display_name, user.role.value,
                      "yes" if user.active else "no", last)
    Console().print(table)


# -- voicemail -----------------------------------------------------------------------------

@main.group()
def voicemail() -> None:
    """Messages callers left."""


@voicemail.command("backlog")
@click.option("--retranscribe", is_flag=True,
              help="Also transcribe again every message that has audio but no transcript "
                   "(e.g. after configuring voicemail.model_dir): keywords are scanned again "
                   "and an urgent one raises its alert.")
@pass_settings
def voicemail_backlog(settings: Settings, retranscribe: bool) -> None:
    """Process every message not processed yet (audio, transcript, keywords, callback), with
    progress. `hotline serve` does the same in the background; this drains a backlog now."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from hotline.app import build_components

    async def drain() -> tuple[int, int]:
        components = build_components(settings)
        processor = components.messages.processor
        try:
            await components.routing.reload_quietly()
            if retranscribe:
                click.echo(f"{len(await processor.retranscribe())} messages to transcribe again")
            pending = await processor.unprocessed()
            columns = (*Progress.get_default_columns()[:1], BarColumn(), MofNCompleteColumn(),
                       TimeRemainingColumn())
            with Progress(*columns, console=Console(stderr=True)) as progress:
                bar = progress.add_task("messages", total=len(pending))
                for message_id in pending:
                    try:
                        await processor.process(message_id)
                    except Exception as error:  # reported; the others go on
                        progress.console.print(f"message {message_id}: {error!r}")
                    progress.advance(bar)
            return processor.processed, len(pending)
        finally:
            await components.messages.transcriber.close()
            await components.alert_channel.close()
            await components.engine.dispose()

    done, pending = _run(drain)
    click.echo(f"{done} of {pending} messages processed")


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
                                   crisis_wait_timeout=settings.queues.crisis_wait_timeout_seconds,
                                   wrapup=settings.queues.wrapup_seconds,
                                   widen_after=settings.queues.crisis_widen_after_seconds)
    finally:
        await engine.dispose()
    return render(plan, settings), plan.warnings


def install_rendered(settings: Settings) -> None:
    from hotline.asterisk.tls import install_sandbox_tls
    from hotline.db.migrate import upgrade

    upgrade(settings.database_url)
    files, warnings = _run(lambda: rendered_files(settings))
    for warning in warnings:
        console.print(f"[yellow]warning: {warning}")
    sandbox = _sandbox(settings)
    # The cloud seats' TLS certificate (generated into var/tls on first use) goes in first:
    # Asterisk reads it when the TLS transport starts, so a new one needs a restart.
    tls_changed = install_sandbox_tls(settings, sandbox)
    sandbox.install_config(files)
    if sandbox.status().running:
        if tls_changed:
            sandbox.restart_asterisk()
        else:
            sandbox.reload()


@main.group()
def asterisk() -> None:
    """The sandboxed Asterisk 22 (a Debian sid chroot), or config for your own Asterisk."""


@asterisk.command("build")
@click.option("--force", is_flag=True, help="Rebuild the chroot from scratch.")
@pass_settings
def asterisk_build(settings: Settings, force: bool) -> None:
    """Build (or reuse) the Asterisk chroot and its Mandarin prompts."""
    sandbox = _sandbox(settings)
    sandbox.build(force=force)
    build_sandbox_prompts(settings, sandbox)


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


def build_sandbox_prompts(settings: Settings, sandbox: Any, *, force: bool = False) -> None:
    """Everything a caller can hear, in Mandarin (and the hotline prompts in English), into
    the sandbox's sounds directory."""
    from hotline.asterisk.prompts import build_all_prompts

    build_all_prompts(
        sounds_dir=sandbox.sounds_dir, language=settings.asterisk.sounds_language, force=force,
        console=console,
        # Inside the chroot sounds/en is an absolute symlink: resolve it there, not on the host.
        language_dir=lambda language: sandbox.host_path(f"/usr/share/asterisk/sounds/{language}"),
    )


def start_sandbox(settings: Settings) -> None:
    sandbox = _sandbox(settings)
    sandbox.build()
    build_sandbox_prompts(settings, sandbox)
    install_rendered(settings)
    sandbox.up()
    start_lockout_guard(settings, sandbox)
    status = sandbox.status()
    console.print(f"[green]Asterisk {status.version} is up; carrier running: "
                  f"{status.carrier_running}")


def _lockout_guard(settings: Settings, sandbox: Any) -> Any:
    from hotline.asterisk.lockout import LockoutGuard

    security_log = settings.lockout.security_log or sandbox.host_path(
        "/var/log/asterisk/security.log")
    return LockoutGuard(settings, state_dir=sandbox.run_dir.parent, security_log=security_log)


def start_lockout_guard(settings: Settings, sandbox: Any) -> None:
    """fail2ban for the sandbox: locks out addresses that keep failing SIP sign-in."""
    from hotline.asterisk.lockout import LockoutError

    guard = _lockout_guard(settings, sandbox)
    if not settings.lockout.enabled:
        guard.stop()
        return
    try:
        done = guard.start()
    except LockoutError as error:
        console.print(f"[yellow]warning: SIP lock-out not enforced: {error}")
        return
    console.print(f"[green]✓[/] SIP lock-out guard (fail2ban) {done}: "
                  f"{settings.lockout.max_failures} failures in {settings.lockout.find_seconds} s "
                  f"lock an address out for {settings.lockout.ban_seconds} s")


def stop_lockout_guard(settings: Settings, sandbox: Any) -> None:
    if _lockout_guard(settings, sandbox).stop():
        console.print("[green]✓[/] SIP lock-out guard (fail2ban) stopped")


@asterisk.command("lockouts")
@click.option("--unban", "unban", default=None, help="Lift the lock-out of this address.")
@click.option("--fail2ban-config", type=click.Path(file_okay=False, path_type=Path),
              default=None, help="Write fail2ban's configuration here for your Asterisk host.")
@click.option("--security-log", default="/var/log/asterisk/security.log",
              help="Asterisk's security log on that host (with --fail2ban-config).")
@pass_settings
def asterisk_lockouts(settings: Settings, unban: str | None, fail2ban_config: Path | None,
                      security_log: str) -> None:
    """Addresses locked out for failing SIP sign-in (the sandbox's fail2ban)."""
    from hotline.asterisk.lockout import write_fail2ban_dir

    if fail2ban_config is not None:
        write_fail2ban_dir(settings, fail2ban_config, security_log=security_log)
        console.print(f"[green]wrote {fail2ban_config}; on the Asterisk host run: "
                      f"fail2ban-client -c {fail2ban_config.resolve()} start")
        return
    guard = _lockout_guard(settings, _sandbox(settings))
    if unban:
        guard.unban(unban)
    for address in guard.banned():
        click.echo(address)


@asterisk.command("up")
@pass_settings
def asterisk_up(settings: Settings) -> None:
    """Build if needed, render, and start Asterisk and the simulated carrier."""
    start_sandbox(settings)


@asterisk.command("down")
@pass_settings
def asterisk_down(settings: Settings) -> None:
    """Stop Asterisk, the simulated carrier and the SIP lock-out guard (fail2ban)."""
    stop_lockout_guard(settings, _sandbox(settings))
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
    """Generate the Mandarin prompts and system sounds with espeak-ng into the sandbox."""
    build_sandbox_prompts(settings, _sandbox(settings), force=force)


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
            stop_lockout_guard(settings, _sandbox(settings))
            _sandbox(settings).down()


async def _seed_after_upgrade(settings: Settings) -> list[Any]:
    from hotline.db.migrate import upgrade

    await asyncio.to_thread(upgrade, settings.database_url)
    return await _seed(settings)


if __name__ == "__main__":
    main()
