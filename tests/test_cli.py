"""The command line: every command on small files, and every way its input can be wrong.

A failed command must exit with status 2, name the offending file on stderr, and leave
no output behind (not even a temporary file).
"""

import os
import subprocess
import sys

import joblib
import numpy as np
import pytest

from skarchetype import ArchetypalAnalysis, cli
from skarchetype._io import atomic_output, atomic_outputs
from skarchetype.cli import main, parse_k_range
from skarchetype.datasets import make_archetypal_data


@pytest.fixture
def X():
    data, _, _ = make_archetypal_data(120, 5, 3, noise=0.01, random_state=0)
    return data


@pytest.fixture
def data_file(tmp_path, X):
    path = tmp_path / "X.npy"
    np.save(path, X)
    return path


@pytest.fixture
def model_file(tmp_path, data_file):
    path = tmp_path / "model.joblib"
    assert main(["fit", str(data_file), "--n-archetypes", "3", "--out", str(path)]) == 0
    return path


def files_in(folder):
    return sorted(os.listdir(folder))


# --------------------------------------------------------------------------- success


def test_fit_saves_the_estimator_the_library_would_fit(tmp_path, data_file, X):
    model_path = tmp_path / "model.joblib"
    status = main(["fit", str(data_file), "-k", "3", "--seed", "4", "--out", str(model_path)])
    assert status == 0
    model = joblib.load(model_path)
    expected = ArchetypalAnalysis(n_archetypes=3, random_state=4).fit(X)
    assert isinstance(model, ArchetypalAnalysis)
    np.testing.assert_allclose(model.archetypes_, expected.archetypes_)


def test_fit_reports_the_explained_variance(tmp_path, data_file, capsys):
    main(["fit", str(data_file), "-k", "3", "--out", str(tmp_path / "m.joblib")])
    assert "explained variance" in capsys.readouterr().out


def test_fit_verbose_shows_progress(tmp_path, data_file, capsys):
    quiet_path, verbose_path = tmp_path / "quiet.joblib", tmp_path / "verbose.joblib"
    main(["fit", str(data_file), "-k", "3", "--out", str(quiet_path)])
    quiet = capsys.readouterr().out
    main(["fit", str(data_file), "-k", "3", "--out", str(verbose_path), "--verbose"])
    verbose = capsys.readouterr()
    assert len((verbose.out + verbose.err).splitlines()) > len(quiet.splitlines())


@pytest.mark.parametrize("header", [True, False], ids=["header", "no-header"])
def test_fit_reads_csv(tmp_path, X, header):
    path = tmp_path / "X.csv"
    np.savetxt(path, X, delimiter=",", header="a,b,c,d,e" if header else "", comments="")
    assert main(["fit", str(path), "-k", "3", "--out", str(tmp_path / "m.joblib")]) == 0
    assert joblib.load(tmp_path / "m.joblib").n_features_in_ == 5


def test_fit_reads_the_only_array_of_an_npz(tmp_path, X):
    np.savez(tmp_path / "X.npz", features=X)
    model_path = tmp_path / "m.joblib"
    assert main(["fit", str(tmp_path / "X.npz"), "-k", "2", "--out", str(model_path)]) == 0
    assert joblib.load(model_path).n_features_in_ == X.shape[1]


def test_fit_reads_the_named_array_of_an_npz(tmp_path, X):
    np.savez(tmp_path / "X.npz", features=X, labels=np.arange(len(X)))
    args = ["fit", str(tmp_path / "X.npz"), "--key", "features", "-k", "2"]
    assert main([*args, "--out", str(tmp_path / "m.joblib")]) == 0
    assert joblib.load(tmp_path / "m.joblib").n_features_in_ == X.shape[1]


@pytest.mark.parametrize("suffix", [".npy", ".csv"])
def test_transform_writes_the_models_coefficients(tmp_path, data_file, model_file, X, suffix):
    out = tmp_path / f"S{suffix}"
    assert main(["transform", str(model_file), str(data_file), "--out", str(out)]) == 0
    coefficients = np.load(out) if suffix == ".npy" else np.loadtxt(out, delimiter=",")
    expected = joblib.load(model_file).transform(X)
    np.testing.assert_allclose(coefficients, expected, rtol=1e-6, atol=1e-9)


def test_sweep_prints_ev_and_stability_per_k_with_the_elbow(data_file, capsys):
    assert main(["sweep", str(data_file), "--k", "2:4", "--seeds", "2"]) == 0
    table = capsys.readouterr().out
    assert "elbow" in table
    assert [line.split()[0] for line in table.splitlines()[1:]] == ["2", "3", "4"]


def test_sweep_saves_its_table_and_plot(tmp_path, data_file):
    folder = tmp_path / "sweep"
    assert main(["sweep", str(data_file), "--k", "2,3", "--seeds", "2", "--out", str(folder)]) == 0
    table = np.loadtxt(folder / "sweep.csv", delimiter=",", skiprows=1)
    assert table[:, 0].tolist() == [2, 3]
    assert (folder / "sweep.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


@pytest.mark.parametrize(
    ("text", "ks"), [("2:5", [2, 3, 4, 5]), ("2:8:3", [2, 5, 8]), ("8,2,4,4", [2, 4, 8])]
)
def test_k_range_syntax(text, ks):
    assert parse_k_range(text) == ks


def test_help_runs_as_a_module():
    result = subprocess.run(
        [sys.executable, "-m", "skarchetype", "--help"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0
    for command in ("demo", "fit", "transform", "sweep"):
        assert command in result.stdout


def test_no_command_is_a_usage_error(capsys):
    assert main([]) == 2
    assert "usage" in capsys.readouterr().err


# --------------------------------------------------------------------------- input errors


def write_bad_input(folder, kind):
    """A data file that is wrong in the way ``kind`` says; returns its path."""
    path = folder / {"csv-text": "bad.csv", "csv-empty": "bad.csv", "txt": "bad.txt"}.get(
        kind, "bad.npy" if kind != "npz-several" else "bad.npz"
    )
    if kind == "one-d":
        np.save(path, np.arange(10.0))
    elif kind == "three-d":
        np.save(path, np.zeros((4, 3, 2)))
    elif kind == "strings":
        np.save(path, np.array([["a", "b"], ["c", "d"]]))
    elif kind == "nan":
        np.save(path, np.array([[1.0, 2.0], [np.nan, 0.0], [3.0, 1.0]]))
    elif kind == "corrupt":
        path.write_bytes(b"this is not an npy file")
    elif kind == "csv-text":
        path.write_text("1,2,3\n4,five,6\n")
    elif kind == "csv-empty":
        path.write_text("a,b,c\n")
    elif kind == "npz-several":
        np.savez(path, first=np.zeros((4, 2)), second=np.ones((4, 2)))
    elif kind == "txt":
        path.write_text("1 2\n3 4\n")
    return path


BAD_INPUTS = {
    "one-d": "shape (10,)",
    "three-d": "shape (4, 3, 2)",
    "strings": "not numbers",
    "nan": "NaN",
    "corrupt": "could not be read",
    "csv-text": "five",
    "csv-empty": "no rows",
    "npz-several": "--key",
    "txt": ".npy, .csv, .npz",
}


@pytest.mark.parametrize("kind", sorted(BAD_INPUTS))
def test_fit_rejects_bad_data_and_writes_nothing(tmp_path, capsys, kind):
    path = write_bad_input(tmp_path, kind)
    before = files_in(tmp_path)
    status = main(["fit", str(path), "-k", "2", "--out", str(tmp_path / "m.joblib")])
    error = capsys.readouterr().err
    assert status == 2
    assert str(path) in error and BAD_INPUTS[kind] in error
    assert files_in(tmp_path) == before


def assert_failed_cleanly(status, capsys, folder, before, *needles):
    error = capsys.readouterr().err
    assert status == 2
    for needle in needles:
        assert needle in error
    assert files_in(folder) == before


def test_missing_data_file(tmp_path, capsys):
    status = main(["fit", str(tmp_path / "nope.npy"), "-k", "2", "--out", str(tmp_path / "m")])
    assert_failed_cleanly(status, capsys, tmp_path, [], "nope.npy", "no such file")


def test_npz_key_that_does_not_exist(tmp_path, capsys, X):
    np.savez(tmp_path / "X.npz", features=X)
    before = files_in(tmp_path)
    args = ["fit", str(tmp_path / "X.npz"), "--key", "feats", "-k", "2"]
    status = main([*args, "--out", str(tmp_path / "m.joblib")])
    assert_failed_cleanly(status, capsys, tmp_path, before, "feats", "features")


def test_more_archetypes_than_samples(tmp_path, capsys, data_file):
    before = files_in(tmp_path)
    status = main(["fit", str(data_file), "-k", "500", "--out", str(tmp_path / "m.joblib")])
    assert_failed_cleanly(status, capsys, tmp_path, before, "X.npy", "120 rows")


def test_output_folder_that_does_not_exist(tmp_path, capsys, data_file):
    before = files_in(tmp_path)
    out = tmp_path / "missing" / "m.joblib"
    status = main(["fit", str(data_file), "-k", "2", "--out", str(out)])
    assert_failed_cleanly(status, capsys, tmp_path, before, "does not exist", "mkdir")


def test_unavailable_device(tmp_path, capsys, data_file):
    before = files_in(tmp_path)
    args = ["fit", str(data_file), "-k", "2", "--device", "tpu"]
    status = main([*args, "--out", str(tmp_path / "m.joblib")])
    assert_failed_cleanly(status, capsys, tmp_path, before, "--device 'tpu'")


def test_transform_with_the_wrong_number_of_features(tmp_path, capsys, model_file):
    np.save(tmp_path / "wide.npy", np.zeros((4, 7)))
    before = files_in(tmp_path)
    args = ["transform", str(model_file), str(tmp_path / "wide.npy")]
    status = main([*args, "--out", str(tmp_path / "S.npy")])
    assert_failed_cleanly(status, capsys, tmp_path, before, "wide.npy", "7 columns", "5")


@pytest.mark.parametrize(
    ("content", "needle"),
    [(b"garbage, not a pickle", "could not be read"), ({"not": "a model"}, "not a fitted model")],
    ids=["garbage", "not-a-model"],
)
def test_transform_with_an_unreadable_model(tmp_path, capsys, data_file, content, needle):
    model_path = tmp_path / "model.joblib"
    if isinstance(content, bytes):
        model_path.write_bytes(content)
    else:
        joblib.dump(content, model_path)
    before = files_in(tmp_path)
    status = main(["transform", str(model_path), str(data_file), "--out", str(tmp_path / "S.npy")])
    assert_failed_cleanly(status, capsys, tmp_path, before, "model.joblib", needle)


def test_transform_with_a_missing_model(tmp_path, capsys, data_file):
    before = files_in(tmp_path)
    args = ["transform", str(tmp_path / "m.joblib"), str(data_file)]
    status = main([*args, "--out", str(tmp_path / "S.npy")])
    assert_failed_cleanly(status, capsys, tmp_path, before, "m.joblib", "skarchetype fit")


def test_transform_output_of_an_unknown_kind(tmp_path, capsys, data_file, model_file):
    before = files_in(tmp_path)
    out = str(tmp_path / "S.txt")
    status = main(["transform", str(model_file), str(data_file), "--out", out])
    assert_failed_cleanly(status, capsys, tmp_path, before, "S.txt", ".npy, .csv")


def test_sweep_with_a_bad_k_range(tmp_path, capsys, data_file):
    before = files_in(tmp_path)
    status = main(["sweep", str(data_file), "--k", "5:x", "--out", str(tmp_path / "sweep")])
    assert_failed_cleanly(status, capsys, tmp_path, before, "--k '5:x'", "START:STOP")


def test_a_non_positive_count_is_a_usage_error(tmp_path, capsys, data_file):
    status = main(["fit", str(data_file), "-k", "0", "--out", str(tmp_path / "m.joblib")])
    assert_failed_cleanly(status, capsys, tmp_path, ["X.npy"], "positive integer")


# --------------------------------------------------------------------------- atomic files


def test_a_failure_while_writing_leaves_no_file(tmp_path):
    with pytest.raises(RuntimeError), atomic_output(tmp_path / "out.npy") as handle:
        handle.write(b"half of it")
        raise RuntimeError("interrupted")
    assert files_in(tmp_path) == []


def test_a_failure_while_writing_keeps_the_previous_file(tmp_path):
    (tmp_path / "out.npy").write_bytes(b"previous")
    with pytest.raises(RuntimeError), atomic_output(tmp_path / "out.npy") as handle:
        handle.write(b"half of it")
        raise RuntimeError("interrupted")
    assert (tmp_path / "out.npy").read_bytes() == b"previous"
    assert files_in(tmp_path) == ["out.npy"]


def test_a_failed_model_save_leaves_no_file(tmp_path, capsys, data_file, monkeypatch):
    def dump_half(model, handle):
        handle.write(b"half a model")
        raise OSError("disk full")

    monkeypatch.setattr(joblib, "dump", dump_half)
    before = files_in(tmp_path)
    status = main(["fit", str(data_file), "-k", "2", "--out", str(tmp_path / "m.joblib")])
    assert status == 1
    assert "disk full" in capsys.readouterr().err
    assert files_in(tmp_path) == before


def test_several_outputs_appear_together_or_not_at_all(tmp_path):
    (tmp_path / "a.csv").write_bytes(b"previous a")
    with pytest.raises(RuntimeError), atomic_outputs(tmp_path / "a.csv", tmp_path / "b.png") as (
        first,
        second,
    ):
        first.write(b"new a")
        second.write(b"half of b")
        raise RuntimeError("interrupted")
    assert (tmp_path / "a.csv").read_bytes() == b"previous a"
    assert files_in(tmp_path) == ["a.csv"]


def test_the_report_and_the_command_line_share_one_io_module():
    import skarchetype.demo._report as report

    assert report.atomic_output is atomic_output
    assert cli.atomic_output is atomic_output


# --------------------------------------------------------------------------- hostile input


def fail_if_fitted(monkeypatch):
    """Make any fit fail the test: the command must refuse its input before fitting."""

    def fit(self, X, y=None):
        raise AssertionError("a fit ran before the input was validated")

    monkeypatch.setattr(ArchetypalAnalysis, "fit", fit)


def test_a_folder_given_as_the_data_file_is_reported_as_a_folder(tmp_path, capsys):
    (tmp_path / "data.npy").mkdir()
    status = main(["fit", str(tmp_path / "data.npy"), "-k", "2", "--out", str(tmp_path / "m")])
    assert_failed_cleanly(status, capsys, tmp_path, ["data.npy"], "data.npy is a folder")


def test_a_folder_given_as_the_model_is_reported_as_a_folder(tmp_path, capsys, data_file):
    (tmp_path / "model.joblib").mkdir()
    before = files_in(tmp_path)
    args = ["transform", str(tmp_path / "model.joblib"), str(data_file)]
    status = main([*args, "--out", str(tmp_path / "S.npy")])
    assert_failed_cleanly(status, capsys, tmp_path, before, "model.joblib is a folder")


@pytest.mark.parametrize("header", [True, False], ids=["header", "no-header"])
def test_a_csv_with_a_byte_order_mark_reads_as_without_it(tmp_path, X, header):
    """Excel writes UTF-8 with a byte-order mark; it must not hide the first row or column."""
    text = ("a,b,c,d,e\n" if header else "") + "\n".join(
        ",".join(f"{value:.17g}" for value in row) for row in X
    )
    (tmp_path / "X.csv").write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    out = tmp_path / "m.joblib"
    assert main(["fit", str(tmp_path / "X.csv"), "-k", "3", "--out", str(out)]) == 0
    expected = ArchetypalAnalysis(n_archetypes=3, random_state=0).fit(X)
    np.testing.assert_allclose(joblib.load(out).archetypes_, expected.archetypes_)


@pytest.mark.parametrize("seed", ["-1", str(2**32), str(10**30), "1.5", "seven"])
def test_a_seed_outside_0_to_2_32_is_a_usage_error(tmp_path, capsys, data_file, seed, monkeypatch):
    fail_if_fitted(monkeypatch)
    before = files_in(tmp_path)
    args = ["fit", str(data_file), "-k", "2", "--seed", seed]
    status = main([*args, "--out", str(tmp_path / "m.joblib")])
    error = capsys.readouterr().err
    assert status == 2
    assert "--seed" in error and "Traceback" not in error
    assert files_in(tmp_path) == before


@pytest.mark.parametrize("device", ["meta", "cuda:99"])
def test_a_device_the_command_line_cannot_use_is_one_line(tmp_path, capsys, data_file, device):
    before = files_in(tmp_path)
    args = ["fit", str(data_file), "-k", "2", "--device", device]
    status = main([*args, "--out", str(tmp_path / "m.joblib")])
    error = capsys.readouterr().err
    assert status == 2
    assert error.count("\n") == 1 and f"--device {device!r}" in error
    assert files_in(tmp_path) == before


def test_a_huge_k_range_is_refused_at_once(tmp_path, capsys, data_file, monkeypatch):
    fail_if_fitted(monkeypatch)
    before = files_in(tmp_path)
    status = main(["sweep", str(data_file), "--k", "2:1000000000"])
    assert_failed_cleanly(status, capsys, tmp_path, before, "--k '2:1000000000'", "120 rows")


def test_a_k_list_beyond_the_samples_names_the_option_sweep_has(
    tmp_path, capsys, data_file, monkeypatch
):
    fail_if_fitted(monkeypatch)
    before = files_in(tmp_path)
    status = main(["sweep", str(data_file), "--k", "2,500"])
    error = capsys.readouterr().err
    assert status == 2 and "--k" in error and "--n-archetypes" not in error
    assert files_in(tmp_path) == before


def test_parse_k_range_bounds_a_huge_range_without_listing_it():
    with pytest.raises(cli.CommandError, match="only 120 rows"):
        parse_k_range("2:1000000000000000", max_k=120, data="X.npy")


def test_a_decreasing_k_range_gives_the_same_ks():
    assert parse_k_range("6:2:-2") == [2, 4, 6]


def test_a_sweep_too_big_for_memory_is_refused_before_fitting(
    tmp_path, capsys, data_file, monkeypatch
):
    fail_if_fitted(monkeypatch)
    monkeypatch.setattr(cli, "_physical_memory", lambda: 2**20)
    status = main(["sweep", str(data_file), "--k", "2:100", "--seeds", "5"])
    error = capsys.readouterr().err
    assert status == 2 and "--seeds" in error and "GiB" in error


def test_a_failed_sweep_keeps_the_previous_table(tmp_path, capsys, data_file, monkeypatch):
    folder = tmp_path / "sweep"
    folder.mkdir()
    (folder / "sweep.csv").write_text("previous")

    def broken_figure(selection):
        raise OSError("no space left for the figure")

    monkeypatch.setattr(cli, "_sweep_figure", broken_figure)
    status = main(["sweep", str(data_file), "--k", "2,3", "--seeds", "1", "--out", str(folder)])
    assert status == 1
    assert (folder / "sweep.csv").read_text() == "previous"
    assert files_in(folder) == ["sweep.csv"]


def test_sweep_output_paths_are_checked_before_any_fit(tmp_path, capsys, data_file, monkeypatch):
    fail_if_fitted(monkeypatch)
    folder = tmp_path / "sweep"
    (folder / "sweep.png").mkdir(parents=True)
    status = main(["sweep", str(data_file), "--k", "2,3", "--out", str(folder)])
    error = capsys.readouterr().err
    assert status == 2 and "sweep.png is a folder" in error


def test_sweep_out_below_a_file_is_refused_before_any_fit(tmp_path, capsys, data_file, monkeypatch):
    fail_if_fitted(monkeypatch)
    status = main(["sweep", str(data_file), "--k", "2,3", "--out", str(data_file / "sweep")])
    error = capsys.readouterr().err
    assert status == 2 and "X.npy is a file" in error


def test_key_for_a_file_that_is_not_npz(tmp_path, capsys, data_file, monkeypatch):
    fail_if_fitted(monkeypatch)
    before = files_in(tmp_path)
    args = ["fit", str(data_file), "--key", "features", "-k", "2"]
    status = main([*args, "--out", str(tmp_path / "m.joblib")])
    assert_failed_cleanly(status, capsys, tmp_path, before, "--key 'features'", ".npz")


def test_an_output_that_would_overwrite_the_data_is_refused(tmp_path, capsys, data_file, X):
    status = main(["fit", str(data_file), "-k", "2", "--out", str(data_file)])
    assert_failed_cleanly(status, capsys, tmp_path, ["X.npy"], "overwrite the input")
    np.testing.assert_array_equal(np.load(data_file), X)


def test_demo_out_that_is_a_file_is_refused_before_training(tmp_path, capsys, monkeypatch):
    import skarchetype.demo

    def run_demo(*args, **kwargs):
        raise AssertionError("the demo ran before its --out was validated")

    monkeypatch.setattr(skarchetype.demo, "run_demo", run_demo)
    (tmp_path / "report").write_text("a file")
    status = main(["demo", "--quick", "--out", str(tmp_path / "report")])
    assert_failed_cleanly(status, capsys, tmp_path, ["report"], "is a file")


def test_input_the_library_refuses_is_one_line_with_status_2(
    tmp_path, capsys, data_file, monkeypatch
):
    def fit(self, X, y=None):
        raise ValueError("X is unusable in some way the library detects")

    monkeypatch.setattr(ArchetypalAnalysis, "fit", fit)
    before = files_in(tmp_path)
    status = main(["fit", str(data_file), "-k", "2", "--out", str(tmp_path / "m.joblib")])
    error = capsys.readouterr().err
    assert status == 2 and error.count("\n") == 1 and "unusable" in error
    assert files_in(tmp_path) == before
