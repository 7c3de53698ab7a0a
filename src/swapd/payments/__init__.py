"""Payment providers: where a rider pays, and how the provider tells swapd the money arrived.

``provider`` is the interface; ``sandbox`` is a hosted page served by swapd itself (the default,
for demos and tests: no money moves); ``stripe_checkout`` is Stripe Checkout. ``config`` picks one
from the environment. Crediting the allowance is not here: services/checkout does it, only when a
verified webhook says the payment succeeded.
"""
