"""The market's participants as code: what each one does, phase by phase, in calls to the chain
(and, for the learning agents, to storage and fl). The ways to run a whole market are fedmarket.market's.

    agent           what every learning agent shares: the task, the global model, the log, step()
    trainer         train, store, commit, reveal
    validator       score the revealed updates, check the proposal
    aggregator      aggregate the accepted updates, store, propose
    buyer           the model buyer: the task's parameters, post, fund, start, cancel, finalize + settle, withdraw
    salts           commit-reveal salts, stored durably before the commit (never lost)
    runner          an agent as a process: follow the events, step until the task is settled
    adversary       dishonest behaviour, injected into the agents through hooks (honest: the identity)
    faults          fault-injection points, shared by the agents and `fedmarket up`'s fault plan
"""
