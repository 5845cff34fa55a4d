"""The event contract and the topics that carry it: what a bank publishes, how it is validated
and routed, where rejects go, and the Kafka administration that creates those topics."""
