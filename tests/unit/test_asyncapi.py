"""docs/asyncapi.json read by a parser the project did not write: the AsyncAPI Initiative's
own (@asyncapi/parser, from the npm registry, installed by `make install`)."""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHECK = ROOT / "tools" / "asyncapi" / "check.mjs"
PARSER = ROOT / "tools" / "asyncapi" / "node_modules" / "@asyncapi" / "parser"


def parse(document: Path) -> subprocess.CompletedProcess[str]:
    node = shutil.which("node")
    if node is None or not PARSER.exists():
        if os.environ.get("CI") == "true":
            pytest.fail("node or @asyncapi/parser missing: run make install")
        pytest.skip("node or @asyncapi/parser missing: run make install")
    return subprocess.run(
        [node, str(CHECK), str(document)], capture_output=True, text=True, timeout=120
    )


def test_the_generated_document_is_valid_asyncapi_3():
    result = parse(ROOT / "docs" / "asyncapi.json")
    assert result.returncode == 0, result.stdout + result.stderr
    document = json.loads((ROOT / "docs" / "asyncapi.json").read_text())
    # Every message the project documents is one the parser found.
    assert f"{len(document['components']['messages'])} messages" in result.stdout


def test_a_broken_document_is_refused(tmp_path):
    document = json.loads((ROOT / "docs" / "asyncapi.json").read_text())
    channel = next(iter(document["channels"].values()))
    channel["messages"] = {"gone": {"$ref": "#/components/messages/no-such-message"}}
    broken = tmp_path / "asyncapi.json"
    broken.write_text(json.dumps(document))
    result = parse(broken)
    assert result.returncode == 1, result.stdout
    assert "error" in result.stdout + result.stderr
