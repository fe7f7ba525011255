"""``fixtrace audit``: check everything that can be checked before any image runs, open (or
resume) the audit folder, run the engine with a progress line, then close the run in the
manifest, write the report and print one summary line."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fixtrace.api import Explainer, check_render_options
from fixtrace.audit.engine import AuditSettings, run_audit
from fixtrace.audit.inputs import count_inputs, iter_inputs
from fixtrace.audit.ledger import LEDGER_FILE, Ledger
from fixtrace.audit.manifest import (
    MANIFEST_FILE,
    audit_identity,
    check_same_audit,
    finish_run,
    new_manifest,
    read_manifest,
    save_manifest,
    sha256_of,
    start_run,
)
from fixtrace.audit.pictures import ITEMS, sweep_interrupted
from fixtrace.audit.truth import read_truth
from fixtrace.cli import EXIT_ITEM_FAILED, EXIT_OK, _error, _output_folder, _preprocessing_line, _preset_choice
from fixtrace.errors import EmptyMapWarning, FixtraceError, ModelError, OptionError, OutputError, one_line
from fixtrace.labels import class_names
from fixtrace.progress import Progress

#: The options that change results besides the model, preset and methods: a resumed audit must repeat them.
RESULT_OPTIONS = ("boxes", "labels_csv", "sigma", "box_threshold")
LOCK_FILE = ".audit.lock"
#: Seconds between two progress lines when stderr is not a terminal.
PROGRESS_INTERVAL = 2.0


def run(args: argparse.Namespace) -> int:
    """Run ``fixtrace audit``; returns the exit code (1 when an image failed).

    Raises:
        FixtraceError: a bad model, option, input list or audit folder (before any image runs),
            or a full disk.
    """
    from fixtrace import validate

    preset = _preset_choice(args)
    check_render_options(args.sigma, args.box_threshold)
    validate.integer("batch_size", args.batch_size, 1, flag="--batch-size")
    validate.integer("workers", args.workers, 0, 64, flag="--workers")
    validate.integer("toolbox_images", args.toolbox_images, 1, flag="--toolbox-images")
    engine = getattr(args, "engine", "local")
    ray_address = getattr(args, "ray_address", None)
    if engine == "ray":
        from fixtrace.audit.ray_engine import require_ray

        require_ray()  # one line (install fixtrace[ray]) before any image
        if args.workers < 1:
            raise OptionError("--engine ray needs --workers 1 or more (the Ray actors)")
    elif ray_address:
        raise OptionError("--ray-address is for --engine ray")
    total = count_inputs(args.images)
    explainer = Explainer(args.model, preset=preset, method=args.method, device=args.device, threads=args.threads)
    names = class_names(explainer.num_classes, explainer.labels_file, explainer.graph.model)
    truth = read_truth(args.boxes, args.labels_csv, names)
    try:
        identity = audit_identity(explainer, sha256_of(args.model), {k: _canonical(k, getattr(args, k)) for k in RESULT_OPTIONS})
    except OSError as exc:
        raise ModelError(f"cannot read {args.model}: {exc.strerror or exc}") from None
    out = _output_folder(args.out)
    with _locked(out):
        manifest = _open_audit(out, args.force, identity)
        if manifest is None:
            manifest = new_manifest(explainer, args.model, identity, {k: v for k, v in vars(args).items() if k != "run"})
        sweep_interrupted(out)
        ledger = Ledger(out / LEDGER_FILE)
        skipped = sum(ledger.done(item.id) for item in iter_inputs(args.images))
        if not args.quiet:
            print(_preprocessing_line(args, explainer.preset, explainer.preset_source), file=sys.stderr)
            for note in _notes(explainer, ledger, skipped):
                print(f"fixtrace: note: {note}", file=sys.stderr)
        current = start_run(manifest, list(sys.argv))
        # How this run ran (not the audit's identity: an audit may resume on another engine).
        current["engine"] = {"name": engine, "workers": args.workers} | (
            {"ray_address": ray_address} if engine == "ray" and ray_address else {}
        )
        save_manifest(out, manifest)
        progress = Progress(total, enabled=not args.quiet, done=skipped, interval=PROGRESS_INTERVAL)
        counts = {"images": 0, "ok": 0, "failed": 0}

        def on_record(record: dict[str, Any]) -> None:
            counts["images"] += 1
            counts["ok" if record["status"] == "ok" else "failed"] += 1
            if record["status"] != "ok":
                _error(f"{record['image']}: {record['error']}")
            progress.step(one_line(Path(record["image"]).name))

        settings = AuditSettings(args.batch_size, args.workers, args.sigma, args.box_threshold)
        start = time.perf_counter()
        warnings.simplefilter("ignore", EmptyMapWarning)  # an empty map is recorded in the ledger
        try:
            if engine == "ray":
                from fixtrace.audit.ray_engine import run_audit_ray

                # Each actor prepares its own Explainer with these options; --threads 0 (all cores) is
                # one thread per actor there, each actor holding one CPU. The model by its absolute
                # path: a worker of an existing cluster runs in another folder.
                options = {
                    "model": os.path.abspath(args.model),
                    "preset": preset,
                    "method": args.method,
                    "device": args.device,
                    "threads": args.threads or 1,
                }
                run_audit_ray(options, iter_inputs(args.images), out, ledger, truth, names, settings, on_record, ray_address)
            else:
                run_audit(explainer, iter_inputs(args.images), out, ledger, truth, names, settings, on_record)
        finally:  # also when interrupted: the run is closed and the ledger tidied
            ledger.compact()
            ledger.close()
            finish_run(manifest, current, counts, ledger.counts())
            save_manifest(out, manifest)
        elapsed = time.perf_counter() - start
        if args.toolbox:
            _toolbox(out, args, preset)
        report = _report(out)
    done = manifest["counts"]
    print(
        f"audit: {done['images']} images, {done['ok']} ok, {done['failed']} failed; this run {counts['images']} in "
        f"{elapsed:.1f}s ({counts['images'] / max(elapsed, 1e-9):.2f} images/s, {skipped} already done); "
        f"{'report ' + one_line(str(report)) if report else 'ledger ' + one_line(str(out / LEDGER_FILE))}"
    )
    return EXIT_ITEM_FAILED if done["failed"] else EXIT_OK


def _canonical(key: str, value: Any) -> Any:
    """An option as two runs compare it: a file by its real path and content hash."""
    if key in ("boxes", "labels_csv") and value is not None:
        try:
            return {"path": os.path.realpath(value), "sha256": sha256_of(value)}
        except OSError as exc:
            raise OptionError(f"--{key.replace('_', '-')} {value}: {exc.strerror or exc}") from None
    return value


@contextmanager
def _locked(out: Path):
    """Hold the audit folder for this process alone (where ``fcntl`` exists).

    Raises:
        OutputError: another audit runs there, or the lock file cannot be made.
    """
    try:
        import fcntl
    except ImportError:  # Windows: no lock
        yield
        return
    try:
        handle = open(out / LOCK_FILE, "a")
    except OSError as exc:
        raise OutputError(f"cannot write in {out}: {exc.strerror or exc}") from None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise OutputError(f"{out} is in use by another fixtrace audit; wait for it or use another --out") from None
        yield


def _open_audit(out: Path, force: bool, identity: dict[str, Any]) -> dict[str, Any] | None:
    """The manifest of the audit in ``out`` (None: a fresh audit); ``force`` removes it first.

    Raises:
        OptionError: ``out`` holds another audit, or a ledger without its manifest (without ``force``).
        OutputError: the earlier audit cannot be removed.
    """
    if force:
        for target in (out / LEDGER_FILE, out / MANIFEST_FILE, out / ITEMS):
            try:
                if target.is_dir() and not target.is_symlink():
                    shutil.rmtree(target)
                elif target.exists() or target.is_symlink():
                    target.unlink()
            except OSError as exc:
                raise OutputError(f"--force cannot remove {target}: {exc.strerror or exc}") from None
        return None
    manifest = read_manifest(out)
    if manifest is None:
        if (out / LEDGER_FILE).exists():
            raise OptionError(f"{out} holds a ledger without its manifest; use --force to start a fresh audit there")
        return None
    check_same_audit(out, manifest, identity)
    return manifest


def _notes(explainer: Explainer, ledger: Ledger, skipped: int) -> list[str]:
    notes = [f"forward on the CPU: {explainer.session.fallback}"] if explainer.session.fallback else []
    notes += explainer.method_notes()
    if ledger.status:
        failed = ledger.counts()["failed"]
        notes.append(f"resuming: {skipped} images already done are skipped, {failed} failed ones are tried again")
    if ledger.repaired:
        notes.append("the ledger's last line was cut short by an interruption: dropped, its image runs again")
    return notes


def _toolbox(out: Path, args: argparse.Namespace, preset: Any) -> None:
    """The toolbox's views of the first ``--toolbox-images`` photos, for the report."""
    import itertools

    from fixtrace.audit.toolbox import ToolboxSettings, write_toolbox

    photos = [item.path for item in itertools.islice(iter_inputs(args.images), args.toolbox_images)]
    settings = ToolboxSettings(preset, None, args.batch_size, args.threads)

    def started(title: str) -> None:
        if not args.quiet:
            print(f"toolbox: {title} ({len(photos)} photos)", file=sys.stderr)

    for panel in write_toolbox(out, args.model, photos, settings, started):
        if panel.picture is None and not panel.files:
            print(f"fixtrace: note: toolbox: {panel.title}: {panel.caption}", file=sys.stderr)


def _report(out: Path) -> Path | None:
    """The HTML report, when the report module is there (None without it, or when it fails)."""
    try:
        from fixtrace.audit.report import render_report  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        return None
    try:
        return render_report(out)
    except (FixtraceError, OSError) as exc:
        _error(f"the report could not be written: {exc}")
        return None
