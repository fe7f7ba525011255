"""``manifest.json`` of an audit: what was audited with what (versions, model, preprocessing,
options, device), each run's start and end, and the counts; and the check that refuses to mix
two audits in one folder."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from fixtrace.errors import OptionError, OutputError
from fixtrace.files import write_json_atomic

MANIFEST_FILE = "manifest.json"
#: Bumped when the layout of the audit folder changes.
AUDIT_FORMAT = 1


def now() -> str:
    """The time now, ISO 8601 with its UTC offset."""
    return datetime.now(timezone.utc).astimezone().isoformat(timespec="seconds")


def sha256_of(path: str | Path) -> str:
    """The SHA-256 of a file, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def new_manifest(explainer: Any, model: str | Path, identity: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
    """The manifest of a fresh audit (no run yet).

    Args:
        explainer: the prepared ``Explainer``.
        model: the model's path.
        identity: what makes two audits the same (``audit_identity``).
        options: every option as given.
    """
    from fixtrace.api import versions

    spec = explainer.graph.image_input
    return {
        "format": AUDIT_FORMAT,
        "versions": versions(),
        "model": {
            "path": str(model),
            "sha256": identity["model_sha256"],
            "opset": explainer.graph.opset,
            "inputs": [{"name": spec.name, "shape": list(spec.shape), "layout": spec.layout}],
            "output": explainer.output.to_json(),
        },
        "preset": explainer.preset.to_dict(),
        "preset_source": explainer.preset_source,
        "methods": [s.label for s in explainer.specs],
        "options": options,
        "device": {**explainer.backend.describe(), "providers": explainer.session.providers_in_use},
        "identity": identity,
        "runs": [],
        "start": None,
        "end": None,
        "counts": {"images": 0, "ok": 0, "failed": 0},
    }


def audit_identity(explainer: Any, sha256: str, settings: dict[str, Any]) -> dict[str, Any]:
    """What two runs must share to write one ledger: the model's hash, the preprocessing, the
    methods and every setting that changes a result (not the inputs, batch size or threads)."""
    return {
        "model_sha256": sha256,
        "preset": explainer.preset.to_dict(),
        "methods": [s.label for s in explainer.specs],
        **settings,
    }


def read_manifest(folder: Path) -> dict[str, Any] | None:
    """The folder's manifest, or None when it has none.

    Raises:
        OutputError: a manifest that cannot be read or is not a JSON object.
    """
    path = folder / MANIFEST_FILE
    if not path.exists():
        return None
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise OutputError(f"{path} cannot be read as an audit manifest ({exc}); use --force to start a fresh audit") from None
    if not isinstance(manifest, dict):
        raise OutputError(f"{path} is not an audit manifest; use --force to start a fresh audit")
    return manifest


def check_same_audit(folder: Path, existing: dict[str, Any], identity: dict[str, Any]) -> None:
    """Refuse to continue an audit made with another model or other settings.

    Raises:
        OptionError: naming what differs (one line).
    """
    before = existing.get("identity", {})
    differ = [key for key in sorted(set(before) | set(identity)) if before.get(key) != identity.get(key)]
    if not differ:
        return
    if "model_sha256" in differ:
        what = f"another model (sha256 {str(before.get('model_sha256'))[:12]}..., this one {identity['model_sha256'][:12]}...)"
    else:
        what = "other settings (" + ", ".join(f"{k}: {before.get(k)!r} then, {identity.get(k)!r} now" for k in differ) + ")"
    raise OptionError(f"{folder} holds an audit of {what}; use another --out, or --force to start a fresh audit there")


def start_run(manifest: dict[str, Any], argv: list[str]) -> dict[str, Any]:
    """Open a run in the manifest (its start time and command line) and return it."""
    run = {"start": now(), "end": None, "argv": argv, "counts": None}
    manifest["runs"].append(run)
    manifest["start"] = manifest["start"] or run["start"]
    return run


def finish_run(manifest: dict[str, Any], run: dict[str, Any], run_counts: dict[str, int], counts: dict[str, int]) -> None:
    """Close a run: its end time and counts, and the audit's counts over every run."""
    run["end"] = manifest["end"] = now()
    run["counts"] = run_counts
    manifest["counts"] = counts


def save_manifest(folder: Path, manifest: dict[str, Any]) -> None:
    """Write ``manifest.json`` atomically.

    Raises:
        OutputError: the write failed.
    """
    write_json_atomic(folder / MANIFEST_FILE, manifest, indent=1)
