"""The Dask worker plugin that installs a gradc.distributed kernel in every worker: imported only
when gradc.distributed runs (the base install does not need Dask)."""
from distributed import WorkerPlugin


class InstallKernel(WorkerPlugin):
    """Holds a ShardKernel in each worker, those that join or restart later included (Dask sends
    registered plugins to every new worker). Unpickling the kernel registers it by its token,
    which the shard tasks carry instead of the kernel."""

    def __init__(self, kernel):
        self.kernel = kernel
        self.name = f"gradc-kernel-{kernel.token}"
