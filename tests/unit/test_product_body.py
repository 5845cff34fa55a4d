"""The API splices a response from encoded parts: it must be the body `assemble` builds."""

from __future__ import annotations

from engine import codec
from engine.api.app import product_body
from engine.periods import Period, now_us
from engine.products.assemble import assemble
from engine.products.specs import load_products

AS_OF = {"partition": 3, "watermark": "2026-11-28T13:56:27+08:00", "routed_offset": 5311}
ITEMS = {"registry_versions": [1], "segments": [{"id": "s", "items": {"a": 1, "b": None}}]}


def test_the_spliced_body_is_the_assembled_one_key_for_key() -> None:
    products = load_products()
    now = now_us()
    for spec, period in (
        (products["monthly"], Period.monthly("2026-03")),
        (products["quarterly"], Period.quarterly("2026Q1")),
        (products["monthly"], Period.monthly("2099-01")),  # partial
    ):
        assert period is not None
        spliced = product_body(
            spec, "91350100M000100Y43", period, codec.dumps(AS_OF), codec.dumps(ITEMS), now
        )
        expected = assemble(spec, "91350100M000100Y43", period, ITEMS, AS_OF, now)
        decoded = codec.loads(spliced)
        assert decoded == expected
        assert list(decoded) == list(expected)  # the same order of keys


def test_no_progress_yet_is_an_empty_as_of() -> None:
    spec = load_products()["monthly"]
    period = Period.monthly("2026-03")
    assert period is not None
    body = codec.loads(product_body(spec, "E", period, None, codec.dumps(ITEMS), now_us()))
    assert body["as_of"] == {}
