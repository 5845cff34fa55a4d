"""The two products: declared in specs/, classified, computed by one kernel per item and
assembled into a response. Pure: no Kafka, no Redis, no HTTP."""
