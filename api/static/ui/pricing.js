// Prices as /v1/models gives them (config/catalog.py Pricing): `cents` for every `per` units of
// `unit` (seconds of output, characters of a speech's text, images, or the job), at least
// `minimum_cents` a job.

const UNITS = { second: ["second", "s"], character: ["character", "characters"], image: ["image", "images"],
                job: ["job", "jobs"] };

export function dollars(cents) {
  return `$${(cents / 100).toFixed(2)}`;
}

/** "$0.10 per second", "$0.20 per 60 s", "$0.10 per 1,000 characters (at least $0.03)". */
export function priceText(pricing) {
  const [one, many] = UNITS[pricing.unit] || [pricing.unit, pricing.unit];
  const per = pricing.per === 1 ? one : `${pricing.per.toLocaleString("en")} ${many}`;
  const least = pricing.minimum_cents > 1 ? ` (at least ${dollars(pricing.minimum_cents)})` : "";
  return `${dollars(pricing.cents)} per ${per}${least}`;
}

/** What a job of `units` costs, as the gateway charges it: max(minimum, ceil(units × cents / per)).
 *  `units` null: the model's default request (its default duration, one image or job, a short text).
 *  Rounded to 1e-6 before the ceiling, so a float product such as 5.1 × 10 = 51.000000000000007
 *  is not charged a cent more than the gateway's exact arithmetic says. */
export function estimate(pricing, units) {
  const count = units ?? pricing.default_units ?? 0;
  const exact = Math.round((count * pricing.cents / pricing.per) * 1e6) / 1e6;
  return dollars(Math.max(pricing.minimum_cents, Math.ceil(exact)));
}
