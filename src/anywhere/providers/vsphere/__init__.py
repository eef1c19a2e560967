"""The ``vsphere`` provider: VMs cloned from templates in vCenter, driven with pyVmomi.

Tested against govmomi's vCenter simulator (``tests/vcsim``). See :mod:`.machine` for a VM's life,
:mod:`.cluster` for the cluster's infrastructure, :mod:`.inventory` for the preflight checks.
"""
