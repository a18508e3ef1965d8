"""The `parley` commands that need no running servers."""

from pathlib import Path

import yaml

from parley.cli.main import main

REPO = Path(__file__).resolve().parents[3]
PROJECT = REPO / "examples" / "order-support"
RASA_FIXTURE = REPO / "services" / "nlu" / "tests" / "fixtures" / "rasa" / "nlu.yml"


def test_parley_validate_reports_problems_with_file_and_line(tmp_path, capsys):
    assert main(["validate", "--project", str(PROJECT)]) == 0
    assert "valid" in capsys.readouterr().out
    broken = tmp_path / "broken"
    broken.mkdir()
    for name in ("assistant.yml", "nlu.yml", "flows.yml", "responses.yml"):
        (broken / name).write_text((PROJECT / name).read_text())
    (broken / "assistant.yml").write_text("name: x\nnlu:\n  fallback_threshold: 7\n")
    assert main(["validate", "--project", str(broken)]) == 1
    assert f"{broken / 'assistant.yml'}:3:" in capsys.readouterr().err


def test_parley_import_rasa_writes_a_project_that_validates(tmp_path, capsys):
    project = tmp_path / "imported"
    project.mkdir()
    for name in ("assistant.yml", "flows.yml", "responses.yml"):
        (project / name).write_text((PROJECT / name).read_text())
    assert main(["import", "rasa", str(RASA_FIXTURE), "--out", str(project / "nlu.yml")]) == 0
    out = capsys.readouterr()
    assert "wrote" in out.out
    data = yaml.safe_load((project / "nlu.yml").read_text())
    assert data["intents"]
    assert main(["import", "rasa", str(tmp_path / "missing.yml"), "--out", str(tmp_path / "x.yml")]) == 2
    assert "parley:" in capsys.readouterr().err
