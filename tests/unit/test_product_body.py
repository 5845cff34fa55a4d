"""The API splices a response from encoded parts: it must be the body `assemble` builds."""

from __future__ import annotations

from engine import codec
from engine.api.products import encode_rendered, product_body
from engine.periods import Period, now_us
from engine.products.assemble import assemble, subject_segments
from engine.products.specs import load_products
from engine.products.subject import DisputeFact, Pull, QueryFact, StatementFact, Subject

AS_OF = {"partition": 3, "watermark": "2026-11-28T13:56:27+08:00", "routed_offset": 5311}
ITEMS = {
    "registry_versions": [1],
    "coverage": {"record_start": "2024-01", "kept_from": None},
    "segments": [
        {"id": "s", "items": {"a": 1, "b": None}, "disputed": {"a": ["d1"]}},
        {"id": "t", "items": {"c": 2}},
    ],
    "disputes": [{"id": "d1", "status": "received", "items": ["a"], "statement": "wrong"}],
}
NO_SEGMENTS = {
    "registry_versions": [],
    "coverage": {"record_start": None, "kept_from": None},
    "segments": [],
    "disputes": [],
}


def _subject(now: int) -> Subject:
    return Subject(
        now,
        (QueryFact(now - 10, "BANK0001"),),
        (DisputeFact("d1", "quarterly", "2026Q1", ("a",), "wrong", "received", 1, 2, None),),
        (StatementFact("s1", "we object", now - 5),),
        Pull("5b0c" * 8, "BANK0001", "credit_application", AS_OF["watermark"]),
    )


def test_the_spliced_body_is_the_assembled_one_key_for_key() -> None:
    products = load_products()
    now = now_us()
    subject = _subject(now)
    for spec, period, items in (
        (products["monthly"], Period.monthly("2026-03"), ITEMS),
        (products["quarterly"], Period.quarterly("2026Q1"), ITEMS),
        (products["quarterly"], Period.quarterly("2026Q1"), NO_SEGMENTS),
        (products["monthly"], Period.monthly("2099-01"), ITEMS),  # partial
    ):
        assert period is not None
        rendered = encode_rendered(items, subject)
        segments = subject_segments(spec, period, subject)
        spliced = product_body(
            spec, "91350100M000100Y43", period, codec.dumps(AS_OF), rendered, segments, now
        )
        expected = assemble(spec, "91350100M000100Y43", period, items, subject, AS_OF, now)
        decoded = codec.loads(spliced)
        assert decoded == expected
        assert list(decoded) == list(expected)  # the same order of keys
        if spec.id == "quarterly":
            ids = [s["id"] for s in decoded["segments"]]
            assert ids[0] == "header" and ids[-3:] == ["query_records", "disputes", "statements"]
            assert ids[1:-3] == [s["id"] for s in items["segments"]]
            header = decoded["segments"][0]["items"]
            assert header["report_id"] == "5b0c" * 8 and header["query_purpose"] is not None


def test_no_progress_yet_is_an_empty_as_of() -> None:
    spec = load_products()["monthly"]
    period = Period.monthly("2026-03")
    assert period is not None
    rendered = encode_rendered(ITEMS, Subject())
    body = codec.loads(product_body(spec, "E", period, None, rendered, [], now_us()))
    assert body["as_of"] == {}
