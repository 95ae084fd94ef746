from decimal import Decimal

from event_processing.conditional_writes import Attr, ConditionalWrite, Placeholders, Update


def test_comparison_with_a_missing_attribute_is_false_like_dynamodb():
    assert not Attr("v").lt(3).matches({"k": "a"})
    assert not Attr("v").ne(3).matches({"k": "a"})
    assert not Attr("v").eq(3).matches(None)


def test_values_of_different_types_never_compare():
    assert not Attr("v").lt(3).matches({"v": "2"})
    assert not Attr("flag").eq(1).matches({"flag": True})
    assert Attr("v").lt(3).matches({"v": Decimal(2)})


def test_missing_and_exists_test_presence_of_the_attribute():
    assert Attr("v").missing().matches(None)
    assert Attr("v").missing().matches({"k": 1})
    assert Attr("v").exists().matches({"v": 0})


def test_render_uses_placeholders_for_every_name_and_value():
    placeholders = Placeholders()
    condition = Attr("since").lt(5) | (Attr("since").eq(5) & ~Attr("connected").eq(True))
    rendered = condition.render(placeholders)
    assert rendered == "(#n0 < :v0 OR (#n0 = :v0 AND (NOT #n1 = :v1)))"
    assert placeholders.names == {"#n0": "since", "#n1": "connected"}
    assert placeholders.values == {":v0": 5, ":v1": True}


def test_equal_values_of_different_types_get_different_placeholders():
    placeholders = Placeholders()
    assert placeholders.value(1) != placeholders.value(True)
    assert placeholders.value(1) == placeholders.value(1)


def test_update_removes_a_set_that_becomes_empty():
    update = Update(delete={"topics": frozenset({"a"})})
    assert "topics" not in update.apply({"topics": frozenset({"a"})})
    assert update.apply({"topics": frozenset({"a", "b"})})["topics"] == {"b"}


def test_rejected_write_leaves_the_item_unchanged():
    write = ConditionalWrite(key={"k": "a"}, update=Update(set={"v": 1}), condition=Attr("v").lt(1))
    assert write.apply_to({"k": "a", "v": 2}) is None
    assert write.apply_to({"k": "a", "v": 0}) == {"k": "a", "v": 1}
    assert write.apply_to(None) is None  # no item: the comparison is false


def test_render_of_a_full_update():
    placeholders = Placeholders()
    update = Update(set={"a": 1}, remove=("b",), add={"s": frozenset({"x"})}, delete={"t": frozenset({"y"})})
    assert update.render(placeholders) == "SET #n0 = :v0 REMOVE #n1 ADD #n2 :v1 DELETE #n3 :v2"
