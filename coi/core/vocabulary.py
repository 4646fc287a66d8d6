"""The platform's fixed words: roles, kinds of site, kinds of unit. Pure data, shared by the
models and by the rules (routes, scan judging), which must not import the models."""

ROLES = ("site_staff", "coordinator", "courier", "qa", "admin")

# A hospital that both collects and infuses is one site with two kinds.
SITE_KINDS = ("collection", "treatment", "manufacturing", "courier_depot")

UNIT_KINDS = ("apheresis_bag", "sample", "drug_product_bag")

# Shipment legs: outbound (collection site to manufacturing), return (manufacturing to the
# treating site).
SHIPMENT_LEGS = ("outbound", "return")

# Why a label was revoked, as the public verify page says it ("Revoked: damaged label"). The
# free-text reason given with it is for signed-in users only: a public page shows none.
REVOCATION_CATEGORIES = {
    "damaged": "damaged label",
    "misprinted": "misprinted label",
    "replaced": "replaced by a new label",
    "destroyed": "label destroyed",
    "other": "withdrawn from use",
}
