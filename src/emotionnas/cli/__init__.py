"""Command line: thin verbs over the Python API.

  emotionnas corpus NAME ROOT [--json]
  emotionnas features NAME ROOT --cache DIR [--stream both] [--encoder whisper-base]
  emotionnas search {cnn,emodarts,rnn} NAME ROOT --fold K --out DIR
  emotionnas run NAME ROOT --out DIR [--config cfg.yaml] [--protocol loso] [--set key=value ...]
  emotionnas prior RUN_DIR ... --out prior.json
  emotionnas export RUN_DIR --out MODEL_DIR
  emotionnas predict --model MODEL_DIR FILE_OR_DIR ... [--windows 3.0 --hop 1.0 --plot out.png]
  emotionnas serve --model MODEL_DIR [--host 127.0.0.1 --port 8000]
  emotionnas evaluate --model MODEL_DIR NAME ROOT --out DIR [--map anger=angry,...]
  emotionnas demo [--out runs/demo]
"""
from __future__ import annotations

import os
import signal
import sys
import threading

from emotionnas.cli.commands import _config_file_or_preset, demo_config  # noqa: F401  (the Python API of tests)
from emotionnas.cli.parser import build_parser
from emotionnas.errors import EmotionNASError


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program is, so that it unwinds as on Ctrl-C: temporary files of
    atomic writes are removed, worker processes are shut down, finished work stays."""


def _on_sigterm(signum, frame):
    raise Terminated()


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _on_sigterm)  # the same path as SIGINT (`serve`: uvicorn's own)
    try:
        return args.func(args)
    except EmotionNASError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `emotionnas predict ... | head -1`: the reader has what it wanted
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # Python's flush at exit must not fail again
        return 0
    except OSError as e:  # a disk or file problem no layer below turned into a sentence: still one line
        where = e.filename if e.filename is not None else "emotionnas"
        print(f"error: {where}: {e.strerror or type(e).__name__}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        print("interrupted: finished work is saved; run the same command again to resume", file=sys.stderr)
        return 143 if isinstance(e, Terminated) else 130
