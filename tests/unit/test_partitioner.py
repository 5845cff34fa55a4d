from hypothesis import given
from hypothesis import strategies as st
from kafka.partitioner.default import murmur2

from engine.events import partitioner


@given(st.binary(max_size=64))
def test_murmur2_matches_the_kafka_python_client(data: bytes) -> None:
    assert partitioner.murmur2(data) == murmur2(data) & 0xFFFFFFFF


@given(st.text(min_size=1, max_size=30), st.integers(min_value=1, max_value=512))
def test_partition_is_the_java_default_formula(key: str, partitions: int) -> None:
    # kafka-python's DefaultPartitioner: (murmur2(key) & 0x7fffffff) % partitions
    expected = (murmur2(key.encode()) & 0x7FFFFFFF) % partitions
    assert partitioner.partition_for(key, partitions) == expected
