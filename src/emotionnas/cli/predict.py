"""`emotionnas predict`: one row per input, in input order, whatever happens to each input.

A reader of the output zips it with its inputs (`paste inputs.txt <(emotionnas predict ...)`),
so an input that cannot be used must not shift the rows: it gets an error row (`"error"`, label
null) in every format, and a line on stderr for a human watching. The exit code is 1 only when
every input failed (a batch with some good files succeeded); 2 for a refusal of the command
itself (model, options), as everywhere.
"""
from __future__ import annotations

import sys

from emotionnas.errors import EmotionNASError

EXIT_CODES = ("Every input gets one row (one per segment with --segments), in input order; an input that "
              "cannot be used (no such file or folder, empty folder, unreadable audio, silent, ...) gets an "
              "error row with \"error\" and label null in every format. Exit code: 0 when at least one input "
              "was recognised, 1 when every input failed, 2 when the command itself is refused (model, "
              "options). A closed pipe (`| head -1`) ends quietly with 0.")

SYNTHETIC_WARNING = ("warning: {model}: this model was trained on the SYNTHETIC demo corpus (made by code); its "
                     "labels mean nothing for real speech")


def cmd_predict(a) -> int:
    from emotionnas.recognizer import load
    from emotionnas.recognizer.outputs import Writer, expand_inputs
    if a.top_k is not None and a.top_k < 1:
        raise EmotionNASError(f"--top-k {a.top_k}: expected 1 or more")
    rec = load(a.model, backend=a.backend)  # model.json validated as data: bad -> one line
    if rec.spec.card.get("synthetic"):  # the page says so too (GET /health "synthetic")
        print(SYNTHETIC_WARNING.format(model=a.model), file=sys.stderr)
    if a.enroll:  # a speaker-adaptive model: this speaker's unlabelled audio standardises the features
        print(f"enrolled {rec.enroll([a.enroll])} utterance(s) from {a.enroll}", file=sys.stderr)
    items = expand_inputs(a.inputs)
    mode = a.segments or ("fixed" if a.windows else None)
    if a.plot and (len(items) != 1 or not mode):
        raise EmotionNASError("--plot draws the timeline of one file: give one FILE and --segments or --windows")
    out, failed, vectors = Writer(a.format, rec.labels, sys.stdout, top_k=a.top_k), 0, []
    for uid, path in items:
        try:
            _predict_one(a, rec, out, uid, path, mode, vectors)
        except EmotionNASError as e:
            print(f"failed: {e}", file=sys.stderr)
            out.error(uid, str(e))
            failed += 1
    if a.embeddings:
        from emotionnas.recognizer.outputs import save_embeddings
        print(f"embeddings: {save_embeddings(a.embeddings, vectors, rec)}", file=sys.stderr)
    return 1 if failed and failed == len(items) else 0


def _predict_one(a, rec, out, uid: str, path, mode: str | None, vectors: list) -> None:
    """The row(s) of one input; EmotionNASError (one line naming it) when it cannot be used,
    raised before any of its rows is written."""
    from emotionnas.recognizer.outputs import input_problem
    from emotionnas.recognizer.segments import predict_segments
    problem = input_problem(path)
    if problem is not None:
        raise EmotionNASError(problem)
    if mode:
        rows = predict_segments(rec, path, mode, a.windows or 3.0, a.hop, top_k=a.top_k)
        for r in rows:
            out.row(uid, {k: v for k, v in r.items() if k not in ("start", "end")}, r["start"], r["end"])
        if not rows:  # VAD found no spoken stretch: still one row, so the input is not lost
            out.row(uid, {"label": None, "score": None, "probs": None, "speech": False})
        if a.plot:
            from emotionnas.reports.plots import plot_timeline
            print(f"timeline: {plot_timeline(rows, rec.labels, a.plot, title=path.name)}", file=sys.stderr)
        return
    res = rec.predict(path, top_k=a.top_k)
    if a.embeddings:
        vectors.append((uid, rec.embeddings(rec.load_wave(path))))
    out.row(uid, res)


__all__ = ["cmd_predict", "EXIT_CODES"]
