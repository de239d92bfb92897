"""The market's roles as code: what each participant does, phase by phase, in calls to the chain
(and, for the learning agents, to storage and fl).

    agent           what every learning agent shares: the task, the global model, the log, step()
    trainer         train, store, commit, reveal
    validator       score the revealed updates, check the proposal
    aggregator      aggregate the accepted updates, store, propose
    runner          an agent as a process: follow the events, step until the task is settled
    local_market    every agent stepped in one process: `fedmarket demo`'s engine
    devnet          anvil plus every agent as its own supervised process: `fedmarket up`
    report          the design §6 report, rebuilt from the chain's events and views (report_plot: its PNG)
    buyer           the model buyer's operations: post, fund, start, cancel, finalize + settle, withdraw
    salts           commit-reveal salts, stored in the data dir before the commit (never lost)
    scripted_market a market with fixed scores and no learning (the report's tests use it)
"""
