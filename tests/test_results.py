"""The result contract: every result type saves, loads, summarises and plots the same way."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

import causalid  # noqa: E402
from causalid._results import Result  # noqa: E402
from causalid.design import power_analysis  # noqa: E402
from causalid.dynamics.system import InputDesign  # noqa: E402
from causalid.errors import DataError  # noqa: E402
from causalid.models import lti  # noqa: E402
from causalid.models.exchangeable import scm_bivariate_continuous  # noqa: E402
from causalid.verify.sbc import run_sbc  # noqa: E402


def _lti_data():
    system = lti.random_system(jax.random.PRNGKey(0), 2)
    law = InputDesign(np.zeros((3, 2)), np.array([[0.05, 0.5], [0.6, 0.04], [0.3, 0.9]]))
    sim = lti.simulate_lti(jax.random.PRNGKey(1), system, design=law, num_steps=300)
    return causalid.LTIData.from_arrays(sim["y"], input_mean=law.mean, input_var=law.var)


def _hmm_data():
    rng = np.random.default_rng(0)
    envs = []
    for e in range(2):
        z = np.repeat(rng.integers(0, 2, size=12), 10)
        envs.append([np.where(z == 0, -2.0, 2.0 + e) + rng.normal(size=z.size) for _ in range(2)])
    return causalid.SequenceData.from_arrays(envs, names=["y"], env_names=["a", "b"])


def _build(kind):
    if kind == "StructureResult":
        x, _ = scm_bivariate_continuous(jax.random.PRNGKey(0), 60, 2, "both")
        return causalid.discover(np.asarray(x), method="cdf")
    if kind == "StructureResult (targets)":
        rng = np.random.default_rng(0)
        x = rng.normal(size=(3, 80, 1)) + np.array([0.0, 2.0, 0.0])[:, None, None]
        y = 0.8 * x + rng.normal(size=(3, 80, 1))
        data = causalid.MultiEnvData.from_arrays(np.concatenate([x, y], -1), names=["x", "y"],
                                                 envs=["obs", "do_x", "other"])
        return causalid.discover(data, method="bayes", targets={"obs": [], "do_x": ["x"], "other": []},
                                 off_target=0.1, progress=False)
    if kind in ("LTIResult", "LTIIdentifiabilityReport"):
        data = _lti_data()
        return causalid.identify_lti(data, method="moment") if kind == "LTIResult" else causalid.check_lti(data)
    if kind in ("LTIResult-pem", "LTIComparison", "LTIOrderSelection"):
        rng = np.random.default_rng(0)
        u = rng.normal(size=(300, 1))
        y = np.convolve(u[:, 0], [0.0, 1.0, 0.6], mode="full")[:300, None] + 0.1 * rng.normal(size=(300, 1))
        data = causalid.LTIData.from_arrays(y[None], inputs=u[None])
        fit = causalid.identify_lti(data, max_order=3)
        return {"LTIResult-pem": fit, "LTIComparison": fit.compare(data)}.get(kind, fit.order_selection)
    if kind in ("HMMResult", "MechanismReport", "StateSelection", "ResidualCheck"):
        data = _hmm_data()
        if kind == "ResidualCheck":
            fit = causalid.fit_hmm(data, 2, shared="transitions", num_restarts=2, progress=False)
            return fit.pseudo_residuals(data, "forecast")
        if kind == "StateSelection":
            return causalid.select_num_states(data, (1, 2), criterion="icl", num_restarts=2, progress=False)
        if kind == "HMMResult":
            return causalid.fit_hmm(data, 2, shared="transitions", num_restarts=2, progress=False)
        return causalid.compare_mechanisms(data, 2, null="chi2", num_restarts=2, progress=False)
    if kind == "PowerAnalysis":
        return power_analysis("bivariate", envs=(30,), samples=(2,), replicates=4, progress=False)
    if kind == "Design":
        return causalid.design_lti(2, 3, var_bounds=(1e-2, 1.0), num_starts=4, num_iters=20)
    if kind == "NextDesign":
        return causalid.design_next(_lti_data(), var_bounds=(1e-2, 1.0), steps=200, num_starts=2, num_iters=10,
                                    num_samples=4)
    if kind == "InterventionDesign":
        rng = np.random.default_rng(0)
        x = rng.normal(size=(120, 1))
        data = causalid.MultiEnvData.from_arrays([np.hstack([x, 0.8 * x + rng.normal(size=(120, 1)) * 0.6])],
                                                 names=["x", "y"], envs=["obs"])
        return causalid.next_intervention(data, {"obs": []}, {"x": {"targets": ["x"], "cost": 2.0}, "y": ["y"]},
                                          samples=[30, 60], batch=2, draws=16, progress=False)
    if kind == "SBCResult":
        return run_sbc(lambda k: {"mu": jax.random.normal(k)},
                       lambda k, th: th["mu"] + jax.random.normal(k, (4,)),
                       lambda k, y, num: {"mu": y.sum() / 5 + jax.random.normal(k, (num,)) / jnp.sqrt(5.0)},
                       num_replicates=20, num_draws=9, key=0)
    raise AssertionError(kind)


KINDS = ["StructureResult", "StructureResult (targets)", "LTIResult", "LTIResult-pem", "LTIComparison",
         "LTIOrderSelection", "LTIIdentifiabilityReport", "HMMResult", "MechanismReport", "StateSelection",
         "ResidualCheck",
         "PowerAnalysis", "Design", "NextDesign", "SBCResult", "InterventionDesign"]


@pytest.fixture(scope="module", params=KINDS)
def result(request):
    return _build(request.param)


def _text(d) -> str:
    return json.dumps(d, sort_keys=True)


def test_every_result_type_follows_the_contract(result, tmp_path):
    cls = type(result)
    assert isinstance(result, Result)
    d = result.to_dict()
    assert d["format"] == f"causalid.{cls.__name__}/1"
    # save / load and to_dict / from_dict round trips keep every saved value
    path = result.save(tmp_path / "r.json")
    back = cls.load(path)
    assert _text(back.to_dict()) == _text(d)
    assert _text(cls.from_dict(json.loads(json.dumps(d))).to_dict()) == _text(d)
    assert not list(tmp_path.glob(".*.tmp"))                 # written through a renamed temporary file
    # summary: the same words from the loaded result, and str() is the summary
    text = result.summary()
    assert isinstance(text, str) and text.strip() and str(result) == text
    assert back.summary() == text
    # plot(*, ax=None, path=None) returns the figure; into a caller's axes; saved to a path
    fig = result.plot()
    assert isinstance(fig, matplotlib.figure.Figure) and fig.axes
    plt.close(fig)
    host, ax = plt.subplots(figsize=(8, 6))
    assert result.plot(ax=ax) is host
    plt.close(host)
    png = tmp_path / "r.png"
    plt.close(result.plot(path=png))
    assert png.stat().st_size > 0
    with pytest.raises(DataError, match="unknown format '.xyz'"):
        result.plot(path=tmp_path / "r.xyz")
    with pytest.raises(DataError, match="does not exist; create it first"):
        result.plot(path=tmp_path / "missing" / "r.png")
    with pytest.raises(TypeError):
        result.plot(png)                                     # ax and path are keyword-only
    frame = getattr(result, "to_frame", None)
    if frame is not None:
        assert isinstance(frame(), pd.DataFrame)


def test_load_refuses_other_and_damaged_files(result, tmp_path):
    cls = type(result)
    other = causalid.StructureResult if cls is not causalid.StructureResult else causalid.LTIResult
    (tmp_path / "other.json").write_text(json.dumps({"format": other.format_tag()}))
    with pytest.raises(DataError, match=rf"is not a causalid.{cls.__name__}/1 file \(a {other.format_tag()} file\)"):
        cls.load(tmp_path / "other.json")
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(DataError, match="it holds a JSON list, not an object"):
        cls.load(tmp_path / "list.json")
    text = json.dumps(result.to_dict())
    (tmp_path / "cut.json").write_text(text[: len(text) // 2])
    with pytest.raises(DataError, match="not valid JSON"):
        cls.load(tmp_path / "cut.json")
    (tmp_path / "bin.json").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(DataError, match="not UTF-8"):
        cls.load(tmp_path / "bin.json")
    with pytest.raises(DataError, match="does not exist"):
        cls.load(tmp_path / "absent.json")
    with pytest.raises(DataError, match="is a folder"):
        cls.load(tmp_path)


@pytest.mark.parametrize("kind, legacy", [("PowerAnalysis", "causalid.power_analysis/1"),
                                          ("SBCResult", "causalid.verify.sbc/1")])
def test_files_with_the_tags_of_earlier_versions_still_load(kind, legacy, tmp_path):
    r = _build(kind)
    d = {**r.to_dict(), "format": legacy}
    (tmp_path / "old.json").write_text(json.dumps(d))
    assert _text(type(r).load(tmp_path / "old.json").to_dict()) == _text(r.to_dict())


def test_results_saved_before_the_contract_load_their_untagged_identifiability_report(tmp_path):
    r = _build("LTIResult")
    d = r.to_dict()
    del d["report"]["format"]                     # reports were nested without a tag
    (tmp_path / "old.json").write_text(json.dumps(d))
    back = causalid.LTIResult.load(tmp_path / "old.json")
    assert back.report.identifiable == r.report.identifiable
