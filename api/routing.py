"""Which providers a job may run on, in which order: the model's routes (config/catalog.py ROUTES)
ordered by its routing policy (GENGATE_ROUTING) or the request's `provider_order`, then kept only
where the request can run as it is.

The rules, and why:
- `provider:model` pins one provider: no fallback, whatever the policy (the caller chose).
- `provider_order` chooses among the providers the policy allows, in the caller's order; a provider
  outside them is refused (400), never silently dropped.
- A route is a fallback only if it takes the request exactly as the first route validated it (the
  same mode, aspect ratio, duration, prompt): a fallback that changed the request would change the
  output the caller priced and asked for.
- A request with `provider_options` does not fall back: its options are one provider's own fields.
- A route needs a key: the gateway's pooled key (the route allows it and one is configured), or the
  job's own. A BYOK job (its own key for the first provider) never moves to the gateway's pooled keys
  of another unless the request says `allow_pooled_fallback` (then that attempt is billed).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gengate.config.catalog import ROUTES, ModelSpec
from gengate.config.settings import ROUTING_POLICIES as POLICIES
from gengate.config.settings import Settings
from gengate.jobs import health
from gengate.jobs.errors import GatewayError, ValidationError


@dataclass(frozen=True)
class RoutePlan:
    """The routes of one job: it starts on `first`; `rest` are its fallbacks, in order."""

    first: ModelSpec
    rest: tuple[ModelSpec, ...]


def policy_for(name: str, settings: Settings) -> str:
    return settings.routing.get(name) or settings.routing.get("*") or "catalog"


def ordered(name: str, policy: str, price: Callable[[ModelSpec], int | None],
            p50: Mapping[str, float | None]) -> list[ModelSpec]:
    """The model's routes in the policy's order (`price(route)`: the request's price on it, None
    where the route cannot take the request; `p50`: provider -> median seconds of recent jobs)."""
    routes = list(ROUTES[name])
    if policy == "cheapest":
        # Stable: equal prices keep the catalog's order; a route that cannot price it goes last.
        prices = {r.provider: price(r) for r in routes}
        return sorted(routes, key=lambda r: (prices[r.provider] is None, prices[r.provider] or 0))
    if policy == "fastest":
        return sorted(routes, key=lambda r: (p50.get(r.provider) is None, p50.get(r.provider) or 0.0))
    if policy == "catalog":
        return routes
    by_provider = {r.provider: r for r in routes}
    return [by_provider[p.strip()] for p in policy.split(",") if p.strip() in by_provider]


def choose(routes: Sequence[ModelSpec], provider_order: Sequence[str] | None) -> list[ModelSpec]:
    """The request's `provider_order` applied to the allowed `routes`."""
    if not provider_order:
        return list(routes)
    allowed = {r.provider: r for r in routes}
    unknown = [p for p in provider_order if p not in allowed]
    if unknown:
        raise ValidationError(f"provider_order: '{unknown[0]}' does not serve this model here; allowed: "
                              f"{', '.join(allowed)}", field="provider_order")
    return [allowed[p] for p in dict.fromkeys(provider_order)]


def takes_same_request(route: ModelSpec, mode: str, check: Callable[[ModelSpec], tuple[str, Any]]) -> bool:
    """Whether `route` accepts the request as validated for the first route, in the same mode."""
    if mode not in route.modes:
        return False
    try:
        return check(route)[0] == mode
    except GatewayError:
        return False


def usable_with_pooled_key(route: ModelSpec, settings: Settings) -> bool:
    return route.pooled and getattr(settings, route.provider).api_key is not None


async def fastest_p50(redis: Any, name: str, routes: Sequence[ModelSpec]) -> dict[str, float | None]:
    """provider -> the median seconds of the model's recent jobs there (jobs/health.py), None where
    too few were measured; one round trip."""
    p50s = await health.duration_p50s_async(redis, [(r.provider, name) for r in routes])
    return {provider: value for (provider, _), value in p50s.items()}
