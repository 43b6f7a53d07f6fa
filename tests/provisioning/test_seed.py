"""build_seed_iso: the image a guest reads, read back with pycdlib as a guest would see it."""

from __future__ import annotations

import io
import re
import struct
import time
from collections.abc import Iterator

import pycdlib
import pytest
from pycdlib.dr import DirectoryRecord
from ruamel.yaml import YAML

from reconciler.model.names import seed_volume_name
from reconciler.provisioning import (
    NetworkConfig,
    ProvisioningKind,
    ProvisioningPayload,
    SeedFile,
    build_seed_iso,
    seed_instance_id,
)

USER_DATA = b"#cloud-config\nhostname: web\n"
NETWORK = NetworkConfig(
    mac="52:54:00:0a:0b:0c",
    address="10.20.0.15",
    prefix=24,
    gateway="10.20.0.1",
    dns=("10.20.0.1", "9.9.9.9"),
)


def cloud_init(user_data: bytes = USER_DATA) -> ProvisioningPayload:
    return ProvisioningPayload.of(
        ProvisioningKind.CLOUD_INIT, "inline userData", (SeedFile("user-data", user_data),)
    )


def sysprep(*files: tuple[str, bytes]) -> ProvisioningPayload:
    seed_files = tuple(SeedFile(name, content) for name, content in files)
    return ProvisioningPayload.of(ProvisioningKind.SYSPREP, "Secret web-unattend", seed_files)


def cidata(network: NetworkConfig | None = None, hostname: str = "web") -> bytes:
    return build_seed_iso(
        cloud_init(), instance_id="web.prod-0123456789abcdef", hostname=hostname, network=network
    )


class Image:
    """A built image opened with pycdlib, as Linux (Rock Ridge) and Windows (Joliet) see it."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.iso = pycdlib.PyCdlib()
        self.iso.open_fp(io.BytesIO(data))

    def close(self) -> None:
        self.iso.close()

    @property
    def volume_id(self) -> str:
        volume_id: bytes = self.iso.pvd.volume_identifier
        return volume_id.decode().rstrip()

    def rock_ridge_names(self) -> set[str]:
        return {
            child.rock_ridge.name().decode()
            for child in self.iso.list_children(rr_path="/")
            if not (child.is_dot() or child.is_dotdot())
        }

    def joliet_names(self) -> set[str]:
        return {
            child.file_identifier().decode("utf-16-be")
            for child in self.iso.list_children(joliet_path="/")
            if not (child.is_dot() or child.is_dotdot())
        }

    def read(self, name: str) -> bytes:
        out = io.BytesIO()
        self.iso.get_file_from_iso_fp(out, rr_path=f"/{name}")
        return out.getvalue()

    def read_joliet(self, name: str) -> bytes:
        out = io.BytesIO()
        self.iso.get_file_from_iso_fp(out, joliet_path=f"/{name}")
        return out.getvalue()

    def yaml(self, name: str) -> object:
        return YAML(typ="safe", pure=True).load(self.read(name))

    def records(self) -> Iterator[DirectoryRecord]:
        """The root's records (itself, its parent and its files), in both trees."""
        yield from self.iso.list_children(iso_path="/")
        yield from self.iso.list_children(joliet_path="/")


@pytest.fixture
def opened() -> Iterator[list[Image]]:
    images: list[Image] = []
    yield images
    for image in images:
        image.close()


def open_image(opened: list[Image], data: bytes) -> Image:
    image = Image(data)
    opened.append(image)
    return image


# --- cloud-init (NoCloud)


def test_cloud_init_seed_is_a_cidata_volume_with_the_nocloud_files(opened: list[Image]) -> None:
    image = open_image(opened, cidata())

    assert image.volume_id == "cidata"
    assert image.rock_ridge_names() == {"user-data", "meta-data"}
    assert image.joliet_names() == {"user-data", "meta-data"}
    assert image.read("user-data") == USER_DATA
    assert image.read_joliet("user-data") == USER_DATA


def test_volume_label_is_where_the_test_guest_reads_it() -> None:
    # tests/guest/rootfs/init: `dd bs=1 skip=32808 count=32 | tr -d ' \0'`.
    label = cidata()[32808 : 32808 + 32].replace(b" ", b"").replace(b"\0", b"")

    assert label == b"cidata"


def test_meta_data_names_the_instance_and_the_host(opened: list[Image]) -> None:
    image = open_image(opened, cidata())

    assert image.yaml("meta-data") == {
        "instance-id": "web.prod-0123456789abcdef",
        "local-hostname": "web",
    }


def test_meta_data_hostname_is_read_by_the_test_guests_sed(opened: list[Image]) -> None:
    # tests/guest/rootfs/init: sed -n 's/^local-hostname:[ ]*//p' | tr -d '"\r'
    text = open_image(opened, cidata(hostname="1234")).read("meta-data").decode()

    found = re.findall(r"^local-hostname:[ ]*(.*)$", text, flags=re.MULTILINE)
    assert [value.replace('"', "").replace("\r", "") for value in found] == ["1234"]


def test_numeric_host_name_stays_a_string_for_cloud_init(opened: list[Image]) -> None:
    image = open_image(opened, cidata(hostname="1234"))

    meta = image.yaml("meta-data")
    assert isinstance(meta, dict)
    assert meta["local-hostname"] == "1234"


def test_invalid_host_name_is_refused() -> None:
    with pytest.raises(ValueError, match="not a valid host name"):
        cidata(hostname="web_1\nruncmd: x")


def test_no_network_config_without_a_network() -> None:
    image = Image(cidata(network=None))
    try:
        assert "network-config" not in image.rock_ridge_names()
    finally:
        image.close()


def test_network_config_matches_the_nic_by_mac_with_a_static_address(
    opened: list[Image],
) -> None:
    image = open_image(opened, cidata(network=NETWORK))

    assert image.rock_ridge_names() == {"user-data", "meta-data", "network-config"}
    assert image.yaml("network-config") == {
        "version": 2,
        "ethernets": {
            "eth0": {
                "match": {"macaddress": "52:54:00:0a:0b:0c"},
                "addresses": ["10.20.0.15/24"],
                "routes": [{"to": "0.0.0.0/0", "via": "10.20.0.1"}],
                "nameservers": {"addresses": ["10.20.0.1", "9.9.9.9"]},
            }
        },
    }


def test_network_config_without_gateway_or_dns_has_only_the_address(
    opened: list[Image],
) -> None:
    network = NetworkConfig(mac="52:54:00:0a:0b:0c", address="10.20.0.15", prefix=24)
    image = open_image(opened, cidata(network=network))

    config = image.yaml("network-config")
    assert isinstance(config, dict)
    assert config["ethernets"]["eth0"] == {
        "match": {"macaddress": "52:54:00:0a:0b:0c"},
        "addresses": ["10.20.0.15/24"],
    }


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"mac": "52-54-00-0a-0b-0c"}, "not a lower-case MAC"),
        ({"address": "10.20.0.300"}, "does not appear to be an IPv4 or IPv6"),
        ({"prefix": 33}, "does not appear to be an IPv4 or IPv6"),
        ({"gateway": "fd00::1"}, "not of the address family"),
    ],
)
def test_network_config_refuses_malformed_values(fields: dict[str, object], message: str) -> None:
    values: dict[str, object] = {"mac": NETWORK.mac, "address": NETWORK.address, "prefix": 24}
    values.update(fields)

    with pytest.raises(ValueError, match=message):
        NetworkConfig(**values)  # type: ignore[arg-type]


# --- sysprep


def test_sysprep_seed_carries_the_answer_files_under_their_names(opened: list[Image]) -> None:
    payload = sysprep(("autounattend.xml", b"<setup/>"), ("unattend.xml", b"<oobe/>"))
    image = open_image(
        opened, build_seed_iso(payload, instance_id="ignored", hostname="web", network=NETWORK)
    )

    assert image.volume_id == "unattendCD"
    assert image.joliet_names() == {"autounattend.xml", "unattend.xml"}
    assert image.rock_ridge_names() == {"autounattend.xml", "unattend.xml"}
    assert image.read_joliet("autounattend.xml") == b"<setup/>"
    assert image.read_joliet("unattend.xml") == b"<oobe/>"


# --- determinism


def test_the_same_inputs_give_byte_identical_images_a_second_later() -> None:
    first = cidata(network=NETWORK)
    time.sleep(1.1)
    second = cidata(network=NETWORK)

    assert first == second


def test_the_image_does_not_depend_on_the_hosts_time_zone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    images = []
    try:
        for zone in ("UTC", "Asia/Kolkata", "America/Los_Angeles"):
            monkeypatch.setenv("TZ", zone)
            time.tzset()
            images.append(cidata(network=NETWORK))
    finally:
        monkeypatch.undo()
        time.tzset()

    assert images[0] == images[1] == images[2]


def test_every_date_in_the_image_is_1980_01_01_utc(opened: list[Image]) -> None:
    image = open_image(opened, cidata(network=NETWORK))

    pvd = image.data[16 * 2048 : 17 * 2048]
    for offset in (813, 830, 864):  # creation, modification, effective (ECMA-119 §8.4)
        assert pvd[offset : offset + 17] == b"1980010100000000\x00"
    for record in image.records():
        date = record.date
        assert (date.years_since_1900, date.month, date.day_of_month) == (80, 1, 1)
        assert (date.hour, date.minute, date.second, date.gmtoffset) == (0, 0, 0, 0)
        rock_ridge = record.rock_ridge
        if rock_ridge is not None and rock_ridge.dr_entries.tf_record is not None:
            tf = rock_ridge.dr_entries.tf_record
            for stamp in (tf.access_time, tf.modification_time, tf.attribute_change_time):
                if stamp is not None:
                    assert struct.unpack("=BBBBBBb", stamp.record()) == (80, 1, 1, 0, 0, 0, 0)


def test_a_changed_user_data_changes_the_image() -> None:
    def build(user_data: bytes) -> bytes:
        return build_seed_iso(cloud_init(user_data), instance_id="i", hostname="web", network=None)

    assert build(b"#cloud-config\n") != build(b"#cloud-config\npackages: [nginx]\n")


# --- names


def test_seed_volume_name_follows_the_content() -> None:
    first = seed_volume_name("prod", "web", b"one image")
    assert first.startswith("cidata-prod.web-") and first.endswith(".iso")
    assert seed_volume_name("prod", "web", b"one image") == first
    assert seed_volume_name("prod", "web", b"another image") != first


def test_seed_volume_names_of_different_vms_never_collide() -> None:
    # A namespace has no dots, so the dot after it cannot be part of either name.
    assert seed_volume_name("a-b", "c", b"x") != seed_volume_name("a", "b-c", b"x")


def test_instance_id_is_stable_for_the_same_seed() -> None:
    first = seed_instance_id("prod", "web", cloud_init(), NETWORK)

    assert first == seed_instance_id("prod", "web", cloud_init(), NETWORK)
    assert first.startswith("web.prod-")


def test_instance_id_changes_when_user_data_or_address_changes() -> None:
    base = seed_instance_id("prod", "web", cloud_init(), NETWORK)
    moved = NetworkConfig(mac=NETWORK.mac, address="10.20.0.16", prefix=24)

    assert seed_instance_id("prod", "web", cloud_init(b"#cloud-config\n"), NETWORK) != base
    assert seed_instance_id("prod", "web", cloud_init(), moved) != base
    assert seed_instance_id("prod", "web", cloud_init(), None) != base
