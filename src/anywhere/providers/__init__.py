"""Infrastructure providers: one package per kind of infrastructure, behind one small interface.

Controllers never talk to infrastructure directly; they ask a provider to create, observe and
delete machines, so the same lifecycle logic drives simulated machines, network namespaces,
vSphere and bare metal (DESIGN.md §2).
"""
