"""``secretwatch rules list | test DIR | push FILE | pull | history | rollback --to N``.

``list`` and ``test`` work offline on the bundled defaults or a document (``--rules``);
``push``, ``pull``, ``history`` and ``rollback`` work on the document a deployed stack runs
(``cli.rules_remote``, loaded only when one of them runs: AWS is never imported otherwise).

A rule case file (YAML or JSON) in DIR holds one case or ``{"cases": [...]}``; a case names an
event file (relative to the case file) or carries the event inline, and the rule ids it must and
must not fire::

    cases:
      - name: forced deletion
        event: ../../events/eventbridge/deletion-forced-no-recovery.json
        must_fire: [deletion-forced-no-recovery]
        must_not_fire: [secret-deleted]
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cli.output import output_option, render_table, safe
from shared.envelopes import read_any, read_bytes
from shared.errors import InputError
from shared.models import SEVERITY_RANK, Enrichment
from shared.rules import Rule, RuleSet, load_rules
from shared.stateful import in_memory
from shared.tamper import StackIdentity
from shared.text import dumps

CASE_SUFFIXES = (".yaml", ".yml", ".json")


def register(commands: Any) -> None:
    parser = commands.add_parser("rules", help="list, test, push, pull, roll back the rules")
    sub = parser.add_subparsers(dest="rules_command", metavar="ACTION", parser_class=type(parser))
    sub.required = True

    listing = sub.add_parser(
        "list",
        help="print the rule catalogue",
        epilog="example: secretwatch rules list --rules tuning.yaml --output json",
    )
    listing.add_argument(
        "--rules",
        metavar="FILE",
        help='rule document (YAML or JSON): its own rules, or "extends: default" to change the defaults',
    )
    output_option(
        listing,
        ("text", "table", "json"),
        default="text",
        help_text="a table (default) or JSON lines",
    )
    listing.set_defaults(handler=run_list)

    testing = sub.add_parser(
        "test",
        help="run rule cases: event files with the rules they must (not) fire",
        epilog="example: secretwatch rules test tests/rule_cases --rules tuning.yaml",
    )
    testing.add_argument(
        "directory", metavar="DIR", help="folder of rule case files (.yaml, .yml, .json)"
    )
    testing.add_argument(
        "--rules",
        metavar="FILE",
        help='rule document (YAML or JSON): its own rules, or "extends: default" to change the defaults',
    )
    testing.set_defaults(handler=run_test)

    target = _target_options()
    push = sub.add_parser(
        "push",
        parents=[target],
        help="check a rule document and publish it to a stack",
        description=(
            "Check FILE (YAML or JSON; - for standard input) with the loader the functions use, "
            "show what it changes against the document in force, and publish it as a new "
            "version of the stack's rule parameter. An invalid document is refused (exit 2) and "
            "nothing is published. Needs ssm:GetParameter and ssm:PutParameter on the parameter."
        ),
        epilog="example: secretwatch rules push tuning.yaml --stack secretwatch",
    )
    push.add_argument("file", metavar="FILE", help="rule document (YAML or JSON), or -")
    push.add_argument("--dry-run", action="store_true", help="show the changes, publish nothing")
    push.set_defaults(handler=_remote("run_push"))

    pull = sub.add_parser(
        "pull",
        parents=[target],
        help="print the rule document a stack runs",
        epilog="example: secretwatch rules pull --stack secretwatch > tuning.json",
    )
    pull.set_defaults(handler=_remote("run_pull"))

    history = sub.add_parser(
        "history",
        parents=[target],
        help="list the versions of a stack's rule document (who, when)",
        epilog="example: secretwatch rules history --stack secretwatch",
    )
    output_option(
        history, ("table", "text", "json"), default="table", help_text="a table or JSON lines"
    )
    history.set_defaults(handler=_remote("run_history"))

    rollback = sub.add_parser(
        "rollback",
        parents=[target],
        help="put an earlier version of the rule document back (as a new version)",
        epilog="example: secretwatch rules rollback --to 3 --stack secretwatch",
    )
    rollback.add_argument(
        "--to", metavar="VERSION", required=True, type=_version, help="the version to restore"
    )
    rollback.set_defaults(handler=_remote("run_rollback"))


def _target_options() -> argparse.ArgumentParser:
    from cli.aws_options import connection_options  # noqa: PLC0415 — argparse only, no SDK

    parent = argparse.ArgumentParser(
        add_help=False, argument_default=argparse.SUPPRESS, parents=[connection_options()]
    )
    where = parent.add_mutually_exclusive_group()
    where.add_argument(
        "--stack", metavar="NAME", help="the stack whose RulesParameterName output names it"
    )
    where.add_argument(
        "--parameter",
        metavar="NAME",
        help="the SSM parameter itself (or $SECRETWATCH_RULES_PARAMETER)",
    )
    return parent


def _version(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a version number (1, 2, ...), got {text!r}")
    return value


def _remote(name: str) -> Any:
    """A handler of cli.rules_remote, imported when it runs (it loads boto3)."""

    def handler(args: argparse.Namespace) -> int:
        from cli import rules_remote  # noqa: PLC0415 — AWS only for the commands that call it

        status: int = getattr(rules_remote, name)(args)
        return status

    return handler


def warn_expired(ruleset: RuleSet) -> None:
    for exception in ruleset.expired_exceptions():
        print(
            f"secretwatch: warning: exception {safe(exception.id)} expired on "
            f"{exception.expires.isoformat()} and is ignored (renew or remove it)",
            file=sys.stderr,
        )


def run_list(args: argparse.Namespace) -> int:
    ruleset = load_rules(args.rules)
    warn_expired(ruleset)
    if args.format == "json":
        for rule in ruleset.rules:
            print(dumps(rule.source))
        return 0
    rows = [
        [
            rule.id,
            _severity_range(rule),
            ", ".join(sorted(rule.events)) or "* (every event)",
            rule.description,
        ]
        for rule in ruleset.rules
    ]
    render_table(["RULE", "SEVERITY", "EVENTS", "DESCRIPTION"], rows, max_widths=[40, 16, 50, 200])
    print(f"\n{len(ruleset)} rules from {ruleset.origin}")
    return 0


def _severity_range(rule: Rule) -> str:
    ranks = sorted(
        {rule.severity, *(severity for severity, _ in rule.severity_when)},
        key=SEVERITY_RANK.__getitem__,
    )
    return ranks[0] if len(ranks) == 1 else f"{ranks[0]}..{ranks[-1]}"


@dataclass
class CaseResult:
    where: str
    name: str
    problems: list[str]


def run_test(args: argparse.Namespace) -> int:
    ruleset = load_rules(args.rules)
    warn_expired(ruleset)
    directory = Path(args.directory)
    if not directory.is_dir():
        raise InputError(f"{directory}: not a directory of rule cases")
    files = sorted(
        p for p in directory.rglob("*") if p.is_file() and p.suffix.lower() in CASE_SUFFIXES
    )
    if not files:
        raise InputError(f"{directory}: no rule case files (.yaml, .yml, .json)")
    results: list[CaseResult] = []
    for path in files:
        results.extend(run_case_file(path, ruleset))
    failed = [r for r in results if r.problems]
    for result in results:
        status = "FAIL" if result.problems else "ok  "
        print(f"{status} {result.where}: {result.name}")
        for problem in result.problems:
            print(f"       {problem}")
    print(f"\n{len(results) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


def run_case_file(path: Path, ruleset: RuleSet) -> list[CaseResult]:
    try:
        document = _load(path)
    except InputError as exc:
        return [CaseResult(str(path), "(file)", [str(exc)])]
    cases = (
        document.get("cases") if isinstance(document, dict) and "cases" in document else [document]
    )
    if not isinstance(cases, list):
        return [CaseResult(str(path), "(file)", ["cases must be a list"])]
    return [_run_case(path, i, case, ruleset) for i, case in enumerate(cases)]


def _load(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read the case file: {exc}") from exc
    if path.suffix.lower() == ".json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"not valid JSON: {exc.msg} at line {exc.lineno}") from exc
    import yaml  # noqa: PLC0415 — the command line only

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        # One line, not PyYAML's several (which the escaping policy would show as \x0a).
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        where = f" at line {mark.line + 1} column {mark.column + 1}" if mark is not None else ""
        raise InputError(f"not valid YAML: {problem}{where}") from exc


def _run_case(path: Path, position: int, case: Any, ruleset: RuleSet) -> CaseResult:
    where = f"{path}[{position}]"
    if not isinstance(case, dict):
        return CaseResult(where, "(case)", ["a case must be an object"])
    name = str(case.get("name") or case.get("event") or f"case {position}")
    problems: list[str] = []
    must = _rule_list(case, "must_fire", ruleset, problems)
    must_not = _rule_list(case, "must_not_fire", ruleset, problems)
    if not must and not must_not and not problems:
        problems.append("a case needs must_fire and/or must_not_fire")
    fired = _fire(path, case, ruleset, problems)
    if problems:
        return CaseResult(where, name, problems)
    missing = sorted(must - fired)
    unwanted = sorted(must_not & fired)
    if missing:
        problems.append(
            f"did not fire: {', '.join(missing)} (fired: {', '.join(sorted(fired)) or 'none'})"
        )
    if unwanted:
        problems.append(f"fired but must not: {', '.join(unwanted)}")
    return CaseResult(where, name, problems)


def _rule_list(case: dict[str, Any], key: str, ruleset: RuleSet, problems: list[str]) -> set[str]:
    value = case.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        problems.append(f"{key} must be a list of rule ids")
        return set()
    unknown = [v for v in value if ruleset.get(v) is None]
    if unknown:
        problems.append(f"{key} names unknown rules: {', '.join(unknown)}")
    return set(value)


def _fire(path: Path, case: dict[str, Any], ruleset: RuleSet, problems: list[str]) -> set[str]:
    try:
        if "input" in case:
            items = list(read_any(case["input"]))
        elif isinstance(case.get("event"), str):
            items = list(read_bytes((path.parent / case["event"]).read_bytes()))
        else:
            problems.append("a case needs event (a file path) or input (the event inline)")
            return set()
    except (InputError, OSError) as exc:
        problems.append(f"cannot read the event: {exc}")
        return set()
    stack = _case_stack(case, problems)
    state = in_memory()  # one rule state per case
    fired: set[str] = set()
    for item in items:
        if item.error is not None:
            problems.append(f"record {item.index} rejected: {item.error}")
        elif item.record is not None:
            # Offline nothing is enriched, except what the case says of its stack: which
            # resources are its own (the secretwatch-tampered rule needs to know).
            enrichment = (
                Enrichment(own_target=stack.owns(item.record.target))
                if stack is not None and item.record.target is not None
                else None
            )
            evaluation, _ = state.apply(
                item.record, enrichment, ruleset.evaluate(item.record, enrichment), ruleset
            )
            # A threshold's match that did not cross it is only counted: the rule did not fire.
            fired.update(f.rule_id for f in evaluation.findings if f.state != "counted")
    if not items:
        problems.append("the event holds no CloudTrail record")
    return fired


_STACK_KEYS = ("name", "function_prefix", "trail_name", "log_group", "alert_key_id", "topic_arns")


def _case_stack(case: dict[str, Any], problems: list[str]) -> StackIdentity | None:
    """A case's ``stack:`` (the deployed stack its events belong to), or None without one."""
    given = case.get("stack")
    if given is None:
        return None
    if not isinstance(given, dict) or not isinstance(given.get("name"), str):
        problems.append(f"stack must be an object with a name and any of {', '.join(_STACK_KEYS)}")
        return None
    unknown = sorted(set(given) - set(_STACK_KEYS))
    topics = given.get("topic_arns", [])
    texts = [given.get(key) for key in _STACK_KEYS[1:5]]
    if (
        unknown
        or not all(value is None or isinstance(value, str) for value in texts)
        or not isinstance(topics, list)
        or not all(isinstance(topic, str) for topic in topics)
    ):
        problems.append(
            f"stack takes {', '.join(_STACK_KEYS)} (strings; topic_arns a list of ARNs)"
            + (f", not {', '.join(unknown)}" if unknown else "")
        )
        return None
    return StackIdentity(
        given["name"],
        function_prefix=given.get("function_prefix"),
        trail_name=given.get("trail_name"),
        log_group=given.get("log_group"),
        alert_key_id=given.get("alert_key_id"),
        topic_arns=frozenset(topics),
    )
