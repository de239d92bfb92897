"""Asynchronous and per-client federated learning on a deterministic virtual clock (issue 12).

The seed paper's semi-centralised asynchronous FL (semi_centralised), FedAsync (fedasync) and a
Local-only baseline (local), as simulations: `run.run_async(AsyncConfig(mode=...))`. One file
per concern: trust graphs (trust), gossip in a trusted component (gossip), loss weights on one
random batch (loss_weights), staleness compensation (staleness), the clock and compute-time
ratio (clock), the upload / download / score records (records), client-model metrics (metrics).
Synchronous FedAvg / FedProx stay fl.sim's; `clock.sync_schedule` puts them on the same clock.
"""
