"""The host configuration: one YAML file, environment overrides, clear errors."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from reconciler.config import ConfigError, load_config
from reconciler.model.migration import StorageMode


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_environment_overrides_win_over_the_file(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "repository:\n  url: file:///srv/vms.git\n  branch: main\nnodeName: hv1\nsuspend: false\n",
    )
    config = load_config(
        path,
        environ={
            "RECONCILER_NODE_NAME": "hv2",
            "RECONCILER_REPOSITORY_BRANCH": "staging",
            "RECONCILER_VIRTUAL_MACHINE_CIDRS": "10.66.10.0/24, 10.66.11.0/24",
            "RECONCILER_SUSPEND": "true",
            "RECONCILER_STATUS_PATH": "reports",
            "OTHER": "ignored",
        },
    )
    assert config.node_name == "hv2"
    assert config.repository is not None
    assert config.repository.branch == "staging"
    assert config.repository.url == "file:///srv/vms.git"  # the rest of the section stays
    assert config.virtual_machine_cidrs == [
        ipaddress.IPv4Network("10.66.10.0/24"),
        ipaddress.IPv4Network("10.66.11.0/24"),
    ]
    assert config.suspend is True
    assert config.status.path == "reports"


def test_a_bad_override_is_named_like_a_bad_file(tmp_path: Path) -> None:
    path = write(tmp_path, "repository:\n  url: file:///srv/vms.git\n")
    with pytest.raises(ConfigError, match=r"intervalSeconds|interval_seconds"):
        load_config(path, environ={"RECONCILER_REPOSITORY_INTERVAL_SECONDS": "0"})


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("repository: {url: x}\nunknownSetting: 1\n", "unknownSetting"),
        ("listen: [1, 2]\n", "listen"),
        ("- just\n- a list\n", "mapping"),
        ("repository: {url: x\n", "config.yaml"),
    ],
)
def test_a_bad_file_says_which_setting(tmp_path: Path, text: str, named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        load_config(write(tmp_path, text), environ={})


def test_images_come_from_the_default_directory_unless_configured(tmp_path: Path) -> None:
    default = load_config(write(tmp_path, "nodeName: hv1\n"), environ={})
    configured = load_config(
        write(tmp_path, "imageDirectories: [/srv/images, /data/isos]\n"), environ={}
    )
    overridden = load_config(
        write(tmp_path, "nodeName: hv1\n"),
        environ={"RECONCILER_IMAGE_DIRECTORIES": "/srv/a, /srv/b"},
    )

    assert default.image_directories == [Path("/var/lib/reconciler/images")]
    assert configured.image_directories == [Path("/srv/images"), Path("/data/isos")]
    assert overridden.image_directories == [Path("/srv/a"), Path("/srv/b")]


def test_a_relative_image_directory_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"imageDirectories.*'images' is not an absolute path"):
        load_config(write(tmp_path, "imageDirectories: [images]\n"), environ={})


def test_a_host_migrates_nowhere_unless_its_peers_are_listed(tmp_path: Path) -> None:
    default = load_config(write(tmp_path, "nodeName: hv1\n"), environ={})
    listed = load_config(
        write(tmp_path, "migrationPeers: ['qemu+tls://hv2/system', 'qemu+tls://hv3/system']\n"),
        environ={},
    )
    assert default.migration_peers == []
    assert listed.migration_peers == ["qemu+tls://hv2/system", "qemu+tls://hv3/system"]


def test_a_migration_peer_that_runs_a_command_is_a_configuration_error(tmp_path: Path) -> None:
    text = "migrationPeers: ['qemu+ssh://hv2/system?command=/bin/sh']\n"
    with pytest.raises(ConfigError, match="migrationPeers"):
        load_config(write(tmp_path, text), environ={})


@pytest.mark.parametrize(
    ("setting", "storage"),
    [
        ("", StorageMode.COPY),
        ("storagePoolShared: false\n", StorageMode.COPY),
        ("storagePoolShared: true\n", StorageMode.SHARED),
        ("storagePoolShared: directory\n", StorageMode.SHARED_DIRECTORY),
    ],
)
def test_a_pool_marked_shared_migrates_memory_only(
    tmp_path: Path, setting: str, storage: StorageMode
) -> None:
    config = load_config(write(tmp_path, "nodeName: hv1\n" + setting), environ={})
    assert config.migration_storage is storage


def test_the_pool_can_be_marked_shared_from_the_environment(tmp_path: Path) -> None:
    path = write(tmp_path, "nodeName: hv1\n")
    config = load_config(path, environ={"RECONCILER_STORAGE_POOL_SHARED": "true"})
    assert config.migration_storage is StorageMode.SHARED


def test_an_unknown_kind_of_shared_pool_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="storagePoolShared"):
        load_config(write(tmp_path, "storagePoolShared: nfs\n"), environ={})


def test_signed_history_is_off_unless_repository_verify_is_set(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "repository:\n  url: file:///srv/vms.git\n"), environ={})

    assert config.repository is not None
    assert config.repository.verify is None
    assert config.repository.signing_key_file is None


def test_repository_verify_reads_the_signers_files(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "repository:\n"
        "  url: file:///srv/vms.git\n"
        "  signingKeyFile: /etc/reconciler/signing-key\n"
        "  verify:\n"
        "    allowedSigners: /etc/reconciler/allowed_signers\n"
        "    hostSigners: /etc/reconciler/host_signers\n",
    )

    repository = load_config(path, environ={}).repository

    assert repository is not None and repository.verify is not None
    assert repository.signing_key_file == Path("/etc/reconciler/signing-key")
    assert repository.verify.allowed_signers == Path("/etc/reconciler/allowed_signers")
    assert repository.verify.host_signers == Path("/etc/reconciler/host_signers")
    assert repository.verify.gpg_keyring is None
    assert repository.verify.max_commits == 2000


def test_repository_verify_without_anyone_allowed_to_sign_is_refused(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "repository:\n  url: file:///srv/vms.git\n  verify:\n    hostSigners: /etc/h\n",
    )

    with pytest.raises(ConfigError, match=r"repository\.verify: .*allowedSigners or gpgKeyring"):
        load_config(path, environ={})


def test_repository_verify_without_host_signers_is_refused_while_reports_share_the_branch(
    tmp_path: Path,
) -> None:
    path = write(
        tmp_path,
        "repository:\n  url: file:///srv/vms.git\n  verify:\n    allowedSigners: /etc/a\n",
    )

    with pytest.raises(ConfigError, match=r"hostSigners is required"):
        load_config(path, environ={})


def test_repository_verify_needs_no_host_signers_when_reports_have_a_branch_of_their_own(
    tmp_path: Path,
) -> None:
    path = write(
        tmp_path,
        "repository:\n  url: file:///srv/vms.git\n  verify:\n    allowedSigners: /etc/a\n"
        "status:\n  branch: status\n",
    )

    repository = load_config(path, environ={}).repository

    assert repository is not None and repository.verify is not None
    assert repository.verify.host_signers is None
