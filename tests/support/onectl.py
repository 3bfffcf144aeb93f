"""onectl run as its own process, as an operator runs it."""

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

from tests.conftest import Stack

ROOT = Path(__file__).resolve().parents[2]


class Cli:
    """``python -m onectl`` with the stack's ``ONE_*`` environment."""

    def __init__(self, stack: Stack) -> None:
        admin = stack.services.admin_url.rsplit("/", 1)[0] + f"/{stack.database}"
        self.env = {
            **os.environ,
            **stack.env(),
            "ONE_DATABASE_ADMIN_URL": admin,  # the operator's superuser, on the pipeline db
            "COLUMNS": "200",
        }

    async def __call__(self, *args: str, answer: str | None = None) -> tuple[int, str, str]:
        """Exit code, stdout and stderr; ``answer`` is typed at its prompt."""
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "onectl",
            *args,
            env=self.env,
            cwd=ROOT,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        typed = (answer or "").encode()
        out, err = await asyncio.wait_for(process.communicate(typed), timeout=150)
        assert process.returncode is not None
        return process.returncode, out.decode(), err.decode()

    async def json(self, *args: str, code: int = 0) -> Any:
        returned, out, err = await self(*args, "--json")
        assert returned == code, f"onectl {' '.join(args)} -> {returned}\n{out}\n{err}"
        return json.loads(out)
