"""Provider simulators for gengate: real HTTP servers that speak the upstream
providers' protocols (Fal, Replicate, ElevenLabs, Higgsfield, PiAPI) and hand
out real media files, so the gateway and its tests can run end to end without
network access or API keys.

Run ``python -m gengate.sim --port 0`` or use :func:`gengate.sim.server.serve`.
"""
