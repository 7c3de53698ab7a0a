"""Payment providers: where a rider pays, and how the provider tells swapd the money arrived.

``provider`` is the interface; ``sandbox`` is a hosted page served by swapd itself (for demos and
tests: no money moves, and any rider can credit their own top-ups); ``stripe_checkout`` is Stripe
Checkout. ``config`` picks the one the environment names; when it names none, swapd takes no
payments. Crediting the allowance is not here: services/checkout does it, only when a
verified webhook says the payment succeeded.
"""
