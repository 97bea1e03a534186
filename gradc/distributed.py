"""Data-parallel gradients on Dask's distributed scheduler (API.md section 13).

    value, grads = gradc.distributed.value_and_grad(loss, params, X, y, client=client)

`loss(params, *data)` runs compiled (the gc.jit of gc.value_and_grad over params) on row shards of
`data` in the workers; the shards' values and gradients are combined in a fixed tree, in shard
order, weighted by rows for reduction="mean" (a loss that averages over its rows) or summed for
"sum". Dask does the scheduling, the transport and the retries when a worker dies; gradc sends it
only picklable things (gradc/pickling.py). Needs `pip install 'gradc[dask]'`.
"""
import numbers
import uuid
import warnings
import weakref

import numpy as np

from .jit import jit
from .transforms import value_and_grad as _value_and_grad
from .tree import tree_flatten, tree_map, tree_unflatten

REDUCTIONS = ("mean", "sum")
# Per process, counted as they happen (never from what is alive: an earlier kernel may be
# garbage-collected between two readings): ShardKernels unpickled, made, signatures compiled.
_STATS = {"deliveries": 0, "kernels": 0, "signatures": 0}
# The ShardKernels of this process by token (held by their worker plugin): a kernel delivered
# twice is still one kernel, compiled once.
_KERNELS = weakref.WeakValueDictionary()
_SHIPPED = {}                          # (client id, loss, backend) -> token of its kernel


def _dask():
    try:
        import dask
        import dask.array as da
        import distributed
    except ImportError as e:
        raise ImportError("gradc.distributed needs Dask's distributed scheduler: "
                          "pip install 'gradc[dask]'") from e
    return dask, da, distributed


# ---- what runs in the workers --------------------------------------------------------------------

class ShardKernel:
    """The compiled value_and_grad of loss over its first argument, for one shard at a time.
    Pickled as (loss, backend): each worker unpickles it once, makes one gc.jit and traces each
    shard signature once."""

    def __init__(self, loss, backend="c", token=None):
        self.loss = loss
        self.backend = backend
        self.token = token or uuid.uuid4().hex
        self.fn = jit(_value_and_grad(loss, argnums=0), backend=backend)
        _KERNELS[self.token] = self
        _STATS["kernels"] += 1

    def __reduce__(self):
        return _unpickle_kernel, (self.token, self.loss, self.backend)

    def __repr__(self):
        return f"ShardKernel({getattr(self.loss, '__qualname__', self.loss)!r}, {self.backend!r})"

    def __call__(self, params, reduction, *shard):
        """(rows, value, grads, their dtypes) of one shard, value and grads times its rows for
        "mean", in float64 so that the combination rounds once, at the end."""
        known = len(self.fn._cache)
        value, grads = self.fn(params, *shard)
        _STATS["signatures"] += len(self.fn._cache) - known
        weight = len(shard[0]) if reduction == "mean" else 1
        dtypes = (value.dtype, [g.dtype for g in tree_flatten(grads)[0]])
        grads = tree_map(lambda g: _scaled(g, weight), grads)
        return len(shard[0]), _scaled(value, weight), grads, dtypes


def _unpickle_kernel(token, loss, backend):
    _STATS["deliveries"] += 1
    kernel = _KERNELS.get(token)
    return kernel if kernel is not None else ShardKernel(loss, backend, token)


def _scaled(x, weight):
    return np.asarray(x, np.float64) * weight


def _add(a, b):
    return a[0] + b[0], a[1] + b[1], tree_map(np.add, a[2], b[2]), a[3]


def worker_stats():
    """This process's counts so far, for `client.run(gradc.distributed.worker_stats)`:
    ShardKernels received (unpickled) and made, and the shard signatures they compiled."""
    return dict(_STATS)


# ---- the client side -----------------------------------------------------------------------------

def _check(reduction, data):
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
    if not data:
        raise TypeError("gradc.distributed: give at least one data array to split along axis 0")


def _row_chunks(data, client, shards):
    """The rows of each shard: the first Dask array's chunks along axis 0, else `shards` (a count
    or a tuple of row counts), else one shard per worker."""
    _, da, _ = _dask()
    rows = None
    for i, d in enumerate(data):
        if isinstance(d, numbers.Number) or np.ndim(d) == 0:
            raise ValueError(f"data argument {i}: expected an array with rows along axis 0, got "
                             f"a scalar; pass fixed values inside params or close over them")
        n = d.shape[0]
        if rows is not None and n != rows:
            raise ValueError(f"data argument {i} has {n} rows along axis 0, argument 0 has {rows}")
        rows = n
    if rows == 0:
        raise ValueError("gradc.distributed: the data has no rows")
    if shards is None:
        first = next((d for d in data if isinstance(d, da.Array)), None)
        if first is not None:
            return tuple(first.chunks[0])
        shards = len(client.scheduler_info(n_workers=-1)["workers"]) or 1
    if isinstance(shards, numbers.Integral):
        if shards < 1:
            raise ValueError(f"shards must be at least 1, got {shards}")
        shards = min(int(shards), rows)
        return tuple(len(part) for part in np.array_split(np.arange(rows), shards))
    shards = tuple(int(s) for s in shards)
    if sum(shards) != rows or any(s < 0 for s in shards):
        raise ValueError(f"shards {shards} must be row counts adding up to {rows}")
    return shards


def _as_dask(data, chunks):
    """Each data argument as a Dask array chunked by `chunks` along axis 0, whole along the rest.
    A NumPy array's shards go into the graph as separate pieces of data, so that the scheduler
    spreads them over the workers (one array would sit on one worker with all its shards) and a
    shard lost with its worker is sent again."""
    _, da, _ = _dask()
    out = []
    bounds = np.cumsum((0,) + chunks)
    for d in data:
        if not isinstance(d, da.Array):
            d = np.asarray(d)
            pieces = [d[a:b] for a, b in zip(bounds[:-1], bounds[1:])]
            d = da.concatenate([da.from_array(p, chunks=p.shape, name=False) for p in pieces])
        else:
            d = d.rechunk((chunks,) + tuple(-1 for _ in d.shape[1:]))
        out.append(d)
    return out


def _shipped_kernel(client, loss, backend):
    """The token of loss's kernel, installed once in every worker, present and future, through a
    worker plugin. Not scattered data: Dask's active memory manager drops extra replicas of that
    between graphs, and a kernel sent again is unpickled and traced again."""
    from ._dask_plugin import InstallKernel
    key = (client.id, loss, backend)
    token = _SHIPPED.get(key)
    if token is None:
        plugin = InstallKernel(ShardKernel(loss, backend))
        client.register_plugin(plugin, name=plugin.name)
        token = _SHIPPED[key] = plugin.kernel.token
    return token


def _combine(parts, reduction):
    """The total of the shards' results, added pairwise in a fixed tree in shard order (so
    deterministic, whichever shard finishes first), divided by the rows for "mean" and cast
    back to the dtypes one process computes in."""
    dask, _, _ = _dask()
    add = dask.delayed(_add, pure=True)
    while len(parts) > 1:
        pairs = [add(parts[i], parts[i + 1]) for i in range(0, len(parts) - 1, 2)]
        parts = pairs + ([parts[-1]] if len(parts) % 2 else [])
    return dask.delayed(_finish, pure=True)(parts[0], reduction)


def _finish(total, reduction):
    rows, value, grads, (value_dtype, grad_dtypes) = total
    scale = 1.0 / rows if reduction == "mean" else 1.0
    leaves, tree = tree_flatten(grads)
    return (np.asarray(value * scale, value_dtype),
            tree_unflatten(tree, [np.asarray(g * scale, t) for g, t in zip(leaves, grad_dtypes)]))


def _run(client, loss, backend, params, arrays, reduction, attempts=3):
    """One data-parallel evaluation: params broadcast to the workers once, one task per shard
    (shards of no rows skipped). Dask reruns the tasks of a worker that dies and recomputes lost
    shards from the graph; scattered params it cannot recompute, so when every worker holding
    them died, they are sent again and the step rerun."""
    dask, _, _ = _dask()
    from concurrent.futures import CancelledError
    blocks = [a.to_delayed().ravel() for a in arrays]
    part = dask.delayed(_shard, pure=True)
    kernel = _shipped_kernel(client, loss, backend)
    for attempt in range(attempts):
        params_future = client.scatter([params], broadcast=True, hash=False)[0]
        parts = [part(kernel, params_future, reduction, *(b[i] for b in blocks))
                 for i, rows in enumerate(arrays[0].chunks[0]) if rows]
        try:
            return client.compute(_combine(parts, reduction)).result()
        except CancelledError:
            if params_future.status == "finished" or attempt == attempts - 1:
                raise
        finally:
            params_future.release()


def _shard(token, params, reduction, *shard):
    kernel = _KERNELS.get(token)
    if kernel is None:
        raise RuntimeError(f"gradc.distributed: kernel {token} is not installed in this worker "
                           "(its plugin was unregistered?)")
    return kernel(params, reduction, *shard)


class DataParallel:
    """Data-parallel training on a Dask client: the data is split by rows and kept on the workers
    once (`client.persist`), the compiled kernel shipped once per worker; each evaluation sends
    the parameters once to every worker (`client.scatter(..., broadcast=True)`).

    >>> dp = gradc.distributed.DataParallel(loss, X, y, client=client)
    >>> value, grads = dp.value_and_grad(params)
    >>> params, losses = dp.fit(params, steps=100, update=lambda p, g: gc.tree_map(
    ...     lambda w, dw: w - 0.1 * dw, p, g))
    """

    def __init__(self, loss, *data, client, reduction="mean", shards=None, backend="c"):
        _check(reduction, data)
        self.client = client
        self.loss = loss
        self.reduction = reduction
        self.backend = backend
        self.chunks = _row_chunks(data, client, shards)
        with warnings.catch_warnings():     # the data goes with the graph once, on purpose
            warnings.filterwarnings("ignore", "Sending large graph", UserWarning)
            self.arrays = client.persist(_as_dask(data, self.chunks))

    def __repr__(self):
        return (f"DataParallel({getattr(self.loss, '__qualname__', self.loss)!r}, "
                f"shards={self.chunks}, reduction={self.reduction!r})")

    def value_and_grad(self, params):
        """(value, grads) over all the data, as gc.value_and_grad(loss)(params, *data)."""
        return _run(self.client, self.loss, self.backend, params, self.arrays, self.reduction)

    def grad(self, params):
        return self.value_and_grad(params)[1]

    def fit(self, params, steps, *, update=None, optimizer=None, callback=None):
        """Runs `steps` full-batch steps; returns (params, the loss before each step). `update`
        is `update(params, grads) -> params`; or `optimizer` has `init(params)` and
        `update(params, grads, state) -> (params, state)` (gc.optim's sgd / adam). The update
        runs here, in the client; `callback(step, params, value)` is called after each step."""
        if (update is None) == (optimizer is None):
            raise TypeError("DataParallel.fit: give exactly one of update= or optimizer=")
        state = optimizer.init(params) if optimizer is not None else None
        values = []
        for step in range(int(steps)):
            value, grads = self.value_and_grad(params)
            if optimizer is not None:
                params, state = optimizer.update(params, grads, state)
            else:
                params = update(params, grads)
            values.append(value)
            if callback is not None:
                callback(step, params, value)
        return params, values


def value_and_grad(loss, params, *data, client, reduction="mean", shards=None, backend="c"):
    """(value, grads) of loss(params, *data) over all of `data`, computed by shards of rows in
    the workers of `client` and combined: equal to gc.value_and_grad(loss)(params, *data) to float
    tolerance when loss averages its rows (reduction="mean") or sums them ("sum").

    data: NumPy arrays (split into one shard per worker, or by `shards`: a count or a tuple of
    row counts) or Dask arrays (split by the chunks of the first one along axis 0). Every data
    argument is split along axis 0 with the same rows; fixed values belong in params or in loss.
    """
    _check(reduction, data)
    arrays = _as_dask(data, _row_chunks(data, client, shards))
    return _run(client, loss, backend, params, arrays, reduction)


def grad(loss, params, *data, client, reduction="mean", shards=None, backend="c"):
    """The gradients of value_and_grad (same arguments)."""
    return value_and_grad(loss, params, *data, client=client, reduction=reduction,
                          shards=shards, backend=backend)[1]


__all__ = ["value_and_grad", "grad", "DataParallel", "ShardKernel", "worker_stats"]
