"""``fixtrace audit --toolbox``: the toolbox's views of the audited photos, written under
``AUDIT/toolbox/`` with an index the report shows: the first conv's filters, the dead-filter
report of every conv, the top images of the last conv map's strongest channels, and the t-SNE of
the codes. A view that cannot be made on this model says why in its panel; the audit goes on."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from fixtrace.errors import FixtraceError, one_line
from fixtrace.files import make_folder, write_atomic, write_json_atomic
from fixtrace.images.preset_choice import PresetArg

if TYPE_CHECKING:
    from fixtrace.toolbox.dead import DeadReport

TOOLBOX = "toolbox"
INDEX = "index.json"
#: Photos the toolbox reads at most (the first ones of the audit's inputs): each view streams them once more.
DEFAULT_LIMIT = 2000
#: Channels of the last conv map shown in the top-images view, and photos per channel.
TOP_CHANNELS = 4
TOP_K = 6


@dataclass
class Panel:
    """One view in the report.

    Attributes:
        title: what it shows.
        picture: its picture, relative to the audit folder (None: none, e.g. not available).
        caption: one line on how to read it, or why it is not available.
        lines: details, one per line (the dead-filter summary).
        files: the files written, relative to the audit folder.
    """

    title: str
    picture: str | None
    caption: str
    lines: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ToolboxSettings:
    """How the toolbox reads the photos (the audit's own settings)."""

    preset: PresetArg
    labels: str | None
    batch_size: int
    threads: int


def write_toolbox(
    out: Path,
    model: str,
    photos: Sequence[Path],
    settings: ToolboxSettings,
    on_view: Callable[[str], None] | None = None,
) -> list[Panel]:
    """Write the toolbox views of ``photos`` into ``out/toolbox`` and its index.

    Args:
        out: the audit folder.
        model: the model's path.
        photos: the photos to read (the caller bounds them: each view streams them once).
        settings: preprocessing, labels, batch size and threads.
        on_view: called with each view's title as it starts.

    Returns:
        The panels, in the report's order.

    Raises:
        OutputError: the folder or the index cannot be written.
    """
    folder = make_folder(out / TOOLBOX)
    found: dict[str, Any] = {}

    def view(title: str, make: Callable[[], Panel]) -> Panel:
        if on_view is not None:
            on_view(title)
        try:
            return make()
        except FixtraceError as exc:
            return Panel(title, None, f"not available: {one_line(str(exc))}")

    panels = [
        view("Filters of the first conv", lambda: _filters(out, model, settings)),
        view("Dead filters", lambda: _dead(out, model, photos, settings, found)),
        view("Top images", lambda: _top(out, model, photos, settings, found.get("dead"))),
        view("t-SNE of the codes", lambda: _tsne(out, model, photos, settings)),
    ]
    write_json_atomic(folder / INDEX, [asdict(p) for p in panels], indent=1)
    return panels


def read_panels(out: Path) -> list[Panel]:
    """The panels of ``out``'s toolbox index (none when there is no readable index)."""
    import json

    try:
        found = json.loads((out / TOOLBOX / INDEX).read_text(encoding="utf-8"))
        return [Panel(**entry) for entry in found]
    except (OSError, ValueError, TypeError):
        return []


def _filters(out: Path, model: str, settings: ToolboxSettings) -> Panel:
    from fixtrace.toolbox.filters import conv_filters, filter_grid

    filters = conv_filters(model, preset=settings.preset)
    path = out / TOOLBOX / "filters.png"
    picture = filter_grid(filters)
    write_atomic(path, lambda p: picture.save(p, format="PNG"))
    shape = "x".join(map(str, filters.weights.shape))
    return Panel(
        "Filters of the first conv",
        _relative(out, path),
        f"{filters.node} (weights {shape}): each filter scaled to its own min..max",
        files=[_relative(out, path)],
    )


def _dead(out: Path, model: str, photos: Sequence[Path], settings: ToolboxSettings, found: dict[str, Any]) -> Panel:
    """The dead-filter report (kept in ``found["dead"]``: its peaks choose the top-images channels)."""
    from fixtrace.toolbox.dead import dead_filters

    report = found["dead"] = dead_filters(
        model, photos, preset=settings.preset, batch_size=settings.batch_size, threads=settings.threads
    )
    written = report.save(out / TOOLBOX)
    return Panel(
        "Dead filters",
        None,
        f"per conv, the channels zero (max over the map <= {report.zero_at:g}) on more than "
        f"{100 * report.threshold:g} % of the {report.images} photos read",
        [report.summary(counts) for counts in report.layers],
        [_relative(out, p) for p in written],
    )


def _top(out: Path, model: str, photos: Sequence[Path], settings: ToolboxSettings, dead: DeadReport | None) -> Panel:
    """The top images of the channels of the last conv map that peak highest over the photos."""
    from fixtrace.toolbox.top_images import top_images

    if dead is None:
        raise FixtraceError("the dead-filter counts, which choose the channels, could not be made")
    if not dead.layers:
        raise FixtraceError("no conv map to read")
    last = dead.layers[-1]
    channels = [int(c) for c in np.argsort(-last.peak, kind="stable")[:TOP_CHANNELS]]
    winners = top_images(
        model,
        photos,
        last.layer,
        channels,
        TOP_K,
        preset=settings.preset,
        batch_size=settings.batch_size,
        threads=settings.threads,
    )
    written = winners.save(out / TOOLBOX / "top_images")
    picture = next(p for p in written if p.suffix == ".jpg")
    return Panel(
        "Top images",
        _relative(out, picture),
        f"the {TOP_K} photos whose patch excites each of the {len(channels)} channels of {last.layer} that peak "
        "highest, cut at the receptive field of the strongest cell",
        files=[_relative(out, p) for p in written],
    )


def _tsne(out: Path, model: str, photos: Sequence[Path], settings: ToolboxSettings) -> Panel:
    from fixtrace.toolbox.tsne import embed
    from fixtrace.toolbox.tsne_pictures import grid_picture, scatter_picture

    result = embed(
        model, photos, preset=settings.preset, labels=settings.labels, batch_size=settings.batch_size, threads=settings.threads
    )
    folder = make_folder(out / TOOLBOX / "tsne")
    written = result.save(folder)
    grid = folder / "grid.jpg"
    grid_image = grid_picture(result)[0]
    write_atomic(grid, lambda p: grid_image.save(p, format="JPEG", quality=90))
    scatter = folder / "scatter.png"
    scatter_image = scatter_picture(result)
    write_atomic(scatter, lambda p: scatter_image.save(p, format="PNG"))
    notes = [*result.notes, f"codes: {result.codes.layer.name}: {result.codes.layer.reason}"]
    return Panel(
        "t-SNE of the codes",
        _relative(out, grid),
        f"{len(result)} photos placed by the t-SNE of their codes, snapped to a grid (scatter by predicted class: "
        f"{_relative(out, scatter)})",
        notes,
        [_relative(out, p) for p in [*written, grid, scatter]],
    )


def _relative(out: Path, path: Path) -> str:
    return path.relative_to(out).as_posix()
