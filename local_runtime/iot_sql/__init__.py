"""An evaluator for AWS IoT SQL version 2016-03-23 and substitution templates, as the rules engine runs them.

parse_rule_sql() and parse_template() parse once, when a rule is loaded, and refuse (SqlNotSupported) what
is invalid or not emulated; Statement.evaluate() and Template.render() then run per message. What is
emulated and refused is listed in parser.py (syntax), functions.py (functions) and values.py (types).
"""

from local_runtime.iot_sql.parser import (
    NOT_FIRED,
    MessageContext,
    SqlEvaluationError,
    SqlNotSupported,
    Statement,
    Template,
    parse_rule_sql,
    parse_template,
)
from local_runtime.iot_sql.values import UNDEFINED

__all__ = [
    "NOT_FIRED",
    "UNDEFINED",
    "MessageContext",
    "SqlEvaluationError",
    "SqlNotSupported",
    "Statement",
    "Template",
    "parse_rule_sql",
    "parse_template",
]
