"""A repository in which every object has the longest name the platform allows.

A namespace and a VirtualMachine name are at most 63 characters, every other name
253 (api/names.py). Shared by the test-driver tests (`reconciler apply`) and the
daemon tests (`reconciler run`): whatever a host derives from these names (domain,
volumes, seed, status report paths) must fit its limits.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from reconciler.api.names import DNS_LABEL_MAX, DNS_SUBDOMAIN_MAX, VM_NAME_MAX
from reconciler.ipam.naming import generated_vmip_name
from reconciler.reports.documents import read_document


def longest(prefix: str, length: int) -> str:
    """A valid name of exactly `length` characters starting with `prefix`."""
    return prefix + "x" * (length - len(prefix))


NAMESPACE = longest("ns-", DNS_LABEL_MAX)
VM = longest("vm-", VM_NAME_MAX)
# Without a vmip of its own: it gets a generated one, `VM2-xxxxx`.
VM2 = longest("vm2-", VM_NAME_MAX)
CLASS = longest("class.", DNS_SUBDOMAIN_MAX)
ROOT_DISK = longest("root.", DNS_SUBDOMAIN_MAX)
DATA_DISK = longest("data.", DNS_SUBDOMAIN_MAX)
IMAGE = longest("image.", DNS_SUBDOMAIN_MAX)
CLUSTER_IMAGE = longest("cluster-image.", DNS_SUBDOMAIN_MAX)
VMIP = longest("address.", DNS_SUBDOMAIN_MAX)
ATTACHMENT = longest("attach.", DNS_SUBDOMAIN_MAX)
OPERATION = longest("restart.", DNS_SUBDOMAIN_MAX)
SECRET = longest("cloud-init.", DNS_SUBDOMAIN_MAX)
NODE = longest("node.", DNS_SUBDOMAIN_MAX)
# The test driver's network is 192.168.122.0/24.
CIDR = "192.168.122.0/24"

# The reports a pass writes for these objects: (kind, namespace, name).
REPORTED = {
    ("VirtualMachine", NAMESPACE, VM),
    ("VirtualMachine", NAMESPACE, VM2),
    ("VirtualMachineIPAddress", NAMESPACE, generated_vmip_name(NAMESPACE, VM2)),
    ("VirtualDisk", NAMESPACE, ROOT_DISK),
    ("VirtualDisk", NAMESPACE, DATA_DISK),
    ("VirtualMachineIPAddress", NAMESPACE, VMIP),
    ("VirtualMachineBlockDeviceAttachment", NAMESPACE, ATTACHMENT),
    ("VirtualMachineOperation", NAMESPACE, OPERATION),
    ("Node", "", NODE),
}

_MANIFESTS = """
apiVersion: virtualization.deckhouse.io/v1alpha2
kind: VirtualMachineClass
metadata:
  name: {CLASS}
spec:
  cpu:
    type: Host
  sizingPolicies:
    - cores: {{min: 1, max: 4}}
      memory: {{min: 1Gi, max: 8Gi}}
      coreFractions: [10, 100]
---
apiVersion: reconciler.vm-gitops.io/v1alpha1
kind: Node
metadata:
  name: {NODE}
spec:
  capacity:
    cpu: 16
    memory: 64Gi
---
apiVersion: virtualization.deckhouse.io/v1alpha2
kind: ClusterVirtualImage
metadata:
  name: {CLUSTER_IMAGE}
spec:
  dataSource:
    type: HTTP
    http:
      url: file://{image_file}
---
apiVersion: virtualization.deckhouse.io/v1alpha2
kind: VirtualImage
metadata:
  name: {IMAGE}
  namespace: {NAMESPACE}
spec:
  dataSource:
    type: HTTP
    http:
      url: file://{image_file}
---
apiVersion: v1
kind: Secret
metadata:
  name: {SECRET}
  namespace: {NAMESPACE}
type: provisioning.virtualization.deckhouse.io/cloud-init
stringData:
  userData: "#cloud-config\\n"
---
apiVersion: virtualization.deckhouse.io/v1alpha2
kind: VirtualMachineIPAddress
metadata:
  name: {VMIP}
  namespace: {NAMESPACE}
spec:
  type: Auto
---
apiVersion: virtualization.deckhouse.io/v1alpha2
kind: VirtualDisk
metadata:
  name: {ROOT_DISK}
  namespace: {NAMESPACE}
spec:
  persistentVolumeClaim:
    size: 1Gi
  dataSource:
    type: ObjectRef
    objectRef:
      kind: ClusterVirtualImage
      name: {CLUSTER_IMAGE}
---
apiVersion: virtualization.deckhouse.io/v1alpha2
kind: VirtualDisk
metadata:
  name: {DATA_DISK}
  namespace: {NAMESPACE}
spec:
  persistentVolumeClaim:
    size: 1Gi
  dataSource:
    type: ObjectRef
    objectRef:
      kind: VirtualImage
      name: {IMAGE}
---
apiVersion: virtualization.deckhouse.io/v1alpha2
kind: VirtualMachine
metadata:
  name: {VM}
  namespace: {NAMESPACE}
spec:
  virtualMachineClassName: {CLASS}
  virtualMachineIPAddressName: {VMIP}
  runPolicy: AlwaysOn
  terminationGracePeriodSeconds: 1
  cpu:
    cores: 1
    coreFraction: 10%
  memory:
    size: 1Gi
  blockDeviceRefs:
    - kind: VirtualDisk
      name: {ROOT_DISK}
    - kind: ClusterVirtualImage
      name: {CLUSTER_IMAGE}
  provisioning:
    type: UserDataRef
    userDataRef:
      kind: Secret
      name: {SECRET}
---
apiVersion: virtualization.deckhouse.io/v1alpha2
kind: VirtualMachine
metadata:
  name: {VM2}
  namespace: {NAMESPACE}
spec:
  virtualMachineClassName: {CLASS}
  runPolicy: AlwaysOn
  cpu:
    cores: 1
    coreFraction: 10%
  memory:
    size: 1Gi
  blockDeviceRefs:
    - kind: VirtualImage
      name: {IMAGE}
---
apiVersion: virtualization.deckhouse.io/v1alpha2
kind: VirtualMachineBlockDeviceAttachment
metadata:
  name: {ATTACHMENT}
  namespace: {NAMESPACE}
spec:
  virtualMachineName: {VM}
  blockDeviceRef:
    kind: VirtualDisk
    name: {DATA_DISK}
---
apiVersion: virtualization.deckhouse.io/v1alpha2
kind: VirtualMachineOperation
metadata:
  name: {OPERATION}
  namespace: {NAMESPACE}
spec:
  virtualMachineName: {VM}
  type: Restart
"""


def manifests(image_file: Path) -> str:
    """Every kind, each with its longest name; the images are `image_file`."""
    return _MANIFESTS.format(image_file=image_file, **globals())


def write_image(path: Path) -> Path:
    path.write_bytes(b"\1" * 4096)
    return path


def reports(status_root: Path) -> dict[tuple[str, str, str], Any]:
    """Every report under status_root by the identity its metadata gives."""
    found = {}
    for path in status_root.rglob("*.yaml"):
        document = read_document(path)
        if isinstance(document, dict) and isinstance(document.get("metadata"), dict):
            metadata = document["metadata"]
            key = (str(document.get("kind")), metadata.get("namespace", ""), metadata["name"])
            found[key] = document
    return found
