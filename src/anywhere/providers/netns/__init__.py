"""The ``netns`` provider: real machines on this host as Linux network namespaces.

A fabric (a namespace of the project's own holding a bridge and dnsmasq) stands for the network of
a NetnsDatacenterConfig; every machine is a namespace plugged into it by a veth pair that leases its
address by DHCP. Nothing here touches the host's own interfaces, routes or resolv.conf.
"""
