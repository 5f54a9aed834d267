"""tabgrid: run jobs on a tabgrid volunteer compute grid from Python, numpy arrays in and out.

>>> import numpy as np, tabgrid
>>> grid = tabgrid.Grid("http://localhost:8080", "tg_…")      # or TABGRID_URL / TABGRID_TOKEN
>>> a, b = np.random.rand(300, 200), np.random.rand(200, 170)
>>> job = grid.matmul(a, b, replication=2)                    # returns at once
>>> c = job.result()                                          # waits (progress bar with tqdm)
>>> float(abs(c - a @ b).max())
"""

from ._core import Progress, __version__
from .aio import AsyncGrid, AsyncJob
from .arrays import as_api_array
from .errors import ApiError, BadRequest, Conflict, JobFailed, NotFound, NotReady, RateLimited, Unauthorized
from .grid import Grid, Job

__all__ = [
    "Grid",
    "Job",
    "AsyncGrid",
    "AsyncJob",
    "Progress",
    "ApiError",
    "BadRequest",
    "Unauthorized",
    "NotFound",
    "NotReady",
    "JobFailed",
    "Conflict",
    "RateLimited",
    "as_api_array",
    "__version__",
]
