"""``secretwatch rules push | pull | history | rollback``: the rule document a stack runs.

The document lives in the stack's SSM parameter (output ``RulesParameterName``); Parameter
Store keeps every version, so a push is versioned and a rollback is a new version holding an
earlier one. A document is checked with the very loader the functions use before anything is
published: an invalid one is refused (exit 2) and nothing is written.

Permissions: ``ssm:GetParameter`` (pull, and push/rollback to compare), ``ssm:PutParameter``
(push, rollback), ``ssm:GetParameterHistory`` (history), on the parameter; with ``--stack``,
``cloudformation:DescribeStacks`` on the stack.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from cli import aws
from cli.errors import UsageError
from cli.output import note, render_table, safe
from cli.rules_cmd import warn_expired
from shared.errors import RuleConfigError
from shared.rules import RuleSet, compile_rules, default_rules, parse_document
from shared.rules.loader import default_document
from shared.text import dumps

RULES_OUTPUT = "RulesParameterName"
PARAMETER_ENV = "SECRETWATCH_RULES_PARAMETER"
ADVANCED_MAX_BYTES = 8192  # Parameter Store's largest value (Advanced tier)
EXPIRING_DAYS = 14


def parameter_name(args: argparse.Namespace, layer: aws.Aws) -> str:
    """``--parameter``, else the ``--stack``'s RulesParameterName output, else the env."""
    name = getattr(args, "parameter", None)
    if name:
        return str(name)
    stack = getattr(args, "stack", None)
    if stack:
        return layer.stack_output(str(stack), RULES_OUTPUT)
    if os.environ.get(PARAMETER_ENV):
        return os.environ[PARAMETER_ENV]
    raise UsageError(
        f"no rule parameter: pass --stack NAME or --parameter NAME, or set {PARAMETER_ENV}"
    )


def _explain(name: str) -> aws.Explain:
    def explain(exc: ClientError) -> str | None:
        code = aws.error_code(exc)
        if code in aws.ACCESS_DENIED_CODES:
            return (
                f"access denied ({code}): {exc.operation_name} on the parameter {name} "
                "(rules needs ssm:GetParameter, ssm:PutParameter, ssm:GetParameterHistory on it)"
            )
        if code == "ParameterNotFound":
            return f"parameter {name} not found (check --stack/--parameter/--region)"
        if code == "ParameterVersionNotFound":
            return f"{name} has no such version (secretwatch rules history lists them)"
        return None

    return explain


@dataclass(frozen=True)
class InForce:
    """The document in the parameter now: its text and version, or none (the defaults)."""

    text: str | None
    version: int | None

    def ruleset(self) -> RuleSet | None:
        """What the functions run with it; None when the loader refuses it (they keep their
        last good document, or the defaults)."""
        if self.text is None:
            return default_rules()
        try:
            return compile_rules(parse_document(self.text, "in force"), "in force")
        except RuleConfigError:
            return None


def in_force(ssm: Any, name: str) -> InForce:
    try:
        parameter = ssm.get_parameter(Name=name)["Parameter"]
    except ClientError as exc:
        if aws.error_code(exc) == "ParameterNotFound":
            return InForce(None, None)
        raise
    return InForce(str(parameter["Value"]), int(parameter["Version"]))


# --- push ---------------------------------------------------------------------------------------


def run_push(args: argparse.Namespace) -> int:
    path = Path(args.file) if args.file != "-" else None
    origin = str(path) if path else "<stdin>"
    text = _read(path)
    yaml = path is None or path.suffix.lower() in {".yaml", ".yml"}
    document = parse_document(text, origin, yaml=yaml)
    ruleset = compile_rules(document, origin)  # the functions' loader: refused → exit 2
    warn_expired(ruleset)
    published = dumps(document, sort_keys=False)
    size = len(published.encode("utf-8"))
    if size > ADVANCED_MAX_BYTES:
        raise UsageError(
            f"{origin}: the document is {size:,} bytes as JSON, over Parameter Store's "
            f"{ADVANCED_MAX_BYTES:,}: move long descriptions and runbooks to a wiki, or split rules"
        )
    layer = aws.Aws.from_args(args)
    with aws.aws_errors(_explain(getattr(args, "parameter", None) or "the rule parameter")):
        name = parameter_name(args, layer)
        ssm = layer.client("ssm")
        current = in_force(ssm, name)
        print_changes(current, ruleset)
        if current.text is not None and _same(current.text, published):
            print(f"no change: {safe(name)} already holds this document (nothing published)")
            return 0
        if args.dry_run:
            print("dry run: nothing published")
            return 0
        version = publish(ssm, name, published)
    undo = f" (undo: secretwatch rules rollback --to {current.version})" if current.version else ""
    print(f"published version {version} of {safe(name)}: in force within a minute{undo}")
    return 0


def _read(path: Path | None) -> str:
    if path is None:
        return sys.stdin.read()
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise RuleConfigError(f"{path}: cannot read the rule file ({reason})") from exc


def _same(stored: str, published: str) -> bool:
    try:
        return bool(json.loads(stored) == json.loads(published))
    except json.JSONDecodeError:
        return False


def publish(ssm: Any, name: str, value: str) -> int:
    response = ssm.put_parameter(
        Name=name,
        Value=value,
        Type="String",
        Overwrite=True,
        # Standard (4 KB, free) while the document fits, Advanced (8 KB) when it needs it.
        Tier="Intelligent-Tiering",
    )
    return int(response["Version"])


def print_changes(current: InForce, new: RuleSet, today: date | None = None) -> None:
    """What the new document changes against the one in force."""
    before = current.ruleset()
    if before is None:
        print("in force: a document the functions refuse (they run their last good one)")
        before_rules: dict[str, dict[str, Any]] = {}
        before_exceptions: set[str] = set()
    else:
        before_rules = {rule.id: rule.source for rule in before.rules}
        before_exceptions = {exception.id for exception in before.exceptions}
    after_rules = {rule.id: rule.source for rule in new.rules}
    added = [i for i in after_rules if i not in before_rules]
    removed = [i for i in before_rules if i not in after_rules]
    changed = [
        f"{i} ({', '.join(_changed_keys(before_rules[i], after_rules[i]))})"
        for i in after_rules
        if i in before_rules and before_rules[i] != after_rules[i]
    ]
    day = today or date.today()
    exceptions_added = [e.id for e in new.exceptions if e.id not in before_exceptions]
    expiring = [
        f"{e.id} (on {e.expires.isoformat()})"
        for e in new.exceptions
        if e.active(day) and e.expires <= day + timedelta(days=EXPIRING_DAYS)
    ]
    removed_exceptions = sorted(before_exceptions - {e.id for e in new.exceptions})
    print(f"changes against the document in force ({_version(current)}):")
    for label, values in (
        ("rules added", added),
        ("rules removed", removed),
        ("rules changed", changed),
        ("exceptions added", exceptions_added),
        ("exceptions removed", removed_exceptions),
        (f"exceptions expiring within {EXPIRING_DAYS} days", expiring),
    ):
        print(f"  {label + ':':<36} {safe(', '.join(values)) if values else 'none'}")
    print(f"  {'rules in force after:':<36} {len(new)}")


def _changed_keys(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    return sorted(key for key in {*before, *after} if before.get(key) != after.get(key))


def _version(current: InForce) -> str:
    if current.text is None:
        return "none yet: the bundled defaults"
    return f"version {current.version}"


# --- pull, history, rollback ---------------------------------------------------------------------


def run_pull(args: argparse.Namespace) -> int:
    layer = aws.Aws.from_args(args)
    with aws.aws_errors(_explain(getattr(args, "parameter", None) or "the rule parameter")):
        name = parameter_name(args, layer)
        current = in_force(layer.client("ssm"), name)
    if current.text is None:
        note(f"{safe(name)} does not exist: the bundled defaults are in force")
        print(dumps(default_document(), indent=2))
        return 0
    try:
        document = json.loads(current.text)
    except json.JSONDecodeError:
        print(current.text)
        print("secretwatch: note: this document is not valid JSON", file=sys.stderr)
        return 1
    print(dumps(document, indent=2))
    if current.ruleset() is None:
        print("secretwatch: note: the functions' loader refuses this document", file=sys.stderr)
        return 1
    return 0


def run_history(args: argparse.Namespace) -> int:
    layer = aws.Aws.from_args(args)
    with aws.aws_errors(_explain(getattr(args, "parameter", None) or "the rule parameter")):
        name = parameter_name(args, layer)
        paginator = layer.client("ssm").get_paginator("get_parameter_history")
        versions = [
            entry for page in paginator.paginate(Name=name) for entry in page.get("Parameters", [])
        ]
    rows = []
    for entry in sorted(versions, key=lambda e: -int(e["Version"])):
        state = InForce(str(entry.get("Value", "")), int(entry["Version"])).ruleset()
        rows.append(
            [
                str(entry["Version"]),
                entry["LastModifiedDate"].strftime("%Y-%m-%d %H:%M:%SZ"),
                str(entry.get("LastModifiedUser") or "?"),
                "invalid"
                if state is None
                else f"{len(state)} rules, {len(state.exceptions)} exceptions",
                ", ".join(entry.get("Labels") or []),
            ]
        )
    headers = ["VERSION", "WHEN", "WHO", "DOCUMENT", "LABELS"]
    if getattr(args, "format", "table") == "json":
        for row in rows:
            print(dumps(dict(zip((h.lower() for h in headers), row, strict=True))))
        return 0
    render_table(headers, rows)
    print(f"\n{len(rows)} version(s) of {safe(name)}, newest first")
    return 0


def run_rollback(args: argparse.Namespace) -> int:
    layer = aws.Aws.from_args(args)
    with aws.aws_errors(_explain(getattr(args, "parameter", None) or "the rule parameter")):
        name = parameter_name(args, layer)
        ssm = layer.client("ssm")
        old = ssm.get_parameter(Name=f"{name}:{args.to}")["Parameter"]
        text = str(old["Value"])
        origin = f"{name} version {args.to}"
        ruleset = compile_rules(parse_document(text, origin), origin)  # refused → exit 2
        warn_expired(ruleset)
        current = in_force(ssm, name)
        print_changes(current, ruleset)
        if current.text is not None and _same(current.text, text):
            print(f"no change: version {args.to} is the document in force")
            return 0
        version = publish(ssm, name, text)
    print(f"version {version} of {safe(name)} now holds version {args.to}")
    return 0
