"""Strict schemas against the openai SDK's own strict-mode helper, and the two-step validation."""

from __future__ import annotations

import copy
import enum
import json
from collections.abc import Iterator
from typing import Any, Literal

import pytest
from openai.lib._pydantic import _ensure_strict_json_schema, to_strict_json_schema
from pydantic import BaseModel, Field

from tiered._schema import StrictSchema


class Status(enum.Enum):
    ACTIVE = "active"
    CLOSED = "closed"


class Address(BaseModel):
    """A postal address."""

    street: str
    city: str = Field(description="City name")
    zip_code: str | None = None
    country: str = Field("NZ", description="ISO country code")


class LineItem(BaseModel):
    sku: str = Field(description="Stock-keeping unit")
    qty: int = 1
    unit: Literal["each", "box"] = "each"


class Customer(BaseModel):
    name: str
    email: str | None = Field(description="Contact address, if known")
    status: Status = Status.ACTIVE
    plan: Literal["free", "pro"] = "free"
    home: Address = Field(description="Where they live")
    other_addresses: list[Address] = []
    tags: list[str] = Field(default_factory=list)
    score: float = Field(0.0, description="Risk score")


class Order(BaseModel):
    """An order with nested models at every level."""

    customer: Customer
    items: list[LineItem] = Field(min_length=1)
    shipping: Address | None = None
    priority: int = Field(3, ge=1, le=5, description="1 is urgent")
    note: str = ""


class Flat(BaseModel):
    query: str
    limit: int = 10
    kind: Literal["a", "b"]


# (model, property paths that have a default and are not already Optional)
CASES: list[tuple[type[BaseModel], set[str]]] = [
    (Flat, {"$.limit"}),
    (Address, {"$.country"}),
    (
        Customer,
        {
            "$.status",
            "$.plan",
            "$.home.country",
            "$.other_addresses",
            "$.other_addresses[].country",
            "$.tags",
            "$.score",
        },
    ),
    (
        Order,
        {
            "$.customer.status",
            "$.customer.plan",
            "$.customer.home.country",
            "$.customer.other_addresses",
            "$.customer.other_addresses[].country",
            "$.customer.tags",
            "$.customer.score",
            "$.items[].qty",
            "$.items[].unit",
            "$.shipping.country",
            "$.priority",
            "$.note",
        },
    ),
]


def _resolve(node: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref")
    if isinstance(ref, str):
        target: dict[str, Any] = root["$defs"][ref.removeprefix("#/$defs/")]
        return target
    return node


def _walk(
    node: dict[str, Any], root: dict[str, Any], path: str = "$"
) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every schema node with a readable path; a union's non-null branches share its path."""
    node = _resolve(node, root)
    yield path, node
    for name, sub in node.get("properties", {}).items():
        yield from _walk(sub, root, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        yield from _walk(node["items"], root, f"{path}[]")
    for branch in node.get("anyOf", ()):
        if branch.get("type") != "null":
            yield from _walk(branch, root, path)


def _objects(schema: dict[str, Any]) -> dict[str, tuple[frozenset[str], frozenset[str], Any]]:
    """Per object level: (properties, required, additionalProperties)."""
    return {
        path: (
            frozenset(node["properties"]),
            frozenset(node["required"]),
            node.get("additionalProperties"),
        )
        for path, node in _walk(schema, schema)
        if "properties" in node
    }


def _accepts_null(node: dict[str, Any], root: dict[str, Any]) -> bool:
    node = _resolve(node, root)
    t = node.get("type")
    if t == "null" or (isinstance(t, list) and "null" in t):
        return True
    return any(_accepts_null(b, root) for b in node.get("anyOf", ()))


def _nullable_properties(schema: dict[str, Any]) -> set[str]:
    return {
        f"{path}.{name}"
        for path, node in _walk(schema, schema)
        for name, sub in node.get("properties", {}).items()
        if _accepts_null(sub, schema)
    }


def _all_nodes(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _all_nodes(value)
    elif isinstance(node, list):
        for item in node:
            yield from _all_nodes(item)


@pytest.mark.parametrize(("model", "relaxed"), CASES, ids=[m.__name__ for m, _ in CASES])
def test_object_levels_agree_with_openai(model: type[BaseModel], relaxed: set[str]) -> None:
    ours = StrictSchema(model).schema
    theirs = to_strict_json_schema(model)
    levels = _objects(ours)
    assert levels == _objects(theirs)
    for props, required, additional in levels.values():
        assert required == props
        assert additional is False


@pytest.mark.parametrize(("model", "relaxed"), CASES, ids=[m.__name__ for m, _ in CASES])
def test_only_defaulted_fields_become_nullable(model: type[BaseModel], relaxed: set[str]) -> None:
    ours = StrictSchema(model).schema
    theirs = to_strict_json_schema(model)
    ours_nullable = _nullable_properties(ours)
    theirs_nullable = _nullable_properties(theirs)
    assert theirs_nullable <= ours_nullable
    assert ours_nullable - theirs_nullable == relaxed


@pytest.mark.parametrize(("model", "relaxed"), CASES, ids=[m.__name__ for m, _ in CASES])
def test_openai_helper_finds_nothing_to_fix(model: type[BaseModel], relaxed: set[str]) -> None:
    ours = StrictSchema(model).schema
    again = copy.deepcopy(ours)
    assert _ensure_strict_json_schema(again, path=(), root=again) == ours


@pytest.mark.parametrize(("model", "relaxed"), CASES, ids=[m.__name__ for m, _ in CASES])
def test_no_ref_with_siblings_no_defaults_no_markers(
    model: type[BaseModel], relaxed: set[str]
) -> None:
    ours = StrictSchema(model).schema
    for node in _all_nodes(ours):
        if "$ref" in node:
            assert len(node) == 1, node
        assert "default" not in node
        assert "allOf" not in node
    assert "x-tiered" not in json.dumps(ours)


def test_descriptions_survive_on_nullable_and_inlined_fields() -> None:
    props = StrictSchema(Customer).schema["properties"]
    assert props["score"]["description"] == "Risk score. Send null for the default (0.0)."
    assert props["email"]["description"] == "Contact address, if known"
    assert props["home"]["description"] == "Where they live"
    assert props["home"]["properties"]["city"]["description"] == "City name"


def test_null_for_a_defaulted_field_yields_the_default() -> None:
    schema = StrictSchema(Order)
    sent = {
        "customer": {
            "name": "Ada",
            "email": None,
            "status": None,
            "plan": None,
            "home": {"street": "1 Main", "city": "c", "zip_code": None, "country": None},
            "other_addresses": [
                {"street": "2 Side", "city": "c", "zip_code": "9", "country": None}
            ],
            "tags": None,
            "score": None,
        },
        "items": [{"sku": "X", "qty": None, "unit": None}, {"sku": "Y", "qty": 2, "unit": "box"}],
        "shipping": {"street": "3 Dock", "city": "c", "zip_code": None, "country": "AU"},
        "priority": None,
        "note": None,
    }
    assert schema.errors(sent) == []
    order = schema.validate(sent)
    assert order == Order(
        customer=Customer(
            name="Ada",
            email=None,
            home=Address(street="1 Main", city="c"),
            other_addresses=[Address(street="2 Side", city="c", zip_code="9")],
        ),
        items=[LineItem(sku="X"), LineItem(sku="Y", qty=2, unit="box")],
        shipping=Address(street="3 Dock", city="c", country="AU"),
    )
    # an Optional field keeps its null: null is a value there, not "use the default"
    assert order.customer.email is None
    assert order.customer.status is Status.ACTIVE


def test_null_is_kept_for_optional_fields() -> None:
    schema = StrictSchema(Address)
    assert (
        schema.validate({"street": "s", "city": "c", "zip_code": None, "country": None}).zip_code
        is None
    )


def test_schema_violation_names_the_field_path() -> None:
    schema = StrictSchema(Order)
    bad = {
        "customer": {"name": "Ada"},
        "items": [{"sku": "X", "qty": "many", "unit": "crate"}],
        "shipping": None,
        "priority": 3,
        "note": "",
        "extra": 1,
    }
    problems = schema.errors(bad)
    text = "\n".join(problems)
    assert "at items/0/qty: 'many' is not of type 'integer'" in problems
    assert "at items/0/unit:" in text
    assert "'crate'" in text
    assert "at customer: 'email' is a required property" in problems
    assert "at (root): Additional properties are not allowed ('extra' was unexpected)" in problems
    with pytest.raises(ValueError, match=r"items/0/qty"):
        schema.validate(bad)


def test_pydantic_constraints_still_apply_after_the_schema_check() -> None:
    schema = StrictSchema(Order)
    ok_shape: dict[str, Any] = {
        "customer": {
            "name": "Ada",
            "email": None,
            "status": None,
            "plan": None,
            "home": {"street": "s", "city": "c", "zip_code": None, "country": None},
            "other_addresses": None,
            "tags": None,
            "score": None,
        },
        "items": [],
        "shipping": None,
        "priority": 3,
        "note": None,
    }
    # minItems is dropped or kept by the schema; pydantic still enforces it
    with pytest.raises(ValueError, match="items"):
        schema.validate(ok_shape)


def test_non_object_types_are_wrapped_and_unwrapped() -> None:
    schema = StrictSchema(list[int])
    assert schema.wrapped
    assert schema.schema["required"] == ["result"]
    assert schema.schema["properties"]["result"]["type"] == "array"
    assert schema.validate({"result": [1, 2]}) == [1, 2]
    assert schema.errors({"result": ["x"]}) == ["at result/0: 'x' is not of type 'integer'"]


def test_wrapped_list_of_models_keeps_defs_at_the_root() -> None:
    schema = StrictSchema(list[LineItem])
    assert "LineItem" in schema.schema["$defs"]
    assert schema.validate({"result": [{"sku": "A", "qty": None, "unit": None}]}) == [
        LineItem(sku="A")
    ]


def test_input_schema_is_not_modified() -> None:
    before = Order.model_json_schema()
    StrictSchema(Order)
    assert Order.model_json_schema() == before
