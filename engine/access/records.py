"""Query records: one per product request, served or refused.

Written by the API to the query records topic before the product leaves (a pull whose
record the broker has not confirmed gets 503 and no data), several to a message (a JSON
array: engine/api/recorder.py), and indexed in Redis by the access stage for the enterprise
and the institution to read. A record holds no token, no secret
and nothing of the product itself.
"""

from __future__ import annotations

import msgspec

__all__ = [
    "ANSWERED_OUTCOMES",
    "REPORTED_PRODUCTS",
    "QueryRecord",
    "decode_batch",
    "decode_record",
    "encode_record",
]

#: Outcomes of a request that was answered with the enterprise's information (or its
#: absence): what counts as a query in the quarterly report's query-record items.
ANSWERED_OUTCOMES = frozenset({"served", "no_data"})

#: Products whose queries the credit report counts. Signals delivered after a loan are
#: recorded too (the enterprise sees them in its list of queries), but a lender monitoring
#: its borrower is not a lender considering credit: counted, they would make every monitored
#: firm look credit-hungry.
REPORTED_PRODUCTS = frozenset({"monthly", "quarterly"})


class QueryRecord(msgspec.Struct, frozen=True):
    # request_id comes first: records of the same microsecond sort by it in a Redis ZSET.
    request_id: str
    at_us: int
    by: str  # "institution", "enterprise" (its own), "operator" (rejected events), "unknown"
    institution: str | None  # the institution's code when by == "institution"
    enterprise_id: str | None  # None when the requested id was not a valid credit code
    product: str
    period: str | None  # None when the requested period was malformed
    authorization_id: str | None
    purpose: str | None
    outcome: str  # "served", "no_data", or the refusal's code
    status: int  # the HTTP status the request got


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(QueryRecord)
_batch_decoder = msgspec.json.Decoder(list[QueryRecord])


def encode_record(record: QueryRecord) -> bytes:
    return _encoder.encode(record)


def decode_record(data: bytes) -> QueryRecord:
    return _decoder.decode(data)


def decode_batch(data: bytes) -> list[tuple[bytes, QueryRecord]]:
    """The records of one message of the topic (a JSON array, written by group commit), each
    with its canonical bytes: the same bytes whenever the message is read again."""
    return [(encode_record(record), record) for record in _batch_decoder.decode(data)]
