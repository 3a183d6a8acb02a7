"""Config loading: dotted overrides, typed values, clear errors naming the key."""
import pytest

from sciflow.config import ConfigError, load_config, parse_overrides


def test_overrides_are_typed_and_nested():
    cfg = load_config({"task": "toy2d"}, ["trainer.max_steps=7", "trainer.lr=3e-4", "flow.coupling={name: sinkhorn}"])
    assert cfg.trainer.max_steps == 7 and cfg.trainer.lr == pytest.approx(3e-4)
    assert cfg.flow.coupling == {"name": "sinkhorn"}


def test_unknown_key_is_named_with_allowed_keys():
    with pytest.raises(ConfigError, match=r"unknown key 'trainer.max_stepz'.*max_steps"):
        load_config({"task": "toy2d"}, ["trainer.max_stepz=5"])


def test_ill_typed_value_is_named():
    with pytest.raises(ConfigError, match=r"'trainer.batch_size'"):
        load_config({"task": "toy2d"}, ["trainer.batch_size=many"])
    with pytest.raises(ConfigError, match=r"'flow.cond_dropout'"):
        load_config({"task": "toy2d"}, ["flow.cond_dropout=1.5"])


def test_missing_task_and_bad_override_syntax():
    with pytest.raises(ConfigError, match="missing required key 'task'"):
        load_config({})
    with pytest.raises(ConfigError, match="key=value"):
        parse_overrides(["trainer.max_steps"])
    with pytest.raises(ConfigError, match="overrides=.*not valid YAML"):
        parse_overrides(["overrides=[data.train_splits=[train,val]]"])
    assert parse_overrides(['overrides=["data.train_splits=[train,val]"]']) == {
        "overrides": ["data.train_splits=[train,val]"]}


def test_task_section_errors_list_allowed_keys(tmp_path):
    from sciflow.training.run import build_task

    cfg = load_config({"task": "toy2d", "data": {"datasett": "moons"}})
    with pytest.raises(ConfigError, match=r"unknown key 'data.datasett'.*dataset"):
        build_task(cfg)


def test_unknown_task_lists_registered_ones():
    from sciflow.training.run import build_task

    with pytest.raises(ValueError, match="toy2d"):
        build_task(load_config({"task": "nope"}))
