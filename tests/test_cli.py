"""The operator's interface: `gengate keys create` and what Redis keeps of a key."""

from __future__ import annotations

import subprocess

import httpx

from gengate import procs


def test_keys_create_prints_the_key_last_and_stores_only_its_hash(env, rds, api_url):
    out = subprocess.run([*procs.gengate_command(), "keys", "create"], env=env, capture_output=True,
                         text=True, check=True, timeout=30)
    key = out.stdout.strip().splitlines()[-1]
    assert key.startswith("gg_live_") and len(key) > 50
    secret = key.rsplit("_", 1)[-1].encode()
    for k in rds.scan_iter("gengate:apikey:*"):
        assert secret not in b"".join(v for kv in rds.hgetall(k).items() for v in kv)
    r = httpx.post(f"{api_url}/v1/image", json={"model": "flux-schnell", "prompt": "cli"},
                   headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 202
    # The same account can hold several keys; a second key sees the first key's jobs.
    account = out.stderr.split("account:")[1].split()[0]
    out2 = subprocess.run([*procs.gengate_command(), "keys", "create", "--account", account], env=env,
                          capture_output=True, text=True, check=True, timeout=30)
    key2 = out2.stdout.strip().splitlines()[-1]
    got = httpx.get(f"{api_url}/v1/jobs/{r.json()['job_id']}", headers={"Authorization": f"Bearer {key2}"})
    assert got.status_code == 200
