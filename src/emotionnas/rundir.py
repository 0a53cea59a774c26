"""The run folder: every path of a run and typed read/write of its records.

    RUN/.lock                held by the one process writing the folder (utils/lock.py): pid, host
    RUN/config.yaml          the RunConfig the run was made with
    RUN/fingerprint.json     what the run was made from: corpus table (utterance ids, content
                             hashes, speakers, labels), protocol and folds
    RUN/environment.json     versions, git revision, seed, command
    RUN/folds.json           the folds
    RUN/skipped_files.txt    bad files left out (when any)
    RUN/searches/<name>/     one selection group: layers.json (encoder-layer probe), cell searches
                             (search_done.json, cnn/, rnn/), selection/<candidate>-<k>.npz (inner-CV
                             predictions per epoch) and selection.json (scores, ranking, ensemble)
    RUN/folds/foldNN/        one fold's refits: <candidate key>.json (+ .pt for ensemble members)
    RUN/results.json         the scores (identical after an interrupted, resumed run)
    RUN/timing.json          wall times (not in results.json: they differ between runs)
    RUN/report.md, figures/, tables/

Resuming is allowed only onto the same config and the same fingerprint; anything else is a
one-line error that says what changed and how to start fresh (`--restart`). Names that come
from data (speaker ids, fold and search names) only enter paths through `safe_component`.
"""
from __future__ import annotations

import hashlib
import re
import shutil
from pathlib import Path

from emotionnas.errors import ConfigError, LeakageError
from emotionnas.utils.io import atomic_write_json, atomic_write_text, read_json_or_none
from emotionnas.utils.lock import FolderLock

LOCK_NAME = ".lock"

FORMAT_VERSION = 3  # bump when the layout or a record changes; older folders must be re-run
RESTART_HINT = "re-run with --restart to start this run folder afresh, or use another --out"


def safe_component(text: str, max_len: int = 40) -> str:
    """A path component for a name that comes from data: a readable slug plus a hash of the
    original, so `a/../../x` becomes `a_.._.._x-1f2e3d4c` and two names never collide."""
    text = str(text)
    slug = re.sub(r"[^A-Za-z0-9_-]+", "_", text)[:max_len].strip("_") or "x"
    return f"{slug}-{hashlib.sha256(text.encode('utf-8')).hexdigest()[:8]}"


def _changed_fields(old: dict, new: dict, prefix: str = "") -> list[str]:
    """Dotted names of the fields that differ between two nested config dicts."""
    out = []
    for key in sorted(set(old) | set(new), key=str):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _changed_fields(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}")
    return out


# ---------------------------------------------------------------- fingerprint
def corpus_fingerprint(rows, label_names, folds, protocol: str, corpus: str, options: dict) -> dict:
    """rows: iterable of (utterance id, content sha256, speaker, label). Compact: per speaker
    the utterance count and a digest of its (id, hash, label) rows, so a change can be named."""
    per_speaker: dict[str, list] = {}
    for uid, sha, speaker, label in rows:
        per_speaker.setdefault(str(speaker), []).append(f"{uid}\t{sha}\t{label}")
    speakers = {}
    for spk in sorted(per_speaker):
        items = sorted(per_speaker[spk])
        speakers[spk] = {"utterances": len(items),
                         "digest": hashlib.sha256("\n".join(items).encode("utf-8")).hexdigest()[:16]}
    return {"format_version": FORMAT_VERSION, "corpus": corpus, "options": options, "protocol": protocol,
            "labels": list(label_names), "speakers": speakers, "folds": [f.to_dict() for f in folds]}


def fingerprint_changes(old: dict, new: dict) -> list[str]:
    """Human-readable differences between two fingerprints (empty when equal)."""
    out = []
    for key in ("corpus", "options", "protocol", "labels"):
        if old.get(key) != new.get(key):
            out.append(f"{key} {old.get(key)!r} -> {new.get(key)!r}")
    o, n = old.get("speakers", {}), new.get("speakers", {})
    if added := sorted(set(n) - set(o)):
        out.append(f"speaker(s) added: {', '.join(added[:5])}" + (" ..." if len(added) > 5 else ""))
    if removed := sorted(set(o) - set(n)):
        out.append(f"speaker(s) removed: {', '.join(removed[:5])}" + (" ..." if len(removed) > 5 else ""))
    changed = [s for s in sorted(set(o) & set(n)) if o[s] != n[s]]
    if changed:
        out.append("utterances changed for speaker(s) " + ", ".join(
            f"{s} ({o[s]['utterances']} -> {n[s]['utterances']} files)" for s in changed[:5])
            + (" ..." if len(changed) > 5 else ""))
    if not out and old.get("folds") != new.get("folds"):
        out.append("folds differ")
    if not out and old != new:
        out.append("format differs")
    return out


def run_identity(cfg) -> dict:
    """What every record of a run is made under: the seed and a digest of the config's identity
    (RunConfig.identity: how a run is carried out is not part of it, nor where the corpus lies:
    its content is the fingerprint's). A record whose identity differs is another run's and is
    never reused."""
    import yaml
    what = {k: v for k, v in cfg.identity().items() if k != "root"}
    digest = hashlib.sha256(yaml.safe_dump(what, sort_keys=True).encode("utf-8")).hexdigest()[:16]
    return {"seed": int(cfg.seed), "config": digest}


# ---------------------------------------------------------------- the folder
class RunDir:
    """Owner of one run folder. Paths are attributes or methods; records go through here."""

    def __init__(self, root):
        self.root = Path(root)
        self.config = self.root / "config.yaml"
        self.fingerprint = self.root / "fingerprint.json"
        self.environment = self.root / "environment.json"
        self.folds = self.root / "folds.json"
        self.skipped = self.root / "skipped_files.txt"
        self.results = self.root / "results.json"
        self.timing = self.root / "timing.json"
        self.report = self.root / "report.md"
        self.figures = self.root / "figures"
        self.tables = self.root / "tables"

    # ------------------------------------------------------------ layout
    def search_dir(self, name: str) -> Path:
        return self.root / "searches" / safe_component(name)

    def search_record(self, name: str) -> Path:
        return self.search_dir(name) / "search_done.json"

    def layer_probe(self, name: str) -> Path:
        return self.search_dir(name) / "layers.json"

    def fold_dir(self, index: int) -> Path:
        return self.root / "folds" / f"fold{int(index):02d}"

    def selection_record(self, group: str, key: str, inner: int) -> Path:
        return self.search_dir(group) / "selection" / f"{_stage_name(key)}-{int(inner)}.npz"

    def selection_summary(self, group: str) -> Path:
        return self.search_dir(group) / "selection.json"

    def refit_json(self, index: int, key: str) -> Path:
        return self.fold_dir(index) / f"{_stage_name(key)}.json"

    def refit_weights(self, index: int, key: str) -> Path:
        return self.fold_dir(index) / f"{_stage_name(key)}.pt"

    # the final model: selected and refit on every speaker (training/final.py)
    @property
    def final_dir(self) -> Path:
        return self.root / "final"

    @property
    def final_record(self) -> Path:
        return self.final_dir / "final.json"

    def final_weights(self, key: str) -> Path:
        return self.final_dir / f"{_stage_name(key)}.pt"

    def final_refit_json(self, key: str) -> Path:
        return self.final_dir / f"{_stage_name(key)}.json"

    def relative(self, path: Path) -> str:
        return str(Path(path).relative_to(self.root))

    # ------------------------------------------------------------ start / resume
    def is_run_folder(self) -> bool:
        return self.config.exists() or self.fingerprint.exists()

    def lock(self, log=print) -> FolderLock:
        """The folder's writer lock, taken (ConfigError naming the holder when another live
        process has it). Taken before anything is written, `--restart` included; release it
        (or use it as a context manager) when done."""
        self.root.mkdir(parents=True, exist_ok=True)
        return FolderLock(self.root / LOCK_NAME, what="run folder", log=log).acquire()

    def clear(self) -> None:
        """`--restart`: delete a previous run's files. Refuses a non-empty folder that is not a
        run folder (a typo in --out must not delete someone's data)."""
        if not self.root.exists():
            return
        entries = [e for e in self.root.iterdir() if e.name != LOCK_NAME]  # the lock stays: we hold it
        if entries and not self.is_run_folder():
            raise ConfigError(f"{self.root}: not a run folder (no config.yaml or fingerprint.json); "
                              "refusing to delete it for --restart")
        # config.yaml and fingerprint.json last: a clear cut short still reads as a run folder
        # (its remaining records carry their run identity, so nothing stale is reused)
        last = (self.fingerprint.name, self.config.name)
        for entry in sorted(entries, key=lambda e: last.index(e.name) + 1 if e.name in last else 0):
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()

    def claim(self, cfg) -> None:
        """Bind the folder to a config: a new folder takes it; a resumed one must compute the same
        thing (`RunConfig.identity`: how it runs — workers, threads, executor, cache folder — may
        change). config.yaml then holds the config of the latest start."""
        from emotionnas.config import RunConfig
        self.root.mkdir(parents=True, exist_ok=True)
        if self.config.exists():
            if not self.fingerprint.exists() and any((self.root / d).exists() for d in ("searches", "folds")):
                raise ConfigError(f"{self.root}: made by an older emotionnas (no fingerprint.json); "
                                  f"{RESTART_HINT}")
            try:
                old = RunConfig.from_yaml(self.config).identity()
            except ConfigError:
                raise ConfigError(f"{self.config}: unreadable run config; {RESTART_HINT}") from None
            changed = _changed_fields(old, cfg.identity())
            if changed:
                raise ConfigError(f"{self.config}: this run folder was made with a different config "
                                  f"({', '.join(changed[:5])}); {RESTART_HINT}")
        atomic_write_text(self.config, cfg.to_yaml())

    def check_fingerprint(self, fingerprint: dict) -> None:
        """Same corpus and folds as before -> reuse; anything else -> ConfigError naming it."""
        old = read_json_or_none(self.fingerprint)
        if old is None:
            if self.fingerprint.exists():
                raise ConfigError(f"{self.fingerprint}: unreadable; {RESTART_HINT}")
            if any((self.root / d).exists() for d in ("searches", "folds")):
                raise ConfigError(f"{self.root}: holds results without a fingerprint.json; {RESTART_HINT}")
            atomic_write_json(self.fingerprint, fingerprint)
            return
        changes = fingerprint_changes(old, fingerprint)
        if changes:
            raise ConfigError(f"{self.fingerprint}: the corpus changed since this run started "
                              f"({'; '.join(changes)}); {RESTART_HINT}")

    # ------------------------------------------------------------ records
    def read_results(self) -> dict:
        if not self.results.exists():
            raise ConfigError(f"{self.root}: no results.json (is the run finished?)")
        results = read_json_or_none(self.results)
        if not isinstance(results, dict) or "folds" not in results:
            raise ConfigError(f"{self.results}: unreadable or not a results file")
        if results.get("format_version") != FORMAT_VERSION:
            raise ConfigError(f"{self.results}: made by an older emotionnas (format "
                              f"{results.get('format_version', 1)}, now {FORMAT_VERSION}); re-run it "
                              f"(`emotionnas run ... --restart`)")
        return results

    def read_config(self):
        """The run's config; ConfigError naming config.yaml when it is missing, too big, garbage,
        or not a run's (RunConfig.from_yaml's bounds, and the keys a run always writes)."""
        from emotionnas.config import RunConfig
        if not self.config.is_file():
            raise ConfigError(f"{self.config}: missing; is {self.root} a run folder?")
        try:
            return RunConfig.from_yaml(self.config, require=("corpus", "root", "seed"))
        except ConfigError as e:
            raise ConfigError(f"{e}; {RESTART_HINT}") from None

    def read_timing(self) -> dict | None:
        return read_json_or_none(self.timing)


def check_search_speakers(record: dict, fold, search_name: str) -> None:
    """A cached search may serve a fold only if none of the fold's test speakers reached it."""
    spk = record.get("speakers") if isinstance(record, dict) else None
    if not isinstance(spk, dict) or not all(k in spk for k in ("train", "val", "excluded")):
        raise LeakageError(f"search {search_name}: its record does not list the speakers it used; "
                           f"{RESTART_HINT}")
    used = set(spk["train"]) | set(spk["val"])
    test = set(fold.test)
    if test & used or not test <= set(spk["excluded"]):
        raise LeakageError(f"fold {fold.name}: test speaker(s) {sorted(test & used) or sorted(test)} reached "
                           f"search {search_name}; {RESTART_HINT}")


def _stage_name(name: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", name):
        raise ValueError(f"stage name {name!r} is not a plain identifier")
    return name
