"""t-SNE of CNN codes (CS231n's "visualizing what ConvNets learn"): each photo's code embedded in
2-D so that photos the network sees alike land close together. The embedding is scikit-learn's
t-SNE (an optional extra, imported only here), after PCA to 50 dimensions for longer codes."""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fixtrace import validate
from fixtrace.errors import ImageError, ModelError, OptionError
from fixtrace.files import write_npy_atomic, write_text_atomic
from fixtrace.images.load import ImageSource
from fixtrace.images.preset_choice import PresetArg
from fixtrace.model.load import ModelSource
from fixtrace.runtime.threads import limit_threads
from fixtrace.toolbox.codes import CodeLayer, Codes, read_codes
from fixtrace.toolbox.options import DEFAULT_PERPLEXITY
from fixtrace.toolbox.stream import LayerReader

#: The fewest photos an embedding is made of: below this a 2-D map shows nothing.
MIN_IMAGES = 5
#: Codes longer than this are first reduced by PCA to this many dimensions.
PCA_DIMENSIONS = 50
INSTALL_HINT = "t-SNE needs scikit-learn, which is not installed here: pip install 'fixtrace[tsne]'"
#: The CSV's columns, one row per embedded photo (the rows of codes.npy and coords.npy).
CSV_COLUMNS = ("source", "x", "y", "class", "name", "probability")


@dataclass
class TsneResult:
    """Photos' codes and their 2-D t-SNE embedding.

    Attributes:
        codes: the codes and the model's predictions (``Codes``).
        coords: float32 (N, 2), one row per code.
        perplexity: the perplexity used (lowered from the one asked for on few photos; see notes).
        seed: the random seed.
        pca: the dimensions PCA reduced the codes to (None: the codes were short enough).
        notes: what a user should know (a lowered perplexity), one line each.
    """

    codes: Codes
    coords: np.ndarray
    perplexity: float
    seed: int
    pca: int | None
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.coords)

    def save(self, folder: str | os.PathLike) -> list[Path]:
        """Write codes.npy (float32 N x D), coords.npy (float32 N x 2) and tsne.csv, each atomically.

        Returns:
            The paths written.

        Raises:
            OutputError: a write failed.
        """
        folder = Path(folder)
        written = [folder / "codes.npy", folder / "coords.npy", folder / "tsne.csv"]
        for path, array in zip(written, (self.codes.values, self.coords)):
            write_npy_atomic(path, array)
        write_text_atomic(written[2], self.csv())
        return written

    def csv(self) -> str:
        """The CSV text: source, x, y, class, name, probability."""
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        codes = self.codes
        for source, (x, y), k, p in zip(codes.sources, self.coords.tolist(), codes.predicted, codes.probability):
            writer.writerow([describe_source(source), repr(x), repr(y), int(k), codes.class_names[k], f"{p:.6f}"])
        return text.getvalue()


def describe_source(source: Any) -> str:
    """A photo as the CSV names it: its path, else what it was (an array, bytes, ...)."""
    if isinstance(source, (str, os.PathLike)):
        return os.fsdecode(source)
    return f"<{type(source).__name__}>"


def read_csv(path: str | os.PathLike) -> list[dict[str, str]]:
    """The rows of a tsne.csv (test and script helper)."""
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def require_sklearn() -> None:
    """Check that scikit-learn can be imported.

    Raises:
        OptionError: it cannot (one line: install fixtrace[tsne]).
    """
    try:
        import sklearn.manifold  # noqa: F401
    except ImportError:
        raise OptionError(INSTALL_HINT) from None


def embed(
    model: ModelSource,
    images: Iterable[ImageSource],
    layer: str | None = None,
    *,
    reduction: str = "flatten",
    perplexity: float = DEFAULT_PERPLEXITY,
    seed: int = 0,
    preset: PresetArg = None,
    output: str | None = None,
    labels: str | Path | None = None,
    batch_size: int = 32,
    threads: int = 0,
    on_start: Callable[[LayerReader, CodeLayer], None] | None = None,
    on_step: Callable[[Any], None] | None = None,
) -> TsneResult:
    """The t-SNE embedding of the photos' codes.

    Args:
        model: path, bytes or ``onnx.ModelProto``.
        images: the photos (paths, bytes, PIL images, arrays); at least ``MIN_IMAGES`` readable.
        layer: the tensor whose values are the codes (default: the input of the final dense
            layer; see ``fixtrace.toolbox.codes.default_code_layer``).
        reduction: a rank-4 layer is ``flatten``-ed (default) or ``pool``-ed (channel means).
        perplexity: t-SNE's perplexity, about the number of neighbours each photo keeps close;
            lowered to (N - 1) / 3 for N photos when larger (noted in ``notes``).
        seed: the random seed (same photos, model and seed: the same embedding).
        preset, output, threads: as ``fixtrace.toolbox.stream.LayerReader``.
        labels: a class names file (default: the model's own names).
        batch_size: photos per forward.
        on_start: called with the prepared ``LayerReader`` and the code layer before the first photo.
        on_step: called with each photo's source once it is read (or failed).

    Returns:
        The codes and the embedding; the photos that could not be read are in ``codes.failed``.

    Raises:
        OptionError: scikit-learn is missing; a bad layer, perplexity, seed or batch size.
        ImageError: fewer than ``MIN_IMAGES`` photos could be read.
        ModelError: the model cannot be read, (without ``layer``) its head is not recognised,
            or the codes are not finite.
    """
    require_sklearn()
    perplexity = validate.number("perplexity", perplexity, 0.0, 1e6, flag="--perplexity")
    seed = validate.integer("seed", seed, 0, 2**32 - 1, flag="--seed")
    codes = read_codes(
        model,
        images,
        layer,
        reduction=reduction,
        preset=preset,
        output=output,
        labels=labels,
        batch_size=batch_size,
        threads=threads,
        on_start=on_start,
        on_step=on_step,
    )
    if len(codes) < MIN_IMAGES:
        names = [describe_source(source) for source, _ in list(codes.failed.values())[:3]]
        more = ", ..." if len(codes.failed) > 3 else ""
        failed = f" ({len(codes.failed)} could not be read: {', '.join(names)}{more})" if codes.failed else ""
        raise ImageError(f"t-SNE needs at least {MIN_IMAGES} readable images, got {len(codes)}{failed}")
    broken = int((~np.isfinite(codes.values).all(axis=1)).sum())
    if broken:
        raise ModelError(
            f"the codes of {codes.layer.name!r} are not finite (NaN or infinity) for {broken} of {len(codes)} images"
        )
    coords, used, pca = tsne_coords(codes.values, perplexity, seed, threads)
    notes = []
    if used != perplexity:
        notes.append(
            f"perplexity {perplexity:g} is too high for {len(codes)} images (t-SNE needs 3 x perplexity <= images - 1): "
            f"{used:.3g} used"
        )
    return TsneResult(codes, coords, used, seed, pca, notes)


def usable_perplexity(perplexity: float, count: int) -> float:
    """``perplexity``, lowered to (count - 1) / 3 where larger (each point's 3 x perplexity nearest
    neighbours must be other points)."""
    return min(perplexity, (count - 1) / 3)


def tsne_coords(
    codes: np.ndarray, perplexity: float = DEFAULT_PERPLEXITY, seed: int = 0, threads: int = 0
) -> tuple[np.ndarray, float, int | None]:
    """Embed codes in 2-D: PCA to ``PCA_DIMENSIONS`` when the codes and their count are both
    larger, then Barnes-Hut t-SNE
    (scikit-learn, PCA initialisation, learning rate ``auto``), both seeded.

    Args:
        codes: (N, D) codes, N >= ``MIN_IMAGES``.
        perplexity: asked for (see ``usable_perplexity``).
        seed: the random seed of PCA's randomized solver and of t-SNE.
        threads: BLAS/OpenMP threads (0: the libraries' choice).

    Returns:
        float32 (N, 2) positions, the perplexity used, and the PCA dimensions (None: no PCA).
    """
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    data = np.asarray(codes, dtype=np.float32)
    used = usable_perplexity(perplexity, len(data))
    pca = None
    with limit_threads(threads):
        if min(data.shape) > PCA_DIMENSIONS:  # N <= 50 points span <= 50 dimensions already
            pca = PCA_DIMENSIONS
            data = PCA(n_components=pca, random_state=seed).fit_transform(data).astype(np.float32)
        tsne = TSNE(n_components=2, perplexity=used, init="pca", learning_rate="auto", random_state=seed)
        coords = tsne.fit_transform(data)
    return np.ascontiguousarray(coords, dtype=np.float32), used, pca
