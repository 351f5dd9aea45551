"""Print what src/Makefile needs to know and `sam build` does not tell it, as NAME=value words.

SAM CLI runs a makefile build's `build-<LogicalId>` target with only ARTIFACTS_DIR set
(aws-sam-cli issue #3349), yet the wheels of a package with compiled parts (wrapt) depend on the
function's architecture and Python version. `make build` runs this on the template it builds and
hands the words to `sam build` through env(1), one pair per function built by makefile:

    LAMBDA_ARCHITECTURE_EventBridgeFunction=x86_64 LAMBDA_PYTHON_EventBridgeFunction=3.12 ...

Usage: python scripts/lambda_build_env.py [template.yaml]
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import yaml

ARCHITECTURES = ("x86_64", "arm64")
LAMBDA_DEFAULT_ARCHITECTURES = ["x86_64"]  # what Lambda uses when neither level sets it


class _TemplateLoader(yaml.SafeLoader):
    """YAML loader that keeps CloudFormation's short forms (!Ref X becomes {"Ref": "X"}, !If [...]
    becomes {"If": [...]}): enough to tell a literal from an intrinsic function. (cfn-lint's
    loader does this fully but takes ~3 s to import, on every `make build`.)"""


def _intrinsic(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        assert isinstance(node, yaml.MappingNode)
        value = loader.construct_mapping(node, deep=True)
    return {suffix: value}


_TemplateLoader.add_multi_constructor("!", _intrinsic)


def load_template(path: Path) -> dict[str, Any]:
    with path.open(encoding="utf-8") as stream:
        template: dict[str, Any] = yaml.load(stream, Loader=_TemplateLoader)  # noqa: S506 — a SafeLoader subclass
    return template


def build_env(template: dict[str, Any]) -> dict[str, str]:
    """LAMBDA_ARCHITECTURE_<id> and LAMBDA_PYTHON_<id> for every function built by makefile.

    The function's own Runtime/Architectures win over Globals (SAM replaces, never merges, them).
    Anything but a literal pythonX.Y and exactly one known architecture is refused: a parameter
    or condition there would leave the build to guess.
    """
    defaults = template.get("Globals", {}).get("Function", {})
    env: dict[str, str] = {}
    for name, resource in template.get("Resources", {}).items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        if (resource.get("Metadata") or {}).get("BuildMethod") != "makefile":
            continue
        properties = resource.get("Properties") or {}
        runtime = properties.get("Runtime", defaults.get("Runtime"))
        architectures = properties.get(
            "Architectures", defaults.get("Architectures", LAMBDA_DEFAULT_ARCHITECTURES)
        )
        python = re.fullmatch(r"python(3\.\d+)", runtime) if isinstance(runtime, str) else None
        if python is None:
            raise ValueError(f"{name}: Runtime must be a literal pythonX.Y, got {runtime!r}")
        if not (
            isinstance(architectures, list)
            and len(architectures) == 1
            and architectures[0] in ARCHITECTURES
        ):
            raise ValueError(
                f"{name}: Architectures must be one of {ARCHITECTURES}, got {architectures!r}"
            )
        env[f"LAMBDA_ARCHITECTURE_{name}"] = architectures[0]
        env[f"LAMBDA_PYTHON_{name}"] = python.group(1)
    return env


def main(argv: list[str]) -> int:
    path = Path(argv[1] if len(argv) > 1 else "template.yaml")
    try:
        env = build_env(load_template(path))
    except ValueError as error:
        print(f"{path}: {error}", file=sys.stderr)
        return 1
    if not env:
        print(f"{path}: no function has Metadata BuildMethod: makefile", file=sys.stderr)
        return 1
    print(" ".join(f"{key}={value}" for key, value in env.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
