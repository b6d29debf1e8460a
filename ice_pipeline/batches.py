"""The IO manager between assets: batches stay in the run's memory, never on disk.

A batch holds staging rows (names, cédulas, e-mails): Dagster's default IO
manager would pickle every batch under DAGSTER_HOME/storage and keep it
there. Every launch path runs the whole graph in one process
(`Definitions(executor=in_process_executor)`), so the batches can simply be
handed over in memory. An asset materialized without its upstream assets in
the same run has nothing to read: it fails with a sentence saying so, instead
of reading a stale batch of an earlier run.
"""

from __future__ import annotations

from dagster import Failure, InputContext, IOManager, OutputContext, io_manager


def _key(context: InputContext | OutputContext) -> tuple[str, ...]:
    if context.has_asset_key:
        return tuple(context.asset_key.path)
    return (context.step_key or "", context.name or "")


class InMemoryBatches(IOManager):
    """One per run (the resource function builds a new one): freed with the run."""

    def __init__(self) -> None:
        self.values: dict[tuple[str, ...], object] = {}

    def handle_output(self, context: OutputContext, obj: object) -> None:
        self.values[_key(context)] = obj

    def load_input(self, context: InputContext) -> object:
        key = _key(context)
        if key not in self.values:
            upstream = "/".join(key)
            raise Failure(
                description=f"{upstream} was not computed in this run: batches stay in the run's memory and are "
                f"never read from an earlier run. Materialize from staging_* onwards (or run the whole "
                f"migrate_to_production job / 'Materialize all'), not {context.op_def.name if context.op_def else 'this asset'} alone.",
                allow_retries=False,
            )
        return self.values[key]


@io_manager(description="Keeps the batches between assets in the run's memory (no pickles on disk).")
def in_memory_batches(_) -> InMemoryBatches:
    return InMemoryBatches()
