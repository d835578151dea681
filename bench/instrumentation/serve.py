"""Serve one benchmark variant with uvicorn (one worker): ``python serve.py VARIANT PORT``."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import uvicorn
from variants import build

if __name__ == "__main__":
    variant, port = sys.argv[1], int(sys.argv[2])
    uvicorn.run(build(variant), host="127.0.0.1", port=port, log_level="warning", access_log=False)
