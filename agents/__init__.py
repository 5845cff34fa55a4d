"""The two stages of a worker.

intake  bank.<CODE>.txns  -> validate -> creditflow.txns.routed.v1 (by enterprise) | txns.rejected
ledger  creditflow.txns.routed.v1 -> per-partition state (RocksDB) -> views in Redis

Each stage is a plain class with an async ``process(events)``; engine/runtime/worker.py makes
them Faust agents. They hold no business rules of their own: the contract is in
engine/events/contract.py, the state semantics in state/ledger.py.
"""
