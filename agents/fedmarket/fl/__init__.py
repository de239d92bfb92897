"""Federated learning: datasets, partitions, models, local training, evaluation, simulation.

Public faces (import from the modules): `datasets.load_dataset`, `partition.partition`,
`models.build_model` / `init_state` / `ModelSpec`, `training.train_local` / `TrainConfig`,
`evaluation.evaluate`, `batched.train_clients_batched`, `sim.run_simulation`; aggregation rules in
`fl.aggregation`, validator utility in `fl.utility`. Nothing here imports chain, roles or cli.
"""
