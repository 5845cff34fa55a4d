"""The information subject's items against their SQL reference, on generated records."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.periods import Period
from engine.products.assemble import subject_segments
from engine.products.specs import load_products
from engine.products.subject import DisputeFact, Pull, QueryFact, StatementFact, Subject
from tests.reference.subject import DAY_US, subject_items

NOW = 1_790_000_000_000_000  # 2026-09-21, a fixed instant: the items depend on it
SPEC = load_products()["quarterly"]
PERIODS = ("2026Q2", "2026Q3")
ITEMS = ("inflow_amount_fen", "outflow_amount_fen", "closing_balance_fen")
STATUSES = ("received", "corrected", "confirmed", "unresolved")
PURPOSES = (None, "credit_application", "post_loan_monitoring", "guarantee_review")

# Times around the windows' edges: the 30-day, 90-day and 365-day windows, and the pull.
instants = st.one_of(
    st.integers(NOW - 400 * DAY_US, NOW + DAY_US),
    st.sampled_from(
        [
            NOW,
            NOW - 1,
            NOW - 30 * DAY_US,
            NOW - 30 * DAY_US - 1,
            NOW - 90 * DAY_US,
            NOW - 90 * DAY_US - 1,
            NOW - 365 * DAY_US,
            NOW + 1,
        ]
    ),
)
# The request a report answers: a lender's under an authorization, or the enterprise's own.
pulls = st.one_of(
    st.just(Pull("r0", None, None, None)),
    st.builds(
        Pull,
        st.text("0123456789abcdef", min_size=32, max_size=32),
        st.sampled_from(("BANKA001", "BANKB002")),
        st.sampled_from(PURPOSES[1:]),
        st.sampled_from((None, "2026-09-21T09:30:00.250000+08:00")),
    ),
)


@st.composite
def disputes(draw: st.DrawFn) -> list[DisputeFact]:
    found = []
    for n in range(draw(st.integers(0, 5))):
        status = draw(st.sampled_from(STATUSES))
        answered = None if status == "received" else draw(instants)
        found.append(
            DisputeFact(
                f"d{n}",
                draw(st.sampled_from(("quarterly", "monthly"))),
                draw(st.sampled_from((*PERIODS, "2026-05"))),
                tuple(draw(st.lists(st.sampled_from(ITEMS), min_size=1, max_size=3, unique=True))),
                "statement",
                status,
                NOW - 30 * DAY_US,
                NOW - 10 * DAY_US,
                answered,
            )
        )
    return found


@settings(max_examples=300, deadline=None)
@given(
    queries=st.lists(
        st.tuples(
            instants,
            st.sampled_from(("BANKA001", "BANKB002", "BANKC003")),
            st.sampled_from(PURPOSES),
        )
    ),
    dispute_list=disputes(),
    statements=st.lists(instants, max_size=3),
    label=st.sampled_from(PERIODS),
    pull=pulls,
    now=st.sampled_from((NOW, NOW + 250_000)),  # the instant, with and without microseconds
)
def test_subject_items_equal_the_sql_reference(
    queries: list[tuple[int, str, str | None]],
    dispute_list: list[DisputeFact],
    statements: list[int],
    label: str,
    pull: Pull,
    now: int,
) -> None:
    period = Period.quarterly(label)
    assert period is not None
    subject = Subject(
        now,
        tuple(QueryFact(*query) for query in queries),
        tuple(dispute_list),
        tuple(StatementFact(f"s{i}", "text", at) for i, at in enumerate(statements)),
        pull,
    )
    engine = {
        item: value
        for segment in subject_segments(SPEC, period, subject)
        for item, value in segment["items"].items()
    }
    expected = subject_items(
        now,
        "quarterly",
        label,
        queries,
        [
            {
                "id": d.id,
                "product": d.product,
                "period": d.period,
                "status": d.status,
                "answered_at_us": d.answered_at_us,
                "items": d.items,
            }
            for d in dispute_list
        ],
        statements,
        (pull.request_id, pull.institution, pull.purpose, pull.data_as_of),
    )
    assert engine == expected
