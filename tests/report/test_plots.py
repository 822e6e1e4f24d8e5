"""Figures: written as PNG and SVG, labelled axes and legends, log length axis, failures marked."""

import matplotlib.image
import pandas as pd
import pytest

from lizard_bench.report.loading import records_frame, training_frame
from lizard_bench.report.plots import (
    SeriesStyle,
    format_length,
    heatmap_figure,
    memory_figure,
    task_scores_figure,
    throughput_figure,
    training_loss_figure,
    write_plots,
)
from lizard_bench.report.runs import read_runs


@pytest.fixture(scope="module")
def data(fixture_run):
    runs = read_runs([fixture_run])
    frame = records_frame(runs)
    return frame, training_frame(runs, frame), SeriesStyle(frame)


def labelled(figure):
    axes = [ax for ax in figure.axes if ax.get_visible() and ax.get_label() != "<colorbar>"]
    assert axes
    for ax in axes:
        assert ax.get_xlabel() or ax.get_xticklabels(), "x axis unlabelled"
        assert ax.get_ylabel(), "y axis unlabelled"
    return axes


def test_every_figure_is_written_in_both_formats(data, tmp_path):
    frame, training, _ = data
    written = write_plots(frame, training, tmp_path)
    assert set(written) == {"task_scores", "throughput", "memory", "heatmap_passkey", "heatmap_needle",
                            "training_loss"}
    for paths in written.values():
        assert paths["svg"].read_text().lstrip().startswith("<?xml")
        image = matplotlib.image.imread(paths["png"])
        assert image.shape[0] > 400 and image.shape[1] > 600  # 200 dpi: readable in print


def test_throughput_uses_a_log_length_axis_and_marks_oom(data):
    frame, _, style = data
    figure = throughput_figure(frame, style)
    axes = labelled(figure)
    assert [ax.get_title() for ax in axes] == ["Prefill throughput", "Decode throughput"]
    for ax in axes:
        assert ax.get_xscale() == "log"
        assert "log scale" in ax.get_xlabel()
        assert [t.get_text() for t in ax.get_xticklabels()] == ["512", "1K", "2K", "4K", "8K"]
        assert "OOM" in [t.get_text() for t in ax.texts]
    legend = [t.get_text() for t in figure.legends[0].get_texts()]
    assert legend[0].endswith("softmax") and len(legend) == 3


def test_memory_in_mib_per_quantity(data):
    frame, _, style = data
    axes = labelled(memory_figure(frame, style))
    assert [ax.get_title() for ax in axes] == ["Cache", "Prefill peak memory"]
    assert all("MiB" in ax.get_ylabel() for ax in axes)


def test_the_cache_is_shown_once_and_timed_points_carry_their_range(data):
    """decode and memory both record the cache after the same prefill; repeats' min/max become error bars."""
    frame, _, style = data
    cache = frame[(frame["base_metric"] == "cache_bytes") & (frame["task"] == "memory")].assign(task="decode")
    titles = [ax.get_title() for ax in labelled(memory_figure(pd.concat([frame, cache]), style))]
    assert titles.count("Cache") == 1
    throughput = labelled(throughput_figure(frame, style))
    assert any(len(ax.containers) for ax in throughput), "error bars from details.min/max"


def test_points_measured_on_a_busy_machine_get_a_hollow_ring(data):
    frame, _, style = data
    quiet = labelled(throughput_figure(frame, style))
    busy = frame.copy()
    chosen = (busy["task"] == "decode") & (busy["status"] == "ok")
    busy.loc[chosen, "details"] = [{**d, "noisy": True} for d in busy.loc[chosen, "details"]]
    axes = labelled(throughput_figure(busy, style))
    assert len(axes[1].collections) > len(quiet[1].collections), "rings drawn on the decode panel"
    assert sum("busy machine" in t.get_text() for t in axes[1].texts) == 1, "one note, though two series are ringed"
    assert not any("busy machine" in t.get_text() for t in axes[0].texts)


def test_task_scores_put_accuracy_and_perplexity_on_separate_axes(data):
    frame, _, style = data
    figure = task_scores_figure(frame, style)
    axes = labelled(figure)
    assert [ax.get_title() for ax in axes] == ["Accuracy", "Corpus perplexity"]
    assert "%" in axes[0].get_ylabel() and "lower is better" in axes[1].get_ylabel()
    assert {"error", "unavailable"} <= {t.get_text().strip() for t in axes[0].texts}


def test_heatmaps_and_training_curves(data):
    frame, training, style = data
    heatmap = heatmap_figure(frame, "passkey")
    axes = [ax for ax in heatmap.axes if ax.get_visible() and ax.get_label() != "<colorbar>"]
    assert [ax.get_title() for ax in axes][0].endswith("softmax")
    assert any(t.get_text() == "timeout" for t in axes[0].texts)
    assert heatmap_figure(frame, "no_such_probe") is None
    loss = training_loss_figure(training, style)
    assert [ax.get_title() for ax in labelled(loss)] == ["Stage 1: attention transfer", "Stage 2: alignment (LoRA)"]
    assert loss.axes[0].get_yscale() == "log"


def test_figures_without_data_are_skipped(data, tmp_path):
    frame, training, _ = data
    written = write_plots(frame[frame["task"] == "corpus_perplexity"], training.iloc[0:0], tmp_path)
    assert set(written) == {"task_scores"}


@pytest.mark.parametrize(("tokens", "text"), [(512, "512"), (2048, "2K"), (32768, "32K"), (1000, "1000")])
def test_length_labels(tokens, text):
    assert format_length(tokens) == text
