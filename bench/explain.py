"""The claim's query plan, recorded only when `mongod` is the server.

On any other server, such as SecantusDB, the step is skipped.
"""

from __future__ import annotations

import shutil
from typing import Any

from aegis import devdb
from aegis.expressions import RUNNABLE_NOW
from aegis.models import JobState
from aegis.queue import Queue
from aegis.settings import DEFAULT_QUEUE
from aegis.store import CLAIM_INDEX, Store
from bench.cycle import fill
from bench.servers import mongo_server

EXPLAIN_JOBS = 200


def _stages(plan: dict[str, Any]) -> list[str]:
    """Return the stage names of a plan tree, root first."""
    names = [str(plan.get("stage"))]
    for key in ("inputStage", "queryPlan"):
        if isinstance(plan.get(key), dict):
            names.extend(_stages(plan[key]))
    for child in plan.get("inputStages", []):
        names.extend(_stages(child))
    return names


def _index_names(plan: dict[str, Any]) -> list[str]:
    found = [str(plan["indexName"])] if "indexName" in plan else []
    for key in ("inputStage", "queryPlan"):
        if isinstance(plan.get(key), dict):
            found.extend(_index_names(plan[key]))
    for child in plan.get("inputStages", []):
        found.extend(_index_names(child))
    return found


def explain_claim(store: Store) -> dict[str, Any]:
    """Explain the claim's filter and sort as a find with limit 1."""
    cursor = (
        store.jobs.find(
            {
                "state": JobState.QUEUED.value,
                "queue": {"$in": [DEFAULT_QUEUE]},
                "$expr": RUNNABLE_NOW,
            }
        )
        .sort([("priority", 1), ("seq", 1)])
        .limit(1)
    )
    winning = cursor.explain()["queryPlanner"]["winningPlan"]
    stages = _stages(winning)
    indexes = _index_names(winning)
    return {
        "winning_plan": winning,
        "stages": stages,
        "indexes": indexes,
        "uses_claim_index": CLAIM_INDEX in indexes,
        "in_memory_sort": "SORT" in stages,
    }


def measure_explain() -> dict[str, Any] | None:
    """Return the claim's plan on mongod, or None on any other server."""
    if shutil.which(devdb.MONGOD_COMMAND) is None:
        return None
    with mongo_server() as target:
        if target.server.kind != "mongod":
            return None
        # NOTE: untested, because no mongod was on PATH where this was
        # written. The plan keys read below follow mongod's explain format.
        fill(Queue(target.store), EXPLAIN_JOBS)
        return explain_claim(target.store)
