"""What each etcd version can do, in the one place that knows (`platform.release.EtcdRelease`)."""

from __future__ import annotations

import pytest

from etcdrescue.platform.release import EtcdRelease


@pytest.mark.parametrize(("version", "etcdutl", "ctl_restores", "serializable", "keeps_members"), [
    ("3.4.23", False, True, False, True),
    ("3.5.1", True, True, False, True),
    ("3.5.24", True, True, False, True),
    ("3.5.25", True, True, False, False),
    ("v3.5.36", True, True, False, False),
    ("3.6.5", True, False, True, True),
    ("3.6.6", True, False, True, False),
    ("3.6.17-0", True, False, True, False),
    ("3.7.4", True, False, True, False),
    ("", False, True, False, False),
])
def test_what_a_version_can_do(version: str, etcdutl: bool, ctl_restores: bool, serializable: bool,
                               keeps_members: bool) -> None:
    r = EtcdRelease(version)
    assert (r.has_etcdutl, r.etcdctl_restores, r.lists_members_serializably, r.force_flag_keeps_members) == (
        etcdutl, ctl_restores, serializable, keeps_members)


def test_data_of_a_newer_minor_does_not_start_an_older_etcd() -> None:
    assert not EtcdRelease("3.6.17").starts_on(EtcdRelease("3.7.0"))
    assert EtcdRelease("3.7.4").starts_on(EtcdRelease("3.6.0"))
    assert EtcdRelease("3.6.17").starts_on(EtcdRelease("3.6.0"))
    assert EtcdRelease("3.6.17").starts_on(EtcdRelease("")), "a snapshot without a storage version (<= 3.5)"


def test_flag_names_by_minor() -> None:
    assert EtcdRelease("3.7.4").refuses_experimental_flags and not EtcdRelease("3.6.17").refuses_experimental_flags
    assert EtcdRelease("3.5.36").lacks_36_flag_names and not EtcdRelease("3.6.0").lacks_36_flag_names
    assert not EtcdRelease("unknown").lacks_36_flag_names
    assert EtcdRelease("3.5.1").same_minor(EtcdRelease("v3.5.36")) and not EtcdRelease("3.5.1").same_minor(
        EtcdRelease("3.6.0"))


def test_the_36_forms_of_35_flags_merge_the_feature_gates() -> None:
    from etcdrescue.platform.release import flags_for_36

    flags = {"experimental-initial-corrupt-check": "true", "experimental-watch-progress-notify-interval": "5s",
             "feature-gates": "InitialCorruptCheck=false,CompactHashCheck=true", "name": "m1"}
    assert flags_for_36(flags) == ["--watch-progress-notify-interval=5s",
                                   "--feature-gates=InitialCorruptCheck=true,CompactHashCheck=true"]
    assert flags_for_36({"experimental-compaction-batch-limit": "1000"}) == ["--compaction-batch-limit=1000"]
    assert flags_for_36({"name": "m1"}) == []


def test_37_gets_every_experimental_flag_renamed_and_the_gates_merged() -> None:
    from etcdrescue.platform.release import FlagRewrite, rewrite_for

    flags = {"name": "m1", "experimental-initial-corrupt-check": "true",
             "experimental-watch-progress-notify-interval": "5s",
             "feature-gates": "StopGRPCServiceOnDefrag=true", "experimental-compaction-batch-limit": "100"}
    assert rewrite_for(EtcdRelease("3.7.4"), flags) == FlagRewrite(
        "3.7.4",
        (("watch-progress-notify-interval", "5s"), ("compaction-batch-limit", "100"),
         ("feature-gates", "StopGRPCServiceOnDefrag=true,InitialCorruptCheck=true")),
        ("experimental-initial-corrupt-check", "experimental-watch-progress-notify-interval",
         "experimental-compaction-batch-limit"))


def test_37_without_experimental_flags_and_36_either_way_need_nothing() -> None:
    from etcdrescue.platform.release import rewrite_for

    assert rewrite_for(EtcdRelease("3.7.4"), {"name": "m1", "feature-gates": "InitialCorruptCheck=true"}) is None
    assert rewrite_for(EtcdRelease("3.6.17"), {"experimental-initial-corrupt-check": "true"}) is None
    assert rewrite_for(EtcdRelease("3.6.17"), {"watch-progress-notify-interval": "5s"}) is None
    assert rewrite_for(EtcdRelease("unknown"), {"watch-progress-notify-interval": "5s"}) is None
    assert rewrite_for(EtcdRelease("3.5.36"), {"experimental-initial-corrupt-check": "true"}) is None


def test_35_gets_the_36_names_and_known_gates_back_as_experimental_flags() -> None:
    from etcdrescue.platform.release import FlagRewrite, rewrite_for

    flags = {"name": "m1", "watch-progress-notify-interval": "5s",
             "feature-gates": "InitialCorruptCheck=true,CompactHashCheck=false", "corrupt-check-time": "5m"}
    assert rewrite_for(EtcdRelease("3.5.36"), flags) == FlagRewrite(
        "3.5.36",
        (("experimental-watch-progress-notify-interval", "5s"), ("experimental-corrupt-check-time", "5m"),
         ("experimental-initial-corrupt-check", "true"), ("experimental-compact-hash-check-enabled", "false")),
        ("watch-progress-notify-interval", "feature-gates", "corrupt-check-time"))


def test_35_with_a_gate_it_has_no_flag_for_gets_a_problem_not_a_rewrite() -> None:
    from etcdrescue.platform.release import rewrite_for

    found = rewrite_for(EtcdRelease("3.5.36"), {"feature-gates": "InitialCorruptCheck=true,SomethingNew=true",
                                                "max-learners": "2"})
    assert found is not None and not found.set and not found.drop
    assert found.problem == ("etcd 3.5.36 has no flag for --max-learners, the feature gate SomethingNew: take it out "
                             "by hand or run an etcd 3.6+ image")


def test_a_rewrite_survives_the_journal() -> None:
    from etcdrescue.platform.release import FlagRewrite

    r = FlagRewrite("3.7.4", (("feature-gates", "InitialCorruptCheck=true"),), ("experimental-initial-corrupt-check",))
    assert FlagRewrite.from_record(r.record()) == r
    assert r.words == "--experimental-initial-corrupt-check -> --feature-gates=InitialCorruptCheck=true"
