"""Shared pytest configuration: the hypothesis profile and the subprocess helper.

The gradient-check helper itself lives in gradcheck.py (imported by the test modules).
MATGRAD_HYPOTHESIS_PROFILE=matgrad-thorough runs 200 examples per property instead of 25
(about ten minutes): worth doing after touching an op, a VJP or the sweep.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

from hypothesis import HealthCheck, settings

# Modest example counts keep the whole suite to a few minutes on 2 cores; deadline=None since
# a first call may include one-off costs (imports, pool warm-up). database=None: nothing is
# written into the source tree.
settings.register_profile(
    "matgrad",
    max_examples=25,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("matgrad-thorough", parent=settings.get_profile("matgrad"), max_examples=200)
settings.load_profile(os.environ.get("MATGRAD_HYPOTHESIS_PROFILE", "matgrad"))


def run_python(code: str, timeout: float = 120.0) -> subprocess.CompletedProcess:
    """Run code in a fresh interpreter (so a crash, abort or hang fails one test, not pytest)."""
    env = dict(os.environ)
    env.setdefault("PYTHONFAULTHANDLER", "1")
    return subprocess.run(  # the caller inspects the return code
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )
