"""Broken versions of a topic rule's SQL, made the ways rules break in practice: a wrong or missing topic
level in FROM, a wrong topic() index, a misspelled payload field. The tests of the app's rules must fail on
every one of them; a mutant they pass would be a broken rule they let through."""

from __future__ import annotations

import json
import re
from pathlib import Path

_FROM = re.compile(r"(FROM\s+')([^']*)(')", re.IGNORECASE)
_TOPIC_INDEX = re.compile(r"\btopic\(\s*(\d+)\s*\)", re.IGNORECASE)
_QUOTED = re.compile(r"'[^']*'")
_IDENTIFIER = re.compile(r"(?<![\w.])([A-Za-z_]\w*)\b(?!\s*\()")  # not followed by "(": not a function
_KEYWORDS = {
    "select", "from", "where", "as", "and", "or", "not", "case", "when", "then", "else", "end", "value", "true",
    "false", "null", "is", "in",
}  # fmt: skip


def from_filter(sql: str) -> str:
    """The topic filter of the rule's FROM."""
    match = _FROM.search(sql)
    assert match is not None, f"no FROM '<topic filter>' in {sql!r}"
    return match.group(2)


def mutants(sql: str) -> list[tuple[str, str]]:
    """(what was broken, the broken SQL) for every mutation that applies to `sql`."""
    found: list[tuple[str, str]] = []
    match = _FROM.search(sql)
    assert match is not None, f"no FROM '<topic filter>' in {sql!r}"
    levels = match.group(2).split("/")
    for index, level in enumerate(levels):
        if level not in ("+", "#") and len(level) > 1:
            broken = "/".join([*levels[:index], level[:-1], *levels[index + 1 :]])
            found.append((f"FROM level {index + 1} misspelled", _with_filter(sql, match, broken)))
    if len(levels) > 1:
        found.append(("FROM missing its last level", _with_filter(sql, match, "/".join(levels[:-1]))))
    for index_match in _TOPIC_INDEX.finditer(sql):
        n = int(index_match.group(1))
        for wrong in (n - 1, n + 1):
            if wrong >= 1:
                broken = f"{sql[: index_match.start()]}topic({wrong}){sql[index_match.end() :]}"
                found.append((f"topic({n}) as topic({wrong})", broken))
    for name, start, end in _fields(sql):
        found.append((f"field {name} misspelled", f"{sql[:start]}{name}x{sql[end:]}"))
    return found


def _with_filter(sql: str, match: re.Match[str], topic_filter: str) -> str:
    return f"{sql[: match.start(2)]}{topic_filter}{sql[match.end(2) :]}"


def _fields(sql: str) -> list[tuple[str, int, int]]:
    """Payload field names referred to in SELECT and WHERE (not keywords, functions, aliases or literals)."""
    blanked = _QUOTED.sub(lambda quoted: " " * len(quoted.group()), sql)
    fields = []
    for match in _IDENTIFIER.finditer(blanked):
        name = match.group(1)
        before = blanked[: match.start()].rstrip()
        if name.lower() in _KEYWORDS or re.search(r"\bAS$", before, re.IGNORECASE):
            continue
        fields.append((name, match.start(1), match.end(1)))
    return fields


def assembly_with_sql(original: Path, root: Path, rule_name: str, sql: str) -> Path:
    """A copy of the cloud assembly `original` (its assets linked, not copied) where the rule named `rule_name`
    has `sql`."""
    root.mkdir(parents=True)
    templates = {path.name for path in original.glob("*.template.json")}
    for entry in original.iterdir():
        if entry.name not in templates:
            (root / entry.name).symlink_to(entry.resolve())
    changed = False
    for name in templates:
        template = json.loads((original / name).read_text())
        for resource in template["Resources"].values():
            if resource["Type"] == "AWS::IoT::TopicRule" and resource["Properties"].get("RuleName") == rule_name:
                resource["Properties"]["TopicRulePayload"]["Sql"] = sql
                changed = True
        (root / name).write_text(json.dumps(template))
    assert changed, f"no rule {rule_name} in {original}"
    return root

