"""The ways to run a whole market, built on the participants of fedmarket.roles.

setup        the one shared set-up: deploy, named accounts, spec and initial model stored, task posted and funded
engine       every agent stepped in one process: `fedmarket demo`'s engine (and `bench overhead`'s)
plan         a run's fault and attack plan (NAME@ROUND:POINT->RESTART, NAME=KIND[@ROUNDS])
supervisor   child processes under supervision: launch, poll, restart, stop; the agents with the plan applied
devnet       anvil plus every agent as its own supervised process: `fedmarket up` (run: its folder, live view, result)
report       the design §6 report, rebuilt from the chain's events and views (report_plot: its PNG)
views        read models the CLI shows: task and round summaries, a round's model CID, the verified spec
"""
