from PIL import Image

from fds.reports import plot_training_curves, read_metrics

CSV = """epoch,step,train/loss_geo,val/normal_deg,val/disp_mae_mm
0,0,0.5,,
0,1,0.25,,
0,1,,4.0,0.05
1,2,0.125,,
1,3,,2.0,0.03
"""


def test_read_metrics_and_plot(tmp_path):
    path = tmp_path / "metrics.csv"
    path.write_text(CSV)
    m = read_metrics(path)
    assert m["train/loss_geo"] == [(0, 0, 0.5), (0, 1, 0.25), (1, 2, 0.125)]
    assert [v for _, _, v in m["val/normal_deg"]] == [4.0, 2.0]
    png = plot_training_curves(path, tmp_path / "curves.png", baselines={"zero detail": 3.0})
    assert Image.open(png).size[0] > 800
