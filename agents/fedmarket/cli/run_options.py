"""The flags `demo` and `up` share beyond the task spec: which participants misbehave.

Both runners name participants the same way (market.setup.participant_names) and both parse the
values with market.plan.parse_attack, so the flag is declared once, here."""

from __future__ import annotations

import typer

AttackOption = typer.Option(
    [],
    "--attack",
    help="Make a participant misbehave: NAME=KIND[@ROUNDS], e.g. trainer-4=free-ride, trainer-1=sign-flip@2,3, "
    "aggregator=wrong-aggregate@2 (kinds: `fedmarket agent ROLE --help`). Repeatable.",
)
