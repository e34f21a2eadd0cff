"""CNI (Container Networking Interface, spec 1.0): the kubelet's runtime side and pocketkube's own bridge plugin.

``types``    results, errors and network configuration lists in the spec's JSON shapes;
``invoke``   the runtime side (``CNI``): find the config, run the plugin chain, cache results;
``plugin``   ``pocketkube-bridge``, our bridge + veth plugin (``python -m kubelet.cni.plugin``);
``ipam``     its host-local style address store, one file per lease;
``netlink``  the narrow seam through which the plugin touches the kernel, and its fake.
"""

from kubelet.cni.invoke import CNI, CachedAttachment, install_plugin, write_default_conflist
from kubelet.cni.types import CNIError, CNIResult, NetworkConfigList

__all__ = ["CNI", "CNIError", "CNIResult", "NetworkConfigList", "CachedAttachment", "install_plugin",
           "write_default_conflist"]
