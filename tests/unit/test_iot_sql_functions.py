"""AWS IoT SQL functions against the examples of the AWS IoT Developer Guide (Lxxxx: the line of its 2018
edition, as text; "current docs" where AWS's reference of today corrects or adds to it)."""

import hashlib
import json

import pytest

from local_runtime.iot_sql import MessageContext, parse_rule_sql
from local_runtime.iot_sql.values import json_text

EXAMPLES = [
    ("abs(-5)", 5),  # L8008
    ("abs('-5.123')", 5.123),  # L7734: 'abs("-5.123")' is treated as 'abs(-5.123)'
    ("acos(0)", 1.5707963267948966),  # L8034
    ("asin(0)", 0),  # L8050 (0.0; whole Decimals print as Ints)
    ("atan(0)", 0),  # L8068
    ("atan2(1, 0)", 1.5707963267948966),  # L8084
    ("bitand(13, 5)", 5),  # L8169
    ("bitor(8, 5)", 13),  # L8181
    ("bitxor(13, 5)", 8),  # L8195 (printed as bitor(13, 5) = 8)
    ("bitnot(13)", 2),  # L8207
    ("cast(true as Decimal)", 1),  # L8221: 1.0, a whole number, is an Int in 2016-03-23 (current docs)
    ("cast(true as Int)", 1),  # current docs
    ("cast('5.9' as Int)", 5),
    ("cast(0 as Boolean)", False),
    ("cast(12 as String)", "12"),
    ("ceil(1.2)", 2),  # L8298
    ("ceil(-1.2)", -1),  # current docs (the guide prints ceil(11.2) = -1, L8300)
    ("chr(65)", "A"),  # L8314
    ("chr(49)", "1"),  # L8316
    ("concat([1, 2, 3], 4)", [1, 2, 3, 4]),  # L8355
    ("concat([1, 2, 3], 'hello')", [1, 2, 3, "hello"]),  # L8359
    ("concat('con', 'cat')", "concat"),  # L8363
    ("concat(1, 'hello')", "1hello"),  # L8367
    ("concat('he', 'is', 'man')", "heisman"),  # L8371
    ("concat([1, 2, 3], 'hello', [4, 5, 6])", [1, 2, 3, "hello", 4, 5, 6]),  # L8375
    ("cos(0)", 1),  # L8389
    ("cosh(2.3)", 5.037220649268761),  # L8405
    ("endswith('cat', 'at')", True),  # L8435
    ("exp(1)", 2.718281828459045),  # L8445: e
    ("floor(1.2)", 1),  # current docs
    ("floor(-1.2)", -2),  # current docs
    ("get(['a', 'b', 'c'], 1)", "b"),  # L8462
    ("get({'a': 'b'}, 'a')", "b"),  # L8463
    ("get('abc', 1)", "b"),  # L8464 (the current docs print "a", against their own 0-based table)
    ("md5('hello')", "5d41402abc4b2a76b9719d911017c592"),  # L8512
    ("indexof('abcd', 'bc')", 1),  # L8522
    ("isNull(5)", False),  # L8532
    ("isNull(null)", True),  # L8536
    ("isUndefined(5)", False),  # L8558
    ("isUndefined(floor([1,2,3]))", True),  # L8562 (printed as isNull(...))
    ("length('hi')", 2),  # L8582
    ("length(false)", 5),  # L8586
    ("ln(exp(1))", 1),  # L8593: ln(e) = 1
    ("log(100)", 2),  # L8609: 2.0
    ("lower('HELLO')", "hello"),  # L8628
    ("lower(['HELLO'])", '["hello"]'),  # L8629
    ("lpad('hello', 2)", "  hello"),  # L8639; current docs show both spaces
    ("lpad(1, 3)", "   1"),  # L8640
    ("ltrim(' h i ')", "h i "),  # L8657
    ("mod(8, 3)", 2),  # L8726
    ("remainder(8, 3)", 2),  # current docs
    ("nanvl(8, 3)", 8),  # L8738
    ("nanvl(missing, 3)", 3),
    ("numbytes('hi')", 2),  # L8760
    ("numbytes('€')", 3),  # L8764
    ("power(2, 5)", 32),  # L8873: 32.0
    ("regexp_matches('aaaa', 'a{2,}')", True),  # L8899
    ("regexp_matches('aaaa', 'b')", False),  # L8903
    ("regexp_replace('abcd', 'bc', 'x')", "axd"),  # L8933
    ("regexp_replace('abcd', 'b(.*)d', '$1')", "ac"),  # L8937
    ("regexp_substr('hihihello', 'hi')", "hi"),  # L8967
    ("regexp_substr('hihihello', '(hi)*')", "hihi"),  # L8971
    ("replace('abcd', 'bc', 'x')", "axd"),  # current docs
    ("replace('abcdabcd', 'b', 'x')", "axcdaxcd"),  # current docs
    ("rpad('hello', 2)", "hello  "),  # L9000
    ("rpad(1, 3)", "1   "),  # L9002
    ("round(1.2)", 1),  # L9022
    ("round(1.5)", 2),  # L9024
    ("round(1.7)", 2),  # L9026
    ("round(-1.1)", -1),  # L9028
    ("round(-1.5)", -2),  # L9030
    ("rtrim(' h i ')", " h i"),  # L9047
    ("sign(-7)", -1),  # L9066
    ("sign(0)", 0),  # L9070
    ("sign(13)", 1),  # L9074
    ("sin(0)", 0),  # L9089
    ("sinh(2.3)", 4.936961805545957),  # L9105
    ("substring('012345', 0)", "012345"),  # L9128
    ("substring('012345', 2)", "2345"),
    ("substring('012345', 2.745)", "2345"),
    ("substring(123, 2)", "3"),
    ("substring('012345', -1)", "012345"),
    ("substring(true, 1.2)", "rue"),
    ("substring(false, -2.411E247)", "false"),
    ("substring('012345', 1, 3)", "12"),
    ("substring('012345', -50, 50)", "012345"),
    ("substring('012345', 3, 1)", ""),  # L9137
    ("sqrt(9)", 3),  # L9144: 3.0
    ("startswith('ranger', 'ran')", True),  # L9165
    ("tan(3)", -0.1425465430742778),  # L9176
    ("tanh(2.3)", 0.9800963962661914),  # L9194
    ("trunc(2.3, 0)", 2),  # L9239
    ("trunc(2.3123, 2)", 2.31),  # L9243
    ("trunc(2.888, 2)", 2.88),  # L9247
    ("trunc(2.00, 5)", 2),  # L9251
    ("trim(' hi ')", "hi"),  # L9267
    ("upper('hello')", "HELLO"),  # L9289
    ("upper(['hello'])", '["HELLO"]'),  # L9290
    ('md5("hello")', "5d41402abc4b2a76b9719d911017c592"),  # double-quoted strings, as the docs write them
    ("sha256('hello')", hashlib.sha256(b"hello").hexdigest()),
    (
        "parse_time(\"yyyy.MM.dd G 'at' HH:mm:ss z\", 100000000, \"America/Belize\")",
        "1970.01.01 AD at 21:46:40 CST",
    ),  # L8802 (quotes as the current docs write them)
]


def evaluate(expression, payload=b"{}"):
    """The value as its rule's actions' JSON carries it, parsed back (Decimals as floats)."""
    result = parse_rule_sql(f"SELECT VALUE {expression} FROM 'a/b'").evaluate(payload, MessageContext(topic="a/b"))
    return json.loads(json_text(result))


@pytest.mark.parametrize("expression, expected", EXAMPLES)
def test_documented_function_examples(expression, expected) -> None:
    result = evaluate(expression)
    assert result == expected and type(result) is type(expected)


# "Functions called with invalid arguments (for example, wrong types ...) return Undefined" (L7730); a
# SELECT VALUE of Undefined is the empty string.
INVALID = [
    "abs(true)",
    "abs('five')",
    "acos(2)",  # an imaginary result
    "sqrt(-1)",
    "ln(0)",
    "concat()",
    "concat(1, 2)",
    "chr(200)",
    "get({'a': 1}, 1)",
    "get([1], 5)",
    "get([1], -1)",
    "get(5, 0)",
    "upper(null)",
    "lower(missing)",
    "endswith(null, 'a')",
    "regexp_matches('a', '(')",
    "regexp_replace('a', 'a', '$2')",
    "regexp_substr('abc', 'x')",
    "substring('abc', 'x')",
    "trunc('x', 1)",
    "cast('yes' as Boolean)",
    "cast(null as Int)",
    "cast([1] as Decimal)",
    "topic(9)",
    "parse_time('yyyy', 0, 'Not/AZone')",
    "encode(missing, 'base64')",
    "decode(missing, 'base64')",
    "decode('not base64!', 'base64')",
    "decode(5, 'base64')",
    "decode('/w==', 'base64')",  # the byte 0xFF: not UTF-8 text
]


@pytest.mark.parametrize("expression", INVALID)
def test_functions_with_invalid_arguments_return_undefined(expression) -> None:
    assert evaluate(expression) == ""


def test_string_conversions_of_functions_follow_the_standard_rules() -> None:
    assert evaluate("concat('n=', 1.50, ' ', true, ' ', {'a': [1, 'x']})") == 'n=1.50 true {"a":[1,"x"]}'


def test_function_names_are_case_insensitive() -> None:
    assert evaluate("Upper('a')") == "A" and evaluate("ISNULL(NULL)") is True


def test_md2_example() -> None:
    assert evaluate("md2('hello')") == "a9046c73e00331af68917d3804f70655"  # L8511
    # RFC 1319's own test vectors
    assert evaluate("md2('')") == "8350e5a3e24c153df2275c9f80692773"
    assert evaluate("md2('abc')") == "da853b0d3f88d99b30283a69e6ded6bb"


# decode(value, 'base64'), current docs (https://docs.aws.amazon.com/iot/latest/developerguide/iot-sql-functions.html,
# decode): "If the decoded string is a JSON document, an addressable object is returned. Otherwise, the decoded
# string is returned as a string."
DECODED = [
    ("decode('eyJhIjoxfQ==', 'base64')", {"a": 1}),  # {"a":1}
    ("decode('eyJhIjoxfQ==', 'base64').a", 1),  # addressable
    ("decode('WzEsMl0=', 'base64')", [1, 2]),  # [1,2]
    ("decode('aGVsbG8=', 'base64')", "hello"),
    ("decode('aGVsbG8', 'BASE64')", "hello"),  # padding optional, as Java's decoder takes it
    ("decode('NQ==', 'base64')", "5"),  # a JSON number is no JSON document: the string
    ("decode(encode({'t': 21.5}, 'base64'), 'base64').t", 21.5),
]


@pytest.mark.parametrize("expression, expected", DECODED)
def test_decode_base64_returns_a_json_document_as_an_object_and_anything_else_as_a_string(expression, expected) -> None:
    result = evaluate(expression)
    assert result == expected and type(result) is type(expected)


def test_decode_of_the_encoded_payload_turns_a_json_string_payload_into_an_object() -> None:
    # https://docs.aws.amazon.com/iot/latest/developerguide/binary-payloads.html: "To convert string input
    # to JSON, you can run the following command": SELECT decode(encode(*, 'base64'), 'base64') AS payload
    statement = parse_rule_sql("SELECT decode(encode(*, 'base64'), 'base64') AS payload FROM 'a/b'")
    assert statement.evaluate(b'{"temperature": 21}', MessageContext(topic="a/b")) == {"payload": {"temperature": 21}}


def test_encode_base64_converts_values_to_strings_first() -> None:
    assert evaluate("encode(x, 'base64')", json.dumps({"x": {"a": 1}}).encode()) == "eyJhIjoxfQ=="
