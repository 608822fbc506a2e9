"""What the sandbox installs for the classic AGI fallback (the pure parts; the chroot run
is checked on the real sandbox)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from hotline.asterisk.sandbox import (
    CLASSIC_LIB,
    CLASSIC_REQUIREMENTS,
    CLASSIC_SNAPSHOT_DIR,
    CLASSIC_VENV,
    CLASSIC_WRAPPER,
    classic_code_files,
    classic_code_version,
    classic_venv_spec,
    classic_wrapper,
    host_ca_bundle,
)
from hotline.config import Settings

ALLOWED_TOP_LEVEL = {"agi", "routing", "asterisk", "pydantic", "__future__"}


def _imports(source: bytes) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_the_copied_code_imports_only_stdlib_pyst2_pydantic_and_routing() -> None:
    files = classic_code_files()
    assert "agi/classic.py" in files and "routing/menu.py" in files
    assert "routing/snapshot.py" in files and "routing/ids.py" in files
    for name, source in files.items():
        foreign = {module for module in _imports(source)
                   if module not in ALLOWED_TOP_LEVEL and module not in sys.stdlib_module_names}
        assert not foreign, f"{name} imports {foreign}"


def test_the_copied_code_runs_alone(tmp_path: Path) -> None:
    for name, data in classic_code_files().items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    probe = ("import sys; sys.path.insert(0, sys.argv[1]); import agi.classic; "
             "bad = {'hotline', 'sqlalchemy', 'structlog', 'panoramisk', 'redis', 'aiohttp'}; "
             "print(sorted(m for m in sys.modules if m.split('.')[0] in bad))")
    # -I: no PYTHONPATH, no current directory: only the copy and site-packages
    result = subprocess.run([sys.executable, "-I", "-c", probe, str(tmp_path)],
                            capture_output=True, text=True, check=True, cwd=tmp_path)
    assert result.stdout.strip() == "[]"


def test_the_code_version_follows_the_content() -> None:
    files = classic_code_files()
    assert classic_code_version(files) == classic_code_version(dict(reversed(files.items())))
    changed = {**files, "routing/menu.py": files["routing/menu.py"] + b"\n"}
    assert classic_code_version(changed) != classic_code_version(files)


def test_the_wrapper_runs_the_venv_python_isolated_with_the_snapshot_dir() -> None:
    text = classic_wrapper(snapshot_dir="/srv/rules")
    assert text.startswith(f"#!{CLASSIC_VENV}/bin/python3 -I\n")
    compile(text, CLASSIC_WRAPPER, "exec")
    assert f'sys.path.insert(0, "{CLASSIC_LIB}/current")' in text
    assert "entry(snapshot_dir='/srv/rules')" in text
    # SIGHUP is ignored before the first import of ours
    assert text.index("signal.SIG_IGN") < text.index("from agi.classic import entry")


def test_the_venv_is_redone_when_python_or_the_requirements_change() -> None:
    assert classic_venv_spec("python3.14") != classic_venv_spec("python3.15")
    assert classic_venv_spec("python3.14")["requirements"] == list(CLASSIC_REQUIREMENTS)
    assert any(r.startswith("pyst2==") for r in CLASSIC_REQUIREMENTS)


def test_pip_in_the_chroot_trusts_the_hosts_ca_bundle(tmp_path: Path) -> None:
    bundle = tmp_path / "ca.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    assert host_ca_bundle({"PIP_CERT": str(bundle)}) == bundle
    assert host_ca_bundle({"PIP_CERT": str(tmp_path / "missing"),
                           "SSL_CERT_FILE": str(bundle)}) == bundle


def test_the_sandbox_snapshot_dir_is_the_backends_default(tmp_path: Path) -> None:
    from hotline.rules.snapshot_files import snapshot_directory

    settings = Settings(asterisk={"chroot_dir": tmp_path})
    assert snapshot_directory(settings) == tmp_path / CLASSIC_SNAPSHOT_DIR.lstrip("/")
