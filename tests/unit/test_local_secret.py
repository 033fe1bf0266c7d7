"""The click secret `tracker run` generates for the demo: made once per data directory, private."""

import stat

from tracker.config import Settings
from tracker.local_secret import FILE_NAME, local_click_secret
from tracker.signing import ClickSigner


def test_a_secret_is_made_once_and_kept(tmp_path):
    first = local_click_secret(tmp_path)
    assert len(first) >= 40 and first == local_click_secret(tmp_path)
    path = tmp_path / FILE_NAME
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == [FILE_NAME]  # no draft left behind
    Settings(click_secret=first)  # long enough for the settings' own check


def test_each_data_directory_has_its_own_secret(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a, b = local_click_secret(tmp_path / "a"), local_click_secret(tmp_path / "b")
    assert a != b
    link = "https://advertiser.example/"
    assert ClickSigner(a).sign(5, link) != ClickSigner(b).sign(5, link)


def test_an_existing_secret_is_used_as_it_is(tmp_path):
    (tmp_path / FILE_NAME).write_text("kept-from-an-earlier-run-0123456789\n")
    assert local_click_secret(tmp_path) == "kept-from-an-earlier-run-0123456789"
