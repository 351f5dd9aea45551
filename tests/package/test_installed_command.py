"""The command as people install it: the wheel, in a fresh virtual environment, from elsewhere.

`pipx install .` and `pip install .` build this wheel. Installed into an empty venv (with the
pinned versions of requirements/dev.lock, from uv's cache when it has them), the `secretwatch`
it gives must work from a folder that is not the repository: `--version`, `evaluate -` and the
whole `demo`, whose template and events are package data. It runs within `make test` (~30-60 s).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "requirements" / "dev.lock"
UV = Path(sys.executable).parent / "uv"


def _interpreters() -> list[str]:
    """This venv's Python (3.12, the Lambda runtime's) and 3.13 when the machine has it: the
    command supports both. Found, not assumed: nothing is skipped when 3.13 is absent."""
    found = [sys.executable]
    probe = subprocess.run(
        [str(ROOT / "scripts" / "find-python.sh"), "3.13"],
        capture_output=True,
        text=True,
        check=False,
    )
    if probe.returncode == 0 and probe.stdout.strip():
        found.append(probe.stdout.strip())
    return found


@dataclass(frozen=True)
class Installed:
    bin: Path
    wheel: Path
    elsewhere: Path


def _run(argv: Sequence[str | Path], **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # type: ignore[call-overload, no-any-return]
        [str(a) for a in argv], capture_output=True, text=True, check=False, **kwargs
    )


def _clean_environment() -> dict[str, str]:
    """The user's environment: no test-run settings, no path into the repository."""
    drop = ("PYTHONPATH", "VIRTUAL_ENV", "AWS_ENDPOINT_URL", "MOTO_ACCOUNT_ID", "SECRETWATCH_TABLE")
    env = {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("PYTEST")}
    env["UV_PYTHON_DOWNLOADS"] = "never"
    return env


@pytest.fixture(scope="module", params=_interpreters(), ids=lambda p: Path(p).name)
def installed(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Installed:
    python = str(request.param)
    base = tmp_path_factory.mktemp("installed")
    env = _clean_environment()
    built = _run([UV, "build", "--wheel", "-q", "-o", base / "dist", ROOT], env=env, timeout=300)
    assert built.returncode == 0, built.stderr
    (wheel,) = (base / "dist").glob("secretwatch-*.whl")
    venv = base / "venv"
    created = _run([UV, "venv", "-q", "-p", python, venv], env=env, timeout=120)
    assert created.returncode == 0, created.stderr
    install: list[str | Path] = [
        UV,
        "pip",
        "install",
        "-q",
        "-p",
        venv / "bin" / "python",
        "-c",
        LOCK,
        wheel,
    ]
    # Offline first: `make dev` filled uv's cache with exactly these versions.
    done = _run([*install, "--offline"], env=env, timeout=300)
    if done.returncode != 0:
        done = _run(install, env=env, timeout=600)
    assert done.returncode == 0, done.stderr
    elsewhere = base / "elsewhere"
    elsewhere.mkdir()
    return Installed(venv / "bin", wheel, elsewhere)


def secretwatch(
    installed: Installed, *argv: str, stdin: str | None = None, timeout: int = 60
) -> subprocess.CompletedProcess[str]:
    return _run(
        [installed.bin / "secretwatch", *argv],
        cwd=installed.elsewhere,
        env=_clean_environment(),
        input=stdin,
        timeout=timeout,
    )


@pytest.mark.install
def test_the_wheel_carries_the_template_and_the_events_the_demo_needs(installed: Installed) -> None:
    # GIVEN the wheel `pip install .` builds
    with zipfile.ZipFile(installed.wheel) as wheel:
        names = set(wheel.namelist())
    # THEN the template and every payload of events/ are in it, byte for byte
    assert "cli/bundled/template.yaml" in names
    with zipfile.ZipFile(installed.wheel) as wheel:
        assert wheel.read("cli/bundled/template.yaml") == (ROOT / "template.yaml").read_bytes()
    events = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "events").rglob("*.json"))
    assert events
    assert {f"cli/bundled/{name}" for name in events} <= names
    # AND nothing of the tests or the repository's tooling
    assert not any(n.startswith(("tests/", "scripts/")) for n in names)


@pytest.mark.install
def test_version_is_the_packages(installed: Installed) -> None:
    # WHEN the installed command is asked its version, outside the repository
    done = secretwatch(installed, "--version")
    # THEN it prints the package's version and exits 0
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("secretwatch 0.1.0 (Python 3.1")


@pytest.mark.install
def test_the_installed_code_is_the_venvs_not_the_repositorys(installed: Installed) -> None:
    done = _run(
        [
            installed.bin / "python",
            "-c",
            "import cli, shared; print(cli.__file__, shared.__file__)",
        ],
        cwd=installed.elsewhere,
        env=_clean_environment(),
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert str(ROOT / "src") not in done.stdout
    assert "site-packages" in done.stdout


@pytest.mark.install
def test_evaluate_reads_standard_input(installed: Installed) -> None:
    # GIVEN an EventBridge event on standard input
    event = (ROOT / "events" / "eventbridge" / "root-deleted-secret.json").read_text()
    # WHEN `secretwatch evaluate -` reads it
    done = secretwatch(installed, "evaluate", "-", stdin=event)
    # THEN one line names the record and the rules it fires
    assert done.returncode == 0, done.stderr
    (line,) = done.stdout.splitlines()
    result = json.loads(line)
    assert result["file"] == "<stdin>"
    assert {f["rule"] for f in result["findings"]} == {"root-activity", "secret-deleted"}


@pytest.mark.install
def test_demo_runs_whole_from_another_folder(installed: Installed) -> None:
    # WHEN the installed demo runs in a folder with no template and no events/
    done = secretwatch(installed, "demo", timeout=300)
    # THEN it runs every part and proves idempotency, with no traceback
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr
    assert "3. Alerts: 24 published" in done.stdout  # 22, and the two trail tamper samples
    assert "nothing new: no second audit record, no second alert" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr
