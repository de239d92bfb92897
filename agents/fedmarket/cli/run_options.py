"""The flags `demo` and `up` share beyond the task spec: which participants misbehave, and the
semi-centralised mode's trust graph and stragglers' slowdown.

Both runners name participants the same way (market.setup.participant_names) and both parse the
attack values with market.plan.parse_attack, so each flag is declared once, here."""

from __future__ import annotations

import typer

AttackOption = typer.Option(
    [],
    "--attack",
    help="Make a participant misbehave: NAME=KIND[@ROUNDS], e.g. trainer-4=free-ride, trainer-1=sign-flip@2,3, "
    "aggregator=wrong-aggregate@2 (kinds: `fedmarket agent ROLE --help`). Repeatable.",
)
SlowdownOption = typer.Option(2.0, "--slowdown", min=1.0, help="semi: a straggler's compute time = its cost x this.")
TrustOption = typer.Option("ring", "--trust", help="semi: the trust graph (ring, kregular:K, random:D, none or a file), as sim takes it.")
