"""Where tasks run does not change what they compute: serial, local worker processes and a
real (local) Dask cluster give byte-identical results.json."""
import pytest

from emotionnas.cli import demo_config
from emotionnas.training.crossval import run_crossval

pytestmark = pytest.mark.slow


def _cfg(demo_root, cache, **over):
    cfg = demo_config(str(demo_root), str(cache))
    cfg.max_folds = 2
    cfg.selection.budget = 6
    for k, v in over.items():
        setattr(cfg, k, v)
    return cfg


@pytest.fixture(scope="module")
def serial(tmp_path_factory, demo_root):
    tmp = tmp_path_factory.mktemp("exec")
    run_crossval(_cfg(demo_root, tmp / "cache", workers=1), tmp / "serial", progress=False, log=lambda *a: None)
    return tmp, (tmp / "serial" / "results.json").read_bytes()


def test_local_worker_processes_equal_serial(serial, demo_root):
    tmp, expected = serial
    run_crossval(_cfg(demo_root, tmp / "cache", workers=2), tmp / "local2", progress=False, log=lambda *a: None)
    assert (tmp / "local2" / "results.json").read_bytes() == expected


def test_dask_cluster_equals_serial(serial, demo_root):
    distributed = pytest.importorskip("distributed")
    tmp, expected = serial
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None) as cluster:
        address = cluster.scheduler_address.removeprefix("tcp://")
        cfg = _cfg(demo_root, tmp / "cache", executor=f"dask://{address}")
        run_crossval(cfg, tmp / "dask", progress=False, log=lambda *a: None)
    assert (tmp / "dask" / "results.json").read_bytes() == expected


def test_unreachable_scheduler_is_a_one_line_error(demo_root, tmp_path):
    pytest.importorskip("distributed")
    from emotionnas.errors import ConfigError
    from emotionnas.training.executor import make_executor
    with pytest.raises(ConfigError, match="cannot reach the scheduler"):
        make_executor("dask://127.0.0.1:9", 1)
