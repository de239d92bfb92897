"""The chain layer, one module per concern: compile (the npm solc, cached artifacts), embedded (the
in-process EVM), deploy (+ address book), client (the typed MarketClient; it re-exports the next
two), records (the contract's enums and structs, digests, commitments), reverts (the exceptions,
revert data decoded by custom error), events (EventCursor), timecontrol, anvil. Import the module
you need: this package imports nothing eagerly, so commands that talk to a node never load the
embedded chain."""
