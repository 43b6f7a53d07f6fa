"""A pass reads many definitions and volumes a few at a time (reconciler/libvirt/together.py):
what it sees is what reading them one by one sees, and a call's error comes out where
its answer is used."""

from __future__ import annotations

from functools import partial

import libvirt
import pytest

from reconciler.libvirt.observe import Observer
from reconciler.libvirt.together import AT_LEAST, together
from tests.hosts import Host, vm_yaml

MANY = AT_LEAST + 4


def test_many_domains_are_observed_as_each_is_when_read_alone(host: Host) -> None:
    for index in range(MANY):
        host.write(f"vm-{index}.yaml", vm_yaml(name=f"vm-{index}"))
    host.reconcile()
    host.domain("vm-3.default").destroy()

    seen = Observer(host.connection).observe()
    one_by_one = Observer(host.connection).refresh(sorted(seen))

    assert len(seen) == MANY
    assert dict(seen) == dict(one_by_one)


def test_many_volumes_are_observed_with_their_sizes(host: Host) -> None:
    pool = host.connection.storagePoolLookupByName(host.storage_pool)
    for index in range(MANY):
        pool.createXML(
            f"<volume><name>v{index}.qcow2</name>"
            f"<capacity unit='MiB'>{index + 1}</capacity></volume>",
            0,
        )

    volumes = Observer(host.connection).volumes(host.storage_pool)

    assert {name: facts.capacity_bytes for name, facts in volumes.items()} == {
        volume.name(): volume.info()[1] for volume in pool.listAllVolumes(0)
    }
    assert volumes["v7.qcow2"].capacity_bytes == 8 << 20


def test_a_failed_call_raises_its_error_where_its_answer_is_used(host: Host) -> None:
    names = [f"nobody-{index}" if index == 5 else "test" for index in range(MANY)]

    answers = together([partial(host.connection.lookupByName, name) for name in names])

    assert [answers[index].value().name() for index in range(5)] == ["test"] * 5
    with pytest.raises(libvirt.libvirtError) as raised:
        answers[5].value()
    assert raised.value.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN
    assert answers[6].value().name() == "test"
