"""The terminal prompt names the profile and the data directory in use."""

from pathlib import Path
from types import SimpleNamespace

from IPython.terminal.interactiveshell import TerminalInteractiveShell

from labsky.ipython import _set_prompt


def test_prompt_shows_profile_and_data_dir(tmp_path):
    shell = TerminalInteractiveShell.instance()
    try:
        session = SimpleNamespace(
            profile=SimpleNamespace(name="example-lab"), data_dir=tmp_path / "data"
        )
        _set_prompt(shell, session)  # type: ignore[arg-type]
        text = "".join(part for _, part in shell.prompts.in_prompt_tokens())
        assert text.startswith(f"labsky:example-lab [{Path(tmp_path / 'data')}] In [")
    finally:
        TerminalInteractiveShell.clear_instance()
