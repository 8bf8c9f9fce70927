"""Independent fits as tasks of a Dask client: the one place studies meet a cluster.

:func:`on_client` submits one task per set of arguments to a ``dask.distributed.Client``,
counts them on a progress bar as they finish, and returns their results in the order
given. A task whose worker is lost is resubmitted (:data:`TASK_RETRIES` times); one that
still fails gets the result its caller builds from the error, so a study's table keeps
a row for it. :func:`bayesgmm.compare` (one task per grid cell),
:func:`bayesgmm.simulation_study` (one per replicate) use it; the bootstrap's replicates go
through joblib's dask backend instead (their batches are joblib tasks already).
"""

from __future__ import annotations

import uuid

from ._validation import check_client, describe_error

__all__ = []

#: Times a task is resubmitted when its worker is lost.
TASK_RETRIES = 2


def on_client(client, function, arguments, *, name, failed, advance=None):
    """``[function(*a) for a in arguments]``, each a task of ``client``.

    ``name`` prefixes the tasks' keys; ``failed(i, message)`` is the result of task ``i``
    if it raised (``message``: "task failed: <error>"); ``advance(None)`` is called as
    each task finishes.
    """
    from dask.distributed import as_completed

    check_client(client)
    # keys unique to this call: a key reused while the scheduler still holds an earlier
    # call's result would return that result
    run = uuid.uuid4().hex
    futures = {client.submit(function, *args, key=f"bayesgmm-{name}-{i}-{run}", pure=False,
                             retries=TASK_RETRIES): i for i, args in enumerate(arguments)}
    results = [None] * len(futures)
    for future in as_completed(futures):
        i = futures[future]
        try:
            results[i] = future.result()
        except Exception as error:  # noqa: BLE001 - a failed task is a result, not an abort
            results[i] = failed(i, f"task failed: {describe_error(error)}")
        if advance is not None:
            advance(None)
    return results
