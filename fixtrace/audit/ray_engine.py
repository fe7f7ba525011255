"""The Ray audit engine (``fixtrace audit --engine ray``): the images not yet done become a Ray
dataset (ids and paths), explained by ``--workers`` actors, each holding one prepared
``Explainer``; an actor writes each image's pictures under ``AUDIT/items/<id>/`` and returns its
ledger record, and this process (the driver) appends the records to the ledger as they come: one
writer, the same flushed append as the local engine, so the ledger, manifest and report are the
same. The per-image work is the local engine's (``explain_loaded``, ``record_of``).

Workers on other machines read the images and write the pictures by the same paths: the images
and the audit folder must be on a filesystem every node shares. Ray is imported here only."""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np

from fixtrace.audit.engine import AuditSettings, explain_loaded, read_input, record_of
from fixtrace.audit.inputs import AuditInput
from fixtrace.audit.ledger import Ledger
from fixtrace.audit.truth import Truth
from fixtrace.errors import EmptyMapWarning, OptionError, one_line

#: Inputs per Ray dataset: the list of ids and paths is handed to Ray a chunk at a time (never the
#: whole image set in memory); the actors are started again for each chunk.
CHUNK = 10_000
INSTALL_HINT = "--engine ray needs Ray, which is not installed here: install fixtrace[ray] (pip install 'fixtrace[ray]')"


def require_ray() -> None:
    """Check that Ray (with Ray Data) can be imported.

    Raises:
        OptionError: it cannot (one line: install fixtrace[ray]).
    """
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise OptionError(INSTALL_HINT) from None


class AuditActor:
    """One Ray worker: an ``Explainer`` prepared once, then batches of ``{"id", "path"}`` rows in,
    ledger records (JSON text) out, the pictures written on the way."""

    def __init__(
        self, explainer_options: dict[str, Any], audit: str, truth: Truth, names: list[str], settings: AuditSettings
    ) -> None:
        from fixtrace.api import Explainer

        warnings.simplefilter("ignore", EmptyMapWarning)  # an empty map is recorded in the ledger
        self.explainer = Explainer(**explainer_options)
        self.audit = Path(audit)
        self.truth = truth
        self.names = names
        self.settings = settings

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        # Read by the absolute path (a worker's folder is not the driver's); recorded as given.
        given = {str(i): str(p) for i, p in zip(batch["id"], batch["path"])}
        inputs = [AuditInput(str(i), Path(str(p))) for i, p in zip(batch["id"], batch["read"])]
        loaded = (read_input(item) for item in inputs)
        records = []
        for item, entry in explain_loaded(self.explainer, loaded, self.settings):
            record = record_of(item, entry, self.audit, self.truth, self.names)
            record["image"] = given[record["id"]]
            records.append(json.dumps(record, ensure_ascii=False))
        return {"record": np.array(records, dtype=object)}


def run_audit_ray(
    explainer_options: dict[str, Any],
    inputs: Iterable[AuditInput],
    audit: Path,
    ledger: Ledger,
    truth: Truth,
    names: list[str],
    settings: AuditSettings,
    on_record: Callable[[dict[str, Any]], None] = lambda record: None,
    address: str | None = None,
) -> None:
    """Audit every input the ledger does not hold as done on Ray, appending one record per image.

    Args:
        explainer_options: the keyword arguments each actor builds its ``Explainer`` with.
        inputs: the images (streamed).
        audit: the audit folder (pictures go to ``items/<id>/``; shared by every node).
        ledger: the open ledger; ids it holds as ``ok`` are skipped. Only this process writes it.
        truth: boxes and true classes.
        names: the model's class names.
        settings: batch size (per actor call), ``workers`` (actors, one CPU each) and rendering options.
        on_record: called with each record once it is in the ledger.
        address: a running cluster (``ray start --head``); None: a local one with ``workers`` CPUs
            (or the Ray this process has already started).

    Raises:
        OptionError: Ray is not installed.
        OutputError: the disk is full (``fatal``): what was finished is kept.
    """
    require_ray()
    import ray

    workers = max(settings.workers, 1)
    started = not ray.is_initialized()
    if started:
        if address:
            try:
                ray.init(address=address, log_to_driver=False, logging_level=logging.ERROR)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise OptionError(
                    f"--ray-address {address}: cannot join a Ray cluster there ({one_line(str(exc))}); a cluster "
                    "with token authentication (Ray's default) needs RAY_AUTH_MODE=token and its token "
                    "(~/.ray/auth_token or RAY_AUTH_TOKEN) in this shell"
                ) from None
        else:
            ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    try:
        for name in ("ray", "ray.data"):  # Ray's notes stay in its logs; errors still show
            logging.getLogger(name).setLevel(logging.ERROR)
        context = ray.data.DataContext.get_current()
        context.execution_options.preserve_order = True  # the ledger in input order, as the local engine writes it
        context.enable_progress_bars = False
        todo = (item for item in inputs if not ledger.done(item.id))
        for chunk in _chunks(todo, CHUNK):
            rows = [{"id": item.id, "path": str(item.path), "read": str(Path(item.path).absolute())} for item in chunk]
            actors = min(workers, len(rows))
            blocks = max(actors, -(-len(rows) // settings.batch_size))
            dataset = ray.data.from_items(rows, override_num_blocks=blocks)
            with warnings.catch_warnings():  # max_restarts still goes through ray_remote_args in Ray 2.60
                warnings.filterwarnings("ignore", message=".*ray_remote_args.*")
                results = _map(dataset, actors, explainer_options, audit, truth, names, settings)
            for row in results.iter_rows():
                record = json.loads(row["record"])
                ledger.append(record)
                on_record(record)
    finally:
        if started:
            ray.shutdown()


def _map(
    dataset: Any,
    actors: int,
    explainer_options: dict[str, Any],
    audit: Path,
    truth: Truth,
    names: list[str],
    settings: AuditSettings,
) -> Any:
    """The dataset of ledger records: ``actors`` AuditActors, one CPU each."""
    import ray

    return dataset.map_batches(
        AuditActor,
        fn_constructor_kwargs={
            "explainer_options": explainer_options,
            "audit": str(audit.absolute()),
            "truth": truth,
            "names": names,
            "settings": settings,
        },
        batch_size=settings.batch_size,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=actors),
        num_cpus=1,
        max_restarts=0,  # a lost actor fails the run (resume picks it up), never half-restarted
    )


def _chunks(items: Iterable[AuditInput], size: int) -> Iterator[list[AuditInput]]:
    stream = iter(items)
    while chunk := list(islice(stream, size)):
        yield chunk
