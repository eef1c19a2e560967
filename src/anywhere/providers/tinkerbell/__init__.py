"""The ``tinkerbell`` provider: bare metal machines, netbooted and provisioned as Tinkerbell does.

Each server is a ``Hardware`` object (one row of the user's hardware CSV); a machine claims one
(:mod:`.pool`), and the TinkerbellMachine controller (:mod:`.machine`) renders its workflow
(:mod:`.workflow`), waits for its DHCP reservation (written by the TinkerbellCluster controller,
:mod:`.cluster`, with :mod:`.dhcp`), and netboots it through its BMC over Redfish (:mod:`.bmc`).
No server boots here, so :mod:`.runner` plays the netbooted server's tink-worker. The provider as
the generic controllers see it is :mod:`.provider`.
"""
