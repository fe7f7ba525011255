"""Class names: a user's labels file, the bundled ImageNet names, or plain indices."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from fixtrace.errors import OptionError
from fixtrace.files import check_input_file


def class_names(num_classes: int, labels_file: str | Path | None = None) -> list[str]:
    """Names for ``num_classes`` outputs.

    Args:
        num_classes: how many scores the model returns per image.
        labels_file: a UTF-8 text file with one name per line; without it, 1000 (or 1001, with
            a background class first) outputs get the bundled ImageNet names.

    Returns:
        One name per class.

    Raises:
        OptionError: the labels file is missing, not a regular file, not UTF-8 text, or has
            fewer names than classes.
    """
    if labels_file is not None:
        path = check_input_file(labels_file, "labels file", OptionError)
        try:
            text = path.read_text(encoding="utf-8-sig")
        except (UnicodeDecodeError, OSError) as exc:
            raise OptionError(f"cannot read labels file {path} as UTF-8 text: {exc}") from None
        names = [line.strip() for line in text.splitlines() if line.strip()]
        if len(names) < num_classes:
            raise OptionError(f"labels file {path} has {len(names)} names for {num_classes} classes")
        return names[:num_classes]
    if num_classes in (1000, 1001):
        text = resources.files("fixtrace").joinpath("data/imagenet_classes.txt").read_text(encoding="utf-8")
        names = [line.strip() for line in text.splitlines() if line.strip()]
        return names if num_classes == 1000 else ["background", *names]
    return [f"class {i}" for i in range(num_classes)]
