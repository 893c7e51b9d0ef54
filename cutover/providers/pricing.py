"""Cost of a call from the endpoint's list prices and the usage the provider reported."""

from __future__ import annotations

from cutover.providers.types import EndpointSpec

TOKENS_PER_PRICE_UNIT = 1_000_000


def cost_usd(endpoint: EndpointSpec, *, input_tokens: int, output_tokens: int) -> float:
    """Dollars for one call; prices are per million tokens, as providers publish them."""
    dollars = (
        input_tokens * endpoint.input_price_per_mtok + output_tokens * endpoint.output_price_per_mtok
    ) / TOKENS_PER_PRICE_UNIT
    # Rounded to a billionth of a dollar so sums of many calls do not drift into float noise.
    return round(dollars, 9)
