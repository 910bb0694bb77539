"""``meddtfm serve`` without Gradio says what to install; the rest of the package never imports Gradio."""
from __future__ import annotations

import importlib.util
import subprocess
import sys

from click.testing import CliRunner

from meddtfm.cli.main import cli


def test_without_gradio_it_names_the_install(monkeypatch, tiny_flow_run):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "gradio" else real(name, *a))
    result = CliRunner().invoke(cli, ["serve", "--checkpoint", str(tiny_flow_run)])
    assert result.exit_code == 1
    assert "meddtfm serve needs Gradio, which is not installed: pip install 'meddtfm[demo]'" in result.output


def test_the_package_and_its_cli_do_not_import_gradio():
    code = ("import sys, meddtfm, meddtfm.cli.main, meddtfm.app, meddtfm.pipeline; "
            "from meddtfm import MedDTFMPipeline; assert 'gradio' not in sys.modules, 'gradio imported'")
    subprocess.run([sys.executable, "-c", code], check=True)
