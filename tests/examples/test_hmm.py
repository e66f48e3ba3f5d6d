"""The HMM examples run with small settings and report the right numbers."""

import importlib.util
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
PNG = b"\x89PNG\r\n\x1a\n"


def load(name):
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_earthquakes_example_matches_the_book(tmp_path, capsys):
    example = load("earthquakes")
    png = tmp_path / "quakes.png"
    out = example.main(["--restarts", "2", "--max-iters", "100", "--plot", str(png)])
    printed = capsys.readouterr().out
    rows = {r["states"]: r for r in out["rows"]}
    assert set(rows) == {2, 3}
    for m, r in rows.items():
        # EM reaches the published maximum: -log L to the printed digits, λ and Γ to theirs
        assert r["neg_log_lik"] == pytest.approx(r["published_neg_log_lik"], abs=2e-4), m
        np.testing.assert_allclose(r["lambda"], r["published_lambda"], atol=5e-3)
        np.testing.assert_allclose(r["gamma"], r["published_gamma"], atol=5e-4)
        assert r["aic"] == pytest.approx(r["published_aic"], abs=1e-3)
        assert r["bic"] == pytest.approx(r["published_bic"], abs=1e-3)
        assert r["delta"][0] == pytest.approx(1.0)        # the free-δ MLE sits on the boundary
    # the book's R output for 3 states: AIC 679.055, BIC 708.4561
    assert rows[3]["aic"] == pytest.approx(679.055, abs=1e-3)
    assert rows[3]["bic"] == pytest.approx(708.4561, abs=1e-3)
    # decoded: a quiet start, the active 1940s in the highest state of the 3-state model
    assert len(rows[2]["viterbi"]) == 107 and (rows[2]["viterbi"][:5] == 0).all()
    assert (rows[3]["viterbi"][1942 - 1900: 1950 - 1900 + 1] == 2).all()
    assert "lowest BIC: 2 states (AIC prefers 3)" in printed
    assert "1900-1904: state 0" in printed
    assert png.read_bytes()[:8] == PNG

    # the two fits as a model-selection table and its figure: the ringed BIC optimum is 2 states
    import matplotlib.pyplot as plt

    from causalid.errors import DataError
    from causalid.hmm.plots import plot_hmm_selection

    table = pd.DataFrame({"num_states": list(rows), "bic": [r["bic"] for r in rows.values()],
                          "aic": [r["aic"] for r in rows.values()]})
    fig = plot_hmm_selection(table, path=tmp_path / "selection.png")
    (ax,) = fig.axes
    rings = [c.get_offsets()[0].tolist() for c in ax.collections if len(c.get_offsets()) == 1]
    assert [2, pytest.approx(rows[2]["bic"])] in rings and [3, pytest.approx(rows[3]["aic"])] in rings
    plt.close(fig)
    with_elpd = table.assign(elpd_loo=[-330.0, -325.0], elpd_loo_se=[8.0, 8.5])
    fig = plot_hmm_selection(with_elpd)
    assert len(fig.axes) == 2
    plt.close(fig)
    with pytest.raises(DataError, match="num_states"):
        plot_hmm_selection(table.rename(columns={"num_states": "K"}))


def test_earthquakes_reference_values_come_from_the_provenance_file():
    example = load("earthquakes")
    text = (ROOT / "causalid" / "datasets" / "earthquakes" / "PROVENANCE.md").read_text()
    for m, ref in example.PUBLISHED.items():
        line = next(ln for ln in text.splitlines() if re.match(rf"\| {m} \| free δ \|", ln))
        assert f"**{ref['neg_log_lik']:.5f}**" in line
        assert "(" + ", ".join(f"{v:.3f}" for v in ref["lambda"]) + ")" in line


@pytest.mark.slow
def test_hmm_behaviour_example_finds_the_changed_mechanism(tmp_path, capsys):
    example = load("hmm_behaviour")
    out = example.main(["--sessions", "2", "--frames", "150", "250", "--restarts", "2", "--max-iters", "25",
                        "--out", str(tmp_path)])
    printed = capsys.readouterr().out
    # the drug changes the transitions only, and the tests say so
    assert out["verdict"] == "transitions"
    tests = out["tests"].set_index("mechanism")
    assert tests.loc["transitions", "p_value"] < 0.01 and tests.loc["emissions", "p_value"] > 0.05
    assert "the transitions (cause mechanism) change" in printed
    assert out["means_error"] < 0.2 and out["trans_error"] < 0.15
    assert set(out["models"]["model"]) == {"neither", "transitions", "emissions", "both"}
    assert out["figure"] == tmp_path / "hmm_behaviour.png" and out["figure"].read_bytes()[:8] == PNG
