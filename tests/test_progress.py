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
    assert "time left ~ 2 min" in lines[-1] and "20.00 ms per utterance-epoch" in lines[-1]
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
    assert "time left ~" in refits and "ms per utterance-epoch" in refits  # measured by then


def test_the_first_estimate_comes_from_an_earlier_run_on_this_machine(tmp_path):
    from emotionnas.training.progress import load_speed, save_speed
    done = RunProgress(["selection"], lambda line: None, t_start=0.0)
    done.measured(5000.0, 50.0, tasks=12)
    save_speed(tmp_path, 2, done)
    assert load_speed(tmp_path, 2) == 0.01 and load_speed(tmp_path, 1) is None
    lines = []
    RunProgress(["selection"], lines.append, t_start=0.0, earlier=load_speed(tmp_path, 2)).begin("selection", 8000.0)
    assert "time left ~ 80 s" in lines[-1] and "earlier run on this machine" in lines[-1]
    (tmp_path / "measured_speed.json").write_text("[1, 2]")  # not ours: ignored, never trusted
    assert load_speed(tmp_path, 2) is None
    (tmp_path / "measured_speed.json").write_text('{"2": 1e9}')
    assert load_speed(tmp_path, 2) is None
