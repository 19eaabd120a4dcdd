"""``--ray ADDRESS`` / ``--shards N``: the options of commands that shard their work over Ray.

Kept apart from the command modules so that a command can offer them without importing
:mod:`labelgate.ml` (or Ray) at start-up; Ray is imported only when one of them is given.
"""

from __future__ import annotations

from typing import Annotated

import typer

__all__ = ["RayAddress", "Shards"]

#: either option shards the work by image over Ray (the [ray] extra); the output is the
#: single-process output
RayAddress = Annotated[
    str | None,
    typer.Option(
        "--ray",
        metavar="ADDRESS",
        help="Shard the work by image over Ray (the [ray] extra): 'local' starts a local "
        "instance, 'auto' joins the cluster this machine is in, ray://HOST:PORT one through "
        "Ray Client (needs ray[client]). Same output as without.",
    ),
]
Shards = Annotated[
    int | None,
    typer.Option(
        "--shards",
        min=1,
        help="Ray tasks (image ranges); default two per CPU. Implies --ray local if not given.",
    ),
]
