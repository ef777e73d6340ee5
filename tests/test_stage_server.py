"""The stage server the DAG tests run their stages through (tests/stage_server.py) must behave as a fresh
`python script` would: command line, directory, environment, search path, streams and exit code."""
import subprocess

from conftest import forked_stages_env

SCRIPT = """
import os, sys
import erasure
print("argv", sys.argv[1:], "cwd", os.getcwd(), "env", os.environ.get("PROBE"))
print("erasure from", os.path.dirname(erasure.__file__))
print("to stderr", file=sys.stderr)
sys.exit(int(sys.argv[1]))
"""


def run_forked(tmp_path, *args, **env):
    env = forked_stages_env(**env)
    return subprocess.run([env["ERASURE_STAGE_PYTHON"], str(tmp_path / "script.py"), *args], cwd=tmp_path,
                          env=env, capture_output=True, text=True)


def test_a_forked_stage_runs_as_a_fresh_interpreter_would(tmp_path):
    copy = tmp_path / "copy" / "erasure"
    copy.mkdir(parents=True)
    (copy / "__init__.py").write_text("")
    (tmp_path / "script.py").write_text(SCRIPT)
    proc = run_forked(tmp_path, "3", "two words", PROBE="seen", PYTHONPATH=str(tmp_path / "copy"))
    assert proc.returncode == 3
    assert f"argv ['3', 'two words'] cwd {tmp_path} env seen" in proc.stdout
    assert f"erasure from {copy}" in proc.stdout   # the package comes from $PYTHONPATH, as for python
    assert proc.stderr.strip() == "to stderr"


def test_an_uncaught_exception_exits_1_with_its_traceback(tmp_path):
    (tmp_path / "script.py").write_text("raise ValueError('bad input named here')\n")
    proc = run_forked(tmp_path)
    assert proc.returncode == 1
    assert "ValueError: bad input named here" in proc.stderr and "Traceback" in proc.stderr
