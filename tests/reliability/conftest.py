"""Reliability and security suite (issue 7): every fault here is injected for real."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
