"""Provider simulators for gengate: real HTTP servers that speak the upstream
providers' protocols (Fal's queue first) and hand out real media files, so the
gateway and its tests can run end to end without network access or API keys.

Run ``python -m sim --port 0`` or use :func:`sim.server.serve`.
"""
