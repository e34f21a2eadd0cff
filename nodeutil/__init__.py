"""Node-side Linux helpers every agent on a node shares: libc calls, network namespaces, mounts, netlink, iptables.

The kubelet (and its runtime), the service proxy, and the coming network,
policy and ingress agents all touch the same kernel interfaces: they enter
network namespaces, open sockets in them, talk rtnetlink, mount tmpfs, and
load iptables rules. Each of those seams lives here once, with its in-tree
fake where tests need one (``netlink.FakeNetlink``, ``iptables.FakeRunner``),
so no component copies a helper or reaches into another component for it.
This package imports only ``api`` and third-party or standard modules
(docs/design.md, layers).

* ``libc``     - the one ctypes handle on libc and its error check;
* ``netns``    - namespace flags, ``setns``/``unshare``, sockets made inside a netns;
* ``mounts``   - mount/umount, ``/proc/self/mountinfo``, a tmpfs ensured and detached;
* ``fdio``     - reading non-blocking pipes and ptys, a pty's terminal size;
* ``rtnl``     - lean, struct-packed rtnetlink requests for hot paths;
* ``netlink``  - the link-level seam (bridges, veths, addresses, routes), real and fake;
* ``iptables`` - the iptables-restore/-save and conntrack seam, real and fake.
"""
