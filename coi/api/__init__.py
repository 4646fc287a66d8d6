"""The JSON API for machines (couriers' devices, other systems), under /api/v1."""
