"""The market's roles as code: what each participant does, phase by phase, in calls to the chain
(and, for the learning agents, to storage and fl).

    buyer           the model buyer's operations: post, fund, start, cancel, finalize + settle, withdraw
    salts           commit-reveal salts, stored in the data dir before the commit (never lost)
    scripted_market a whole market with fixed scores and no learning: `fedmarket demo`'s engine
"""
