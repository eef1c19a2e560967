"""The embedded ``sim`` provider: in-memory machines with the rules of real ones.

Simulated does not mean lenient. The pieces here (an etcd membership with raft's quorum rules,
a DHCP lease pool with a real server's rules) refuse what the real component would refuse, so
a controller bug that would break a real cluster breaks the simulated one first, in a test.
"""
