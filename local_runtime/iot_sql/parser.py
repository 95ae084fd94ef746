"""Parses AWS IoT SQL 2016-03-23 statements and substitution templates once, into closures evaluated per message.

Emulated: SELECT (`*`, `* AS name`, expressions with or without AS, SELECT VALUE), FROM 'topic filter'
(optional: a rule without it is for Basic Ingest only), WHERE, nested object queries `(SELECT ... FROM expr WHERE ...)`, field paths `a.b.c`, `a[0]`, literals
(numbers, 'strings' or "strings", true, false, null, {'k': v}, [a, b]), + - * / %, unary minus,
= <> < <= > >=, AND OR NOT, both forms of CASE, cast(x AS type) and the functions of functions.py; templates
`${expression}` with `$$` for a literal `$`.
Refused (SqlNotSupported, naming the construct): anything that does not parse, `!=` (the reference lists
only `<>`), an unquoted FROM topic, an invalid topic filter, unaliased expressions other than field paths
(AWS generates their names), unknown or non-emulated functions, wrong numbers of arguments, cast to an
unknown type, an encode or decode scheme other than the literal 'base64' (decode's 'proto' included), a literal parse_time pattern with Joda
letters not emulated, and a lone `$` in a template.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import UnexpectedInput, VisitError

from local_runtime.account import ACCOUNT_ID
from local_runtime.errors import LocalRuntimeError, NotEmulated
from local_runtime.iot_sql.functions import CASTS, FUNCTIONS, REFUSED, decode_base64, encode_base64
from local_runtime.iot_sql.java_time import compile_parser
from local_runtime.iot_sql.joda_time import UnsupportedPattern, compile_pattern
from local_runtime.iot_sql.values import (
    ARITHMETIC,
    DECIMAL,
    COMPARISONS,
    UNDEFINED,
    Value,
    logical_and,
    logical_not,
    logical_or,
    negate,
    same,
    standard_int,
    to_json,
    to_string,
)
from local_runtime.topics import TopicFilter

_PARSER = Lark(
    (Path(__file__).with_name("grammar.lark")).read_text(),
    parser="lalr",
    start=["statement", "template"],
    maybe_placeholders=True,
)


class _NotFired:
    """What Statement.evaluate returns when the rule does not fire: None is a valid output (SELECT VALUE null)."""

    def __repr__(self) -> str:
        return "NOT_FIRED"


NOT_FIRED = _NotFired()


class SqlNotSupported(NotEmulated):
    """The SQL (or template) is invalid, or uses something the local runtime does not emulate."""


class SqlEvaluationError(Exception):
    """Evaluating the rule failed for this message, as AWS reports a rule failure (for example a binary
    payload with a statement that refers to JSON names)."""


@dataclass(frozen=True)
class MessageContext:
    """What the SQL functions know about the incoming message besides its payload."""

    topic: str
    client_id: str = "n/a"  # clientid(): "n/a" if the message was not sent over MQTT
    principal: str | None = None  # principal()
    trace_id: str | None = None  # traceid(): Undefined when None
    account_id: str = ACCOUNT_ID
    timestamp_ms: int | None = None  # timestamp(): the rules engine's clock; None is now


class Env:
    """One evaluation: the document names refer to (the payload, or an element in a nested query), the raw
    payload for encode(*), and the message context. timestamp() is read once per evaluation."""

    __slots__ = ("document", "raw", "context", "_timestamp")

    def __init__(self, document: Value, raw: bytes | None, context: MessageContext, timestamp: int | None) -> None:
        self.document, self.raw, self.context, self._timestamp = document, raw, context, timestamp

    def timestamp_ms(self) -> int:
        if self._timestamp is None:
            self._timestamp = int(time.time() * 1000)
        return self._timestamp

    def nested(self, document: Value) -> Env:
        return Env(document, None, self.context, self.timestamp_ms())


Run = Callable[[Env], Value]


@dataclass(frozen=True)
class Expr:
    run: Run
    kind: str = "other"  # "field" (a path of names), "call", "literal", "star" or "other"
    key: str | None = None  # the output key of an unaliased field path: its last name
    constant: Value = UNDEFINED  # a literal's value


@dataclass(frozen=True)
class _Item:
    expr: Expr
    alias: str | None
    star: bool = False


@dataclass(frozen=True)
class _Projection:
    items: tuple[_Item, ...]
    value: bool  # SELECT VALUE

    def run(self, env: Env) -> Value:
        if self.value or (len(self.items) == 1 and self.items[0].star and self.items[0].alias is None):
            return self.items[0].expr.run(env)
        output: dict[str, Value] = {}
        for item in self.items:
            if item.star and item.alias is None:
                if not isinstance(env.document, dict):
                    raise SqlEvaluationError(
                        "SELECT * with other items needs a JSON object payload to add them to"
                    )
                output.update(env.document)
            else:
                output[item.alias or item.expr.key or ""] = item.expr.run(env)
        return output


@dataclass(frozen=True)
class _When:
    test: Expr
    result: Expr


@dataclass(frozen=True)
class _Else:
    result: Expr


@dataclass(frozen=True)
class _Where:
    condition: Expr


_ESCAPE = re.compile(r"\\(.)", re.DOTALL)
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "'": "'", '"': '"', "\\": "\\", "/": "/"}


def _unquote(token: str) -> str:
    # Unknown escapes keep their backslash, so that regular expressions such as '\d+' survive.
    return _ESCAPE.sub(lambda match: _ESCAPES.get(match.group(1), match.group(0)), token[1:-1])


def _literal(value: Value) -> Expr:
    return Expr(lambda env: value, kind="literal", constant=value)


def _document_member(name: str) -> Run:
    def run(env: Env) -> Value:
        document = env.document
        return document.get(name, UNDEFINED) if isinstance(document, dict) else UNDEFINED

    return run


@v_args(inline=True)
class _Compiler(Transformer):
    """Turns the parse tree into closures, noting the functions and the JSON names used."""

    def __init__(self) -> None:
        super().__init__()
        self.functions_used: set[str] = set()
        self.names: set[str] = set()

    # ----- names and paths -----

    def field(self, name: Token) -> Expr:
        self.names.add(str(name))
        return Expr(_document_member(str(name)), kind="field", key=str(name))

    def member(self, base: Expr, name: Token) -> Expr:
        key, base_run = str(name), base.run

        def run(env: Env) -> Value:
            value = base_run(env)
            return value.get(key, UNDEFINED) if isinstance(value, dict) else UNDEFINED

        return Expr(run, kind="field" if base.kind == "field" else "other", key=key)

    def element(self, base: Expr, index: Expr) -> Expr:
        base_run, index_run = base.run, index.run

        def run(env: Env) -> Value:
            value, position = base_run(env), standard_int(index_run(env))
            if not isinstance(value, list) or position is UNDEFINED or not 0 <= position < len(value):
                return UNDEFINED
            return value[position]

        return Expr(run)

    # ----- literals -----

    def int_literal(self, token: Token) -> Expr:
        return _literal(int(token))

    def decimal_literal(self, token: Token) -> Expr:
        return _literal(DECIMAL.create_decimal(str(token)))

    def string_literal(self, token: Token) -> Expr:
        return _literal(_unquote(str(token)))

    def true_literal(self) -> Expr:
        return _literal(True)

    def false_literal(self) -> Expr:
        return _literal(False)

    def null_literal(self) -> Expr:
        return _literal(None)

    def pair(self, key: Token, value: Expr) -> tuple[str, Expr]:
        return _unquote(str(key)), value

    def object_literal(self, *pairs: tuple[str, Expr] | None) -> Expr:
        members = [(key, value.run) for key, value in (pair for pair in pairs if pair is not None)]
        return Expr(lambda env: {key: run(env) for key, run in members})

    def array_literal(self, *items: Expr | None) -> Expr:
        runs = [item.run for item in items if item is not None]
        return Expr(lambda env: [run(env) for run in runs])

    # ----- operators -----

    def compare(self, left: Expr, operator: Token, right: Expr) -> Expr:
        if operator == "!=":
            raise SqlNotSupported("the IoT SQL reference has no '!=' operator: write '<>'")
        return self._binary(COMPARISONS[str(operator)], left, right)

    def _binary(self, apply: Callable[[Value, Value], Value], left: Expr, right: Expr) -> Expr:
        left_run, right_run = left.run, right.run
        return Expr(lambda env: apply(left_run(env), right_run(env)))

    def add(self, left: Expr, right: Expr) -> Expr:
        return self._binary(ARITHMETIC["+"], left, right)

    def subtract(self, left: Expr, right: Expr) -> Expr:
        return self._binary(ARITHMETIC["-"], left, right)

    def multiply(self, left: Expr, right: Expr) -> Expr:
        return self._binary(ARITHMETIC["*"], left, right)

    def divide(self, left: Expr, right: Expr) -> Expr:
        return self._binary(ARITHMETIC["/"], left, right)

    def remainder(self, left: Expr, right: Expr) -> Expr:
        return self._binary(ARITHMETIC["%"], left, right)

    def and_(self, left: Expr, right: Expr) -> Expr:
        return self._binary(logical_and, left, right)

    def or_(self, left: Expr, right: Expr) -> Expr:
        return self._binary(logical_or, left, right)

    def not_(self, operand: Expr) -> Expr:
        operand_run = operand.run
        return Expr(lambda env: logical_not(operand_run(env)))

    def negative(self, operand: Expr) -> Expr:
        if operand.kind == "literal":
            return _literal(negate(operand.constant))
        operand_run = operand.run
        return Expr(lambda env: negate(operand_run(env)))

    # ----- CASE -----

    def when(self, test: Expr, result: Expr) -> _When:
        return _When(test, result)

    def else_(self, result: Expr) -> _Else:
        return _Else(result)

    @staticmethod
    def _branches(parts: tuple[Any, ...]) -> tuple[list[tuple[Run, Run]], Run]:
        whens = [(part.test.run, part.result.run) for part in parts if isinstance(part, _When)]
        otherwise = next((part.result.run for part in parts if isinstance(part, _Else)), lambda env: UNDEFINED)
        return whens, otherwise

    def simple_case(self, subject: Expr, *parts: Any) -> Expr:
        whens, otherwise = self._branches(parts)
        subject_run = subject.run

        def run(env: Env) -> Value:
            value = subject_run(env)
            if value is UNDEFINED:  # "If v is Undefined, the result of the case statement is Undefined."
                return UNDEFINED
            for test, result in whens:
                candidate = test(env)
                if candidate is not UNDEFINED and same(value, candidate):
                    return result(env)
            return otherwise(env)

        return Expr(run)

    def searched_case(self, *parts: Any) -> Expr:
        # Not in the reference (which shows only CASE v WHEN ...), but standard SQL: the first true WHEN wins.
        whens, otherwise = self._branches(parts)

        def run(env: Env) -> Value:
            for test, result in whens:
                if test(env) is True:
                    return result(env)
            return otherwise(env)

        return Expr(run)

    # ----- functions -----

    def star_argument(self) -> Expr:
        # `*` as an argument: the whole document (encode(*) takes the raw payload, see call()).
        return Expr(lambda env: env.document, kind="star")

    def arguments(self, *arguments: Expr) -> list[Expr]:
        return list(arguments)

    def call(self, name_token: Token, arguments: list[Expr] | None) -> Expr:
        name, arguments = str(name_token).lower(), arguments or []
        if name in REFUSED:
            raise SqlNotSupported(f"the SQL function {name}() {REFUSED[name]}")
        function = FUNCTIONS.get(name)
        if function is None:
            raise SqlNotSupported(f"{name}() is not an AWS IoT SQL function")
        if not function.minimum <= len(arguments) <= function.maximum:
            expected = (
                str(function.minimum)
                if function.minimum == function.maximum
                else f"{function.minimum} to {function.maximum}"
            )
            raise SqlNotSupported(f"{name}() takes {expected} argument(s), not {len(arguments)}")
        self.functions_used.add(name)
        if name == "encode":
            return self._encode(arguments)
        if name == "decode":
            return self._decode(arguments)
        if name == "parse_time" and arguments[0].kind == "literal":
            try:
                compile_pattern(to_string(arguments[0].constant))
            except UnsupportedPattern as error:
                raise SqlNotSupported(f"parse_time(): {error} by the local runtime") from None
        if name == "time_to_epoch" and isinstance(arguments[1].constant, str):
            try:
                compile_parser(arguments[1].constant)
            except UnsupportedPattern as error:
                raise SqlNotSupported(f"time_to_epoch(): {error} by the local runtime") from None
        runs, run_function = [argument.run for argument in arguments], function.run
        if function.uses_message:
            return Expr(lambda env: run_function(env, *[run(env) for run in runs]), kind="call")
        return Expr(lambda env: run_function(*[run(env) for run in runs]), kind="call")

    @staticmethod
    def _encode(arguments: list[Expr]) -> Expr:
        value, scheme = arguments
        if scheme.kind != "literal" or not isinstance(scheme.constant, str) or scheme.constant.lower() != "base64":
            raise SqlNotSupported("encode() supports only the literal encoding scheme 'base64'")
        if value.kind == "star":
            # "you can specify * to encode the entire payload, regardless of whether it's in JSON format"
            return Expr(
                lambda env: encode_base64(env.raw if env.raw is not None else to_string(env.document)), kind="call"
            )
        value_run = value.run
        return Expr(lambda env: encode_base64(value_run(env)), kind="call")

    @staticmethod
    def _decode(arguments: list[Expr]) -> Expr:
        value, scheme, *proto_arguments = arguments
        name = scheme.constant.lower() if scheme.kind == "literal" and isinstance(scheme.constant, str) else None
        if name == "proto":
            raise SqlNotSupported(
                "decode() with 'proto' reads the rule's FileDescriptorSet from S3, which the local runtime does not do"
            )
        if name != "base64":
            raise SqlNotSupported("decode() supports the literal decoding scheme 'base64' (and, on AWS, 'proto')")
        if proto_arguments:
            raise SqlNotSupported(f"decode() with 'base64' takes 2 arguments, not {len(arguments)}")
        if value.kind == "star":
            return Expr(
                lambda env: decode_base64(env.raw if env.raw is not None else env.document, _json_document),
                kind="call",
            )
        value_run = value.run
        return Expr(lambda env: decode_base64(value_run(env), _json_document), kind="call")

    def cast(self, value: Expr, type_name: Token) -> Expr:
        convert = CASTS.get(str(type_name).lower())
        if convert is None:
            raise SqlNotSupported(f"cast() to {type_name} is not supported: use one of {', '.join(CASTS)}")
        self.functions_used.add("cast")
        value_run = value.run
        return Expr(lambda env: convert(value_run(env)), kind="call")

    # ----- SELECT, FROM, WHERE -----

    def star_item(self) -> _Item:
        return _Item(Expr(lambda env: env.document, kind="star"), None, star=True)

    def star_alias_item(self, alias: Token) -> _Item:
        return _Item(Expr(lambda env: env.document, kind="star"), str(alias), star=True)

    def expr_item(self, expr: Expr, alias: Token | None = None) -> _Item:
        if alias is None and expr.kind != "field":
            raise SqlNotSupported(
                "AWS names unaliased SELECT expressions itself; name this one with AS (only a field path such"
                " as a.b is named after its last name)"
            )
        return _Item(expr, None if alias is None else str(alias))

    def select_value(self, expr: Expr) -> _Projection:
        return _Projection((_Item(expr, None),), value=True)

    def select_items(self, *items: _Item) -> _Projection:
        return _Projection(items, value=False)

    def where(self, condition: Expr) -> _Where:
        return _Where(condition)

    def subquery(self, projection: _Projection, source: Expr, where: _Where | None = None) -> Expr:
        source_run, condition = source.run, where.condition.run if where else None

        def select(env: Env) -> Value:
            if condition is not None and condition(env) is not True:
                return UNDEFINED
            return projection.run(env)

        def run(env: Env) -> Value:
            document = source_run(env)
            if isinstance(document, list):
                results = (select(env.nested(element)) for element in document)
                return [result for result in results if result is not UNDEFINED]
            if isinstance(document, dict):
                return select(env.nested(document))
            return UNDEFINED

        return Expr(run)

    def topic_filter(self, token: Token | Any) -> str:
        if not isinstance(token, Token):
            raise SqlNotSupported("the FROM topic filter must be quoted, as in FROM 'a/b'")
        text = _unquote(str(token))
        try:
            TopicFilter.parse(text, "FROM")
        except LocalRuntimeError as error:
            raise SqlNotSupported(str(error)) from None
        return text

    def statement(self, projection: _Projection, topic_filter: str | None, where: _Where | None = None) -> Statement:
        return Statement(
            topic_filter=topic_filter,
            functions_used=frozenset(self.functions_used),
            references_payload_fields=bool(self.names),
            projection=projection,
            where=where.condition.run if where else None,
        )

    # ----- templates -----

    def text(self, token: Token) -> Run:
        text = str(token)
        return lambda env: text

    def dollar(self) -> Run:
        return lambda env: "$"

    def substitution(self, expr: Expr) -> Run:
        expr_run = expr.run

        def run(env: Env) -> str:
            text = to_string(expr_run(env))
            return "" if text is UNDEFINED else text  # "Undefined is converted to an empty string"

        return run

    def template(self, *parts: Run) -> Template:
        return Template(
            parts=parts,
            functions_used=frozenset(self.functions_used),
            references_payload_fields=bool(self.names),
        )


def _decode(payload: bytes) -> tuple[Value, bool]:
    """The payload as SQL values, and whether it is JSON. Anything that does not parse as JSON is binary, but
    an empty payload, to which a rule adds data as to an empty JSON object ("If you have an empty or a JSON
    payload, the resulting payload can have data added using the rule", binary-payloads)."""
    return ({}, True) if not payload else _json_document(payload)


def _json_document(data: bytes) -> tuple[Value, bool]:
    """`data` as SQL values if it is JSON (numbers with a fraction or exponent are Decimals of 34 digits), else
    `data` itself."""
    try:
        return json.loads(data, parse_float=DECIMAL.create_decimal, parse_constant=_reject_constant), True
    except ValueError:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        return data, False


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def _environment(payload: bytes, context: MessageContext) -> tuple[Env, bool]:
    document, is_json = _decode(payload)
    return Env(document, payload, context, context.timestamp_ms), is_json


@dataclass(frozen=True)
class Statement:
    """A parsed rule statement: parse once with parse_rule_sql, evaluate per message."""

    topic_filter: str | None  # None: no FROM, so only Basic Ingest invokes the rule
    functions_used: frozenset[str]
    references_payload_fields: bool
    projection: _Projection = field(repr=False)
    where: Run | None = field(repr=False)

    def evaluate(self, payload: bytes, context: MessageContext) -> Any:
        """NOT_FIRED when the rule does not fire (WHERE not true); else the output as JSON values (None for
        `SELECT VALUE` of a null), or the payload's bytes as they came for `SELECT *` of a binary or an empty
        payload. Raises SqlEvaluationError as AWS fails a rule.

        On a binary payload (https://docs.aws.amazon.com/iot/latest/developerguide/binary-payloads.html) JSON
        names are Undefined, so `WHERE device_type = 'thermostat'` does not fire, and `*` is the payload
        itself: `SELECT *, principal() AS principal` is "supported" but adds nothing, as only "an empty or a
        JSON payload" can have data added; `* AS name` has no JSON form, a rule failure."""
        env, is_json = _environment(payload, context)
        items = self.projection.items
        if not is_json and any(item.star and item.alias is not None for item in items):
            raise SqlEvaluationError("the payload is not JSON, so '* AS name' has no JSON value to name")
        if self.where is not None and self.where(env) is not True:
            return NOT_FIRED
        star_alone = len(items) == 1 and items[0].star and items[0].alias is None
        as_it_came = (not is_json and any(item.star for item in items)) or (not payload and star_alone)
        if as_it_came and not self.projection.value:
            return payload
        result = self.projection.run(env)
        if self.projection.value:
            # "Undefined is converted to an empty string when serialized by itself."
            return "" if result is UNDEFINED else to_json(result)
        return to_json(result)


@dataclass(frozen=True)
class Template:
    """A parsed substitution template: `${expression}` evaluated against the incoming message."""

    parts: tuple[Run, ...] = field(repr=False)
    functions_used: frozenset[str]
    references_payload_fields: bool

    def render(self, payload: bytes, context: MessageContext) -> str:
        # On a binary payload JSON names are Undefined, which a template renders as an empty string.
        env, _ = _environment(payload, context)
        return "".join(part(env) for part in self.parts)


def _parse(text: str, start: str) -> Any:
    try:
        tree = _PARSER.parse(text, start=start)
        return _Compiler().transform(tree)
    except VisitError as error:
        if isinstance(error.orig_exc, SqlNotSupported):
            raise error.orig_exc from None
        raise
    except UnexpectedInput as error:
        what = "SQL statement" if start == "statement" else "substitution template"
        hint = " (write $$ for a literal $)" if start == "template" and "$" in text else ""
        raise SqlNotSupported(
            f"cannot parse the {what} at line {error.line}, column {error.column}{hint}:\n{error.get_context(text)}"
        ) from None


def parse_rule_sql(sql: str) -> Statement:
    """Parse an AWS IoT SQL 2016-03-23 rule statement; raises SqlNotSupported saying what is wrong."""
    return _parse(sql, "statement")


def parse_template(text: str) -> Template:
    """Parse a substitution template such as "${topic(3)}/cmd"; raises SqlNotSupported."""
    return _parse(text, "template")
