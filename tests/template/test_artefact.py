"""The built artefact of every function (.aws-sam/build/<Function>/) holds what it runs, no more.

`make test` runs `make build` first (src/Makefile, through `sam build`); these tests read its
output and fail (they do not skip) with "run make build" when it is missing.
"""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from scripts import lambda_build_env
from scripts.lambda_build_env import build_env

from shared.clients import MODELS_DIR_NAME, TRIMMED_OPERATIONS
from tests.template.cfn import BUILT_FUNCTIONS, REPO_ROOT, TEMPLATE_PATH, Template, load_template

BUILD_DIR = REPO_ROOT / ".aws-sam" / "build"
MODELS = MODELS_DIR_NAME
SRC = REPO_ROOT / "src"
PROBE = Path(__file__).with_name("artefact_probe.py")
TIMEOUT_SECONDS = 120

# 8.6 MB today (3.0 MB zipped): 5.3 MB of sources, 4.4 MB of them Powertools, and their byte-code.
# botocore alone is ~30 MB, so any copy of the SDK breaks the bound; the rest leaves room for the
# digest function and dependency updates.
MAX_UNZIPPED_BYTES = 12_000_000

REQUIRED = (
    "handlers/__init__.py",
    "handlers/eventbridge.py",
    "handlers/log_subscription.py",
    "shared/__init__.py",
    "shared/rules/default_rules.json",
    "aws_lambda_powertools/__init__.py",
    "aws_xray_sdk/__init__.py",
    "wrapt/__init__.py",
    "jmespath/__init__.py",
    "typing_extensions.py",
)
# Provided by the Lambda runtime (a copy would shadow it), or never run by a function.
FORBIDDEN_TOP_LEVEL = (
    "botocore",
    "boto3",
    "s3transfer",
    "urllib3",
    "dateutil",
    "six.py",
    "cli",
    "moto",
    "tests",
    "bin",
)
ELF_MACHINE = {"x86_64": 62, "arm64": 183}  # e_machine: EM_X86_64, EM_AARCH64
MACHINE_OF_HOST = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}


def _artefact(function: str) -> Path:
    path = BUILD_DIR / function
    if not (path / "handlers").is_dir():
        pytest.fail(f"{path.relative_to(REPO_ROOT)} is not built: run make build (make test does)")
    return path


def _files(root: Path) -> list[Path]:
    return sorted(path for path in root.rglob("*") if path.is_file())


def _pins(path: Path) -> dict[str, str]:
    """name -> version of every `name==version` line (names normalised as in PEP 503)."""
    pins = {}
    for line in path.read_text().splitlines():
        match = re.fullmatch(r"([A-Za-z0-9._-]+)==([^\s;#]+)", line.strip())
        if match:
            pins[re.sub(r"[-_.]+", "-", match[1]).lower()] = match[2]
    return pins


def _installed(artefact: Path) -> dict[str, str]:
    """name -> version of every distribution pip installed into the artefact."""
    installed = {}
    for dist_info in artefact.glob("*.dist-info"):
        metadata = (dist_info / "METADATA").read_text()
        name = re.search(r"^Name: (.+)$", metadata, re.MULTILINE)
        version = re.search(r"^Version: (.+)$", metadata, re.MULTILINE)
        assert name, f"{dist_info.name}: no Name in METADATA"
        assert version, f"{dist_info.name}: no Version in METADATA"
        installed[re.sub(r"[-_.]+", "-", name[1].strip()).lower()] = version[1].strip()
    return installed


def _architecture(template: Template, function: str) -> str:
    properties = template["Resources"][function]["Properties"]
    architectures = properties.get(
        "Architectures", template["Globals"]["Function"].get("Architectures", ["x86_64"])
    )
    assert len(architectures) == 1, architectures
    architecture: str = architectures[0]
    return architecture


def _python_version(template: Template, function: str) -> str:
    properties = template["Resources"][function]["Properties"]
    runtime: str = properties.get("Runtime", template["Globals"]["Function"]["Runtime"])
    return runtime.removeprefix("python")


# --- what the build is given ---------------------------------------------------------------------


def test_every_function_is_built_by_src_makefile(template: Template) -> None:
    # GIVEN every function in the template
    functions = {
        name
        for name, resource in template["Resources"].items()
        if resource["Type"] == "AWS::Serverless::Function"
    }

    # WHEN / THEN each is built by makefile and src/Makefile has its target
    assert functions == set(BUILT_FUNCTIONS)
    makefile = (SRC / "Makefile").read_text()
    (listed,) = re.findall(r"^FUNCTIONS := (.+)$", makefile, re.MULTILINE)
    assert set(listed.split()) == functions
    for function in functions:
        assert template["Resources"][function]["Metadata"]["BuildMethod"] == "makefile", function


def test_build_env_reads_architecture_and_python_from_the_template(template: Template) -> None:
    # GIVEN the template (arm64), and a copy whose functions move to x86_64, one of them staying
    # on arm64 by its own Architectures (which replaces the Globals one)
    intel = load_template()
    intel["Globals"]["Function"]["Architectures"] = ["x86_64"]
    intel["Resources"]["EventBridgeFunction"]["Properties"]["Architectures"] = ["arm64"]

    # WHEN src/Makefile's inputs are derived from each
    # THEN every function gets its own architecture and the runtime's Python version
    assert build_env(template) == {
        "LAMBDA_ARCHITECTURE_EventBridgeFunction": "arm64",
        "LAMBDA_PYTHON_EventBridgeFunction": "3.12",
        "LAMBDA_ARCHITECTURE_LogSubscriptionFunction": "arm64",
        "LAMBDA_PYTHON_LogSubscriptionFunction": "3.12",
        "LAMBDA_ARCHITECTURE_DigestFunction": "arm64",
        "LAMBDA_PYTHON_DigestFunction": "3.12",
        "LAMBDA_ARCHITECTURE_ReplayFileFunction": "arm64",
        "LAMBDA_PYTHON_ReplayFileFunction": "3.12",
    }
    # AND the script's own quick YAML loader (make build uses it) reads the same
    assert build_env(lambda_build_env.load_template(TEMPLATE_PATH)) == build_env(template)
    assert build_env(intel)["LAMBDA_ARCHITECTURE_EventBridgeFunction"] == "arm64"
    assert build_env(intel)["LAMBDA_ARCHITECTURE_LogSubscriptionFunction"] == "x86_64"


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("Architectures", {"Fn::If": ["TracingOn", ["arm64"], ["x86_64"]]}),
        ("Architectures", ["x86_64", "arm64"]),
        ("Architectures", ["i386"]),
        ("Runtime", "nodejs20.x"),
        ("Runtime", {"Ref": "Runtime"}),
    ],
)
def test_build_env_refuses_what_it_cannot_build_for(key: str, value: Any) -> None:
    # GIVEN a template whose runtime or architecture is not one literal the build can match
    template = load_template()
    template["Globals"]["Function"][key] = value

    # WHEN / THEN deriving the build inputs fails instead of guessing
    with pytest.raises(ValueError, match=key):
        build_env(template)


def test_lambda_pins_are_the_tested_versions() -> None:
    # GIVEN the list the functions are built from and the lock the tests run with
    lambda_pins = _pins(SRC / "requirements-lambda.txt")
    locked = _pins(REPO_ROOT / "requirements" / "dev.lock")

    # WHEN / THEN every package is pinned to the version the tests use, and no SDK is in it
    assert set(lambda_pins) == {
        "aws-lambda-powertools",
        "aws-xray-sdk",
        "wrapt",
        "jmespath",
        "typing-extensions",
    }
    assert {name: locked.get(name) for name in lambda_pins} == lambda_pins


# --- what the build made -------------------------------------------------------------------------


@pytest.mark.parametrize("function", BUILT_FUNCTIONS)
def test_artefact_holds_the_code_and_its_dependencies(function: str) -> None:
    # GIVEN one function's built artefact
    artefact = _artefact(function)

    # WHEN / THEN it holds the handlers, shared/ with its rules file, and the libraries
    missing = [path for path in REQUIRED if not (artefact / path).is_file()]
    assert not missing, f"{function} artefact lacks {missing}"
    # AND pip installed exactly the pinned distributions, at the pinned versions
    assert _installed(artefact) == _pins(SRC / "requirements-lambda.txt")


@pytest.mark.parametrize("function", BUILT_FUNCTIONS)
def test_artefact_code_is_a_copy_of_src_handlers_and_shared(function: str) -> None:
    # GIVEN one function's built artefact and the source it was built from
    artefact = _artefact(function)
    source = {
        path.relative_to(SRC): path.read_bytes()
        for package in ("handlers", "shared")
        for path in _files(SRC / package)
        if "__pycache__" not in path.parts
    }

    # WHEN its handlers/ and shared/ are read
    built = {
        path.relative_to(artefact): path.read_bytes()
        for package in ("handlers", "shared")
        for path in _files(artefact / package)
        if "__pycache__" not in path.parts  # byte-code: see the test below
        and MODELS not in path.parts  # generated at build: see the trimmed-models test
    }

    # THEN they are the source files, every one and nothing else (a stale build fails here)
    assert sorted(built) == sorted(source)
    assert [name for name in source if built[name] != source[name]] == []


@pytest.mark.parametrize("function", BUILT_FUNCTIONS)
def test_artefact_holds_nothing_the_function_does_not_run(function: str) -> None:
    # GIVEN one function's built artefact
    artefact = _artefact(function)
    files = _files(artefact)

    # WHEN / THEN no runtime-provided SDK, command line, tests, console scripts or build input
    present = [name for name in FORBIDDEN_TOP_LEVEL if (artefact / name).exists()]
    assert not present, f"{function} artefact holds {present}"
    assert [p for p in files if re.fullmatch(r"requirements.*\.txt|Makefile", p.name)] == []
    # AND byte-code only where Python puts it, compiled for the function's own Python
    version = _python_version(load_template(), function).replace(".", "")
    stray = [
        p
        for p in files
        if p.suffix == ".pyc"
        and (p.parent.name != "__pycache__" or f".cpython-{version}." not in p.name)
    ]
    assert stray == []
    # AND every top-level entry is the project's code or recorded by a pinned distribution
    recorded = {"handlers", "shared", "__pycache__"}  # the top-level modules' byte-code
    for record in artefact.glob("*.dist-info/RECORD"):
        recorded |= {line.split(",")[0].split("/")[0] for line in record.read_text().splitlines()}
    unexpected = sorted(entry.name for entry in artefact.iterdir() if entry.name not in recorded)
    assert unexpected == [], f"{function} artefact holds entries no distribution installed"


@pytest.mark.parametrize("function", BUILT_FUNCTIONS)
def test_every_module_ships_compiled_and_trusted(function: str) -> None:
    # GIVEN one function's artefact (Lambda's code directory is read-only: no .pyc is written
    # there at run time, so a module without one is compiled at every cold start)
    artefact = _artefact(function)
    version = _python_version(load_template(), function).replace(".", "")
    # WHEN each of its Python sources looks for its byte-code
    missing, checked = [], []
    for source in artefact.rglob("*.py"):
        compiled = source.parent / "__pycache__" / f"{source.stem}.cpython-{version}.pyc"
        if not compiled.exists():
            missing.append(source.relative_to(artefact))
            continue
        # the flags word of a PEP 552 .pyc: 0b01 hash-based, 0b10 check_source
        flags = int.from_bytes(compiled.read_bytes()[4:8], "little")
        if flags != 0b01:
            checked.append(source.relative_to(artefact))
    # THEN every one has it, hash-based and unchecked (zip timestamps cannot invalidate it)
    assert missing == []
    assert checked == []


@pytest.mark.parametrize("function", BUILT_FUNCTIONS)
def test_artefact_size_is_bounded(function: str) -> None:
    # GIVEN one function's built artefact
    artefact = _artefact(function)

    # WHEN its files are added up (unzipped, what Lambda limits to 250 MB)
    size = sum(path.stat().st_size for path in _files(artefact))

    # THEN it stays far below what a copy of botocore alone would add
    assert size < MAX_UNZIPPED_BYTES, f"{function} artefact is {size:,} bytes"


@pytest.mark.parametrize("function", BUILT_FUNCTIONS)
def test_compiled_parts_fit_the_function_architecture_and_python(function: str) -> None:
    # GIVEN one function's artefact and the architecture and runtime the template gives it
    artefact = _artefact(function)
    template = load_template()
    architecture = _architecture(template, function)
    python = _python_version(template, function).replace(".", "")
    extensions = sorted(artefact.rglob("*.so"))

    # WHEN / THEN wrapt's extension is there, and every extension is an ELF for that machine,
    # built for that Python
    assert [p.name for p in extensions if p.parent.name == "wrapt"] == [
        f"_wrappers.cpython-{python}-{'aarch64' if architecture == 'arm64' else 'x86_64'}"
        "-linux-gnu.so"
    ]
    for extension in extensions:
        header = extension.read_bytes()[:20]
        assert header[:4] == b"\x7fELF", extension
        machine = int.from_bytes(header[18:20], "little")
        assert machine == ELF_MACHINE[architecture], f"{extension}: e_machine {machine}"
        assert re.search(rf"\.(cpython-{python}-|abi3\.)", extension.name), extension


def _probe(function: str, mode: str, **extra_env: str) -> dict[str, Any]:
    """Run artefact_probe.py with only the artefact on PYTHONPATH; boto3 and botocore come from
    the project venv, standing in for the Lambda runtime's copy."""
    artefact = _artefact(function)
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(artefact),
        "PYTHONDONTWRITEBYTECODE": "1",  # leave no __pycache__ in the artefact
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AUDIT_TABLE_NAME": "secretwatch-audit",
        "ALERT_TOPIC_ARN": "arn:aws:sns:us-east-1:111122223333:secretwatch-alerts",
        "POWERTOOLS_SERVICE_NAME": "secretwatch",
        "POWERTOOLS_TRACE_DISABLED": "true",
        **extra_env,
    }
    result = subprocess.run(
        [sys.executable, str(PROBE), str(artefact), mode],
        env=env,
        cwd=artefact.parent,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_SECONDS,
        check=False,
    )
    assert result.returncode == 0, f"probe exited {result.returncode}\n{result.stderr}"
    report: dict[str, Any] = json.loads(result.stdout)
    return report


def _origins(report: dict[str, Any], artefact: Path) -> dict[str, bool]:
    """Top-level module -> whether every module of it was loaded from the artefact."""
    inside: dict[str, bool] = {}
    for name, file in report["modules"].items():
        if file is not None:
            top = name.partition(".")[0]
            from_artefact = Path(file).resolve().is_relative_to(artefact.resolve())
            inside[top] = inside.get(top, True) and from_artefact
    return inside


@pytest.mark.parametrize("function", BUILT_FUNCTIONS)
def test_artefact_clients_load_only_the_trimmed_models(function: str) -> None:
    # GIVEN one function's artefact, whose shared/ carries service models trimmed at build
    models = _artefact(function) / "shared" / MODELS
    shipped = sorted(
        path.relative_to(models).parts[0] for path in models.glob("*/*/service-2.json")
    )
    assert shipped == sorted(TRIMMED_OPERATIONS)

    # WHEN a fresh interpreter builds the pipeline from it and then each look-up client
    report = _probe(function, "handlers")

    # THEN each client knows exactly the operations listed for it, and each is one the function
    # calls (the enrichment and the rule document, by their botocore method names)
    expected = {service: sorted(operations) for service, operations in TRIMMED_OPERATIONS.items()}
    assert report["trimmed"] == expected
    assert report["trimmed_methods_present"] is True


@pytest.mark.parametrize("function", BUILT_FUNCTIONS)
def test_handlers_import_from_the_artefact(function: str) -> None:
    # GIVEN a fresh interpreter that finds only the artefact, the standard library and boto3
    # WHEN it imports both handlers, loads the rules and builds the pipeline (tracing off)
    report = _probe(function, "handlers")

    # THEN the code, Powertools and its dependencies came from the artefact, the SDK did not
    origins = _origins(report, _artefact(function))
    for name in ("handlers", "shared", "aws_lambda_powertools", "typing_extensions", "jmespath"):
        assert origins.get(name) is True, f"{name} not (only) from the artefact: {origins}"
    assert origins["boto3"] is False
    assert origins["botocore"] is False
    assert report["rules"] > 0
    # AND with tracing off nothing imports the X-Ray SDK (its cost is paid only when on)
    assert "aws_xray_sdk" not in origins


@pytest.mark.parametrize("function", BUILT_FUNCTIONS)
def test_tracer_works_from_the_artefact_with_the_runtime_botocore(function: str) -> None:
    # GIVEN the same interpreter with tracing on, as in Lambda with EnableTracing=true
    artefact = _artefact(function)

    # WHEN it also creates Powertools' Tracer (which imports the X-Ray SDK and patches botocore)
    report = _probe(
        function, "tracer", POWERTOOLS_TRACE_DISABLED="false", LAMBDA_TASK_ROOT=str(artefact)
    )

    # THEN the X-Ray SDK and wrapt came from the artefact and patched the runtime's botocore
    origins = _origins(report, artefact)
    assert origins.get("aws_xray_sdk") is True
    assert origins.get("wrapt") is True
    assert origins["botocore"] is False
    assert "botocore" in report["patched"]
    # AND wrapt runs its compiled extension where this machine can load it
    # (the functions' arm64 wheel cannot load on an x86_64 test machine: there wrapt's own
    # pure-Python fallback runs, and the patch above shows it works)
    host = MACHINE_OF_HOST.get(platform.machine().lower())
    loadable = host == _architecture(load_template(), function)
    assert report["wrapt_c_extension"] is loadable
