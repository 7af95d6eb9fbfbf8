from pathlib import Path

import pytest
from PIL import Image

from fds.reports import (
    README_END,
    README_START,
    plot_training_curves,
    read_metrics,
    replace_marked_block,
    run_metrics_csv,
)

ROOT = Path(__file__).resolve().parents[1]
CSV = """epoch,step,train/loss_geo,val/normal_deg,val/disp_mae_mm,val/normal_deg_zero
0,0,0.5,,,
0,1,0.25,,,
0,1,,4.0,0.05,3.0
1,2,0.125,,,
1,3,,2.0,0.03,3.0
"""


def test_read_metrics_and_plot(tmp_path):
    path = tmp_path / "metrics.csv"
    path.write_text(CSV)
    m = read_metrics(path)
    assert m["train/loss_geo"] == [(0, 0, 0.5), (0, 1, 0.25), (1, 2, 0.125)]
    assert [v for _, _, v in m["val/normal_deg"]] == [4.0, 2.0]
    png = plot_training_curves(path, tmp_path / "curves.png", baselines={"zero detail": 3.0})
    with Image.open(png) as image:
        assert image.size[0] > 800


def test_curves_get_a_wrinkle_panel_when_logged(tmp_path):
    plain = plot_training_curves(_write(tmp_path / "a.csv", CSV), tmp_path / "a.png")
    lines = CSV.strip().splitlines()
    extra = [lines[0] + ",val/normal_deg_wrinkles,val/normal_deg_wrinkles_zero"]
    extra += [line + (",6.0,6.5" if line.split(",")[3] else ",,") for line in lines[1:]]
    wide = plot_training_curves(_write(tmp_path / "b.csv", "\n".join(extra) + "\n"), tmp_path / "b.png")
    assert [v for _, _, v in read_metrics(tmp_path / "b.csv")["val/normal_deg_wrinkles"]] == [6.0, 6.0]
    with Image.open(plain) as a, Image.open(wide) as b:
        assert b.size[0] > 1.2 * a.size[0]


def _write(path, text: str):
    path.write_text(text)
    return path


def test_run_metrics_csv_is_the_newest_version(tmp_path):
    for version in (2, 10):  # numeric order: version_10 is newer than version_2
        (tmp_path / "csv" / f"version_{version}").mkdir(parents=True)
        (tmp_path / "csv" / f"version_{version}" / "metrics.csv").write_text(CSV)
    assert run_metrics_csv(tmp_path) == tmp_path / "csv" / "version_10" / "metrics.csv"
    with pytest.raises(FileNotFoundError, match="training run folder"):
        run_metrics_csv(tmp_path / "csv")


def test_readme_results_block_is_replaced_in_place(tmp_path):
    """The README carries the markers; only the text between them changes, and a rerun gives the same file."""
    readme = tmp_path / "README.md"
    original = (ROOT / "README.md").read_text()
    readme.write_text(original)
    block = f"{README_START}\n\n| method | x |\n|---|---:|\n| zero | 1 |\n\n{README_END}\n"
    replace_marked_block(readme, block)
    once = readme.read_text()
    assert once.count(README_START) == once.count(README_END) == 1 and "| zero | 1 |" in once
    assert once.split(README_START)[0] == original.split(README_START)[0]
    assert once.split(README_END)[1] == original.split(README_END)[1]
    replace_marked_block(readme, block)
    assert readme.read_text() == once
    (tmp_path / "other.md").write_text("# no markers\n")
    with pytest.raises(ValueError, match="eval-table"):
        replace_marked_block(tmp_path / "other.md", block)


def test_results_table_names_the_methods_the_procedural_scans_could_not_score():
    """A checkpoint that reads the photo scale needs a photo's fit; procedural scans have none, so eval/run.py
    leaves it out of their table and the table says so instead of dropping it silently."""
    from fds.reports import results_table

    row = {"all": {"disp_mae_mm": 0.1, "normal_deg": 2.0, "normal_under_5deg": 0.9, "normal_ssim": 0.5,
                   "normal_psnr_db": 30.0}}
    payload = {"checkpoint": "scale.safetensors", "held_out_samples": 1, "seeds": [900000],
               "results": {"zero": row}, "not_scored_on_scans": ["dfdn", "untrained"]}
    table = results_table(payload)
    assert "Not scored on the procedural scans: DFDN (checkpoint), DFDN untrained." in table
    assert "Not scored" not in results_table({**payload, "not_scored_on_scans": []})
