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


# transform(String, Object, Array), current docs
# (https://docs.aws.amazon.com/iot/latest/developerguide/iot-sql-functions.html#iot-func-transform): "Returns an
# array of objects that contains the result of the specified transformation of the Object parameter on the Array
# parameter"; the examples publish this message to A/B.
TRANSFORM_MESSAGE = {"attributes": {"data1": 1, "data2": 2}, "values": [{"a": 3}, {"b": 4}, {"c": 5}]}


def run_on_a_b(sql: str, message) -> object:
    result = parse_rule_sql(sql).evaluate(json.dumps(message).encode(), MessageContext(topic="A/B"))
    return json.loads(json_text(result))


def test_transform_example_1_adds_the_objects_attributes_to_each_element() -> None:
    result = run_on_a_b("select value transform(\"enrichArray\", attributes, values) from 'A/B'", TRANSFORM_MESSAGE)
    assert result == [
        {"a": 3, "data1": 1, "data2": 2},
        {"b": 4, "data1": 1, "data2": 2},
        {"c": 5, "data1": 1, "data2": 2},
    ]


def test_transform_example_2_includes_and_renames_attributes_with_an_object_literal() -> None:
    sql = "select value transform(\"enrichArray\", {\"key\": attributes.data1}, values) from 'A/B'"
    assert run_on_a_b(sql, TRANSFORM_MESSAGE) == [{"a": 3, "key": 1}, {"b": 4, "key": 1}, {"c": 5, "key": 1}]


def test_transform_example_3_takes_its_object_and_array_from_nested_queries() -> None:
    message = {
        "data1": "example",
        "data2": {
            "a": "first attribute",
            "b": "second attribute",
            "c": [
                {"x": {"someInt": 5, "someString": "hello"}, "y": True},
                {"x": {"someInt": 10, "someString": "world"}, "y": False},
            ],
        },
    }
    sql = "select value transform('enrichArray', (select a, b from data2), (select value c from data2)) from 'A/B'"
    assert run_on_a_b(sql, message) == [
        {"x": {"someInt": 5, "someString": "hello"}, "y": True, "a": "first attribute", "b": "second attribute"},
        {"x": {"someInt": 10, "someString": "world"}, "y": False, "a": "first attribute", "b": "second attribute"},
    ]


@pytest.mark.parametrize(
    "expression",
    [
        "transform('enrich', attributes, values)",  # "Any other value | Any value | Any value | Undefined"
        "transform('enricharray', attributes, values)",  # the mode is a name, not a case-insensitive keyword
        "transform('enrichArray', 5, values)",
        "transform('enrichArray', attributes, attributes)",
        "transform('enrichArray', attributes, [1, {'a': 1}])",  # an array of objects, or nothing
        "transform('enrichArray', attributes, missing)",
    ],
)
def test_transform_is_undefined_for_another_mode_or_arguments_not_an_object_and_an_array_of_objects(expression) -> None:
    assert run_on_a_b(f"SELECT {expression} AS t FROM 'A/B'", TRANSFORM_MESSAGE) == {}


def test_transform_gives_the_objects_value_where_an_element_has_the_same_key_and_keeps_an_empty_array() -> None:
    message = {"attributes": {"site": "north"}, "values": [{"site": "old", "v": 1}], "none": []}
    enriched = run_on_a_b("SELECT VALUE transform('enrichArray', attributes, values) FROM 'A/B'", message)
    assert enriched == [{"site": "north", "v": 1}]
    assert run_on_a_b("SELECT VALUE transform('enrichArray', attributes, none) FROM 'A/B'", message) == []


def test_transform_is_undefined_past_its_128_kib_limit() -> None:
    # "The array returned by this function is limited to 128 KiB."
    filler = "x" * 1000
    just_under = {"attributes": {}, "values": [{"f": filler}] * 128}  # 128 x 1,008 bytes, with brackets and commas
    over = {"attributes": {"more": filler}, "values": [{"f": filler}] * 128}
    sql = "SELECT transform('enrichArray', attributes, values) AS t FROM 'A/B'"
    assert len(run_on_a_b(sql, just_under)["t"]) == 128
    assert run_on_a_b(sql, over) == {}


# time_to_epoch(String, String), current docs
# (https://docs.aws.amazon.com/iot/latest/developerguide/iot-sql-functions.html#iot-sql-function-time-to-epoch):
# "convert a timestamp string into a number of milliseconds in Unix epoch time"; the pattern is java.time's
# (tests/unit/test_java_time.py has its letters).
@pytest.mark.parametrize(
    "expression, expected",
    [
        ("time_to_epoch('2020-04-03 09:45:18 UTC+01:00', 'yyyy-MM-dd HH:mm:ss VV')", 1585903518000),
        ("time_to_epoch('18 December 2015', 'dd MMMM yyyy')", 1450396800000),
        ("time_to_epoch('2007-12-03 10:15:30.592 America/Los_Angeles', 'yyyy-MM-dd HH:mm:ss.SSS z')", 1196705730592),
    ],
)
def test_time_to_epoch_gives_the_documented_examples(expression, expected) -> None:
    assert evaluate(expression) == expected


def test_time_to_epoch_reads_a_timestamp_and_a_pattern_from_the_payload_and_inverts_parse_time() -> None:
    payload = json.dumps({"at": "2026-03-01T12:30:00Z", "pattern": "yyyy-MM-dd'T'HH:mm:ssX"}).encode()
    epoch_ms = evaluate("time_to_epoch(at, pattern)", payload)
    assert epoch_ms == 1772368200000
    assert evaluate(f"parse_time(\"yyyy-MM-dd'T'HH:mm:ss'Z'\", {epoch_ms})") == "2026-03-01T12:30:00Z"


@pytest.mark.parametrize(
    "arguments",
    [
        "'2021-02-32', 'yyyy-MM-dd'",  # no such day
        "'2021-02-03 extra', 'yyyy-MM-dd'",  # the whole text must be read
        "at, 'yyyy-MM-dd'",  # not a string
        "'2021', pattern",  # a pattern from the payload with a letter not emulated (w)
    ],
)
def test_time_to_epoch_is_undefined_for_a_text_its_pattern_does_not_read(arguments) -> None:
    payload = json.dumps({"at": 20210203, "pattern": "yyyy-ww"}).encode()
    result = parse_rule_sql(f"SELECT time_to_epoch({arguments}) AS e FROM 'a/b'").evaluate(
        payload, MessageContext(topic="a/b")
    )
    assert result == {}
