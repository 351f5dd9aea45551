"""Run by test_artefact.py in a fresh interpreter whose PYTHONPATH is one built artefact.

It imports what a cold start imports, finding modules the way Lambda would: in the artefact, in
the standard library, or among the packages the python3.12 runtime provides (boto3 and its
dependencies; this interpreter's venv stands in for the runtime's copy). Anything else raises
ModuleNotFoundError, as in Lambda, although the venv has it (the venv even has the project's own
code, through its editable install). Prints a JSON report on stdout.

    python artefact_probe.py <artefact dir> handlers|tracer

Kept free of imports from the tests package: only the artefact and the runtime are on its path.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

# boto3 and what it needs: what the python3.12 runtime has besides the standard library.
RUNTIME_PROVIDED = frozenset(
    {"boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six"}
)


class LambdaPath(importlib.abc.MetaPathFinder):
    """First on sys.meta_path: refuses every top-level module that Lambda could not find."""

    def __init__(self, artefact: Path) -> None:
        self.artefact = str(artefact)

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if path is not None:  # a submodule: found inside its package, wherever that came from
            return None
        if (
            fullname in sys.stdlib_module_names
            or fullname in sys.builtin_module_names
            or fullname in RUNTIME_PROVIDED
            or importlib.machinery.PathFinder.find_spec(fullname, [self.artefact]) is not None
        ):
            return None  # let the usual finders load it (the artefact is first on sys.path)
        raise ModuleNotFoundError(
            f"No module named {fullname!r} in the artefact or the Lambda runtime", name=fullname
        )


def main(argv: list[str]) -> int:
    artefact, mode = Path(argv[1]).resolve(), argv[2]
    already_loaded = set(sys.modules)
    sys.meta_path.insert(0, LambdaPath(artefact))
    report: dict[str, Any] = {}

    importlib.import_module("handlers.eventbridge")
    importlib.import_module("handlers.log_subscription")
    from shared.rules import load_rules
    from shared.runtime import get_pipeline

    report["rules"] = len(load_rules().rules)
    pipeline = get_pipeline()  # what the first invocation adds: settings, clients, the rules

    # The look-up clients, built as their first use builds them, from the trimmed models.
    from shared.clients import TRIMMED_OPERATIONS, Clients

    clients = Clients(region="eu-west-1")
    built = {service: getattr(clients, service) for service in TRIMMED_OPERATIONS}
    report["trimmed"] = {
        service: sorted(client.meta.service_model.operation_names)
        for service, client in built.items()
    }
    methods = {
        "ssm": "get_parameter",
        "secretsmanager": "describe_secret",
        "iam": "list_account_aliases",
        "organizations": "describe_account",
    }
    report["trimmed_methods_present"] = all(
        callable(getattr(built[service], method, None)) for service, method in methods.items()
    )
    del pipeline

    if mode == "tracer":
        from aws_lambda_powertools import Tracer

        Tracer(service="secretwatch")  # tracing on: imports aws_xray_sdk and patches botocore
        patcher = importlib.import_module("aws_xray_sdk.core.patcher")
        wrapt_core = importlib.import_module("wrapt.__wrapt__")
        report["patched"] = sorted(patcher._PATCHED_MODULES)
        report["wrapt_c_extension"] = bool(wrapt_core._using_c_extension)

    report["modules"] = {
        name: getattr(module, "__file__", None)
        for name, module in sorted(sys.modules.items())
        if name not in already_loaded
    }
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
