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

import sys

from emotionnas.cli.commands import _config_file_or_preset, demo_config  # noqa: F401  (the Python API of tests)
from emotionnas.cli.parser import build_parser
from emotionnas.errors import EmotionNASError


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except EmotionNASError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: finished work is saved; run the same command again to resume", file=sys.stderr)
        return 130
