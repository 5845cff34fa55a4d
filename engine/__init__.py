"""creditflow engine: the contract, configuration, wiring, API and command line."""
