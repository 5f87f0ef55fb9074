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
