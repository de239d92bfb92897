"""Federated learning: datasets, partitions, models, local training, evaluation, simulation.

Public faces (import from the modules): `learning.Learning` (the learning settings every config
extends) / `TrainConfig`, `seeds` (every seed a task derives), `datasets.load_dataset`,
`partition.partition` / `market_partition`, `models.build_model` / `init_state` / `ModelSpec` /
`model_spec_for`, `training.train_local`, `evaluation.evaluate`, `batched.train_clients_batched`,
`taskspec.TaskSpec` / `TaskData`, `sim.run_simulation` / `SimConfig`; aggregation rules in
`fl.aggregation`, validator utility in `fl.utility`. Imports point one way, from the task spec and
the simulation down to the configs and seeds; beyond fl only errors, paths, files and storage's
weights encoding (the CIDs a round's model gets) are imported, never chain, roles, market or cli.
"""
