"""Where a long run is (training/progress.py): stage k of n and a time-left estimate from the tasks'
measured cost in utterance-epochs."""
from emotionnas.config import SelectionConfig
from emotionnas.training.progress import RunProgress, work_units
from emotionnas.training.strategies import RandomSearch, SuccessiveHalving


def test_stages_are_counted_and_the_estimate_comes_from_measured_cost():
    lines = []
    p = RunProgress(["cell searches", "selection", "refits"], lines.append, t_start=0.0)
    assert p.label() == ""
    p.begin("cell searches", 3000.0)
    assert p.label() == "[1/3] " and "stage 1 of 3: cell searches" in lines[-1]
    assert "estimated once the first training tasks have finished" in lines[-1]
    p.measured(1000.0, 20.0, tasks=4)   # 20 ms per utterance-epoch
    p.begin("refits", 6000.0)
    assert p.label() == "[3/3] " and "stage 3 of 3: refits" in lines[-1]
    assert "training left ~ 2 min at most" in lines[-1] and "20.00 ms per utterance-epoch" in lines[-1]
    assert "measured on 4 task(s)" in lines[-1]
    p.measured(0.0, 5.0, tasks=1)       # a cell search (no size) does not change the rate
    assert p.seconds_per_unit() == 0.02


def test_work_units_of_a_training_task():
    class Cfg:
        epochs = 20

    class Task:
        train, epochs, train_cfg = tuple(range(50)), None, Cfg()
    assert work_units(Task()) == 1000.0
    Task.epochs = 7
    assert work_units(Task()) == 350.0
    assert work_units(object()) == 0.0  # a cell search


def test_strategies_plan_their_trials():
    cfg = SelectionConfig(budget=16, eta=3, first_rung_folds=1, seeds=1)
    assert SuccessiveHalving(cfg, 0).planned_trials(16, 3) == 16 * 1 + 6 * 2
    assert RandomSearch(cfg, 0).planned_trials(16, 3) == 6 * 3
    assert RandomSearch(cfg, 0).planned_trials(4, 3) == 4 * 3


def test_a_run_says_which_stage_it_is_in_and_how_long_is_left(tiny_run):
    run_dir, _ = tiny_run
    log = (run_dir.parent / "log.txt").read_text()
    for k, stage in enumerate(["cell searches", "selection", "refits", "final model"], 1):
        assert f"stage {k} of 4: {stage} (elapsed" in log
    refits = next(line for line in log.splitlines() if line.startswith("stage 3 of 4"))
    assert "training left ~" in refits and "ms per utterance-epoch" in refits  # measured by then


def test_the_first_estimate_comes_from_an_earlier_run_with_the_same_encoder_and_workers(tmp_path):
    import os

    from emotionnas.config import RunConfig
    from emotionnas.training.progress import SPEED_FILE, load_speed, save_speed
    cfg = RunConfig()
    cfg.features.cache_dir = str(tmp_path)
    done = RunProgress(["selection"], lambda line: None, t_start=0.0)
    done.measured(5000.0, 50.0, tasks=12)
    save_speed(cfg, done)
    assert load_speed(cfg) == 0.01
    other = RunConfig(workers=1)
    other.features.cache_dir = str(tmp_path)
    assert load_speed(other) is None  # another number of workers: no rate
    lines = []
    RunProgress(["selection"], lines.append, t_start=0.0, earlier=load_speed(cfg)).begin("selection", 8000.0)
    assert "training left ~ 80 s at most" in lines[-1] and "earlier run" in lines[-1]
    path = tmp_path / SPEED_FILE
    for junk in ("[1, 2]", '{"x": 1e9}', "{" * 5000):  # not ours: ignored, never trusted
        path.write_text(junk)
        assert load_speed(cfg) is None
    path.unlink()
    os.mkfifo(path)  # a FIFO in a shared cache must not block the run
    assert load_speed(cfg) is None
    save_speed(cfg, done, log=lambda line: None)  # and writing over it does not fail the run


def test_a_cache_that_cannot_be_written_costs_only_the_next_estimate(tmp_path):
    from emotionnas.config import RunConfig
    from emotionnas.training.progress import save_speed
    cfg = RunConfig()
    cfg.features.cache_dir = str(tmp_path)
    (tmp_path / "measured_speed.json").mkdir()  # cannot be replaced by a file
    done = RunProgress(["selection"], lambda line: None, t_start=0.0)
    done.measured(5000.0, 50.0, tasks=12)
    said = []
    save_speed(cfg, done, log=said.append)
    assert said and "not written" in said[0]


def test_a_long_batch_says_the_time_left_from_its_finished_tasks():
    lines = []
    p = RunProgress(["selection", "refits"], lines.append, t_start=0.0)
    p.begin("selection", 10000.0)
    p.last_line = 0.0                 # the last line was long ago
    p.partial(1000.0, 10.0, tasks=3)  # too few tasks yet: nothing said
    assert len(lines) == 1
    p.partial(2000.0, 20.0, tasks=6)  # 10 ms per utterance-epoch so far, 8000 left
    assert "continues" in lines[-1] and "training left ~ 80 s" in lines[-1] and "6 task(s)" in lines[-1]
    p.partial(3000.0, 30.0, tasks=9)  # within a minute of the last line: quiet
    assert len(lines) == 2
