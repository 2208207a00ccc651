"""`fedledger audit`: recompute a recorded round from chain + storage alone."""

from __future__ import annotations

from typing import Annotated

import typer

from fedledger.commands._common import (
    DEFAULT_STORE,
    ManifestOpt,
    RpcOpt,
    StoreOpt,
    TaskOpt,
    console,
    ledger,
    require_task,
)
from fedledger.commands.errors import fail


def audit(
    task: TaskOpt,
    round_: Annotated[int, typer.Option("--round", help="round to recompute", min=1)],
    rpc: RpcOpt = None,
    manifest: ManifestOpt = None,
    store: StoreOpt = DEFAULT_STORE,
) -> None:
    """Recompute a round from chain + storage; exit 1 if the recorded result does not follow."""
    from fedledger.core.chain import Phase
    from fedledger.core.storage import open_store
    from fedledger.miner.round import compute_round

    fl = ledger(rpc, manifest, None, None, None)
    require_task(fl, task)
    info = fl.task_info(task)
    total = fl.task_spec(task).rounds
    if round_ > total:
        fail(f"task {task} has {total} round(s): there is no round {round_}")
    if round_ > info["current_round"]:
        fail(f"round {round_} of task {task} has not opened yet (current round {info['current_round']})")
    ri = fl.round_info(task, round_)
    if ri.phase not in (Phase.FINALISED, Phase.FAILED):
        fail(f"round {round_} is still open ({ri.phase.name}): nothing recorded to audit yet")
    outcome = compute_round(fl, open_store(store, timeout=5.0), task, round_)
    for k, why in sorted(outcome.rejected.items()):
        console.print(f"client {k} rejected as bad input: {why}")
    if ri.phase == Phase.FAILED:
        console.print(f"round {round_} failed on chain (no quorum or no submission): the global model was kept")
        raise typer.Exit(0)
    recorded = fl.proposals(task, round_)[ri.result]
    mine = outcome.proposal
    diffs = [
        name
        for name, a, b in [
            ("global model", (recorded.global_cid, recorded.global_digest), (mine.global_cid, mine.global_digest)),
            ("accepted set", recorded.accepted, mine.accepted),
            ("reputations", recorded.reputations, mine.reputations),
            ("winner", recorded.winner, mine.winner),
            ("next selection", recorded.next_selection, mine.next_selection),
        ]
        if a != b
    ]
    if diffs:
        console.print(f"[red]round {round_} does NOT follow from chain + storage:[/red] {', '.join(diffs)} differ")
        raise typer.Exit(1)
    console.print(
        f"[green]round {round_} verified[/green]: global {mine.global_cid}, accepted "
        f"{[i for i in range(256) if mine.accepted >> i & 1]}, winner {mine.winner - 1 if mine.winner else None}"
    )
