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


def test_a_plan_with_a_bad_argument_fails_in_one_line_before_any_run(capsys):
    """At the prompt `RE(scan([pdet], stage.x, -1, 1, 'five'))` printed 215 lines."""
    import bluesky.plans as bp
    from bluesky.simulators import RunEngineSimulator
    from IPython.core.interactiveshell import InteractiveShell
    from ophyd_async.sim import PatternGenerator, SimPointDetector, SimStage

    from labsky.ipython import prompt_namespace

    pattern = PatternGenerator()
    devices = {
        "pdet": SimPointDetector(pattern, name="pdet"),
        "stage": SimStage(pattern, name="stage"),
    }
    plans = {"scan": bp.scan, "count": bp.count}
    session = SimpleNamespace(
        plans=plans, devices=devices, namespace=lambda: {**plans, **devices}
    )
    runs = []
    simulator = RunEngineSimulator()
    shell = InteractiveShell.instance()
    try:
        shell.push(prompt_namespace(session))  # type: ignore[arg-type]
        shell.push({"RE": lambda plan: runs.append(simulator.simulate_plan(plan))})
        capsys.readouterr()
        shell.run_cell("RE(scan([pdet], stage.x, -1, 1, 'five'))")
        out, err = capsys.readouterr()
        assert (out + err).strip().splitlines() == [
            "PlanArgumentError: scan: argument args[3] (num)='five' does not fit "
            "int: input should be a valid integer, unable to parse string as an "
            "integer"
        ]
        assert runs == []  # the RunEngine was never called
        shell.run_cell("RE(scan([pdet], 'stage.x', -1, 1, 3))")
        [messages] = runs
        assert [m.command for m in messages].count("open_run") == 1
        moves = [m.args[0] for m in messages if m.command == "set"]
        assert moves == [-1.0, 0.0, 1.0]  # stage.x, resolved from its name
        assert shell.user_ns["plans"]["count"].__wrapped__ is bp.count
    finally:
        InteractiveShell.clear_instance()
