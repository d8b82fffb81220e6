"""What a refresh run's own processes do in Dagster: the run worker holds the warehouse's refresh lock
and tags the run with its identity (RefreshLockedExecutor), and step subprocesses die with it
(RunBoundWarehouse, and the dbt resource in orchestration.dbt).
"""

from __future__ import annotations

from dagster import Executor, ExecutorDefinition

from assets.resources import Warehouse
from core.processes import ProcessIdentity
from core.refresh_lock import RefreshLock, tie_to_refresh_owner
from core.settings import WarehouseUrl


class RefreshLockedExecutor(Executor):
    """Runs `inner` while this process (the run worker) holds the warehouse's refresh lock.

    Runs launched by the Dagster daemon (the schedule, the UI) execute here, in a run worker that
    the DefaultRunLauncher starts; the worker takes the same lock as `spendwise refresh` and tags
    the run with its own pid and start time, so a worker killed mid-run is recognised as gone.
    A second refresh of the same warehouse fails at once with `already running: run X since T`.
    (`execute_in_process`, used by `spendwise refresh`, replaces the executor: that path takes
    the lock in orchestration.refresh.run_refresh instead.)
    """

    def __init__(self, inner: Executor, url: WarehouseUrl):
        self.inner, self.url = inner, url

    @property
    def retries(self):
        return self.inner.retries

    @property
    def step_dependency_config(self):
        return self.inner.step_dependency_config

    def execute(self, plan_context, execution_plan):
        run_id = plan_context.dagster_run.run_id
        lock = RefreshLock(self.url)
        lock.acquire(run_id)
        try:
            plan_context.instance.add_run_tags(run_id, ProcessIdentity.current().to_tags())
            yield from self.inner.execute(plan_context, execution_plan)
        finally:
            lock.release()


class RunBoundWarehouse(Warehouse):
    """The `warehouse` resource; in a step subprocess (multiprocess executor) it also ties the process
    to the run worker holding the refresh lock, so a killed worker takes its steps with it."""

    def setup_for_execution(self, context) -> None:
        super().setup_for_execution(context)
        tie_to_refresh_owner(WarehouseUrl.parse(self.url), context.run_id)


def refresh_locked(inner: ExecutorDefinition, url: WarehouseUrl) -> ExecutorDefinition:
    """`inner` (same name and config) wrapped in RefreshLockedExecutor for the warehouse at `url`."""
    return ExecutorDefinition(
        name=inner.name,
        config_schema=inner.config_schema,
        requirements=inner.get_requirements,
        executor_creation_fn=lambda init_context: RefreshLockedExecutor(inner.executor_creation_fn(init_context), url),
        description=f"the {inner.name} executor, holding the warehouse's refresh lock for the whole run",
    )
